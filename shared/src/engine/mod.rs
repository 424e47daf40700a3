//! The job engine (above the executors in `provision` and the state
//! machines in `subscriptions`, which it drives): claim exactly once, run, record the attempt, retry with
//! backoff or go DEAD, rescue expired leases, activate subscriptions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::audit_log::{self, Actor, AuditEntry};
use crate::error::{AppError, AppResult};
use crate::jobs::state::{JobEvent, backoff};
use crate::jobs::{ClaimedJob, Done, JobError, JobStatus, JobType};
use crate::state::AppState;
use crate::types::Named;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum RunOutcome {
    /// Not claimable now (already running or done, not due, unknown): a
    /// duplicate delivery, nothing to do.
    NotClaimed,
    Succeeded,
    Retrying {
        run_after: DateTime<Utc>,
    },
    Dead,
    /// The lease expired while running and the job was rescued elsewhere;
    /// this run's result was discarded.
    LeaseLost,
}

fn statuses(event: JobEvent) -> Vec<String> {
    JobStatus::accepting(event).into_iter().map(str::to_string).collect()
}

/// The one atomic claim: status, due time, lease and attempt count change
/// together, so however often a job id is delivered it runs once at a time.
pub async fn claim(state: &AppState, job_id: Uuid, worker: &str) -> AppResult<Option<ClaimedJob>> {
    let lease_secs = state.config.jobs.lease.as_secs_f64();
    let claimable = statuses(JobEvent::Claim);
    let worker_name = worker.to_string();
    // One statement, so one round trip and one commit: the row taken and
    // its attempt recorded together, or neither.
    let client = state.db.get().await?;
    let Some(row) = client
        .query_typed_opt(
            "WITH claimed AS (
                 UPDATE jobs SET status = 'RUNNING', attempts = attempts + 1,
                        locked_until = now() + make_interval(secs => $2), locked_by = $3, updated_at = now()
                 WHERE id = $1 AND status = ANY($4) AND run_after <= now()
                 RETURNING id, tenant_id, subscription_id, type, payload, attempts, max_attempts
             ), attempt AS (
                 INSERT INTO job_attempts (tenant_id, job_id, attempt, worker)
                 SELECT tenant_id, id, attempts, $3 FROM claimed
             )
             SELECT tenant_id, subscription_id, type, payload, attempts, max_attempts FROM claimed",
            &[
                (&job_id, Type::UUID),
                (&lease_secs, Type::FLOAT8),
                (&worker_name, Type::TEXT),
                (&claimable, Type::TEXT_ARRAY),
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(ClaimedJob {
        id: job_id,
        tenant_id: row.try_get(0)?,
        subscription_id: row.try_get(1)?,
        job_type: row.try_get(2)?,
        payload: row.try_get(3)?,
        attempt: row.try_get(4)?,
        max_attempts: row.try_get(5)?,
        worker: worker_name,
        lease: crate::jobs::Lease::default(),
    }))
}

/// How long one job may run (`JOB_TIME_LIMIT_SECS`); the heartbeat keeps
/// its lease meanwhile, so a slow job is never run twice at once.
pub fn job_time_limit(state: &AppState) -> Duration {
    state.config.jobs.time_limit
}

/// The time a runner needs left before it starts a job: the job's limit and
/// the recording of its outcome.
pub fn job_budget(state: &AppState) -> Duration {
    job_time_limit(state) + Duration::from_secs(5)
}

/// Claims and runs one job. `Err` only for our own infrastructure failing
/// (the job's row then stays RUNNING and the rescuer brings it back).
pub async fn run_job(state: &AppState, job_id: Uuid, worker: &str) -> AppResult<RunOutcome> {
    let Some(job) = claim(state, job_id, worker).await? else {
        return Ok(RunOutcome::NotClaimed);
    };
    // Under the subscription's lock, before any remote effect: a renewal or
    // a payment that arrived while the job waited makes it a no-op.
    if let Some(reason) = crate::subscriptions::lifecycle::no_longer_wanted(&state.db, &job).await? {
        return complete(state, &job, Done::Skipped(reason)).await;
    }
    let budget = job_time_limit(state);
    let heartbeat = tokio::spawn(heartbeat(state.clone(), job.clone()));
    let result =
        match tokio::time::timeout(budget, crate::provision::execute(crate::provision::Provisioner::of(state), &job))
            .await
        {
            Ok(result) => result,
            Err(_) => Err(JobError::retryable(format!("timed out after {} s", budget.as_secs()))),
        };
    heartbeat.abort();
    match result {
        Ok(()) => complete(state, &job, Done::Applied).await,
        Err(error) => fail(state, &job, error).await,
    }
}

