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
    values.insert("token:SESSION_TO_END".into(), app.token(&leaving).await);
    let seeded = json!({
        "tenantSlug": "acme", "externalOrderId": "seeded-order", "customer": {"email": "s@example.org", "fullName": "S"},
        "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD", "domain": "seeded-example.com",
    });
    assert_eq!(app.request(app.signed_order("seed", &seeded)).await.status, http::StatusCode::CREATED);
    values
}

/// Fills the run-time placeholders: `{{token:ROLE}}` with a fresh access
/// token of that role; `{{now}}` and `{{signature}}` with Standard Webhooks
/// headers over the event's body.
pub fn fill(raw: &str, tokens: &HashMap<String, String>, env: &Env) -> String {
    let mut text = raw.to_string();
    for (key, value) in tokens {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    if !text.contains("{{signature}}") {
        return text;
    }
    let mut event: Value = serde_json::from_str(&text).expect("event json");
    let now = chrono::Utc::now().timestamp();
    let body = event["body"].as_str().unwrap_or_default().to_string();
    let id = event["headers"]["webhook-id"].as_str().expect("webhook-id").to_string();
    let key = mpanel::config::parse_webhook_secret(&env["MARKETING_WEBHOOK_SECRET"]).expect("secret");
    event["headers"]["webhook-timestamp"] = json!(now.to_string());
    event["headers"]["webhook-signature"] = json!(mpanel::webhooks::sign(&id, now, body.as_bytes(), &key));
    event.to_string()
}

/// The functions that have a folder in `events/`, in template order.
pub const FUNCTIONS: [&str; 6] = ["auth", "products", "orders", "admin", "worker", "scheduler"];

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
/// worker (that many batchItemFailures), any object for the scheduler.
pub fn assert_expected(function: &str, file: &std::path::Path, result: &Value) {
    let label = file.display();
    let expectation = file.file_stem().and_then(|s| s.to_str()).and_then(|s| s.rsplit_once('.')).map(|(_, e)| e);
    match (function, expectation) {
        ("worker", Some(exp)) => {
            let failures: usize = exp.trim_start_matches("failures-").parse().expect("failures-<n>");
            assert_eq!(result["batchItemFailures"].as_array().map(Vec::len), Some(failures), "{label}: {result}");
        }
        ("scheduler", _) => assert!(result.is_object(), "{label}: {result}"),
        (_, Some(status)) => assert_eq!(result["statusCode"].to_string(), status, "{label}: {result}"),
        _ => panic!("{label}: no expectation in the name"),
    }
}
