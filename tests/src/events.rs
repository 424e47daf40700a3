//! Sample Lambda events: their run-time placeholders, and the data they expect.

use std::collections::HashMap;

use mpanel::auth::Role;
use mpanel::config::Env;
use mpanel::types::Named;
use serde_json::{Value, json};

use crate::TestApp;

/// Creates what the events in `events/` expect (tenant `acme` with a
/// `starter-monthly` price, a user of every role, an order `seeded-order`)
/// and returns the placeholder values.
pub async fn placeholders(app: &TestApp) -> HashMap<String, String> {
    let tenant = app.create_tenant("acme").await;
    app.catalog_price(tenant, "starter", "SHARED_HOSTING", json!({"emails": 1}), 999).await;
    let mut values = HashMap::new();
    for &role in Role::all() {
        let user = app.create_user(tenant, role).await;
        let name = role.as_str();
        let session = app.login(&user).await;
        values.insert(format!("token:{name}"), session["accessToken"].as_str().expect("token").to_string());
        values.insert(format!("refresh:{name}"), session["refreshToken"].as_str().expect("refresh").to_string());
        values.insert(format!("email:{name}"), user.email.clone());
        values.insert(format!("password:{name}"), user.password.clone());
    }
    // A session of its own for the logout event, which ends it.
    let leaving = app.create_user(tenant, Role::Support).await;
    values.insert("token:SUPPORT@logout".into(), app.token(&leaving).await);
    let seeded = json!({
        "tenantSlug": "acme", "externalOrderId": "seeded-order", "customer": {"email": "s@example.org", "fullName": "S"},
        "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD", "domain": "seeded-example.com",
    });
    assert_eq!(app.request(app.signed_order("seed", &seeded)).await.status, http::StatusCode::CREATED);
    values.insert("responseUrl".into(), cloudformation_stand_in().await);
    values.insert("requestId".into(), uuid::Uuid::new_v4().to_string());
    values
}

/// A listener standing in for the presigned URL a custom resource answers
/// CloudFormation at: it takes any PUT.
pub async fn cloudformation_stand_in() -> String {
    let router = axum::Router::new().route("/cfn-response", axum::routing::put(|| async { "" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/cfn-response", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Fills the run-time placeholders as `mpanel event render` does, from
/// `values` (tokens of this test's users) and the app's webhook secret.
pub fn fill(raw: &str, values: &HashMap<String, String>, env: &Env) -> String {
    let key = mpanel::config::parse_webhook_secret(&env["MARKETING_WEBHOOK_SECRET"]).expect("secret");
    mpanel::cli::fill_event(raw, values, Some(&key), chrono::Utc::now().timestamp()).expect("event fills")
}

/// The functions that have a folder in `events/`, in template order.
pub const FUNCTIONS: [&str; 7] = ["auth", "products", "orders", "admin", "worker", "scheduler", "migrate"];

/// `events/<function>/*.json`, sorted.
pub fn files(function: &str) -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(function);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Asserts what an event's file name promises: `<name>.<status>.json` for
/// HTTP functions (the statusCode), `<name>.failures-<n>.json` for the
/// worker (that many batchItemFailures), `<name>.<Status>.json` for the
/// migrate function (SUCCESS or FAILED), any object for the scheduler.
pub fn assert_expected(function: &str, file: &std::path::Path, result: &Value) {
    let label = file.display();
    let expectation = file.file_stem().and_then(|s| s.to_str()).and_then(|s| s.rsplit_once('.')).map(|(_, e)| e);
    match (function, expectation) {
        ("worker", Some(exp)) => {
            let failures: usize = exp.trim_start_matches("failures-").parse().expect("failures-<n>");
            assert_eq!(result["batchItemFailures"].as_array().map(Vec::len), Some(failures), "{label}: {result}");
        }
        ("scheduler", _) => assert!(result.is_object(), "{label}: {result}"),
        ("migrate", Some(status)) => assert_eq!(result["Status"], status, "{label}: {result}"),
        (_, Some(status)) => assert_eq!(result["statusCode"].to_string(), status, "{label}: {result}"),
        _ => panic!("{label}: no expectation in the name"),
    }
}
