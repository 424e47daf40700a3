//! Health, readiness, problem+json fallbacks and request ids.

use http::{Method, StatusCode};
use mpanel::Function;
use mpanel::app::function_app;
use mpanel_tests::{call, request, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_and_ready_answer_when_services_are_up() {
    let app = spawn_app().await;
    let health = app.get("/api/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
    let ready = app.get("/api/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", String::from_utf8_lossy(&ready.body));
}

#[tokio::test]
async fn every_http_function_serves_health_and_ready() {
    let app = spawn_app().await;
    for function in Function::ALL {
        let router = function_app(function, app.state.clone());
        for path in ["/api/health", "/api/ready"] {
            let response = call(&router, request(Method::GET, path, &[], None)).await;
            assert_eq!(response.status, StatusCode::OK, "{} {path}", function.name());
        }
    }
}

#[tokio::test]
async fn ready_is_503_problem_when_redis_is_down() {
    // Port 1 on loopback: nothing listens there, exactly like a stopped Redis.
    let app = spawn_app_with(|env| {
        env.insert("REDIS_URL".into(), "redis://127.0.0.1:1/".into());
    })
    .await;
    let ready = app.get("/api/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.header("content-type"), Some("application/problem+json"));
    let body = ready.json();
    assert_eq!(body["status"], 503);
    // Which dependency failed is logged, not told to the caller.
    assert!(!ready.body.windows(5).any(|w| w == b"redis"));
    // Liveness does not depend on Redis.
    assert_eq!(app.get("/api/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn ready_is_503_problem_when_postgres_is_down() {
    let app = spawn_app().await;
    let mut env = app.env.clone();
    env.insert("DATABASE_URL".into(), "postgres://mpanel:mpanel@127.0.0.1:1/mpanel".into());
    let config = mpanel::Config::load(&env, mpanel::Needs::NONE).await.expect("config");
    let router = mpanel::app::combined_app(mpanel::AppState::new(config).expect("state"));
    let ready = call(&router, request(Method::GET, "/api/ready", &[], None)).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.header("content-type"), Some("application/problem+json"));
    assert_eq!(ready.header("retry-after"), Some("5"));
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_with_request_ids() {
    let app = spawn_app().await;
    let missing = app.get("/api/does-not-exist").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("content-type"), Some("application/problem+json"));
    assert_eq!(missing.json()["status"], 404);

    let wrong_method = app.request(request(Method::DELETE, "/api/health", &[], None)).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.header("content-type"), Some("application/problem+json"));
    assert_eq!(wrong_method.json()["title"], "Method Not Allowed");

    let first = missing.header("x-request-id").expect("request id").to_string();
    let second = wrong_method.header("x-request-id").expect("request id").to_string();
    assert_ne!(first, second);
    assert!(uuid::Uuid::parse_str(&first).is_ok());
}

#[tokio::test]
async fn a_callers_request_id_is_kept() {
    let app = spawn_app().await;
    let response = app.request(request(Method::GET, "/api/health", &[("x-request-id", "trace-abc-123")], None)).await;
    assert_eq!(response.header("x-request-id"), Some("trace-abc-123"));
}
