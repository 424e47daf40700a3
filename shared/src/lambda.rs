//! Event handlers of the non-HTTP Lambda functions. The function binaries
//! only build state and hand these to `lambda_runtime::run`, so tests drive
//! the exact same code with the sample events in `events/`.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::dispatch::SweepReport;
use crate::http::AppState;

/// The body of every jobs-queue message: ids of jobs whose rows in Postgres
/// are the truth (the message is only a hint to look).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobsMessage {
    pub job_ids: Vec<Uuid>,
}

/// The SQS-triggered worker. Messages that cannot be read are reported as
/// batch item failures (so SQS retries them and finally moves them to the
/// DLQ, where people see them); the rest are accepted.
pub async fn handle_jobs_batch(
    state: &AppState,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let _ = state;
    let mut response = SqsBatchResponse::default();
    for record in event.payload.records {
        let message_id = record.message_id.clone().unwrap_or_default();
        match record
            .body
            .as_deref()
            .map(serde_json::from_str::<JobsMessage>)
        {
            Some(Ok(message)) => {
                tracing::info!(%message_id, jobs = message.job_ids.len(), "jobs message received");
            }
            Some(Err(e)) => {
                tracing::warn!(%message_id, error = %e, "unreadable jobs message");
                response.add_failure(message_id);
            }
            None => {
                tracing::warn!(%message_id, "jobs message without a body");
                response.add_failure(message_id);
            }
        }
    }
    Ok(response)
}

/// The EventBridge-scheduled pass: re-dispatches every due job whose hint
/// was never sent or was lost. Accepts any scheduled-event shape (the classic
/// "Scheduled Event" or an EventBridge Scheduler target input).
pub async fn handle_schedule(
    state: &AppState,
    event: LambdaEvent<serde_json::Value>,
) -> Result<SweepReport, lambda_runtime::Error> {
    tracing::info!(request_id = %event.context.request_id, "scheduler pass");
    let report = crate::dispatch::sweep(&state.db, &state.dispatcher)
        .await
        .map_err(|e| lambda_runtime::Error::from(e.to_string()))?;
    tracing::info!(
        dispatched = report.dispatched,
        undelivered = report.undelivered,
        "scheduler pass done"
    );
    Ok(report)
}
