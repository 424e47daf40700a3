//! PostgreSQL restarted while requests flow: requests during the outage get
//! 503 problem+json (never a 500), and the same process serves again once
//! the database is back, without a restart of its own.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel_tests::spawn_app_with;

async fn pg_ctl(action: &str) {
    let version = std::fs::read_dir("/usr/lib/postgresql")
        .expect("postgresql installed")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .max()
        .expect("a postgresql version");
    // Async, so requests keep flowing while PostgreSQL stops and starts.
    let status = tokio::process::Command::new("pg_ctlcluster")
        .args([&version.to_string(), "main", action, "--", "-m", "fast"])
        .status()
        .await
        .expect("pg_ctlcluster");
    assert!(status.success(), "pg_ctlcluster {action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_costs_503s_not_500s_and_heals_itself() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_MAX".into(), "100000".into());
    })
    .await;
    let tenant = app.create_tenant("acme").await;
    let token = app.token(&app.create_user(tenant, Role::ReadOnly).await).await;
    let router = app.router.clone();
    let auth = format!("Bearer {token}");

    // Requests flow continuously while the database goes away and comes back.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finished = done.clone();
    let load = tokio::spawn(async move {
        let mut statuses = Vec::new();
        let started = Instant::now();
        while !finished.load(std::sync::atomic::Ordering::SeqCst) {
            let r = mpanel_tests::call(
                &router,
                mpanel_tests::request(Method::GET, "/api/orders", &[("authorization", auth.as_str())], None),
            )
            .await;
            statuses.push((r.status, r.header("content-type").map(str::to_string)));
            if std::env::var("FAULT_TRACE").is_ok() {
                eprintln!("{:>6} ms {}", started.elapsed().as_millis(), r.status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        statuses
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg_ctl("stop").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg_ctl("start").await;
    // Keep the load on for a while after the restart, then stop it.
    tokio::time::sleep(Duration::from_secs(8)).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let statuses = load.await.expect("load");

    let unavailable = statuses.iter().filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE).count();
    assert!(unavailable > 0, "the outage was not noticed");
    for (status, content_type) in &statuses {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::SERVICE_UNAVAILABLE,
            "unexpected {status} during the restart"
        );
        if *status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        }
    }
    // The same process serves again.
    let mut healed = false;
    for _ in 0..50 {
        if app.authed(Method::GET, "/api/orders", &token, None).await.status == StatusCode::OK {
            healed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healed, "still failing after PostgreSQL came back");
    assert_eq!(statuses.last().map(|(s, _)| *s), Some(StatusCode::OK), "the last requests still failed");
}
