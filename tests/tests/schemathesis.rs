//! schemathesis (from the stack's venv) against the real `mpanel serve`,
//! driven by the served OpenAPI document and authenticated as an ADMIN:
//! no 5xx, and every status, content type and body as documented.
//!
//! `SCHEMATHESIS_MAX_EXAMPLES` (default 30) and `SCHEMATHESIS_SEED` (default
//! fixed, so a CI failure reproduces; `random` for a new one) tune the run.

use mpanel::auth::Role;
use mpanel_tests::{spawn_app_with, spawn_serve, unique_domain};
use serde_json::json;

/// Operations that end or change the signed-in admin's own session (a
/// password change revokes it): fuzzed in a second run, after the rest.
const SESSION_ENDING: [&str; 3] = ["logout", "patchUser", "disableUser"];

const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_undocumented_response() {
    // The general limit would turn most of the run into 429s.
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_MAX".into(), "1000000".into());
        // One JSON object per log line: the access log is read below.
        env.insert("AWS_LAMBDA_LOG_FORMAT".into(), "json".into());
    })
    .await;
    let tenant = app.create_tenant("fuzz").await;
    let admin = app.create_user(tenant, Role::Admin).await;
    app.create_user(tenant, Role::Support).await;
    let token = app.token(&admin).await;
    // Real rows, so the links schemathesis follows reach real resources.
    app.catalog_price(tenant, "starter", "SHARED_HOSTING", json!({"mailboxes": 2}), 999).await;
    app.local_web_server(tenant, None).await;
    let order = json!({
        "tenantSlug": "fuzz", "externalOrderId": "fuzz-1",
        "customer": {"email": "owner@example.org", "fullName": "Site Owner"},
        "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD", "domain": unique_domain(),
    });
    let created = app.request(app.signed_order("fuzz-order-1", &order)).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));

    let serve = spawn_serve(&app.env, &["--no-worker"]).await;
    let base = serve.base_url.clone();
    let http = mpanel_tests::http_client();

    let mut args: Vec<String> = Vec::new();
    for id in SESSION_ENDING {
        args.extend(["--exclude-operation-id".into(), id.into()]);
    }
    let first = schemathesis(&base, &token, &args).await;

    // The first run never lost its session, so it really ran as the admin.
    let me = http.get(format!("{base}/api/auth/me")).bearer_auth(&token).send().await.expect("me");
    assert_eq!(me.status(), 200, "the admin's session ended during the first run");

    let mut args: Vec<String> = Vec::new();
    for id in SESSION_ENDING {
        args.extend(["--include-operation-id".into(), id.into()]);
    }
    let second = schemathesis(&base, &token, &args).await;
    let logs = serve.stop().await;

    for (run, output) in [("first", &first), ("second", &second)] {
        assert!(output.contains("generated"), "{run} run printed no test cases:\n{output}");
    }
    // The hooks signed the webhook bodies: their parsers were fuzzed, not just the signature check.
    for path in ["/api/orders", "/api/subscriptions/events"] {
        let past_signature = statuses(&logs, "POST", path).into_iter().filter(|s| *s != 401).count();
        assert!(past_signature > 10, "only {past_signature} signed requests to POST {path} got past the signature");
    }
}

/// Statuses of the access-log lines of one route.
fn statuses(logs: &str, method: &str, path: &str) -> Vec<u64> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|entry| entry["span"]["method"] == method && entry["span"]["path"] == path)
        .filter_map(|entry| entry["fields"]["status"].as_u64())
        .collect()
}

/// Runs schemathesis and returns its output; panics with it on failure.
async fn schemathesis(base: &str, token: &str, extra: &[String]) -> String {
    let examples = std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| "30".into());
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261125".into());
    let mut command = tokio::process::Command::new("schemathesis");
    command
        .arg("run")
        .arg(format!("{base}/api/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--max-examples", &examples])
        .args(["--no-color", "--request-timeout", "30"])
        // No example database left in the working tree.
        .args(["--generation-database", "none"])
        .args(extra)
        // Signs the webhook bodies so they reach the parsers (see the file).
        .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis"))
        .env("SCHEMATHESIS_HOOKS", "mpanel_hooks");
    if seed != "random" {
        command.args(["--seed", &seed]);
    }
    let output = command.output().await.expect("schemathesis runs (./scripts/stack up installs it into the venv)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found problems:\n{text}");
    text
}
