//! The one error type of mPanel and its RFC 9457 `application/problem+json`
//! rendering. 4xx responses say what to fix; 5xx responses say nothing
//! internal (the cause chain is logged inside the request's span, which
//! carries the `x-request-id` the client also receives).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request, named by its JSON path (e.g. `customer.email`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request could not be read at all (malformed JSON, bad query string).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: no or bad credentials.
    #[error("unauthorized")]
    Unauthorized,
    /// 403: authenticated, but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: also used for other tenants' ids, so their existence is not revealed.
    #[error("not found")]
    NotFound,
    /// 405 for a known path with an unsupported method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: clashes with existing state; `field` names what clashed when known.
    #[error("conflict: {detail}")]
    Conflict { field: Option<String>, detail: String },
    /// 413
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 422 with one entry per invalid field.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 429 with `Retry-After` in seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    /// 503: a dependency (Postgres, Redis) is unavailable; retrying later may work.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure. Its cause chain is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn conflict(field: impl Into<String>, detail: impl Into<String>) -> Self {
        AppError::Conflict { field: Some(field.into()), detail: detail.into() }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, documented problem type per kind of error.
    fn problem_type(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "https://mpanel.dev/problems/bad-request",
            AppError::Unauthorized => "https://mpanel.dev/problems/unauthorized",
            AppError::Forbidden(_) => "https://mpanel.dev/problems/forbidden",
            AppError::NotFound => "https://mpanel.dev/problems/not-found",
            AppError::MethodNotAllowed => "https://mpanel.dev/problems/method-not-allowed",
            AppError::Conflict { .. } => "https://mpanel.dev/problems/conflict",
            AppError::PayloadTooLarge => "https://mpanel.dev/problems/payload-too-large",
            AppError::UnsupportedMediaType => "https://mpanel.dev/problems/unsupported-media-type",
            AppError::Validation(_) => "https://mpanel.dev/problems/validation",
            AppError::TooManyRequests { .. } => "https://mpanel.dev/problems/rate-limited",
            AppError::Unavailable(_) => "https://mpanel.dev/problems/unavailable",
            AppError::Internal(_) => "https://mpanel.dev/problems/internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            AppError::BadRequest(d) => d.clone(),
            AppError::Unauthorized => "Missing or invalid credentials.".into(),
            AppError::Forbidden(d) => d.clone(),
            AppError::NotFound => "The requested resource does not exist.".into(),
            AppError::MethodNotAllowed => "This method is not allowed on this resource.".into(),
            AppError::Conflict { detail, .. } => detail.clone(),
            AppError::PayloadTooLarge => "The request body is too large.".into(),
            AppError::UnsupportedMediaType => "Send the body as application/json.".into(),
            AppError::Validation(_) => "One or more fields are invalid.".into(),
            AppError::TooManyRequests { retry_after_secs } => {
                format!("Too many requests; retry after {retry_after_secs} seconds.")
            }
            // Which dependency is down is operational detail: logged, not sent.
            AppError::Unavailable(_) => "The service is temporarily unavailable.".into(),
            AppError::Internal(_) => "An internal error occurred.".into(),
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let errors = match self {
            AppError::Validation(errors) => errors.clone(),
            AppError::Conflict { field: Some(field), detail } => vec![FieldError::new(field.clone(), detail.clone())],
            _ => Vec::new(),
        };
        Problem {
            problem_type: self.problem_type().to_string(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: self.detail(),
            errors,
        }
    }
}

/// The RFC 9457 body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "request failed");
            }
            AppError::Unavailable(reason) => {
                tracing::warn!(reason = %reason, "dependency unavailable");
            }
            _ => {}
        }
        let problem = self.to_problem();
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let AppError::TooManyRequests { retry_after_secs } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if matches!(self, AppError::Unavailable(_)) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_problem_lists_fields() {
        let problem = AppError::Validation(vec![FieldError::new("customer.email", "not an email")]).to_problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "customer.email");
        assert_eq!(problem.title, "Unprocessable Entity");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = AppError::internal(anyhow::anyhow!("password=hunter2 leaked in a panic message"));
        let problem = err.to_problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("hunter2"));
        let body = serde_json::to_string(&problem).unwrap();
        assert!(!body.contains("hunter2"));
    }

    #[test]
    fn conflict_names_the_field() {
        let problem = AppError::conflict("slug", "slug is already in use").to_problem();
        assert_eq!(problem.status, 409);
        assert_eq!(problem.errors[0].field, "slug");
    }

    #[test]
    fn rate_limit_sets_retry_after() {
        let response = AppError::TooManyRequests { retry_after_secs: 42 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