/// Extends the job's lease every third of it while the job runs. When the
/// row is no longer this attempt's (rescued after a stall), the lease is
/// marked lost and the executor stops before its next remote step.
async fn heartbeat(state: AppState, job: ClaimedJob) {
    let lease = state.config.jobs.lease;
    let mut ticks = tokio::time::interval(lease / 3);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let extended = async {
            let client = state.db.get().await?;
            let rows = client
                .execute_typed(
                    "UPDATE jobs SET locked_until = now() + make_interval(secs => $4), updated_at = now()
                     WHERE id = $1 AND status = 'RUNNING' AND locked_by = $2 AND attempts = $3
                       AND locked_until > now()",
                    &[
                        (&job.id, Type::UUID),
                        (&job.worker, Type::TEXT),
                        (&job.attempt, Type::INT4),
                        (&lease.as_secs_f64(), Type::FLOAT8),
                    ],
                )
                .await?;
            AppResult::Ok(rows)
        }
        .await;
        match extended {
            Ok(0) => {
                tracing::warn!(job_id = %job.id, "lease lost; the job stops before its next remote step");
                job.lease.mark_lost();
                return;
            }
            Ok(_) => {}
            // The lease still runs; the next tick tries again.
            Err(e) => tracing::warn!(job_id = %job.id, error = %e, "could not extend the lease"),
        }
    }
}

async fn complete(state: &AppState, job: &ClaimedJob, done: Done) -> AppResult<RunOutcome> {
    let job_id = job.id;
    let job = job.clone();
    let skipped = matches!(done, Done::Skipped(_));
    // A hosting site that just went live gets its certificate next.
    let certificates = state.config.acme.is_some();
    let (outcome, follow_up) = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            // The job and its attempt in one statement (one round trip).
            let updated: i64 = tx
                .query_typed_one(
                    "WITH done AS (
                         UPDATE jobs SET status = 'SUCCEEDED', locked_until = NULL, locked_by = NULL,
                                last_error = NULL, finished_at = now(), updated_at = now()
                         WHERE id = $1 AND status = 'RUNNING' AND locked_by = $2 AND attempts = $3
                         RETURNING id, attempts
                     ), attempt AS (
                         UPDATE job_attempts a SET finished_at = now(), outcome = 'SUCCEEDED', error = NULL
                         FROM done WHERE a.job_id = done.id AND a.attempt = done.attempts
                     )
                     SELECT count(*) FROM done",
                    &[(&job.id, Type::UUID), (&job.worker, Type::TEXT), (&job.attempt, Type::INT4)],
                )
                .await?
                .try_get(0)?;
            if updated == 0 {
                return Ok((RunOutcome::LeaseLost, None));
            }
            let mut follow_up = None;
            if let Some(subscription_id) = job.subscription_id {
                if let Done::Skipped(reason) = &done {
                    audit_log::record(
                        tx,
                        &AuditEntry::new(Some(job.tenant_id), Actor::System, "job.skipped")
                            .target("job", job.id)
                            .details(json!({
                                "type": job.job_type.as_str(), "subscriptionId": subscription_id, "reason": reason,
                            })),
                    )
                    .await?;
                } else if job.job_type.is_provisioning() {
                    if crate::subscriptions::activate_if_ready(tx, job.tenant_id, subscription_id).await?
                        && certificates
                    {
                        let reason = crate::certificates::Reason::Activated;
                        follow_up = crate::certificates::request_in(tx, job.tenant_id, subscription_id, reason)
                            .await?
                            .map(|r| r.job_id);
                    }
                } else {
                    crate::subscriptions::lifecycle::apply_success(
                        tx,
                        job.tenant_id,
                        subscription_id,
                        job.job_type,
                        &job.payload,
                    )
                    .await?;
                }
            }
            Ok((RunOutcome::Succeeded, follow_up))
        })
    })
    .await?;
    if let Some(next) = follow_up {
        state.dispatcher.dispatch(&state.db, &[next]).await;
    }
    if outcome == RunOutcome::LeaseLost {
        tracing::warn!(%job_id, "lease lost before completion; result discarded");
    } else if skipped {
        tracing::info!(%job_id, "job skipped: no longer wanted");
    } else {
        tracing::info!(%job_id, "job succeeded");
    }
    Ok(outcome)
}

