//! `/api/orders` first page and a page deep in the list at 10^3 and 10^6
//! orders in the tenant (seeded with SQL), plus the deep query's plan.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use uuid::Uuid;

use crate::load::Sample;
use crate::stack::{BenchDb, Stack};

pub struct GrowthRow {
    pub orders: i64,
    pub first_page: Sample,
    pub deep_page: Sample,
    pub deep_offset: i64,
    pub plan: String,
}

/// Grows the demo tenant's orders to each size in turn and times both pages.
pub async fn measure(db: &BenchDb, base: &str, sizes: &[i64], runs: usize) -> Result<Vec<GrowthRow>> {
    let client = Stack::connect(&db.url).await?;
    let crate::stack::DemoPlan { tenant, price, .. } = Stack::demo_plan(&client).await?;
    let customer = Stack::customer(&client, tenant, "growth").await?;
    let http = reqwest::Client::new();
    let token = login(&http, base, db).await?;
    let mut rows = Vec::new();
    let mut seeded = 0_i64;
    for &size in sizes {
        let started = Instant::now();
        client
            .execute(
                "INSERT INTO orders (tenant_id, customer_id, price_id, external_order_id, status, total_amount_cents,
                                     currency, domain, metadata, request_hash, created_at)
                 SELECT $1, $2, $3, 'seed-' || g, 'PAID', 999, 'USD', 'seed-' || g || '.com', '{}'::jsonb,
                        sha256(g::text::bytea), now() - make_interval(secs => g)
                 FROM generate_series($4::bigint + 1, $5::bigint) g",
                &[&tenant, &customer, &price, &seeded, &size],
            )
            .await?;
        client.batch_execute("ANALYZE orders").await?;
        println!("growth: seeded {size} orders in {:.1} s", started.elapsed().as_secs_f64());
        seeded = size;

        // The position 90% of the way down the newest-first list.
        let deep_offset = size * 9 / 10;
        let row = client
            .query_one(
                "SELECT created_at, id FROM orders WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
                &[&tenant, &deep_offset],
            )
            .await?;
        let (created_at, id): (chrono::DateTime<chrono::Utc>, Uuid) = (row.get(0), row.get(1));
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}|{}",
            created_at.timestamp_micros(),
            id
        ));
        let first_page = time_page(&http, base, &token, None, runs).await?;
        let deep_page = time_page(&http, base, &token, Some(&cursor), runs).await?;
        let plan_rows = client
            .query(
                "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
                 SELECT id FROM orders
                 WHERE tenant_id = $1 AND (created_at, id) < ($2, $3)
                 ORDER BY created_at DESC, id DESC LIMIT 51",
                &[&tenant, &created_at, &id],
            )
            .await?;
        let plan: Vec<String> = plan_rows.iter().map(|r| r.get::<_, String>(0)).collect();
        println!(
            "growth {size}: first page p50 {} ms, deep page p50 {} ms",
            crate::load::ms(first_page.percentile(50.0)),
            crate::load::ms(deep_page.percentile(50.0))
        );
        rows.push(GrowthRow { orders: size, first_page, deep_page, deep_offset, plan: plan.join("\n") });
    }
    Ok(rows)
}

async fn login(http: &reqwest::Client, base: &str, db: &BenchDb) -> Result<String> {
    let body = serde_json::json!({"email": db.admin_email, "password": db.admin_password});
    let response: serde_json::Value =
        http.post(format!("{base}/api/auth/login")).json(&body).send().await?.error_for_status()?.json().await?;
    Ok(response["accessToken"].as_str().context("no accessToken in the login answer")?.to_string())
}

async fn time_page(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    cursor: Option<&str>,
    runs: usize,
) -> Result<Sample> {
    let url = match cursor {
        Some(cursor) => format!("{base}/api/orders?limit=50&cursor={cursor}"),
        None => format!("{base}/api/orders?limit=50"),
    };
    let mut times = Vec::new();
    let started = Instant::now();
    for i in 0..runs + 3 {
        let t = Instant::now();
        let response = http.get(&url).bearer_auth(token).send().await?;
        if !response.status().is_success() {
            bail!("GET {url}: {}", response.status());
        }
        let body: serde_json::Value = response.json().await?;
        if body["items"].as_array().map(Vec::len) != Some(50) {
            bail!("GET {url}: expected a full page of 50");
        }
        if i >= 3 {
            times.push(t.elapsed());
        }
    }
    Ok(Sample::from_latencies(times, started.elapsed()))
}

pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(f64::EPSILON)
}
