//! The real `mpanel serve` binary: migrates its database, serves health on
//! the given address, and writes JSON log lines (with the request id) when
//! `AWS_LAMBDA_LOG_FORMAT=JSON`. Needs the stack (`. .stack/env`).

use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_postgres::NoTls;

async fn admin_client() -> tokio_postgres::Client {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (run ./scripts/stack up && . .stack/env)");
    let config = tokio_postgres::Config::from_str(&url).expect("DATABASE_URL parses");
    let (client, connection) = config.connect(NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

async fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

#[tokio::test]
async fn serve_answers_health_and_logs_json() {
    let db_name = format!("mpanel_test_{}", uuid::Uuid::new_v4().simple());
    let admin = admin_client().await;
    admin.batch_execute(&format!("CREATE DATABASE {db_name}")).await.expect("create db");
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let url = format!("{}/{db_name}", base.rsplit_once('/').map(|(h, _)| h).unwrap_or(&base));
    // A port unlikely to clash: derived from the process id.
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let addr = format!("127.0.0.1:{port}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_mpanel"))
        .args(["serve", "--addr", &addr, "--no-worker"])
        .env("DATABASE_URL", &url)
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mpanel serve");

    let mut response = None;
    for _ in 0..100 {
        if let Some(r) = http_get(&addr, "/api/health").await {
            response = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = response.expect("mpanel serve answered");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("{\"status\":\"ok\"}"), "{response}");
    let request_id = response
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("x-request-id header")
        .trim()
        .to_string();

    // `serve` migrated the fresh database before listening.
    let (db, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect test db");
    let connection = tokio::spawn(connection);
    let applied: i64 =
        db.query_one("SELECT count(*) FROM refinery_schema_history", &[]).await.expect("migration history").get(0);
    assert!(applied >= 1);
    drop(db);
    let _ = connection.await;

    child.start_kill().expect("stop serve");
    let output = child.wait_with_output().await.expect("serve output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in &lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.contains(&request_id)),
        "no log line carries the request id {request_id}:\n{stderr}"
    );

    // Best effort: an autovacuum worker on the new database can make FORCE
    // refuse a non-superuser (42501); ./scripts/test drops every leftover
    // mpanel_test_* database before the next run.
    if let Err(e) = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")).await {
        eprintln!("leaving {db_name} for the next run's cleanup: {e}");
    }
}
