//! One sweep pass (rescue, billing, certificates, dispatch of due jobs) over
//! a small history and a large one: its cost must follow the due work, not
//! the finished jobs and settled subscriptions behind it. The pass is
//! `mpanel::engine::sweep` itself, in this process, over a state built as
//! the scheduler builds it; the plans are those of its selecting queries.

use std::time::{Duration, Instant};

use anyhow::Result;
use uuid::Uuid;

use crate::load::Sample;
use crate::stack::{Env, Stack};

pub struct SweepRow {
    pub jobs: i64,
    pub subscriptions: i64,
    pub pass: Sample,
    pub plans: Vec<(&'static str, String)>,
}

/// The sweep's selecting queries, as `engine`, `subscriptions::lifecycle`
/// and `dispatch` write them, for their plans.
const QUERIES: &[(&str, &str)] = &[
    (
        "rescue: expired leases",
        "SELECT id FROM jobs WHERE status = 'RUNNING' AND locked_until < now()
         ORDER BY locked_until LIMIT 500",
    ),
    (
        "billing: failed payments past grace",
        "SELECT s.id, s.tenant_id FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id
         WHERE s.status = 'ACTIVE' AND s.payment_failed_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subscription_id = s.id
                             AND j.status IN ('PENDING', 'RUNNING', 'RETRYING'))
         ORDER BY s.payment_failed_at LIMIT 200",
    ),
    (
        "billing: cancellations at period end",
        "SELECT s.id, s.tenant_id FROM subscriptions s
         WHERE s.cancel_at_period_end AND s.status IN ('ACTIVE', 'SUSPENDED') AND s.current_period_end <= now()
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subscription_id = s.id
                             AND j.status IN ('PENDING', 'RUNNING', 'RETRYING'))
         ORDER BY s.current_period_end LIMIT 200",
    ),
    (
        "dispatch: due jobs",
        "SELECT id FROM jobs WHERE status IN ('PENDING', 'RETRYING') AND run_after <= now()
           AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => 30))
         ORDER BY run_after LIMIT 100",
    ),
];

/// Grows the demo tenant's history to each (finished jobs, subscriptions)
/// size in turn and times `runs` sweep passes at each.
pub async fn measure(env: &Env, db_url: &str, sizes: &[(i64, i64)], runs: usize) -> Result<Vec<SweepRow>> {
    let client = Stack::connect(db_url).await?;
    let crate::stack::DemoPlan { tenant, price, product } = Stack::demo_plan(&client).await?;
    let customer = Stack::customer(&client, tenant, "sweep").await?;
    let order: Uuid = client
        .query_one(
            "INSERT INTO orders (tenant_id, customer_id, price_id, external_order_id, status, total_amount_cents,
                                 currency, domain, metadata, request_hash)
             VALUES ($1, $2, $3, 'sweep-seed', 'PAID', 999, 'USD', 'sweep-seed.com', '{}'::jsonb, sha256('sweep'::bytea))
             RETURNING id",
            &[&tenant, &customer, &price],
        )
        .await?
        .get(0);
    let env: mpanel::config::Env = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let config = mpanel::config::Config::load(&env, mpanel::Needs::NONE)
        .await
        .map_err(|e| anyhow::anyhow!("sweep config: {e}"))?;
    let state = mpanel::state::AppState::new(config)?;
    let (mut jobs_seeded, mut subscriptions_seeded) = (0_i64, 0_i64);
    let mut rows = Vec::new();
    for &(jobs, subscriptions) in sizes {
        let started = Instant::now();
        // Settled subscriptions: active, paid, renewing well in the future.
        client
            .execute(
                "INSERT INTO subscriptions (tenant_id, customer_id, order_id, product_id, price_id, status,
                                            current_period_end, activated_at, created_at)
                 SELECT $1, $2, $3, $4, $5, 'ACTIVE', now() + interval '20 days', now() - make_interval(secs => g),
                        now() - make_interval(secs => g)
                 FROM generate_series($6::bigint + 1, $7::bigint) g",
                &[&tenant, &customer, &order, &product, &price, &subscriptions_seeded, &subscriptions],
            )
            .await?;
        // Finished jobs spread over them, as years of provisioning leave.
        client
            .execute(
                "WITH subs AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM subscriptions WHERE tenant_id = $1)
                 INSERT INTO jobs (tenant_id, subscription_id, type, status, attempts, run_after, finished_at,
                                   dispatched_at, created_at, updated_at)
                 SELECT $1, subs.id, (ARRAY['PROVISION_DNS', 'PROVISION_HOSTING', 'PROVISION_MAIL'])[1 + g % 3],
                        'SUCCEEDED', 1, now() - make_interval(secs => g), now() - make_interval(secs => g),
                        now() - make_interval(secs => g), now() - make_interval(secs => g),
                        now() - make_interval(secs => g)
                 FROM generate_series($2::bigint + 1, $3::bigint) g
                 JOIN subs ON subs.n = g % $4",
                &[&tenant, &jobs_seeded, &jobs, &subscriptions],
            )
            .await?;
        // Vacuumed as well as analysed: otherwise autovacuum takes up the
        // million new rows during the timed passes, on the same two cores.
        for table in ["subscriptions", "jobs"] {
            client.batch_execute(&format!("VACUUM (ANALYZE) {table}")).await?;
        }
        (jobs_seeded, subscriptions_seeded) = (jobs, subscriptions);
        println!(
            "sweep: seeded {jobs} finished jobs and {subscriptions} subscriptions in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        for _ in 0..3 {
            mpanel::engine::sweep(&state).await.map_err(|e| anyhow::anyhow!("sweep: {e}"))?;
        }
        let mut times = Vec::new();
        let timed = Instant::now();
        for _ in 0..runs {
            let t = Instant::now();
            let report = mpanel::engine::sweep(&state).await.map_err(|e| anyhow::anyhow!("sweep: {e}"))?;
            times.push(t.elapsed());
            if report.dispatched + report.suspended + report.terminated + report.rescued > 0 {
                anyhow::bail!("the sweep found work in a settled history: {report:?}");
            }
        }
        let pass = Sample::from_latencies(times, timed.elapsed());
        let mut plans = Vec::new();
        for (name, query) in QUERIES {
            let plan = client.query(&format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {query}"), &[]).await?;
            plans.push((*name, plan.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>().join("\n")));
        }
        println!("sweep over {jobs} jobs: p50 {} ms", crate::load::ms(pass.percentile(50.0)));
        rows.push(SweepRow { jobs, subscriptions, pass, plans });
    }
    Ok(rows)
}

