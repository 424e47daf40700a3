//! Event handlers of the non-HTTP Lambda functions. The function binaries
//! only build state and hand these to `lambda_runtime::run`, so tests drive
//! the exact same code with the sample events in `events/`.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use uuid::Uuid;

use crate::dispatch::JobsMessage;
use crate::engine::SweepReport;
use crate::state::AppState;

/// The SQS-triggered worker: runs every job id of every message, then
/// drains the Redis list while time allows. A job is started only while a
/// whole job's budget fits before the invocation's deadline; a message whose
/// jobs were not all started is handed back (a batch item failure) for SQS
/// to redeliver. A message also fails when it cannot be read, or when a job
/// of it could not be run because our own infrastructure failed. A job that
/// ran and failed is recorded in Postgres (RETRYING/DEAD), not a message failure.
pub async fn handle_jobs_batch(
    state: &AppState,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let worker = format!("lambda-{}", event.context.request_id);
    let deadline = Deadline(event.context.deadline);
    let budget = crate::engine::job_budget(state);
    let mut response = SqsBatchResponse::default();
    for record in event.payload.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        let Some(message) = read_message(&message_id, record.body.as_deref()) else {
            response.add_failure(message_id);
            continue;
        };
        let mut failed = false;
        for job_id in message.job_ids {
            if !deadline.fits(budget) {
                tracing::info!(%message_id, %job_id, "no time left for a whole job; the message goes back");
                failed = true;
                break;
            }
            if let Err(e) = crate::engine::run_job(state, job_id, &worker).await {
                tracing::warn!(%message_id, %job_id, error = %e, "job could not be run");
                failed = true;
            }
        }
        if failed {
            response.add_failure(message_id);
        }
    }
    drain_redis(state, &worker, deadline, budget).await;
    Ok(response)
}

/// The invocation's deadline, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy)]
struct Deadline(u64);

impl Deadline {
    /// Whether `budget` still fits before the deadline.
    fn fits(self, budget: std::time::Duration) -> bool {
        let remaining = self.0 as i64 - chrono::Utc::now().timestamp_millis();
        remaining >= budget.as_millis() as i64
    }
}

fn read_message(message_id: &str, body: Option<&str>) -> Option<JobsMessage> {
    match body.map(serde_json::from_str::<JobsMessage>) {
        Some(Ok(message)) => Some(message),
        Some(Err(e)) => {
            tracing::warn!(%message_id, error = %e, "unreadable jobs message");
            None
        }
        None => {
            tracing::warn!(%message_id, "jobs message without a body");
            None
        }
    }
}

/// Runs job ids waiting in Redis while a whole job still fits before the deadline.
async fn drain_redis(state: &AppState, worker: &str, deadline: Deadline, budget: std::time::Duration) {
    let key = state.dispatcher.redis_queue_key();
    if let Err(e) = state.dispatcher.promote_due().await {
        tracing::warn!(error = %e, "could not promote due retries");
    }
    while deadline.fits(budget) {
        let mut conn = state.kv.conn();
        let popped: redis::RedisResult<Option<String>> = redis::cmd("RPOP").arg(&key).query_async(&mut conn).await;
        let Ok(Some(id)) = popped else { return };
        if let Ok(job_id) = Uuid::parse_str(&id)
            && let Err(e) = crate::engine::run_job(state, job_id, worker).await
        {
            tracing::warn!(%job_id, error = %e, "job from redis could not be run");
        }
    }
}

/// The EventBridge-scheduled pass: re-dispatches every due job whose hint
/// was never sent or was lost. Accepts any scheduled-event shape (the classic
/// "Scheduled Event" or an EventBridge Scheduler target input).
pub async fn handle_schedule(
    state: &AppState,
    event: LambdaEvent<serde_json::Value>,
) -> Result<SweepReport, lambda_runtime::Error> {
    tracing::info!(request_id = %event.context.request_id, "scheduler pass");
    let report = crate::engine::sweep(state).await.map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
    tracing::info!(?report, "scheduler pass done");
    Ok(report)
}
