//! Route declarations. A route cannot be added without its permission and
//! its description: the builder takes both, wraps the handler in the check,
//! and records the route so the API document and the tests walk every route
//! of every function.

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

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

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub permission: Permission,
    pub limited: Limited,
    pub doc: Doc,
}

/// A route is its method and path (axum refuses two alike).
impl PartialEq for RouteSpec {
    fn eq(&self, other: &RouteSpec) -> bool {
        self.method == other.method && self.path == other.path
    }
}

/// A query parameter a route reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryParam {
    /// Free text, e.g. a status name or an email.
    Text(&'static str, &'static str),
    Uuid(&'static str, &'static str),
    /// An RFC 3339 time.
    Time(&'static str, &'static str),
    /// A required text parameter that names a resource (unknown: 404).
    RequiredText(&'static str, &'static str),
}

/// A component schema a route names, and how to collect it (with the schemas
/// it refers to) into the document.
#[derive(Clone)]
pub struct SchemaOf {
    pub name: String,
    pub collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl SchemaOf {
    pub fn of<T: ToSchema>() -> SchemaOf {
        fn collect<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((T::name().into_owned(), T::schema()));
            T::schemas(schemas);
        }
        SchemaOf { name: T::name().into_owned(), collect: collect::<T> }
    }
}

impl std::fmt::Debug for SchemaOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// What a route answers on success.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body of the schema, with this status.
    Json(u16, SchemaOf),
    /// `{"items": [<schema>], "nextCursor": ...}` with `limit`/`cursor` parameters.
    Page(SchemaOf),
    /// 204 No Content.
    Empty,
}

/// A route's description in the API document, declared with the route.
#[derive(Debug, Clone)]
pub struct Doc {
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub query: &'static [QueryParam],
    pub body: Option<SchemaOf>,
    pub reply: Reply,
    /// Verified by a Standard Webhooks signature instead of a token.
    pub signed_webhook: bool,
    /// Answers with an ETag and 304 on `If-None-Match`.
    pub etag: bool,
    /// Checks credentials in its body (login, refresh): may answer 401.
    pub checks_credentials: bool,
    /// Touches neither PostgreSQL nor Redis: never 503.
    pub self_contained: bool,
    /// Whether the general per-client rate limit applies.
    pub limited: Limited,
}

impl Doc {
    /// A route answering 204 until told otherwise.
    pub fn new(operation_id: &'static str, tag: &'static str, summary: &'static str) -> Doc {
        Doc {
            operation_id,
            tag,
            summary,
            query: &[],
            body: None,
            reply: Reply::Empty,
            signed_webhook: false,
            etag: false,
            checks_credentials: false,
            self_contained: false,
            limited: Limited::Yes,
        }
    }

    pub fn query(self, query: &'static [QueryParam]) -> Doc {
        Doc { query, ..self }
    }

    /// Reads a JSON body of `T`.
    pub fn body<T: ToSchema>(self) -> Doc {
        Doc { body: Some(SchemaOf::of::<T>()), ..self }
    }

    /// Answers `T` as JSON with `status`.
    pub fn json<T: ToSchema>(self, status: u16) -> Doc {
        Doc { reply: Reply::Json(status, SchemaOf::of::<T>()), ..self }
    }

    /// Answers one page of `T`s.
    pub fn page<T: ToSchema>(self) -> Doc {
        Doc { reply: Reply::Page(SchemaOf::of::<T>()), ..self }
    }

    pub fn signed_webhook(self) -> Doc {
        Doc { signed_webhook: true, ..self }
    }

    pub fn etag(self) -> Doc {
        Doc { etag: true, ..self }
    }

    pub fn checks_credentials(self) -> Doc {
        Doc { checks_credentials: true, ..self }
    }

    pub fn self_contained(self) -> Doc {
        Doc { self_contained: true, ..self }
    }

    pub fn without_rate_limit(self) -> Doc {
        Doc { limited: Limited::No, ..self }
    }
}

/// Routes and their descriptions, collected; the axum router is built once
/// in [`ApiRoutes::into_router`]. Merging axum routers re-inserts every
/// route of the merged one, so a function's router built by merging its
/// groups inserted each route about three times (admin: 0.5 M of its
/// 2.5 M instructions of init).
#[derive(Default)]
pub struct ApiRoutes {
    routes: Vec<(&'static str, MethodRouter<AppState>)>,
    specs: Vec<RouteSpec>,
}

impl ApiRoutes {
    pub fn new() -> ApiRoutes {
        ApiRoutes::default()
    }

    /// Adds a route guarded by `permission` and described by `doc`.
    pub fn route<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        permission: Permission,
        handler: H,
        doc: Doc,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let limited = doc.limited;
        let filter = method_filter(&method);
        let method_router =
            on(filter, handler).route_layer(axum::middleware::from_fn(move |req: Request, next: Next| async move {
                guard(permission, limited, req, next).await
            }));
        self.routes.push((path, method_router));
        self.specs.push(RouteSpec { method, path, permission, limited, doc });
        self
    }

    pub fn merge(mut self, other: ApiRoutes) -> ApiRoutes {
        self.routes.extend(other.routes);
        self.specs.extend(other.specs);
        self
    }

    pub fn specs(&self) -> &[RouteSpec] {
        &self.specs
    }

    /// One insertion per route; a path's methods join as `Router::route`
    /// joins them (and, like it, a method declared twice for a path panics).
    pub fn into_router(self) -> Router<AppState> {
        self.routes.into_iter().fold(Router::new(), |router, (path, method_router)| router.route(path, method_router))
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
async fn guard(permission: Permission, limited: Limited, req: Request, next: Next) -> Response {
    let auth = req.extensions().get::<AuthState>().cloned();
    let principal: Option<Principal> = match (&permission, auth) {
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
    if limited == Limited::Yes
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