async fn fail(state: &AppState, job: &ClaimedJob, error: JobError) -> AppResult<RunOutcome> {
    let message = state.redact(&error.message);
    let attempts_left = job.attempt < job.max_attempts;
    let next = JobStatus::Running
        .transition(JobEvent::Fail { retryable: error.retryable, attempts_left })
        .map_err(AppError::internal)?;
    let delay = backoff(
        job.attempt.max(1) as u32,
        state.config.jobs.retry_base,
        state.config.jobs.retry_cap,
        rand::random::<f64>(),
    );
    let run_after = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
    let job_id = job.id;
    let job = job.clone();
    let tx_message = message.clone();
    let outcome = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            // The job and its attempt in one statement (one round trip).
            let updated: i64 = tx
                .query_typed_one(
                    "WITH failed AS (
                         UPDATE jobs SET status = $4, run_after = $5, locked_until = NULL, locked_by = NULL,
                                dispatched_at = NULL, last_error = $6, updated_at = now(),
                                finished_at = CASE WHEN $4 = 'DEAD' THEN now() END
                         WHERE id = $1 AND status = 'RUNNING' AND locked_by = $2 AND attempts = $3
                         RETURNING id, attempts
                     ), attempt AS (
                         UPDATE job_attempts a SET finished_at = now(), outcome = 'FAILED', error = $6
                         FROM failed WHERE a.job_id = failed.id AND a.attempt = failed.attempts
                     )
                     SELECT count(*) FROM failed",
                    &[
                        (&job.id, Type::UUID),
                        (&job.worker, Type::TEXT),
                        (&job.attempt, Type::INT4),
                        (&next, Type::TEXT),
                        (&run_after, Type::TIMESTAMPTZ),
                        (&tx_message, Type::TEXT),
                    ],
                )
                .await?
                .try_get(0)?;
            if updated == 0 {
                return Ok(RunOutcome::LeaseLost);
            }
            if next == JobStatus::Dead {
                on_dead(tx, &job.id, job.tenant_id, job.subscription_id, job.job_type, &tx_message).await?;
                Ok(RunOutcome::Dead)
            } else {
                Ok(RunOutcome::Retrying { run_after })
            }
        })
    })
    .await?;
    match outcome {
        RunOutcome::Dead => tracing::error!(%job_id, error = %message, "job is DEAD"),
        RunOutcome::Retrying { run_after } => {
            tracing::warn!(%job_id, error = %message, retryable = error.retryable, "job attempt failed");
            // After commit, like every hint; the retry then runs at its backoff.
            state.dispatcher.dispatch_at(&state.db, job_id, run_after).await;
        }
        _ => {}
    }
    Ok(outcome)
}

/// A dead provisioning job fails its subscription; both are audited.
async fn on_dead(
    tx: &tokio_postgres::Transaction<'_>,
    job_id: &Uuid,
    tenant_id: Uuid,
    subscription_id: Option<Uuid>,
    job_type: JobType,
    error: &str,
) -> AppResult<()> {
    audit_log::record(
        tx,
        &AuditEntry::new(Some(tenant_id), Actor::System, "job.dead")
            .target("job", *job_id)
            .details(json!({ "type": job_type.as_str(), "error": error })),
    )
    .await?;
    if let Some(subscription_id) = subscription_id {
        if job_type.is_provisioning() {
            crate::subscriptions::mark_provisioning_failed(tx, tenant_id, subscription_id, *job_id).await?;
        } else if crate::subscriptions::lifecycle::Action::of(job_type).is_some() {
            // Nothing asks again by itself (the billing sweep skips it): say so once.
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), Actor::System, "subscription.action_failed")
                    .target("subscription", subscription_id)
                    .details(json!({ "jobId": job_id, "type": job_type.as_str(), "error": error })),
            )
            .await?;
            tracing::error!(alert = true, %subscription_id, %job_id, job_type = job_type.as_str(),
                "lifecycle job is DEAD; the subscription keeps its status until staff retry it");
        }
    }
    Ok(())
}

/// What a sweep pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub rescued: u64,
    pub dead: u64,
    /// Suspensions requested for payments past their grace period.
    pub suspended: u64,
    /// Terminations requested for subscriptions cancelled at period end.
    pub terminated: u64,
    pub dispatched: u64,
    pub undelivered: u64,
    /// Certificate renewals and retries asked for.
    pub certificates: u64,
    /// Certificates whose renewal still fails seven days before expiry.
    pub certificate_alarms: u64,
}

