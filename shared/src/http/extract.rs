//! Extractors whose rejections are problem+json naming the field, instead of
//! axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::body::Problems;
use super::pagination::{PageParams, PageRequest};
use crate::auth::principal::Principal;
use crate::error::{AppError, FieldError};
use crate::state::AppState;

/// A JSON body. Wrong content type → 415, unreadable JSON → 400, a value of
/// the wrong shape → 422 naming the field's path.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if !is_json(req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok())) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                AppError::BadRequest("The request body could not be read.".into())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// 415 unless the request says it carries JSON.
pub fn require_json(headers: &HeaderMap) -> Result<(), AppError> {
    if is_json(headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())) {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType)
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses JSON into `T`, turning serde's errors into field errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = strip_position(&inner.to_string());
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return AppError::BadRequest(format!("Malformed JSON: {message}."));
        }
        AppError::Validation(vec![field_error(&path, &message)])
    })?;
    de.end().map_err(|e| AppError::BadRequest(format!("Malformed JSON: {}.", strip_position(&e.to_string()))))?;
    Ok(value)
}

/// A JSON value already parsed (e.g. kept for hashing) as `T`, with the same
/// field errors as [`parse_json`].
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, AppError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        AppError::Validation(vec![field_error(&path, &strip_position(&err.into_inner().to_string()))])
    })
}

/// serde names a missing or unknown field at its parent: name the field itself.
fn field_error(path: &str, message: &str) -> FieldError {
    let parent = if path == "." { "" } else { path };
    let (path, message) = super::body::describe(parent, message);
    FieldError::new(if path.is_empty() { "body".to_string() } else { path }, message)
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The process's state and the signed-in caller: what nearly every admin
/// handler starts from, in one extractor.
pub struct Caller(pub AppState, pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        Ok(Caller(state.clone(), principal))
    }
}

/// A UUID path segment. Anything that is not a UUID cannot name a resource: 404.
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await.map_err(|_| AppError::NotFound)?;
        Uuid::parse_str(&raw).map(IdPath).map_err(|_| AppError::NotFound)
    }
}

/// Query parameters; an unparseable query string is a 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| AppError::Validation(vec![FieldError::new("query", e.body_text())]))
    }
}

/// A list's query string: the list's own filters `F` and the page
/// (`limit`, `cursor`), read the same way for every list. A bad page is
/// already in `problems`; the handler adds its filters' and finishes.
pub struct Listing<F> {
    pub filters: F,
    pub page: PageRequest,
    pub problems: Problems,
}

/// The filters of a list that has none besides the page.
#[derive(serde::Deserialize)]
pub struct NoFilters {}

/// `?status=&customerId=`: the filters of the lists kept per customer
/// (orders, subscriptions).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCustomerFilter {
    pub status: Option<String>,
    pub customer_id: Option<String>,
}

impl StatusCustomerFilter {
    /// The status (read by `status`) and the customer id, each problem
    /// reported under its parameter's name.
    pub fn read<S>(
        self,
        problems: &mut Problems,
        status: impl for<'a> super::body::Parse<&'a str, S>,
    ) -> (Option<S>, Option<Uuid>) {
        (
            problems.param("status", self.status, status),
            problems.param("customerId", self.customer_id, crate::types::parse_uuid),
        )
    }
}

/// `?domain=`: the one filter of every list kept per domain.
#[derive(Debug, serde::Deserialize)]
pub struct DomainFilter {
    pub domain: Option<String>,
}

/// A list kept per domain: `select` is `SELECT <columns> FROM ...` (no
/// WHERE); `tenant` and `domain` name its tenant id and domain name columns,
/// `key` its `created_at` and `id` columns, as the query sees them.
pub struct DomainList<'a> {
    pub select: &'a str,
    pub tenant: &'a str,
    pub domain: &'a str,
    pub key: (&'a str, &'a str),
}

/// One page of the tenant's rows of `list`, only `?domain=`'s when given.
pub async fn domain_page<T>(
    db: &crate::db::DbPool,
    tenant_id: Uuid,
    listing: Listing<DomainFilter>,
    list: DomainList<'_>,
    from_row: impl Fn(&tokio_postgres::Row) -> Result<T, AppError>,
) -> Result<axum::Json<super::pagination::Page<T>>, AppError> {
    let Listing { filters, page, mut problems } = listing;
    let domain = problems.param("domain", filters.domain, crate::types::DomainName::lookup);
    problems.finish()?;
    let DomainList { select, tenant, domain: domain_column, key } = list;
    let filtered = format!("{select} WHERE {tenant} = $1 AND ($2::text IS NULL OR {domain_column} = $2)");
    let domain = domain.as_ref().map(crate::types::DomainName::as_str);
    super::pagination::tenant_page(
        db,
        tenant_id,
        &filtered,
        key,
        &[(&domain, tokio_postgres::types::Type::TEXT)],
        &page,
        from_row,
    )
    .await
}

impl<F: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Listing<F> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Query(page_params) = Query::<PageParams>::from_request_parts(parts, state).await?;
        let Query(filters) = Query::<F>::from_request_parts(parts, state).await?;
        let mut problems = Problems::new();
        let page = problems.page(&page_params);
        Ok(Listing { filters, page, problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Customer {
        email: String,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Order {
        customer: Customer,
        amount: u32,
    }

    fn err(body: &str) -> AppError {
        parse_json::<Order>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn field_paths_are_named() {
        match err(r#"{"customer": {}, "amount": 1}"#) {
            AppError::Validation(e) => assert_eq!(e[0].field, "customer.email"),
            other => panic!("{other:?}"),
        }
        match err(r#"{"customer": {"email": "a@b.co"}, "amount": -1}"#) {
            AppError::Validation(e) => assert_eq!(e[0].field, "amount"),
            other => panic!("{other:?}"),
        }
        match err(r#"{"customer": {"email": "a@b.co"}}"#) {
            AppError::Validation(e) => assert_eq!(e[0].field, "amount"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(err("[]"), AppError::Validation(_)));
    }

    #[test]
    fn malformed_json_is_400() {
        assert!(matches!(err("{"), AppError::BadRequest(_)));
        assert!(matches!(err("{\"customer\": }"), AppError::BadRequest(_)));
        assert!(matches!(err(r#"{"customer": {"email": "a@b.co"}, "amount": 1} trailing"#), AppError::BadRequest(_)));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("application/problem+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }
}
