//! The HTTP kit: route declarations with their permission, extractors,
//! pagination, guards, health checks and the middleware every function
//! shares. It names no capability; `app` composes the capabilities' routes.

pub mod body;
pub mod etag;
pub mod extract;
pub mod guards;
pub mod health;
pub mod pagination;
pub mod routes;
pub mod webhook;

use axum::Router;
use axum::http::Request;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::auth::principal::authenticate;
use crate::error::AppError;
use crate::state::AppState;
use routes::ApiRoutes;

/// The middleware every function shares, around `routes`: problem+json
/// fallbacks, body limit, timeout, CORS, security headers, request ids,
/// access logs and authentication.
pub fn finish(routes: ApiRoutes, state: AppState) -> Router {
    let routed = routes
        .into_router()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // The middleware wraps the routed service once: `Router::layer` wraps
    // every route apart, which made building the admin router (70 routes,
    // a dozen layers) most of a cold start's work.
    let mut router = Router::new()
        .fallback_service(routed)
        .layer(axum::extract::DefaultBodyLimit::max(guards::BODY_LIMIT))
        .layer(axum::middleware::from_fn({
            let limit = state.config.request_timeout;
            move |req, next| guards::timeout(limit, req, next)
        }))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(guards::panic_answer))
        .layer(guards::cors(&state.config.cors_allowed_origins));
    for header in guards::security_headers() {
        router = router.layer(header);
    }
    router.layer(
        ServiceBuilder::new()
            // Outermost first: the id exists before the span opens, so
            // every log line of the request carries it.
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    // One access-log line per request; 5xx are logged as errors.
                    .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(axum::middleware::from_fn_with_state(state.authenticator(), authenticate))
            .layer(axum::middleware::from_fn_with_state(state, provide_state)),
    )
}

/// Makes the state reachable to the per-route guard (its rate limiter).
async fn provide_state(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    req.extensions_mut().insert(state);
    next.run(req).await
}

fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id =
        request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}
