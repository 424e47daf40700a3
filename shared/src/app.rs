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
            Function::Auth => auth_routes(),
            Function::Products => products_routes(),
            Function::Orders => orders_routes(),
            Function::Admin => admin_routes(),
        }
    }
}

// One function per Lambda function's routes, each called by name from its
// `main`: the binary then links only its own handlers (a `Function` chosen at
// run time would keep every handler of every function alive).

pub fn auth_routes() -> ApiRoutes {
    crate::login::api::routes()
}

pub fn products_routes() -> ApiRoutes {
    crate::catalog::api::public_routes().merge(crate::catalog::api::routes())
}

pub fn orders_routes() -> ApiRoutes {
    crate::orders::api::routes().merge(crate::subscriptions::events::routes())
}

pub fn admin_routes() -> ApiRoutes {
    crate::users::api::routes()
        .merge(crate::customers::api::routes())
        .merge(crate::subscriptions::api::routes())
        .merge(crate::engine::api::routes())
        .merge(crate::servers::api::routes())
        .merge(crate::provision::api::routes())
        .merge(crate::certificates::api::routes())
        .merge(crate::tenants::api::routes())
        .merge(crate::audit::api::routes())
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
    function_router(function.routes(), state)
}

/// The router of a function's own routes (`auth_routes()`, ...) plus the
/// common ones: what each Lambda function's `main` serves.
pub fn function_router(routes: ApiRoutes, state: AppState) -> Router {
    finish(common_routes().merge(routes), state)
}

/// Every function's routes merged: what `mpanel serve` serves.
pub fn combined_app(state: AppState) -> Router {
    finish(all_routes(), state)
}

/// The OpenAPI document of every route, built from the declarations (tests
/// hold it against the served, precomputed [`openapi::DOCUMENT`]).
pub fn openapi_document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| openapi::build(all_routes().specs()))
}

/// `GET /api/openapi.json`: the precomputed document, so a function does not
/// link every other function's handlers and schemas to describe them.
async fn serve_openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi::DOCUMENT).into_response()
}
