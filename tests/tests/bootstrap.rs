//! The real function binaries in their real bootstrap loop: each one is
//! started as Lambda starts it (`AWS_LAMBDA_RUNTIME_API` and friends) against
//! a Lambda Runtime API stand-in on loopback, and every sample event of its
//! folder in `events/` is invoked through it. Needs the binaries built
//! (`cargo build --workspace --bins`; `./scripts/test` does it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mpanel_tests::spawn_app;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

/// One invocation at a time: the next event to hand out, and where results go.
#[derive(Clone)]
struct RuntimeApi {
    next: Arc<Mutex<mpsc::Receiver<(String, String)>>>,
    results: mpsc::Sender<(String, Result<Value, String>)>,
}

async fn next_invocation(State(api): State<RuntimeApi>) -> Response {
    let Some((id, event)) = api.next.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let mut headers = HeaderMap::new();
    // The worker's timeout in template.yaml (120 s, with JOB_LEASE_SECS=100 below).
    let deadline = (chrono::Utc::now().timestamp_millis() + 120_000).to_string();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", id.as_str()),
        ("lambda-runtime-deadline-ms", deadline.as_str()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:test"),
        ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000"),
    ] {
        headers.insert(name, HeaderValue::from_str(value).expect("header"));
    }
    (StatusCode::OK, headers, event).into_response()
}

async fn response(State(api): State<RuntimeApi>, UrlPath(id): UrlPath<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = api.results.send((id, Ok(value))).await;
    StatusCode::ACCEPTED
}

async fn error(State(api): State<RuntimeApi>, UrlPath(id): UrlPath<String>, body: String) -> StatusCode {
    let _ = api.results.send((id, Err(body))).await;
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<RuntimeApi>, body: String) -> StatusCode {
    let _ = api.results.send(("init".into(), Err(body))).await;
    StatusCode::ACCEPTED
}

fn binary(name: &str) -> PathBuf {
    let path = mpanel_tests::mpanel_binary().with_file_name(name);
    assert!(path.exists(), "{} missing: run `cargo build --workspace --bins` (./scripts/test does)", path.display());
    path
}

#[tokio::test]
async fn every_function_binary_serves_its_events_through_the_runtime_api() {
    let app = spawn_app().await;
    let values = mpanel_tests::events::placeholders(&app).await;
    let mut invoked = 0;
    for function in mpanel_tests::events::FUNCTIONS {
        let (event_tx, event_rx) = mpsc::channel(1);
        let (result_tx, mut result_rx) = mpsc::channel(1);
        let api = RuntimeApi { next: Arc::new(Mutex::new(event_rx)), results: result_tx };
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, router).await });

        let mut child = tokio::process::Command::new(binary(function))
            .env_clear()
            .envs(app.env.clone())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .env("JOB_LEASE_SECS", "100")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the function binary");
        let mut stderr = child.stderr.take().expect("stderr");
        let logs = tokio::spawn(async move {
            let mut text = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
            text
        });

        let files = mpanel_tests::events::files(function);
        for (i, file) in files.iter().enumerate() {
            let label = file.display().to_string();
            let raw = std::fs::read_to_string(file).expect("event");
            let event = mpanel_tests::events::fill(&raw, &values, &app.env);
            let id = format!("{function}-{i}");
            event_tx.send((id.clone(), event)).await.expect("runtime api alive");
            let (got_id, result) = tokio::time::timeout(Duration::from_secs(30), result_rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{label}: no answer within 30 s"))
                .expect("result");
            assert_eq!(got_id, id, "{label}: {result:?}");
            let result = result.unwrap_or_else(|e| panic!("{label}: the handler failed: {e}"));
            mpanel_tests::events::assert_expected(function, file, &result);
            invoked += 1;
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
        server.abort();
        // CloudWatch lines must say which invocation wrote them: Lambda's
        // request id is on the log lines written while serving it.
        let logs = logs.await.expect("logs");
        let with_id = (0..files.len()).filter(|i| logs.contains(&format!("\"requestId\":\"{function}-{i}\""))).count();
        assert!(with_id > 0, "{function}: no log line carries the Lambda request id:\n{logs}");
        // Every HTTP invocation writes an access-log line.
        if mpanel::Function::from_name(function).is_some() {
            assert_eq!(with_id, files.len(), "{function}: an invocation logged without its request id:\n{logs}");
        }
    }
    assert!(invoked >= 100, "only {invoked} events invoked");
}
