//! HTTP: the per-function routers, the middleware every function shares,
//! problem+json fallbacks for unknown routes and methods, and health checks.
//!
//! Each Lambda function serves `function_app(Function::X, state)`; `mpanel
//! serve` serves `combined_app(state)`, the same routes merged.

pub mod health;

use std::sync::Arc;

use axum::Router;
use axum::http::Request;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::config::{Config, Needs};
use crate::db::DbPool;
use crate::error::AppError;
use crate::kv::Kv;

/// What every handler can reach. Built once per process / Lambda container.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DbPool,
    pub kv: Kv,
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<AppState> {
        let db = crate::db::pool(&config.database, config.db_pool_size)?;
        let kv = Kv::new(&config.redis_url, &config.redis_key_prefix)?;
        Ok(AppState {
            config: Arc::new(config),
            db,
            kv,
        })
    }
}

/// The HTTP Lambda functions. Each owns a disjoint set of routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Auth,
    Products,
    Orders,
    Admin,
}

impl Function {
    pub const ALL: [Function; 4] = [
        Function::Auth,
        Function::Products,
        Function::Orders,
        Function::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Auth => "auth",
            Function::Products => "products",
            Function::Orders => "orders",
            Function::Admin => "admin",
        }
    }

    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The configuration each function needs (and so the secrets it may read).
    pub fn needs(self) -> Needs {
        match self {
            Function::Auth | Function::Products => Needs {
                jwt: true,
                ..Needs::NONE
            },
            Function::Orders => Needs {
                jwt: true,
                webhook: true,
                sqs: true,
                ..Needs::NONE
            },
            Function::Admin => Needs {
                jwt: true,
                sqs: true,
                ..Needs::NONE
            },
        }
    }

    /// The function's own routes, without the shared health routes.
    fn routes(self) -> Router<AppState> {
        match self {
            Function::Auth | Function::Products | Function::Orders | Function::Admin => {
                Router::new()
            }
        }
    }
}

/// The router one Lambda function serves.
pub fn function_app(function: Function, state: AppState) -> Router {
    finish(function.routes(), state)
}

/// Every function's routes merged: what `mpanel serve` serves.
pub fn combined_app(state: AppState) -> Router {
    let routes = Function::ALL
        .into_iter()
        .fold(Router::new(), |acc, function| acc.merge(function.routes()));
    finish(routes, state)
}

fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .merge(health::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(
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
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
        .with_state(state)
}

fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
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
