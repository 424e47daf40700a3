//! Handing job ids to workers after commit: a Redis list (the local worker
//! pool) and an SQS message (the Lambda worker's trigger, and the fallback
//! when Redis fails). Either may fail without losing work: the rows stay
//! PENDING in Postgres and the sweep sends them again.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::db::DbPool;
use crate::error::AppResult;
use crate::kv::Kv;
use crate::lambda::JobsMessage;

/// A job hint older than this whose job is still waiting is sent again.
pub const REDISPATCH_AFTER: Duration = Duration::from_secs(60);
/// Ids per SQS message (well under the 256 KiB message limit).
const IDS_PER_MESSAGE: usize = 100;
/// Jobs per sweep batch.
const SWEEP_BATCH: i64 = 500;

#[derive(Clone)]
pub struct Dispatcher {
    kv: Kv,
    sqs: Option<(aws_sdk_sqs::Client, String)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DispatchReport {
    pub redis: bool,
    pub sqs: bool,
}

impl DispatchReport {
    pub fn delivered(&self) -> bool {
        self.redis || self.sqs
    }
}

impl Dispatcher {
    pub fn new(kv: Kv, aws: Option<&aws_config::SdkConfig>, queue_url: Option<String>) -> Dispatcher {
        let sqs = match (aws, queue_url) {
            (Some(aws), Some(url)) => Some((aws_sdk_sqs::Client::new(aws), url)),
            _ => None,
        };
        Dispatcher { kv, sqs }
    }

    /// The Redis list the local worker pool pops job ids from.
    pub fn redis_queue_key(&self) -> String {
        self.kv.key("jobs:ready")
    }

    /// Sends the ids to Redis and SQS and records the dispatch on the rows
    /// it reached. Never fails: a failure is logged and left to the sweep.
    pub async fn dispatch(&self, db: &DbPool, job_ids: &[Uuid]) -> DispatchReport {
        if job_ids.is_empty() {
            return DispatchReport::default();
        }
        let (redis, sqs) = tokio::join!(self.push_redis(job_ids), self.send_sqs(job_ids));
        let report = DispatchReport {
            redis: redis.map_err(|e| tracing::warn!(error = %e, "job dispatch to redis failed")).is_ok(),
            // Without a queue (one machine, no SQS_QUEUE_URL) there is nothing to warn about.
            sqs: self.sqs.is_some()
                && sqs.map_err(|e| tracing::warn!(error = %e, "job dispatch to sqs failed")).is_ok(),
        };
        if report.delivered()
            && let Err(e) = mark_dispatched(db, job_ids).await
        {
            // Only bookkeeping: at worst the sweep sends the hint again.
            tracing::warn!(error = %e, "could not record job dispatch");
        }
        report
    }

    async fn push_redis(&self, job_ids: &[Uuid]) -> anyhow::Result<()> {
        let ids: Vec<String> = job_ids.iter().map(Uuid::to_string).collect();
        let mut conn = self.kv.conn();
        let _: i64 = redis::cmd("LPUSH").arg(self.redis_queue_key()).arg(&ids).query_async(&mut conn).await?;
        Ok(())
    }

    async fn send_sqs(&self, job_ids: &[Uuid]) -> anyhow::Result<()> {
        let Some((client, url)) = &self.sqs else {
            anyhow::bail!("no SQS queue configured");
        };
        for chunk in job_ids.chunks(IDS_PER_MESSAGE) {
            let body = serde_json::to_string(&JobsMessage { job_ids: chunk.to_vec() })?;
            client
                .send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?;
        }
        Ok(())
    }
}

/// Records the hint on rows still waiting. A worker may already have taken a
/// job by now (it stays NULL then, harmlessly: the sweep only looks at waiting jobs).
async fn mark_dispatched(db: &DbPool, job_ids: &[Uuid]) -> AppResult<()> {
    let client = db.get().await?;
    let ids = job_ids.to_vec();
    client
        .execute_typed(
            "UPDATE jobs SET dispatched_at = now() WHERE id = ANY($1) AND status IN ('PENDING', 'RETRYING')",
            &[(&ids, Type::UUID_ARRAY)],
        )
        .await?;
    Ok(())
}

/// What one sweep pass sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub dispatched: u64,
    pub undelivered: u64,
}

/// One scheduler pass: every due job that was never dispatched, or whose
/// hint is older than [`REDISPATCH_AFTER`] while it still waits, is sent again.
pub async fn sweep(db: &DbPool, dispatcher: &Dispatcher) -> AppResult<SweepReport> {
    let mut report = SweepReport::default();
    let stale_secs = REDISPATCH_AFTER.as_secs_f64();
    // Bounded: a pass never runs forever, the next tick continues.
    for _ in 0..20 {
        let client = db.get().await?;
        let rows = client
            .query_typed(
                "SELECT id FROM jobs
                 WHERE status IN ('PENDING', 'RETRYING') AND run_after <= now()
                   AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => $1))
                 ORDER BY run_after LIMIT $2",
                &[(&stale_secs, Type::FLOAT8), (&SWEEP_BATCH, Type::INT8)],
            )
            .await?;
        drop(client);
        let ids: Vec<Uuid> = rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?;
        if ids.is_empty() {
            break;
        }
        let sent = dispatcher.dispatch(db, &ids).await;
        if sent.delivered() {
            report.dispatched += ids.len() as u64;
        } else {
            // Both channels down: stop, the next pass retries.
            report.undelivered += ids.len() as u64;
            break;
        }
        if (ids.len() as i64) < SWEEP_BATCH {
            break;
        }
    }
    Ok(report)
}