pub fn ratio(rows: &[SweepRow]) -> Option<f64> {
    let (first, last) = (rows.first()?, rows.last()?);
    let p50 = |r: &SweepRow| r.pass.percentile(50.0).max(Duration::from_nanos(1)).as_secs_f64();
    Some(p50(last) / p50(first))
}

pub fn render(rows: &[SweepRow], md: &mut String) -> Result<()> {
    use std::fmt::Write as _;
    writeln!(md, "## 6. Growth: one sweep pass over a small and a large history\n")?;
    writeln!(
        md,
        "The demo tenant's settled history is seeded with SQL (active subscriptions renewing in 20 days, \
         finished jobs spread over them) and `VACUUM (ANALYZE)`d, so autovacuum does not run during the timing; then `mpanel::engine::sweep` (rescue, billing, \
         certificates, promotion and dispatch of due jobs: what the scheduler runs each tick) is timed in \
         this process, over the same pool and Redis each time, after three warm-up passes. Nothing is due, \
         so the cost should not follow the history.\n"
    )?;
    writeln!(md, "| finished jobs | subscriptions | passes | p50 ms | p99 ms |")?;
    writeln!(md, "|---:|---:|---:|---:|---:|")?;
    for row in rows {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            row.jobs,
            row.subscriptions,
            row.pass.latencies.len(),
            crate::load::ms(row.pass.percentile(50.0)),
            crate::load::ms(row.pass.percentile(99.0))
        )?;
    }
    if let Some(r) = ratio(rows) {
        writeln!(md, "\nLargest / smallest history, p50: {r:.2}×.\n")?;
    }
    if let Some(last) = rows.last() {
        writeln!(md, "Plans of the sweep's selecting queries at {} jobs:\n", last.jobs)?;
        for (name, plan) in &last.plans {
            writeln!(md, "{name}:\n")?;
            for line in plan.lines() {
                writeln!(md, "    {line}")?;
            }
            writeln!(md)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_largest_over_smallest() {
        let row = |ms: u64| SweepRow {
            jobs: 0,
            subscriptions: 0,
            pass: Sample::from_latencies(vec![Duration::from_millis(ms)], Duration::from_millis(ms)),
            plans: Vec::new(),
        };
        let ratio = ratio(&[row(4), row(6)]).expect("two rows");
        assert!((ratio - 1.5).abs() < 1e-9, "{ratio}");
    }
}
