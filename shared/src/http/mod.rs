//! HTTP: the per-function routers, the middleware every function shares,
//! problem+json fallbacks for unknown routes and methods, and health checks.
//!
//! Each Lambda function serves `function_app(Function::X, state)`; `mpanel
//! serve` serves `combined_app(state)`, the same routes merged.

pub mod extract;
pub mod fields;
pub mod guards;
pub mod health;
pub mod openapi;
pub mod pagination;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::http::Request;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::auth::principal::authenticate;
use crate::auth::tokens::TokenKeys;
use crate::config::{Config, Needs};
use crate::db::DbPool;
use crate::dispatch::Dispatcher;
use crate::error::AppError;
use crate::kv::Kv;
use crate::ratelimit::RateLimiter;
use routes::ApiRoutes;

/// What every handler can reach. Built once per process / Lambda container.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DbPool,
    pub kv: Kv,
    pub limiter: RateLimiter,
    pub dispatcher: Dispatcher,
    /// Present when the process has a JWT secret (every HTTP function does).
    pub tokens: Option<Arc<TokenKeys>>,
    /// For PowerDNS; built once, it pools connections.
    pub http: reqwest::Client,
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<AppState> {
        let db = crate::db::pool(&config.database, config.db_pool_size)?;
        let kv = Kv::new(&config.redis_url, &config.redis_key_prefix)?;
        let tokens = config.jwt_secret.as_ref().map(|s| Arc::new(TokenKeys::new(s)));
        let dispatcher = Dispatcher::new(kv.clone(), config.aws.as_ref(), config.sqs_queue_url.clone());
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(15))
            .build()?;
        Ok(AppState {
            http,
            config: Arc::new(config),
            db,
            limiter: RateLimiter::new(kv.clone()),
            dispatcher,
            kv,
            tokens,
        })
    }
}

impl AppState {
    /// Removes every configured secret from a text bound for storage or logs
    /// (job errors can echo request headers or URLs).
    pub fn redact(&self, text: &str) -> String {
        let config = &self.config;
        let mut secrets: Vec<String> = Vec::new();
        if let Some(p) = &config.pdns {
            secrets.push(p.api_key.expose().clone());
        }
        if let Some(j) = &config.jwt_secret {
            secrets.push(String::from_utf8_lossy(j.expose()).into_owned());
        }
        if let Some(pw) = config.database.expose().get_password() {
            secrets.push(String::from_utf8_lossy(pw).into_owned());
        }
        if let Some(crate::config::SshKeySource::Inline(key)) = &config.ssh_private_key {
            secrets.extend(key.expose().lines().filter(|l| l.len() > 16).map(str::to_string));
        }
        let mut out = text.to_string();
        for secret in secrets.iter().filter(|s| s.len() >= 6) {
            out = out.replace(secret.as_str(), "[redacted]");
        }
        out.chars().take(4000).collect()
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
    pub const ALL: [Function; 4] = [Function::Auth, Function::Products, Function::Orders, Function::Admin];

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
            Function::Auth | Function::Products => Needs { jwt: true, ..Needs::NONE },
            Function::Orders => Needs { jwt: true, webhook: true, sqs: true, ..Needs::NONE },
            Function::Admin => Needs { jwt: true, sqs: true, ..Needs::NONE },
        }
    }

    /// The function's own routes, without the shared health routes.
    pub fn routes(self) -> ApiRoutes {
        match self {
            Function::Auth => crate::auth::api::routes(),
            Function::Products => crate::catalog::public::routes().merge(crate::catalog::api::routes()),
            Function::Orders => crate::orders::api::routes().merge(crate::subscriptions::events::routes()),
            Function::Admin => crate::users::api::routes()
                .merge(crate::customers::routes())
                .merge(crate::subscriptions::api::routes())
                .merge(crate::jobs::api::routes())
                .merge(crate::servers::routes())
                .merge(crate::provision::mail_api::routes())
                .merge(crate::tenants::api::routes())
                .merge(crate::audit::api::routes()),
        }
    }
}

/// Routes every HTTP function serves: health checks and the OpenAPI document.
pub fn common_routes() -> ApiRoutes {
    health::routes().add(
        axum::http::Method::GET,
        openapi::PATH,
        crate::auth::Permission::Public,
        routes::Limited::No,
        openapi::serve,
    )
}

/// Every route of every function (the common ones once), for tests and docs.
pub fn all_routes() -> ApiRoutes {
    Function::ALL.into_iter().fold(common_routes(), |acc, function| acc.merge(function.routes()))
}

/// The router one Lambda function serves.
pub fn function_app(function: Function, state: AppState) -> Router {
    finish(common_routes().merge(function.routes()), state)
}

/// Every function's routes merged: what `mpanel serve` serves.
pub fn combined_app(state: AppState) -> Router {
    finish(all_routes(), state)
}

fn finish(routes: ApiRoutes, state: AppState) -> Router {
    let mut router = routes
        .into_router()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(guards::BODY_LIMIT))
        .layer(axum::middleware::from_fn(guards::timeout))
        .layer(guards::cors(&state.config.cors_allowed_origins));
    for header in guards::security_headers() {
        router = router.layer(header);
    }
    router
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
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate)),
        )
        .with_state(state)
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
