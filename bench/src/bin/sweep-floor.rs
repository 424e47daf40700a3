//! The scheduler's cold-start floor: hello-lambda plus the I/O of one sweep
//! pass over an empty history, done plainly. At its first event it opens one
//! PostgreSQL and one Redis connection and runs the pass's statements (the
//! SQL of `engine::sweep`: lease rescue in its transaction, the two billing
//! queries, the promotion script, the dispatch query) one after another.
//! Certificates are left out as the benchmark configures none.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

const RESCUE: &str = "SELECT id, tenant_id, subscription_id, type, attempts, max_attempts FROM jobs
     WHERE status = 'RUNNING' AND locked_until < now()
     ORDER BY locked_until LIMIT 500 FOR UPDATE SKIP LOCKED";
const OVERDUE: &str = "SELECT s.id, s.tenant_id FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id
     WHERE s.status = 'ACTIVE' AND s.payment_failed_at IS NOT NULL
       AND s.payment_failed_at + make_interval(days => COALESCE((t.settings->>'paymentGraceDays')::int, 7)) <= now()
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subscription_id = s.id
                         AND ((j.status IN ('PENDING', 'RUNNING', 'RETRYING') AND j.type <> 'ISSUE_CERTIFICATE')
                              OR (j.status = 'DEAD' AND j.type = 'SUSPEND_SERVICE'
                                  AND j.created_at >= s.payment_failed_at)))
     ORDER BY s.payment_failed_at LIMIT 200";
const ENDING: &str = "SELECT s.id, s.tenant_id FROM subscriptions s
     WHERE s.cancel_at_period_end AND s.status IN ('ACTIVE', 'SUSPENDED') AND s.current_period_end <= now()
       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subscription_id = s.id
                         AND ((j.status IN ('PENDING', 'RUNNING', 'RETRYING') AND j.type <> 'ISSUE_CERTIFICATE')
                              OR (j.status = 'DEAD' AND j.type = 'TERMINATE_SERVICE')))
     ORDER BY s.current_period_end LIMIT 200";
const DUE: &str = "SELECT id FROM jobs
     WHERE status IN ('PENDING', 'RETRYING') AND run_after <= now()
       AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => 60::float8))
     ORDER BY run_after LIMIT 500";
const PROMOTE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(due))
redis.call('LPUSH', KEYS[2], unpack(due))
return #due
"#;

async fn pass(database_url: &str, redis_url: &str, prefix: &str) -> Result<Value, Error> {
    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    db.batch_execute("BEGIN").await?;
    let rescued = db.query(RESCUE, &[]).await?.len();
    db.batch_execute("COMMIT").await?;
    let overdue = db.query(OVERDUE, &[]).await?.len();
    let ending = db.query(ENDING, &[]).await?.len();
    let mut redis = redis::Client::open(redis_url)?.get_multiplexed_async_connection().await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let promoted: i64 = redis::cmd("EVAL")
        .arg(PROMOTE)
        .arg(2)
        .arg(format!("{prefix}jobs:delayed"))
        .arg(format!("{prefix}jobs:ready"))
        .arg(now_ms)
        .arg(200)
        .query_async(&mut redis)
        .await?;
    let due = db.query(DUE, &[]).await?.len();
    Ok(json!({"rescued": rescued, "overdue": overdue, "ending": ending, "promoted": promoted, "due": due}))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let database_url = std::env::var("DATABASE_URL")?;
    let redis_url = std::env::var("REDIS_URL")?;
    let prefix = std::env::var("REDIS_KEY_PREFIX").unwrap_or_default();
    let (database_url, redis_url, prefix) = (&database_url, &redis_url, &prefix);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| pass(database_url, redis_url, prefix))).await
}
