//! Order intake through `mpanel serve` beside pgbench running the same SQL
//! transaction (the statements of `orders::intake`, in order) directly.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use uuid::Uuid;

use crate::load::{self, Sample};
use crate::stack::{BenchDb, Stack};

/// What a signed order needs: where to post it and how to sign it.
#[derive(Clone)]
pub struct OrderPoster {
    pub client: reqwest::Client,
    pub base: String,
    pub key: Arc<Vec<u8>>,
    pub run: String,
}

impl OrderPoster {
    pub fn new(stack: &Stack, base: &str, run: &str) -> Result<OrderPoster> {
        let secret = stack.base_env.get("MARKETING_WEBHOOK_SECRET").context("MARKETING_WEBHOOK_SECRET")?;
        let key = mpanel::config::parse_webhook_secret(secret).map_err(|e| anyhow::anyhow!("{e}"))?;
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
        Ok(OrderPoster { client, base: base.into(), key: Arc::new(key), run: run.into() })
    }

    /// The domain of order `i` of this run (`mpb-` marks bench leftovers).
    pub fn domain(&self, i: usize) -> String {
        format!("mpb-{}-{i}.com", self.run)
    }

    /// Posts order `i`: a new customer, the demo starter plan (DNS, web
    /// space and a mailbox: three jobs), a new domain.
    pub async fn post(&self, i: usize) -> Result<(), String> {
        let body = json!({
            "tenantSlug": mpanel::demo::DEMO_TENANT, "externalOrderId": format!("{}-{i}", self.run),
            "customer": {"email": format!("c{i}-{}@example.org", self.run), "fullName": "Bench Customer", "phone": "+15550100"},
            "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD",
            "domain": self.domain(i), "metadata": {"campaign": "bench"}
        });
        let raw = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let id = format!("msg_{}_{i}", self.run);
        let timestamp = chrono::Utc::now().timestamp();
        let signature = mpanel::webhooks::sign(&id, timestamp, &raw, &self.key);
        let response = self
            .client
            .post(format!("{}/api/orders", self.base))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(raw)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != reqwest::StatusCode::CREATED {
            let status = response.status();
            return Err(format!("{status}: {}", response.text().await.unwrap_or_default()));
        }
        Ok(())
    }
}

/// One round at one concurrency: mPanel's orders, then pgbench's.
pub struct IntakeRound {
    pub mpanel: Sample,
    pub pgbench_tps: f64,
    pub pgbench_latency_ms: f64,
}

impl IntakeRound {
    /// mPanel orders/s over pgbench tps (the issue's way round: 1 = as fast).
    pub fn share(&self) -> f64 {
        self.mpanel.rate() / self.pgbench_tps.max(f64::EPSILON)
    }
}

pub struct IntakeRow {
    pub concurrency: usize,
    /// Interleaved: mPanel, pgbench, mPanel, pgbench, ...
    pub rounds: Vec<IntakeRound>,
    pub pgbench_command: String,
    /// What the Lambda deployment adds per order: one SendMessage of three
    /// job ids, here to the local emulator, same clients.
    pub send_message: Sample,
}

impl IntakeRow {
    fn median_of(&self, of: impl Fn(&IntakeRound) -> f64) -> f64 {
        load::median(self.rounds.iter().map(of).collect())
    }
    pub fn median_share(&self) -> f64 {
        self.median_of(IntakeRound::share)
    }
    pub fn share_spread(&self) -> (f64, f64) {
        load::spread(&self.rounds.iter().map(IntakeRound::share).collect::<Vec<_>>())
    }
    pub fn median_rate(&self) -> f64 {
        self.median_of(|r| r.mpanel.rate())
    }
    pub fn median_ms(&self, percentile: f64) -> f64 {
        self.median_of(|r| r.mpanel.percentile(percentile).as_secs_f64() * 1000.0)
    }
    pub fn median_tps(&self) -> f64 {
        self.median_of(|r| r.pgbench_tps)
    }
    pub fn median_pgbench_ms(&self) -> f64 {
        self.median_of(|r| r.pgbench_latency_ms)
    }
}

