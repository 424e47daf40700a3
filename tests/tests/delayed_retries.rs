//! Retries are hinted for their due time (a Redis sorted set promoted onto
//! the ready list, and a delayed SQS message), so they run at their backoff
//! instead of waiting for the sweep's next tick.

use std::time::{Duration, Instant};

use mpanel::engine::{RunOutcome, run_job};
use mpanel_tests::hosting::{Hosting, job_of};
use mpanel_tests::unique_domain;
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn delayed(h: &Hosting) -> Vec<(String, i64)> {
    let mut conn = h.app.state.kv.conn();
    conn.zrange_withscores(h.app.state.dispatcher.redis_delayed_key(), 0, -1).await.expect("zrange")
}

async fn ready(h: &Hosting) -> Vec<String> {
    let mut conn = h.app.state.kv.conn();
    conn.lrange(h.app.state.dispatcher.redis_queue_key(), 0, -1).await.expect("lrange")
}

#[tokio::test]
async fn only_due_retries_move_to_the_ready_list() {
    let h = Hosting::new().await;
    let key = h.app.state.dispatcher.redis_delayed_key();
    let now = chrono::Utc::now().timestamp_millis();
    let (past, just_due, future) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut conn = h.app.state.kv.conn();
    for (id, due) in [(past, now - 60_000), (just_due, now - 5), (future, now + 3_000)] {
        let _: i64 = conn.zadd(&key, id.to_string(), due).await.expect("zadd");
    }

    assert_eq!(h.app.state.dispatcher.promote_due().await.expect("promote"), 2);
    let mut moved = ready(&h).await;
    moved.sort();
    let mut expected = vec![past.to_string(), just_due.to_string()];
    expected.sort();
    assert_eq!(moved, expected);
    assert_eq!(delayed(&h).await, [(future.to_string(), now + 3_000)], "the future retry stays");
    assert_eq!(h.app.state.dispatcher.promote_due().await.expect("promote"), 0, "nothing moves twice");

    // Once due, the scheduler's sweep promotes it too (where no pool runs).
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    mpanel::engine::sweep(&h.app.state).await.expect("sweep");
    assert!(delayed(&h).await.is_empty());
    assert!(ready(&h).await.contains(&future.to_string()));
}

#[tokio::test]
async fn a_failed_attempt_is_hinted_for_its_due_time() {
    let h = Hosting::new().await;
    let (_, jobs) = h.order(&unique_domain()).await;
    let dns = job_of(&jobs, "PROVISION_DNS");
    h.app.sqs_job_ids().await; // the intake's own message
    let down = h
        .app
        .state_with(|env| {
            env.insert("PDNS_API_URL".into(), "http://127.0.0.1:1/api/v1".into());
        })
        .await;

    let outcome = run_job(&down, dns, "worker-a").await.expect("runs");
    let RunOutcome::Retrying { run_after } = outcome else { panic!("expected a retry, got {outcome:?}") };
    assert_eq!(delayed(&h).await, [(dns.to_string(), run_after.timestamp_millis())]);
    let stored: chrono::DateTime<chrono::Utc> =
        h.app.db().await.query_one("SELECT run_after FROM jobs WHERE id = $1", &[&dns]).await.expect("job").get(0);
    assert_eq!(stored.timestamp_millis(), run_after.timestamp_millis());

    // The SQS hint is delayed too: nothing before the job is due, the job after.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !seen.contains(&dns) {
        let batch = h.app.sqs_job_ids().await;
        if batch.contains(&dns) {
            assert!(chrono::Utc::now() >= run_after, "the SQS hint arrived before the job was due");
        }
        seen.extend(batch);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen.contains(&dns), "no delayed SQS hint for the retry");
}

#[tokio::test]
async fn the_pool_runs_retries_at_their_backoff_not_at_the_sweep_tick() {
    let h = Hosting::new().await;
    let (_, jobs) = h.order(&unique_domain()).await;
    let dns = job_of(&jobs, "PROVISION_DNS");
    let state = h
        .app
        .state_with(|env| {
            env.insert("PDNS_API_URL".into(), "http://127.0.0.1:1/api/v1".into());
            env.insert("JOB_RETRY_BASE_MS".into(), "200".into());
            // The sweep ticks once at start, then not for an hour.
            env.insert("SWEEP_INTERVAL_SECS".into(), "3600".into());
        })
        .await;
    let shutdown = CancellationToken::new();
    let pool = tokio::spawn(mpanel::engine::pool::run_pool(state, 2, shutdown.clone()));

    let mut attempts = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && attempts < 3 {
        attempts = h
            .app
            .db()
            .await
            .query_one("SELECT attempts FROM jobs WHERE id = $1", &[&dns])
            .await
            .expect("job")
            .get::<_, i32>(0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    let _ = pool.await;
    assert!(attempts >= 3, "the DNS job ran {attempts} time(s): its retries waited for the sweep");
}