/// Brings back RUNNING jobs whose lease expired (their worker died): to
/// RETRYING, due now, or DEAD when no attempts are left.
pub async fn rescue_expired(state: &AppState) -> AppResult<(u64, u64)> {
    crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let rows = tx
                .query_typed(
                    "SELECT id, tenant_id, subscription_id, type, attempts, max_attempts FROM jobs
                     WHERE status = 'RUNNING' AND locked_until < now()
                     ORDER BY locked_until LIMIT 500 FOR UPDATE SKIP LOCKED",
                    &[],
                )
                .await?;
            let (mut rescued, mut dead) = (0, 0);
            for row in &rows {
                let id: Uuid = row.try_get(0)?;
                let tenant_id: Uuid = row.try_get(1)?;
                let subscription_id: Option<Uuid> = row.try_get(2)?;
                let job_type: JobType = row.try_get(3)?;
                let attempts: i32 = row.try_get(4)?;
                let max_attempts: i32 = row.try_get(5)?;
                let next = JobStatus::Running
                    .transition(JobEvent::LeaseExpired { attempts_left: attempts < max_attempts })
                    .map_err(AppError::internal)?;
                let message = "lease expired: the worker stopped before finishing";
                tx.query_typed(
                    "UPDATE jobs SET status = $2, run_after = now(), locked_until = NULL, locked_by = NULL,
                            dispatched_at = NULL, last_error = $3, updated_at = now(),
                            finished_at = CASE WHEN $2 = 'DEAD' THEN now() END
                     WHERE id = $1",
                    &[(&id, Type::UUID), (&next, Type::TEXT), (&message, Type::TEXT)],
                )
                .await?;
                tx.query_typed(
                    "UPDATE job_attempts SET finished_at = now(), outcome = 'LEASE_EXPIRED', error = $3
                     WHERE job_id = $1 AND attempt = $2 AND outcome IS NULL",
                    &[(&id, Type::UUID), (&attempts, Type::INT4), (&message, Type::TEXT)],
                )
                .await?;
                if next == JobStatus::Dead {
                    on_dead(tx, &id, tenant_id, subscription_id, job_type, message).await?;
                    tracing::error!(job_id = %id, "job is DEAD after its last lease expired");
                    dead += 1;
                } else {
                    tracing::warn!(job_id = %id, "rescued a job whose lease expired");
                    rescued += 1;
                }
            }
            Ok((rescued, dead))
        })
    })
    .await
}

/// One scheduler pass: rescue expired leases, then dispatch every due job.
pub async fn sweep(state: &AppState) -> AppResult<SweepReport> {
    let (rescued, dead) = rescue_expired(state).await?;
    let billing = crate::subscriptions::lifecycle::billing_sweep(state).await?;
    let certificates = crate::certificates::sweep(state).await?;
    // Keeps the delayed set from growing where no pool runs (only Lambda).
    if let Err(e) = state.dispatcher.promote_due().await {
        tracing::warn!(error = %e, "could not promote due retries");
    }
    let dispatched = crate::dispatch::sweep(&state.db, &state.dispatcher).await?;
    Ok(SweepReport {
        rescued,
        dead,
        suspended: billing.suspended,
        terminated: billing.terminated,
        dispatched: dispatched.dispatched,
        undelivered: dispatched.undelivered,
        certificates: certificates.requested,
        certificate_alarms: certificates.alarms,
    })
}

/// `POST /api/jobs/{id}/retry`: a DEAD job back to PENDING with a fresh
/// budget of attempts, and its failed subscription back to PENDING.
pub async fn retry_dead(
    state: &AppState,
    tenant_id: Uuid,
    job_id: Uuid,
    actor: Actor,
    role: crate::auth::Role,
) -> AppResult<()> {
    let budget = state.config.jobs.max_attempts;
    crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let row = tx
                .query_typed_opt(
                    "SELECT status, subscription_id, type FROM jobs WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
                    &[(&job_id, Type::UUID), (&tenant_id, Type::UUID)],
                )
                .await?
                .ok_or(AppError::NotFound)?;
            let status: JobStatus = row.try_get(0)?;
            let subscription_id: Option<Uuid> = row.try_get(1)?;
            let job_type: JobType = row.try_get(2)?;
            let next = status.transition(JobEvent::Retry).map_err(|_| AppError::Conflict {
                field: Some("status".into()),
                detail: format!("The job is {}; only DEAD jobs can be retried.", status.as_str()),
            })?;
            if let Some(subscription_id) = subscription_id {
                crate::subscriptions::lifecycle::check_retry(tx, tenant_id, subscription_id, job_type, role).await?;
            }
            tx.query_typed(
                "UPDATE jobs SET status = $2, max_attempts = attempts + $3, run_after = now(), dispatched_at = NULL,
                        finished_at = NULL, updated_at = now()
                 WHERE id = $1",
                &[(&job_id, Type::UUID), (&next, Type::TEXT), (&budget, Type::INT4)],
            )
            .await?;
            if let Some(subscription_id) = subscription_id
                && job_type.is_provisioning()
            {
                crate::subscriptions::retry_provisioning(tx, tenant_id, subscription_id).await?;
            }
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, "job.retried")
                    .target("job", job_id)
                    .details(json!({ "type": job_type.as_str() })),
            )
            .await?;
            Ok(())
        })
    })
    .await?;
    state.dispatcher.dispatch(&state.db, &[job_id]).await;
    Ok(())
}

pub mod api;
pub mod pool;