/// `orders` per concurrency level, split over `rounds` interleaved rounds.
pub async fn measure(stack: &Stack, orders: usize, levels: &[usize], rounds: usize) -> Result<Vec<IntakeRow>> {
    let db = stack.fresh_db("mpanel_bench_intake").await?;
    let env = stack.env_for(&db);
    let (server, base) = stack.serve(&env, "intake-serve.log").await?;
    let client = Stack::connect(&db.url).await?;
    client.batch_execute("CREATE SEQUENCE IF NOT EXISTS bench_pgbench_seq").await?;
    let script = stack.work_dir.join("intake.pgbench.sql");
    std::fs::write(&script, pgbench_script(&client).await?)?;

    // Warm-up: connections, prepared caches, the first index pages.
    let warm = OrderPoster::new(stack, &base, "warm")?;
    let sample = load::run(200, 8, move |i| {
        let warm = warm.clone();
        async move { warm.post(i).await }
    })
    .await;
    if sample.errors > 0 {
        bail!("warm-up orders failed: {:?}", sample.first_error);
    }
    // Statistics, as a database in use has them. Without them the pool's
    // connections keep the plans they made for nearly empty tables: the
    // foreign-key check on subscriptions (tenant_id, id) ties on cost and
    // takes subscriptions_customer_idx, which reads every subscription of
    // the tenant, until autovacuum's first ANALYZE, about a minute in; each
    // pgbench run connects anew and plans with the rows then present. That
    // was the 1-client rounds slowing down (225, 159, 121 orders/s).
    client.batch_execute("ANALYZE").await?;

    let mut rows = Vec::new();
    let per_round = orders.div_ceil(rounds.max(1));
    for &concurrency in levels {
        let mut measured = Vec::new();
        let mut command = String::new();
        for round in 0..rounds.max(1) {
            let poster = OrderPoster::new(stack, &base, &format!("c{concurrency}r{round}"))?;
            let sample = load::run(per_round, concurrency, move |i| {
                let poster = poster.clone();
                async move { poster.post(i).await }
            })
            .await;
            if sample.errors > 0 {
                bail!("{} of {per_round} orders failed at c={concurrency}: {:?}", sample.errors, sample.first_error);
            }
            let (tps, latency, shown) = pgbench(&db, &script, per_round, concurrency).await?;
            command = shown;
            println!(
                "intake c={concurrency} round {round}: mPanel {:.0}/s p50 {} ms p99 {} ms; pgbench {tps:.0}/s",
                sample.rate(),
                load::ms(sample.percentile(50.0)),
                load::ms(sample.percentile(99.0)),
            );
            measured.push(IntakeRound { mpanel: sample, pgbench_tps: tps, pgbench_latency_ms: latency });
        }
        let send_message = send_messages(stack, orders.min(300), concurrency).await?;
        rows.push(IntakeRow { concurrency, rounds: measured, pgbench_command: command, send_message });
    }
    crate::stack::stop(server).await;
    stack.drop_db(&db).await?;
    Ok(rows)
}

/// SendMessage calls like the dispatch's, to the benchmark's queue.
async fn send_messages(stack: &Stack, count: usize, concurrency: usize) -> Result<Sample> {
    let sqs = crate::stack::sqs_client(&stack.base_env).await?;
    let queue_url = stack.queue_url.clone();
    let body = json!({"jobIds": [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()]}).to_string();
    let sample = load::run(count, concurrency, move |_| {
        let (sqs, queue_url, body) = (sqs.clone(), queue_url.clone(), body.clone());
        async move {
            sqs.send_message().queue_url(queue_url).message_body(body).send().await.map_err(|e| e.to_string())?;
            Ok(())
        }
    })
    .await;
    if sample.errors > 0 {
        bail!("{} SendMessage calls failed: {:?}", sample.errors, sample.first_error);
    }
    Ok(sample)
}

