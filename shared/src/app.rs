//! The composition root: which routes each HTTP Lambda function serves, and
//! the one place every capability's router is merged. Nothing below imports
//! this module.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};

use crate::auth::Permission;
use crate::config::Needs;
use crate::http::routes::{ApiRoutes, Doc};
use crate::http::{finish, health};
use crate::openapi;
use crate::state::AppState;

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
            Function::Auth => crate::login::api::routes(),
            Function::Products => crate::catalog::api::public_routes().merge(crate::catalog::api::routes()),
            Function::Orders => crate::orders::api::routes().merge(crate::subscriptions::events::routes()),
            Function::Admin => crate::users::api::routes()
                .merge(crate::customers::api::routes())
                .merge(crate::subscriptions::api::routes())
                .merge(crate::engine::api::routes())
                .merge(crate::servers::api::routes())
                .merge(crate::provision::api::routes())
                .merge(crate::certificates::api::routes())
                .merge(crate::tenants::api::routes())
                .merge(crate::audit::api::routes()),
        }
    }
}

/// Routes every HTTP function serves: health checks and the OpenAPI document.
pub fn common_routes() -> ApiRoutes {
    let doc = Doc::new("openapi", "health", "This document")
        .json::<openapi::OpenApiDocument>(200)
        .self_contained()
        .without_rate_limit();
    health::routes().route(Method::GET, openapi::PATH, Permission::Public, serve_openapi, doc)
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

/// The OpenAPI document of every route, built once per process.
pub fn openapi_document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| openapi::build(all_routes().specs()))
}

/// `GET /api/openapi.json`.
async fn serve_openapi() -> Response {
    static BODY: OnceLock<Vec<u8>> = OnceLock::new();
    let body = BODY.get_or_init(|| serde_json::to_vec(openapi_document()).unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], body.as_slice()).into_response()
}
