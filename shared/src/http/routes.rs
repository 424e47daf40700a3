//! Route declarations. A route cannot be added without its permission: the
//! builder takes one, wraps the handler in the check, and records the route
//! so tests can walk every route of every function.

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use super::AppState;
use crate::auth::Permission;
use crate::auth::principal::{AuthState, Principal};
use crate::error::AppError;

/// Whether the general per-client rate limit applies to a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    Yes,
    /// Health checks and signed webhooks (the marketing site is one client
    /// that may legitimately send many orders).
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub permission: Permission,
    pub limited: Limited,
}

#[derive(Default)]
pub struct ApiRoutes {
    router: Router<AppState>,
    specs: Vec<RouteSpec>,
}

impl ApiRoutes {
    pub fn new() -> ApiRoutes {
        ApiRoutes::default()
    }

    /// Adds a rate-limited route guarded by `permission`.
    pub fn route<H, T>(self, method: Method, path: &'static str, permission: Permission, handler: H) -> ApiRoutes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(method, path, permission, Limited::Yes, handler)
    }

    pub fn add<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        permission: Permission,
        limited: Limited,
        handler: H,
    ) -> ApiRoutes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = method_filter(&method);
        let spec = RouteSpec { method, path, permission, limited };
        let guard_spec = spec.clone();
        let method_router =
            on(filter, handler).route_layer(axum::middleware::from_fn(move |req: Request, next: Next| {
                let spec = guard_spec.clone();
                async move { guard(spec, req, next).await }
            }));
        self.router = self.router.route(path, method_router);
        self.specs.push(spec);
        self
    }

    pub fn merge(mut self, other: ApiRoutes) -> ApiRoutes {
        self.router = self.router.merge(other.router);
        self.specs.extend(other.specs);
        self
    }

    pub fn specs(&self) -> &[RouteSpec] {
        &self.specs
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

fn method_filter(method: &Method) -> MethodFilter {
    match *method {
        Method::POST => MethodFilter::POST,
        Method::PATCH => MethodFilter::PATCH,
        Method::PUT => MethodFilter::PUT,
        Method::DELETE => MethodFilter::DELETE,
        // Routes are declared in code with the methods above or GET.
        _ => MethodFilter::GET,
    }
}

/// Permission first (401 / 403 / the authentication's own failure), then the
/// general rate limit, keyed by user when signed in, else by client IP.
async fn guard(spec: RouteSpec, req: Request, next: Next) -> Response {
    let auth = req.extensions().get::<AuthState>().cloned();
    let principal: Option<Principal> = match (&spec.permission, auth) {
        (Permission::Public, Some(AuthState::Authenticated(p))) => Some(p),
        (Permission::Public, _) => None,
        (_, None) => return AppError::Unauthorized.into_response(),
        (_, Some(AuthState::Failed(failure))) => return failure.into_error().into_response(),
        (permission, Some(AuthState::Authenticated(p))) => {
            if !permission.allows(p.role) {
                return AppError::Forbidden("Your role does not allow this action.".into()).into_response();
            }
            Some(p)
        }
    };
    if spec.limited == Limited::Yes
        && let Some(state) = req.extensions().get::<AppState>()
    {
        let bucket = match &principal {
            Some(p) => format!("api:user:{}", p.user_id),
            None => format!("api:ip:{}", crate::auth::client::ClientMeta::from_request(&req).ip_key()),
        };
        let limit = crate::ratelimit::Limit {
            max: state.config.rate_limits.max_requests,
            window: state.config.rate_limits.window,
        };
        match state.limiter.consume(&bucket, limit).await {
            Ok(decision) => {
                if let Err(e) = decision.check() {
                    return e.into_response();
                }
            }
            // Availability over strictness for the general limit; login
            // failures (the brute-force guard) fail closed instead.
            Err(e) => tracing::warn!(error = %e, "rate limiter unavailable; request allowed"),
        }
    }
    next.run(req).await
}
