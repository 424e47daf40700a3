//! Every sample event in `events/` goes through its function's real Lambda
//! handler path: HTTP events through `lambda_http`'s adapter (what
//! `lambda_http::run` wraps around the router), SQS and scheduled events
//! through the handlers the worker and scheduler binaries run.
//!
//! File names carry the expectation: `<name>.<status>.json` for HTTP,
//! `<name>.failures-<n>.json` for SQS batches, `<name>.ok.json` for the
//! scheduler. A file that matches no pattern fails the test.

use std::path::{Path, PathBuf};

use lambda_http::request::LambdaRequest;
use lambda_runtime::{Context, LambdaEvent};
use mpanel::Function;
use mpanel::app::function_app;
use mpanel_tests::spawn_app;
use serde_json::Value;
use tower::{Service, ServiceExt};

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// `health.200.json` → ("health", "200")
fn expectation(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name");
    stem.rsplit_once('.')
        .map(|(_, exp)| exp.to_string())
        .unwrap_or_else(|| panic!("{}: name must be <name>.<expectation>.json", path.display()))
}

/// Whether a route pattern (`/api/users/{id}`) matches a concrete path.
fn matches(pattern: &str, path: &str) -> bool {
    let (p, c): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == c.len() && p.iter().zip(&c).all(|(p, c)| p.starts_with('{') || p == c)
}

#[tokio::test]
async fn every_event_runs_through_its_function() {
    let app = spawn_app().await;
    let tokens = mpanel_tests::events::placeholders(&app).await;
    // (function, method, path, status) of every HTTP event run.
    let mut ran: Vec<(String, String, String, u16)> = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(events_dir()).expect("events/ exists") {
        let dir = entry.expect("dir entry").path();
        let function = dir.file_name().and_then(|n| n.to_str()).expect("utf-8").to_string();
        for file in mpanel_tests::events::files(&function) {
            let raw = std::fs::read_to_string(&file).expect("readable");
            let expected = expectation(&file);
            let label = file.display().to_string();
            match function.as_str() {
                "worker" => {
                    let event = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{label}: {e}"));
                    let failures: usize = expected
                        .strip_prefix("failures-")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| panic!("{label}: expectation must be failures-<n>"));
                    let response = mpanel::lambda::handle_jobs_batch(
                        &app.state,
                        LambdaEvent::new(event, mpanel_tests::lambda_context(900)),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                    assert_eq!(response.batch_item_failures.len(), failures, "{label}");
                }
                "migrate" => {
                    let raw = mpanel_tests::events::fill(&raw, &tokens, &app.env);
                    let event = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{label}: {e}"));
                    let http = mpanel_tests::http_client();
                    let outcome = mpanel::lambda::handle_migrations(
                        &app.env,
                        &http,
                        LambdaEvent::new(event, mpanel_tests::lambda_context(300)),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                    let outcome = serde_json::to_value(outcome).expect("json");
                    assert_eq!(outcome["Status"], expected, "{label}: {outcome}");
                }
                "scheduler" => {
                    assert_eq!(expected, "ok", "{label}: expectation must be ok");
                    let event = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{label}: {e}"));
                    mpanel::lambda::handle_schedule(&app.state, LambdaEvent::new(event, Context::default()))
                        .await
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                }
                name => {
                    let function =
                        Function::from_name(name).unwrap_or_else(|| panic!("{label}: unknown function {name}"));
                    let status: u16 =
                        expected.parse().unwrap_or_else(|_| panic!("{label}: expectation must be a status"));
                    let raw = mpanel_tests::events::fill(&raw, &tokens, &app.env);
                    let request: LambdaRequest = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{label}: {e}"));
                    let event: Value = serde_json::from_str(&raw).expect("json");
                    ran.push((
                        name.to_string(),
                        event["requestContext"]["http"]["method"].as_str().unwrap_or_default().to_string(),
                        event["rawPath"].as_str().unwrap_or_default().to_string(),
                        status,
                    ));
                    let mut adapter = lambda_http::Adapter::from(function_app(function, app.state.clone()));
                    let response = adapter
                        .ready()
                        .await
                        .expect("ready")
                        .call(LambdaEvent::new(request, Context::default()))
                        .await
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                    let value = serde_json::to_value(&response).expect("response serialises");
                    assert_eq!(value["statusCode"], status, "{label}: {value}");
                    let headers = &value["headers"];
                    assert!(headers.get("x-request-id").is_some(), "{label}: no x-request-id in {value}");
                    if status >= 400 {
                        assert_eq!(headers["content-type"], "application/problem+json", "{label}");
                    }
                }
            }
            seen += 1;
        }
    }
    assert!(seen >= 10, "expected the sample events, found {seen}");

    // Every route of every HTTP function has an allowed and a refused event.
    let common = mpanel::app::common_routes().specs().to_vec();
    let mut gaps = Vec::new();
    for function in Function::ALL {
        let routes = mpanel::app::common_routes().merge(function.routes());
        for spec in routes.specs() {
            let public = spec.permission == mpanel::auth::Permission::Public;
            let hits: Vec<u16> = ran
                .iter()
                .filter(|(f, m, p, _)| f == function.name() && m == spec.method.as_str() && matches(spec.path, p))
                .map(|(_, _, _, s)| *s)
                .collect();
            let refused = hits.iter().any(|s| matches!(s, 401 | 403) || (public && *s >= 400))
                // Liveness checks and the API's own description refuse nobody.
                || common.contains(spec);
            let allowed = hits.iter().any(|s| !matches!(s, 401 | 403) && (!public || *s < 400));
            if !(refused && allowed) {
                gaps.push(format!(
                    "{} {} {} (allowed: {allowed}, refused: {refused})",
                    function.name(),
                    spec.method,
                    spec.path
                ));
            }
        }
    }
    assert!(gaps.is_empty(), "routes without an allowed and a refused event (run scripts/gen-events): {gaps:#?}");
}
