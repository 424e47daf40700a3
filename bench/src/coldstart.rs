//! Cold start of each release `bootstrap` against a Lambda Runtime API
//! stand-in on loopback: exec -> first `GET .../invocation/next` (init done)
//! and exec -> first response posted (first event handled), peak RSS, size.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc};

use crate::stack::Env;

pub struct ColdStartRow {
    pub function: String,
    pub size: u64,
    pub to_first_request: Duration,
    pub to_first_response: Duration,
    pub peak_rss_kib: u64,
}

#[derive(Clone)]
struct StandIn {
    event: Arc<String>,
    handed_out: Arc<Mutex<bool>>,
    marks: mpsc::UnboundedSender<(&'static str, Instant)>,
}

async fn next(State(api): State<StandIn>) -> Response {
    let _ = api.marks.send(("next", Instant::now()));
    let mut handed_out = api.handed_out.lock().await;
    if *handed_out {
        // One event per cold start: the second poll never gets one (the
        // function is killed right after; nothing here waits on this request).
        drop(handed_out);
        return std::future::pending().await;
    }
    *handed_out = true;
    let mut headers = HeaderMap::new();
    let deadline = (chrono::Utc::now().timestamp_millis() + 60_000).to_string();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", "bench-1"),
        ("lambda-runtime-deadline-ms", deadline.as_str()),
        ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:bench"),
        ("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000"),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    (StatusCode::OK, headers, api.event.as_str().to_owned()).into_response()
}

async fn answered(State(api): State<StandIn>) -> StatusCode {
    let _ = api.marks.send(("response", Instant::now()));
    StatusCode::ACCEPTED
}

async fn failed(State(api): State<StandIn>, body: String) -> StatusCode {
    eprintln!("cold start: the function reported an error: {body}");
    let _ = api.marks.send(("error", Instant::now()));
    StatusCode::ACCEPTED
}

/// One cold start of `bootstrap` handling `event`.
async fn once(bootstrap: &Path, env: &Env, event: &str) -> Result<(Duration, Duration, u64)> {
    let (marks_tx, mut marks) = mpsc::unbounded_channel();
    let api = StandIn { event: Arc::new(event.to_string()), handed_out: Arc::default(), marks: marks_tx };
    let router = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(answered))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(failed))
        .route("/2018-06-01/runtime/init/error", post(failed))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let started = Instant::now();
    let mut child = tokio::process::Command::new(bootstrap)
        .env_clear()
        .envs(env)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", bootstrap.display()))?;
    let pid = child.id().context("no pid")?;
    let mut first_request = None;
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some((mark, at)) = marks.recv().await {
            match mark {
                "next" if first_request.is_none() => first_request = Some(at - started),
                "response" => return Ok(at - started),
                "error" => bail!("{} failed its first event", bootstrap.display()),
                _ => {}
            }
        }
        bail!("the runtime API stand-in stopped")
    })
    .await
    .context("no response within 30 s")??;
    let peak_rss_kib = peak_rss_kib(pid).unwrap_or(0);
    let _ = child.kill().await;
    server.abort();
    Ok((first_request.unwrap_or(outcome), outcome, peak_rss_kib))
}

/// VmHWM: the process's peak resident set so far.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The event each function gets: a health check for the HTTP functions
/// (from `events/`), an empty SQS batch for the worker, the scheduled event.
fn event_for(function: &str, events_dir: &Path) -> Result<String> {
    Ok(match function {
        "worker" => r#"{"Records":[]}"#.to_string(),
        "scheduler" | "sweep-floor" => std::fs::read_to_string(events_dir.join("scheduler/scheduled-event.ok.json"))?,
        "hello-lambda" => r#"{"hello":"world"}"#.to_string(),
        http => std::fs::read_to_string(events_dir.join(http).join("health.200.json"))?,
    })
}

/// One line of the table: a bootstrap started with one environment.
pub struct Variant {
    /// What the table calls it: the function, or the function and how it is configured.
    pub label: String,
    /// The folder under the lambda dir (and the event it gets).
    pub function: String,
    pub env: Env,
}

/// `runs` cold starts of every variant, interleaved (each round starts every
/// variant once, in order), so drift on a shared machine touches all alike.
pub async fn measure(
    variants: &[Variant],
    lambda_dir: &Path,
    events_dir: &Path,
    runs: usize,
) -> Result<Vec<ColdStartRow>> {
    let mut bootstraps = Vec::new();
    for variant in variants {
        let bootstrap: PathBuf = lambda_dir.join(&variant.function).join("bootstrap");
        if !bootstrap.exists() {
            bail!("{} is missing: cargo lambda build --release first (scripts/bench does)", bootstrap.display());
        }
        bootstraps.push((bootstrap, event_for(&variant.function, events_dir)?));
    }
    let mut samples: Vec<(Vec<Duration>, Vec<Duration>, Vec<u64>)> = vec![Default::default(); variants.len()];
    for _ in 0..runs {
        for (i, variant) in variants.iter().enumerate() {
            let (bootstrap, event) = &bootstraps[i];
            let (request, response, peak) =
                once(bootstrap, &variant.env, event).await.with_context(|| variant.label.clone())?;
            samples[i].0.push(request);
            samples[i].1.push(response);
            samples[i].2.push(peak);
        }
    }
    let mut rows = Vec::new();
    for ((variant, (bootstrap, _)), (mut requests, mut responses, mut rss)) in
        variants.iter().zip(&bootstraps).zip(samples)
    {
        requests.sort();
        responses.sort();
        rss.sort_unstable();
        let row = ColdStartRow {
            function: variant.label.clone(),
            size: crate::stack::file_size(bootstrap),
            to_first_request: crate::load::percentile(&requests, 50.0),
            to_first_response: crate::load::percentile(&responses, 50.0),
            peak_rss_kib: rss.get(rss.len() / 2).copied().unwrap_or(0),
        };
        println!(
            "cold start {}: {} ms to first request, {} ms to first response, {} KiB peak RSS",
            row.function,
            crate::load::ms(row.to_first_request),
            crate::load::ms(row.to_first_response),
            row.peak_rss_kib
        );
        rows.push(row);
    }
    Ok(rows)
}