/// pgbench at the same concurrency and transaction count; returns its tps
/// (without connection time), average latency and the command line.
async fn pgbench(db: &BenchDb, script: &std::path::Path, orders: usize, clients: usize) -> Result<(f64, f64, String)> {
    let per_client = orders.div_ceil(clients);
    let threads = clients.min(2);
    let args = [
        "-n".to_string(),
        "-M".into(),
        "extended".into(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        threads.to_string(),
        "-t".into(),
        per_client.to_string(),
        "-f".into(),
        script.display().to_string(),
        db.url.clone(),
    ];
    let started = Instant::now();
    let output = tokio::process::Command::new("pgbench").args(&args).output().await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.contains("tps =") {
        bail!("pgbench failed after {:?}: {}{}", started.elapsed(), stdout, String::from_utf8_lossy(&output.stderr));
    }
    let number_after = |prefix: &str| -> Option<f64> {
        stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    let tps = number_after("tps =").context("no tps in pgbench output")?;
    let latency = number_after("latency average =").unwrap_or(0.0);
    let shown = format!(
        "pgbench {} <db>",
        args[..args.len() - 1].join(" ").replace(&script.display().to_string(), "intake.pgbench.sql")
    );
    Ok((tps, latency, shown))
}

/// The intake's statements with the demo tenant's ids filled in: the replay
/// check, then one transaction (the signed-webhook pipeline's lock on the
/// webhook id and replay check, the tenant and price lookups, the order's
/// lock and duplicate check, customer, order, subscription, domain, three
/// jobs, the audit entry and the delivery record); then the dispatch
/// bookkeeping. Each transaction uses a new key from a sequence.
async fn pgbench_script(client: &tokio_postgres::Client) -> Result<String> {
    let crate::stack::DemoPlan { tenant, price, product } = Stack::demo_plan(client).await?;
    let response = json!({"orderId": Uuid::nil(), "subscriptionId": Uuid::nil(), "customerId": Uuid::nil(),
        "status": "PENDING", "orderStatus": "PAID", "jobs": [
            {"id": Uuid::nil(), "type": "PROVISION_DNS", "status": "PENDING"},
            {"id": Uuid::nil(), "type": "PROVISION_HOSTING", "status": "PENDING"},
            {"id": Uuid::nil(), "type": "PROVISION_MAIL", "status": "PENDING"}]});
    Ok(format!(
        r#"SELECT nextval('bench_pgbench_seq') AS k \gset
SELECT response_body FROM webhook_deliveries WHERE source = 'ORDERS' AND webhook_id = 'pgb_' || :k;
BEGIN;
SELECT pg_advisory_xact_lock(hashtextextended('ORDERS' || ':' || 'pgb_' || :k, 0));
SELECT response_body FROM webhook_deliveries WHERE source = 'ORDERS' AND webhook_id = 'pgb_' || :k;
SELECT id FROM tenants WHERE lower(slug) = lower('{slug}') AND status = 'ACTIVE';
SELECT pr.id, p.id, pr.amount_cents, pr.currency, pr.interval, p.type, COALESCE((p.limits->>'emails')::bigint, 0)
  FROM prices pr JOIN products p ON p.id = pr.product_id AND p.tenant_id = pr.tenant_id
  WHERE pr.tenant_id = '{tenant}' AND lower(pr.slug) = lower('starter-monthly') AND pr.is_active AND p.is_active;
SELECT pg_advisory_xact_lock(hashtextextended('{tenant}' || ':' || 'pgb-' || :k, 0));
SELECT id, request_hash FROM orders WHERE tenant_id = '{tenant}' AND external_order_id = 'pgb-' || :k;
INSERT INTO customers (tenant_id, email, full_name, phone) VALUES ('{tenant}', 'p' || :k || '@example.org', 'Bench Customer', '+15550100')
  ON CONFLICT (tenant_id, lower(email)) DO NOTHING RETURNING id AS customer_id \gset
INSERT INTO orders (tenant_id, customer_id, price_id, external_order_id, status, total_amount_cents, currency, domain, metadata, request_hash)
  VALUES ('{tenant}', :customer_id, '{price}', 'pgb-' || :k, 'PAID', 999, 'USD', 'pgb-' || :k || '.com', '{{"campaign": "bench"}}', sha256(('pgb-' || :k)::bytea))
  RETURNING id AS order_id \gset
INSERT INTO subscriptions (tenant_id, customer_id, order_id, product_id, price_id, status, current_period_start, current_period_end, activated_at)
  VALUES ('{tenant}', :customer_id, :order_id, '{product}', '{price}', 'PENDING', now(), now() + interval '1 month', NULL)
  RETURNING id AS subscription_id \gset
INSERT INTO domains (tenant_id, subscription_id, name, status) VALUES ('{tenant}', :subscription_id, 'pgb-' || :k || '.com', 'PENDING');
WITH inserted AS (INSERT INTO jobs (tenant_id, subscription_id, type, payload)
  SELECT '{tenant}', :subscription_id, job_type, jsonb_build_object('domain', 'pgb-' || :k || '.com')
  FROM unnest(ARRAY['PROVISION_DNS', 'PROVISION_HOSTING', 'PROVISION_MAIL']) AS job_type RETURNING id, type)
  SELECT array_agg(id) AS job_ids FROM inserted \gset
INSERT INTO audit_logs (tenant_id, actor_type, actor_user_id, action, target_type, target_id, ip, user_agent, details)
  VALUES ('{tenant}', 'WEBHOOK', NULL, 'order.created', 'order', :order_id, NULL, NULL,
          jsonb_build_object('externalOrderId', 'pgb-' || :k, 'webhookId', 'pgb_' || :k, 'subscriptionId', :subscription_id::text, 'domain', 'pgb-' || :k || '.com'));
INSERT INTO webhook_deliveries (tenant_id, source, webhook_id, request_hash, response_status, response_body, order_id)
  VALUES ('{tenant}', 'ORDERS', 'pgb_' || :k, sha256(('pgb-' || :k)::bytea), 201, '{response}', :order_id);
COMMIT;
UPDATE jobs SET dispatched_at = now() WHERE id = ANY(:job_ids::uuid[]) AND status IN ('PENDING', 'RETRYING');
"#,
        slug = mpanel::demo::DEMO_TENANT,
    ))
}
