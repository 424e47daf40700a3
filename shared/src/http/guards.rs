//! Guards every HTTP function wears: security headers, CORS from an
//! allow-list, a body size limit and a request timeout (both answered with
//! problem+json).

use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::AppError;

/// A handler that panics answers a problem+json 500 (the process and the
/// Lambda container live on); the panic itself is logged.
pub fn panic_answer(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_string());
    AppError::internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

/// Largest request body accepted anywhere (webhooks have the same limit).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Headers on every response: an API has nothing to frame, embed or sniff.
pub fn security_headers() -> Vec<SetResponseHeaderLayer<HeaderValue>> {
    [
        (header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (header::CACHE_CONTROL, "no-store"),
    ]
    .into_iter()
    .map(|(name, value)| {
        // Cache-Control only where a handler set none (the public listing sets its own).
        if name == header::CACHE_CONTROL {
            SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
        } else {
            SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
        }
    })
    .collect()
}

/// CORS for the listed origins only. No credentials are allowed (the API
/// uses bearer tokens, not cookies), so a wildcard is never combined with them.
pub fn cors(allowed_origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-tenant"),
            HeaderName::from_static("webhook-id"),
            HeaderName::from_static("webhook-timestamp"),
            HeaderName::from_static("webhook-signature"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER, header::ETAG])
        .max_age(Duration::from_secs(600))
}

/// Bounds every request's time; the client gets a problem+json 503 (and
/// the work is dropped).
pub async fn timeout(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => AppError::Unavailable("request timed out".into()).into_response(),
    }
}
