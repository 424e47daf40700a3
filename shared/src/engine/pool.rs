//! The worker pool of `mpanel worker` and `mpanel serve`: N tasks pop job
//! ids from Redis (blocking, each on its own connection) and run them; a
//! promoter moves retries that came due onto the list; a sweeper rescues
//! expired leases and re-dispatches due jobs. On shutdown
//! no new job is claimed and in-flight jobs get a grace period to finish.

use std::time::Duration;

use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{run_job, sweep};
use crate::state::AppState;

/// How long one BRPOP waits: also how fast a worker notices shutdown.
const POP_TIMEOUT_SECS: f64 = 1.0;
/// How often due retries move from the delayed set to the ready list.
const PROMOTE_INTERVAL: Duration = Duration::from_millis(250);

pub fn worker_name(index: usize) -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "local".into());
    format!("{}-{}-{index}", host.trim(), std::process::id())
}

/// Runs until `shutdown` is cancelled, then waits up to the configured grace
/// period for in-flight jobs. Returns whether every job finished in time.
pub async fn run_pool(state: AppState, concurrency: usize, shutdown: CancellationToken) -> bool {
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..concurrency.max(1) {
        let state = state.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { worker_loop(state, worker_name(index), shutdown).await });
    }
    {
        let state = state.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { sweeper_loop(state, shutdown).await });
    }
    {
        let state = state.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { promoter_loop(state, shutdown).await });
    }
    tracing::info!(concurrency, "worker pool started");
    shutdown.cancelled().await;
    tracing::info!("worker pool stopping: no new jobs; waiting for in-flight jobs");
    let grace = state.config.jobs.worker_grace;
    let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tasks.abort_all();
    }
    // The kept SSH masters end with the pool (they would otherwise linger
    // until ssh's ControlPersist ran out).
    state.ssh_masters.close().await;
    match drained {
        Ok(()) => {
            tracing::info!("worker pool stopped");
            true
        }
        Err(_) => {
            // Their leases expire and the sweep gives the jobs to another worker.
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight jobs outlived the grace period");
            false
        }
    }
}

async fn worker_loop(state: AppState, name: String, shutdown: CancellationToken) {
    let key = state.dispatcher.redis_queue_key();
    let mut conn = None;
    while !shutdown.is_cancelled() {
        if conn.is_none() {
            match state.kv.dedicated(Duration::from_secs_f64(POP_TIMEOUT_SECS + 5.0)).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "worker cannot reach redis; retrying");
                    pause(&shutdown, Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let popped: redis::RedisResult<Option<(String, String)>> = c.brpop(&key, POP_TIMEOUT_SECS).await;
        let id = match popped {
            Ok(Some((_, id))) => id,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "redis pop failed; reconnecting");
                conn = None;
                pause(&shutdown, Duration::from_secs(1)).await;
                continue;
            }
        };
        let Ok(job_id) = Uuid::parse_str(&id) else {
            tracing::warn!(value = %id, "ignoring a malformed job id from redis");
            continue;
        };
        // Not cancelled mid-job: a started job runs to its end (bounded by its lease).
        match run_job(&state, job_id, &name).await {
            Ok(outcome) => tracing::debug!(%job_id, ?outcome, "job run"),
            // The row keeps its state; the sweep re-dispatches it later.
            Err(e) => tracing::warn!(%job_id, error = %e, "job could not be run"),
        }
    }
}

async fn sweeper_loop(state: AppState, shutdown: CancellationToken) {
    loop {
        match sweep(&state).await {
            Ok(report) if report != Default::default() => tracing::info!(?report, "sweep"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
        if pause(&shutdown, state.config.jobs.sweep_interval).await {
            return;
        }
    }
}

async fn promoter_loop(state: AppState, shutdown: CancellationToken) {
    loop {
        match state.dispatcher.promote_due().await {
            Ok(0) => {}
            Ok(moved) => tracing::debug!(moved, "due retries promoted"),
            // The sweep still finds these jobs; nothing is lost meanwhile.
            Err(e) => tracing::warn!(error = %e, "could not promote due retries"),
        }
        if pause(&shutdown, PROMOTE_INTERVAL).await {
            return;
        }
    }
}

/// Sleeps unless shut down first; returns true when shut down.
async fn pause(shutdown: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}
