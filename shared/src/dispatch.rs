//! Handing job ids to workers after commit: a Redis list (the local worker
//! pool) and an SQS message (the Lambda worker's trigger, and the fallback
//! when Redis fails). Either may fail without losing work: the rows stay
//! PENDING in Postgres and the sweep sends them again.
//!
//! A retry is hinted for when it is due: a Redis sorted set scored by due
//! time, which the pools (and the Lambda worker and the sweep) move to the
//! list once due, and an SQS message delayed up to SQS's 15 minutes. So a
//! retry runs at its backoff, not at the sweep's next tick.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Script;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::db::DbPool;
use crate::error::AppResult;
use crate::kv::Kv;

/// A job hint older than this whose job is still waiting is sent again.
pub const REDISPATCH_AFTER: Duration = Duration::from_secs(60);
/// Ids per SQS message. Few: a worker that runs out of time before a
/// message's jobs hands the whole message back, and SQS redelivers it only
/// after the visibility timeout.
const IDS_PER_MESSAGE: usize = 2;
/// Jobs per sweep batch.
const SWEEP_BATCH: i64 = 500;
/// SQS refuses longer delays; an earlier hint finds the job not yet due.
const MAX_SQS_DELAY_SECS: u64 = 900;
/// Due retries moved per promotion call.
const PROMOTE_BATCH: usize = 200;

/// KEYS[1]: the delayed set, KEYS[2]: the ready list; ARGV: now (ms), batch.
/// Atomic, so two promoters never move the same id twice.
const PROMOTE_DUE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(due))
redis.call('LPUSH', KEYS[2], unpack(due))
return #due
"#;

/// The body of every jobs-queue message: ids of jobs whose rows in Postgres
/// are the truth (the message is only a hint to look).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobsMessage {
    pub job_ids: Vec<Uuid>,
}

#[derive(Clone)]
pub struct Dispatcher {
    kv: Kv,
    sqs: Option<std::sync::Arc<SqsQueue>>,
}

// Hashed at first use: only the sweep and the local pool promote retries.
static PROMOTE_DUE_SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(PROMOTE_DUE));

/// The jobs queue, with its client built at the first send: building an SQS
/// client (its endpoint rules and partition table) is most of what init
/// costs beyond hello-world in orders, admin and the worker, and most of
/// their invocations never send.
struct SqsQueue {
    aws: aws_config::SdkConfig,
    url: String,
    client: std::sync::OnceLock<aws_sdk_sqs::Client>,
}

impl SqsQueue {
    fn client(&self) -> &aws_sdk_sqs::Client {
        self.client.get_or_init(|| aws_sdk_sqs::Client::new(&self.aws))
    }
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
            (Some(aws), Some(url)) => {
                Some(std::sync::Arc::new(SqsQueue { aws: aws.clone(), url, client: Default::default() }))
            }
            _ => None,
        };
        Dispatcher { kv, sqs }
    }

    /// The Redis list the local worker pool pops job ids from.
    pub fn redis_queue_key(&self) -> String {
        self.kv.key("jobs:ready")
    }

    /// The Redis sorted set of retries, scored by due time (Unix ms).
    pub fn redis_delayed_key(&self) -> String {
        self.kv.key("jobs:delayed")
    }

    /// Sends the ids to Redis and SQS and records the dispatch on the rows
    /// it reached. Never fails: a failure is logged and left to the sweep.
    pub async fn dispatch(&self, db: &DbPool, job_ids: &[Uuid]) -> DispatchReport {
        if job_ids.is_empty() {
            return DispatchReport::default();
        }
        let (redis, sqs) = tokio::join!(self.push_redis(job_ids), self.send_sqs(job_ids, Duration::ZERO));
        self.record(db, job_ids, redis, sqs).await
    }

    /// Hints a retry for `due`: into the delayed set and as a delayed SQS
    /// message. Never fails: a lost hint is the sweep's to repair.
    pub async fn dispatch_at(&self, db: &DbPool, job_id: Uuid, due: DateTime<Utc>) -> DispatchReport {
        let delay = (due - Utc::now()).to_std().unwrap_or_default();
        let ids = [job_id];
        let (redis, sqs) = tokio::join!(self.schedule_redis(job_id, due), self.send_sqs(&ids, delay));
        self.record(db, &ids, redis, sqs).await
    }

    /// Moves retries that are due from the delayed set to the ready list;
    /// returns how many moved.
    pub async fn promote_due(&self) -> anyhow::Result<usize> {
        let keys = [self.redis_delayed_key(), self.redis_queue_key()];
        let args = [Utc::now().timestamp_millis().to_string(), PROMOTE_BATCH.to_string()];
        let moved: usize = self.kv.invoke(&PROMOTE_DUE_SCRIPT, &keys, &args).await?;
        Ok(moved)
    }

    async fn record(
        &self,
        db: &DbPool,
        job_ids: &[Uuid],
        redis: anyhow::Result<()>,
        sqs: anyhow::Result<()>,
    ) -> DispatchReport {
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
        let _: i64 = self.kv.query(redis::cmd("LPUSH").arg(self.redis_queue_key()).arg(&ids)).await?;
        Ok(())
    }

    async fn schedule_redis(&self, job_id: Uuid, due: DateTime<Utc>) -> anyhow::Result<()> {
        let _: i64 = self
            .kv
            .query(redis::cmd("ZADD").arg(self.redis_delayed_key()).arg(due.timestamp_millis()).arg(job_id.to_string()))
            .await?;
        Ok(())
    }

    async fn send_sqs(&self, job_ids: &[Uuid], delay: Duration) -> anyhow::Result<()> {
        let Some(queue) = &self.sqs else {
            anyhow::bail!("no SQS queue configured");
        };
        let (client, url) = (queue.client(), &queue.url);
        // Rounded up: a hint must not arrive before the job is due.
        let delay_secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        let delay_secs = i32::try_from(delay_secs.min(MAX_SQS_DELAY_SECS)).unwrap_or(0);
        for chunk in job_ids.chunks(IDS_PER_MESSAGE) {
            let body = serde_json::to_string(&JobsMessage { job_ids: chunk.to_vec() })?;
            client
                .send_message()
                .queue_url(url)
                .message_body(body)
                .set_delay_seconds((delay_secs > 0).then_some(delay_secs))
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
