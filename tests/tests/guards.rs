//! HTTP guards on every function, and how the rate limiters behave when
//! Redis is down.

use http::{Method, StatusCode};
use mpanel::app::function_app;
use mpanel::auth::Role;
use mpanel_tests::{call, request, spawn_app, spawn_app_with};
use serde_json::json;

const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
];

#[tokio::test]
async fn every_function_sends_security_headers_on_every_response() {
    let app = spawn_app().await;
    for function in mpanel::Function::ALL {
        let router = function_app(function, app.state.clone());
        for (method, path) in
            [(Method::GET, "/api/health"), (Method::GET, "/api/nope"), (Method::DELETE, "/api/health")]
        {
            let r = call(&router, request(method.clone(), path, &[], None)).await;
            for (name, value) in SECURITY_HEADERS {
                assert_eq!(r.header(name), Some(value), "{} {method} {path}: {name}", function.name());
            }
        }
    }
    // Error and success responses alike, and the public listing keeps its own caching.
    let tenant = app.create_tenant("acme").await;
    let listing = app.get("/api/public/products?tenant=acme").await;
    assert_eq!(listing.header("cache-control"), Some("public, max-age=60"));
    let token = app.token(&app.create_user(tenant, Role::Admin).await).await;
    let me = app.authed(Method::GET, "/api/auth/me", &token, None).await;
    assert_eq!(me.header("cache-control"), Some("no-store"));
    assert_eq!(me.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn bodies_are_limited_json_only_and_parse_errors_are_400() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let token = app.token(&app.create_user(tenant, Role::Admin).await).await;
    let auth = format!("Bearer {token}");

    let huge = json!({"email": "a@example.org", "password": "x".repeat(70 * 1024), "role": "SUPPORT"});
    let r = app.request(request(Method::POST, "/api/users", &[("authorization", &auth)], Some(huge))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));

    let text = http::Request::builder()
        .method(Method::POST)
        .uri("/api/users")
        .header("authorization", &auth)
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("email=a@example.org"))
        .expect("request");
    let r = app.request(text).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));

    let malformed = http::Request::builder()
        .method(Method::POST)
        .uri("/api/users")
        .header("authorization", &auth)
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"email\": "))
        .expect("request");
    let r = app.request(malformed).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["status"], 400);
    assert_eq!(app.count("users").await, 1, "a refused body wrote a user");
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let app = spawn_app_with(|env| {
        env.insert("CORS_ALLOWED_ORIGINS".into(), "https://panel.example.com".into());
    })
    .await;
    let preflight = |origin: &'static str| {
        http::Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/users")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .body(axum::body::Body::empty())
            .expect("request")
    };
    let allowed = app.request(preflight("https://panel.example.com")).await;
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://panel.example.com"));
    assert!(allowed.header("access-control-allow-credentials").is_none());
    let other = app.request(preflight("https://evil.example.net")).await;
    assert!(other.header("access-control-allow-origin").is_none());

    // A wildcard cannot be configured.
    let mut env = app.env.clone();
    env.insert("CORS_ALLOWED_ORIGINS".into(), "*".into());
    let err = mpanel::Config::load(&env, mpanel::Needs::NONE).await.expect_err("wildcard refused");
    assert_eq!(err.var, "CORS_ALLOWED_ORIGINS");
}

#[tokio::test]
async fn with_redis_down_login_limits_fail_closed_and_the_general_limit_fails_open() {
    let healthy = spawn_app().await;
    let tenant = healthy.create_tenant("acme").await;
    let user = healthy.create_user(tenant, Role::Admin).await;
    let token = healthy.token(&user).await;

    let state = healthy
        .state_with(|env| {
            env.insert("REDIS_URL".into(), "redis://127.0.0.1:1/".into());
        })
        .await;
    let router = mpanel::app::combined_app(state);

    // The brute-force guard cannot count: logins are refused (503), not unguarded.
    let login = call(
        &router,
        request(Method::POST, "/api/auth/login", &[], Some(json!({"email": user.email, "password": user.password}))),
    )
    .await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(login.header("content-type"), Some("application/problem+json"));
    // Signed-in staff keep working: the general limit lets requests through.
    let auth = format!("Bearer {token}");
    let me = call(&router, request(Method::GET, "/api/auth/me", &[("authorization", &auth)], None)).await;
    assert_eq!(me.status, StatusCode::OK);
}

/// A handler that panics answers a problem+json 500 and the router lives on.
#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_next_request_is_served() {
    use mpanel::auth::Permission;
    use mpanel::http::routes::{ApiRoutes, Doc};
    let app = spawn_app().await;
    async fn boom() -> &'static str {
        let parts: Vec<&str> = Vec::new();
        // Indexing past the end: the kind of bug the guard exists for.
        parts[3]
    }
    let routes = mpanel::app::common_routes().merge(ApiRoutes::new().route(
        Method::GET,
        "/api/boom",
        Permission::Public,
        boom,
        Doc::new("boom", "test", "Panics").without_rate_limit(),
    ));
    let router = mpanel::http::finish(routes, app.state.clone());
    let r = call(&router, request(Method::GET, "/api/boom", &[], None)).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(!String::from_utf8_lossy(&r.body).contains("index out of bounds"), "the panic leaked");
    assert_eq!(call(&router, request(Method::GET, "/api/health", &[], None)).await.status, StatusCode::OK);
}

/// The request timeout comes from REQUEST_TIMEOUT_SECS (on Lambda it must
/// end before the function's own timeout).
#[tokio::test]
async fn the_request_timeout_is_configured() {
    let app = spawn_app_with(|env| {
        env.insert("REQUEST_TIMEOUT_SECS".into(), "7".into());
    })
    .await;
    assert_eq!(app.state.config.request_timeout, std::time::Duration::from_secs(7));
    let mut env = mpanel_tests::stack_env();
    env.insert("REQUEST_TIMEOUT_SECS".into(), "0".into());
    let bad = mpanel::config::Config::load(&env, mpanel::config::Needs::NONE).await;
    assert!(bad.is_err_and(|e| e.var == "REQUEST_TIMEOUT_SECS"));
}
