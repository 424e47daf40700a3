//! Event handlers of the non-HTTP Lambda functions. The function binaries
//! only build state and hand these to `lambda_runtime::run`, so tests drive
//! the exact same code with the sample events in `events/`.

use std::collections::HashMap;

use aws_lambda_events::cloudformation::{
    CloudFormationCustomResourceRequest as CustomResourceRequest,
    CloudFormationCustomResourceResponse as CustomResourceResponse,
    CloudFormationCustomResourceResponseStatus as CustomResourceStatus,
};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use uuid::Uuid;

use crate::config::{Config, Env, Needs};
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
                tracing::info!(
                    %message_id,
                    %job_id,
                    remaining_ms = deadline.remaining_ms(),
                    budget_ms = budget.as_millis() as i64,
                    "no time left for a whole job; the message goes back"
                );
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
        // Lambda sends epoch milliseconds. A value before 2001 is not one:
        // local emulators (cargo lambda watch) send none or a bare timeout,
        // and then nothing limits.
        const EPOCH_MS_2001: u64 = 978_307_200_000;
        self.0 < EPOCH_MS_2001 || self.remaining_ms() >= budget.as_millis() as i64
    }

    fn remaining_ms(self) -> i64 {
        self.0 as i64 - chrono::Utc::now().timestamp_millis()
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
        let popped: redis::RedisResult<Option<String>> = state.kv.query(redis::cmd("RPOP").arg(&key)).await;
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

/// The physical id of the migrations resource: one per stack, never replaced
/// (so CloudFormation never deletes an "old" one after an update).
pub const MIGRATIONS_RESOURCE_ID: &str = "mpanel-database-migrations";

/// The `migrate` function behind the stack's `Custom::Migrations` resource:
/// on Create and Update (every deploy that ships new code) it applies the
/// pending migrations; on Delete it leaves the database alone. Whatever
/// happens, CloudFormation is answered at the ResponseURL (SUCCESS or FAILED
/// with the reason), so a failed migration fails the deploy at once instead
/// of leaving the stack waiting for an hour.
pub async fn handle_migrations(
    env: &Env,
    http: &reqwest::Client,
    event: LambdaEvent<CustomResourceRequest>,
) -> Result<CustomResourceResponse, lambda_runtime::Error> {
    let mut response = CustomResourceResponse::default();
    response.physical_resource_id = MIGRATIONS_RESOURCE_ID.to_string();
    let (url, outcome) = match event.payload {
        CustomResourceRequest::Create(r) => {
            (response.stack_id, response.request_id, response.logical_resource_id) =
                (r.stack_id, r.request_id, r.logical_resource_id);
            (r.response_url, migrate(env).await)
        }
        CustomResourceRequest::Update(r) => {
            (response.stack_id, response.request_id, response.logical_resource_id) =
                (r.stack_id, r.request_id, r.logical_resource_id);
            (r.response_url, migrate(env).await)
        }
        CustomResourceRequest::Delete(r) => {
            (response.stack_id, response.request_id, response.logical_resource_id) =
                (r.stack_id, r.request_id, r.logical_resource_id);
            // Deleting the stack never drops the schema: the data outlives it.
            (r.response_url, Ok(HashMap::from([("Applied".to_string(), String::new())])))
        }
        // No response URL to answer: the invocation fails and is logged.
        other => return Err(format!("unknown custom resource request: {other:?}").into()),
    };
    match outcome {
        Ok(data) => {
            response.status = CustomResourceStatus::Success;
            response.data = data;
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "migrations failed");
            response.status = CustomResourceStatus::Failed;
            // CloudFormation shows the reason in the stack events; it caps the size.
            response.reason = Some(format!("{e:#}").chars().take(2000).collect());
        }
    }
    answer_cloudformation(http, &url, &response).await?;
    Ok(response)
}

/// Applies pending migrations; the names applied, comma separated.
async fn migrate(env: &Env) -> anyhow::Result<HashMap<String, String>> {
    let config = Config::load_in_lambda(env, Needs::NONE).await?;
    let report = crate::db::migrate(&config.database).await?;
    let applied: Vec<String> = report.applied_migrations().iter().map(|m| m.to_string()).collect();
    tracing::info!(applied = ?applied, "migrations applied");
    Ok(HashMap::from([("Applied".to_string(), applied.join(","))]))
}

/// PUTs the answer to the presigned URL CloudFormation gave. The URL is
/// signed without a content type, so none is sent.
async fn answer_cloudformation(
    http: &reqwest::Client,
    url: &str,
    response: &CustomResourceResponse,
) -> Result<(), lambda_runtime::Error> {
    let body = serde_json::to_vec(response)?;
    let sent = http.put(url).header(reqwest::header::CONTENT_LENGTH, body.len()).body(body).send().await?;
    if !sent.status().is_success() {
        return Err(format!("CloudFormation's response URL answered {}", sent.status()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Deadline;
    use std::time::Duration;

    fn in_ms(ms: i64) -> Deadline {
        Deadline((chrono::Utc::now().timestamp_millis() + ms) as u64)
    }

    #[test]
    fn a_budget_fits_only_before_the_deadline() {
        assert!(in_ms(60_000).fits(Duration::from_secs(30)));
        assert!(!in_ms(20_000).fits(Duration::from_secs(30)));
        assert!(!in_ms(-1_000).fits(Duration::from_secs(1)));
    }

    #[test]
    fn no_deadline_from_the_runtime_api_limits_nothing() {
        assert!(Deadline(0).fits(Duration::from_secs(3600)));
        assert!(Deadline(30_000).fits(Duration::from_secs(3600)));
    }
}
