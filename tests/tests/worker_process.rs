//! The real `mpanel worker` process: SIGTERM lets in-flight jobs finish and
//! exits 0; SIGKILL mid-job loses nothing (the lease expires, the sweep
//! rescues the job, it completes once). A slow stand-in for the PowerDNS
//! API on loopback keeps a job in flight long enough to signal the worker.

use std::process::Stdio;
use std::time::Duration;

use mpanel::engine::{RunOutcome, run_job, sweep};
use mpanel_tests::{TestApp, mpanel_binary, spawn_app, unique_domain};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

/// Answers like PowerDNS (201 to create, 204 to patch) after `delay`, or
/// never when `delay` is `None`.
async fn slow_pdns(delay: Option<Duration>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head and the body the head announces.
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buffer.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let Some(delay) = delay else {
                    std::future::pending::<()>().await;
                    return;
                };
                tokio::time::sleep(delay).await;
                let status = if buffer.starts_with(b"POST") { "201 Created" } else { "204 No Content" };
                let _ = socket
                    .write_all(
                        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
                    )
                    .await;
            });
        }
    });
    port
}

async fn dns_order(app: &TestApp) -> Uuid {
    let tenant = app.create_tenant("dnshost").await;
    app.catalog_price(tenant, "zone", "DNS", json!({}), 100).await;
    let domain = unique_domain();
    let body = json!({
        "tenantSlug": "dnshost", "externalOrderId": domain, "customer": {"email": "a@example.org", "fullName": "A"},
        "priceSlug": "zone-monthly", "totalAmountCents": 100, "currency": "USD", "domain": domain,
    });
    let response = app.request(app.signed_order("msg", &body)).await;
    assert_eq!(response.status, http::StatusCode::CREATED);
    Uuid::parse_str(response.json()["jobs"][0]["id"].as_str().expect("job id")).expect("uuid")
}

fn worker(app: &TestApp, pdns_port: u16, lease_secs: u64) -> tokio::process::Child {
    let mut env = app.env.clone();
    env.insert("PDNS_API_URL".into(), format!("http://127.0.0.1:{pdns_port}/api/v1"));
    env.insert("JOB_LEASE_SECS".into(), lease_secs.to_string());
    env.insert("RUST_LOG".into(), "info".into());
    tokio::process::Command::new(mpanel_binary())
        .args(["worker", "--concurrency", "2"])
        .env_clear()
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mpanel worker")
}

async fn wait_for_status(app: &TestApp, job: Uuid, status: &str) {
    for _ in 0..300 {
        if app.job_status(job).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job never became {status} (is {})", app.job_status(job).await);
}

fn signal(child: &tokio::process::Child, signal: libc::c_int) {
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill failed");
}

#[tokio::test]
async fn sigterm_finishes_in_flight_jobs_and_exits_zero() {
    let app = spawn_app().await;
    let port = slow_pdns(Some(Duration::from_secs(2))).await;
    let job = dns_order(&app).await;
    let mut child = worker(&app, port, 60);
    wait_for_status(&app, job, "RUNNING").await;
    signal(&child, libc::SIGTERM);
    let status =
        tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("worker exits").expect("wait");
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr).await;
    }
    assert!(status.success(), "exit {status:?}\n{stderr}");
    assert_eq!(app.job_status(job).await, "SUCCEEDED", "{stderr}");
}

#[tokio::test]
async fn a_killed_worker_loses_nothing() {
    let app = spawn_app().await;
    let stalled = slow_pdns(None).await;
    let job = dns_order(&app).await;
    let mut child = worker(&app, stalled, 3);
    wait_for_status(&app, job, "RUNNING").await;
    signal(&child, libc::SIGKILL);
    let _ = child.wait().await;
    assert_eq!(app.job_status(job).await, "RUNNING", "the killed worker recorded nothing");

    // Before the lease expires nothing is rescued; after, the sweep does it.
    assert_eq!(sweep(&app.state).await.expect("sweep").rescued, 0);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(sweep(&app.state).await.expect("sweep").rescued, 1);
    assert_eq!(app.job_status(job).await, "RETRYING");
    // The real PowerDNS answers this time; the job completes once.
    assert_eq!(run_job(&app.state, job, "survivor").await.expect("run"), RunOutcome::Succeeded);
    assert_eq!(run_job(&app.state, job, "late-duplicate").await.expect("run"), RunOutcome::NotClaimed);
    let outcomes: Vec<String> = app
        .db()
        .await
        .query("SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt", &[&job])
        .await
        .expect("attempts")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(outcomes, ["LEASE_EXPIRED", "SUCCEEDED"]);
}
