//! Provisioning throughput with the real PowerDNS and sshd, beside the raw
//! cost of the same external calls made with curl and ssh.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::intake::OrderPoster;
use crate::load::{self, Sample};
use crate::stack::{Env, Stack};

pub struct ProvisionRow {
    pub concurrency: usize,
    pub orders: usize,
    pub jobs: i64,
    /// First order received to last subscription active.
    pub span: Duration,
    pub order_to_active_p50: Duration,
    pub order_to_active_p99: Duration,
    pub floor: Sample,
}

impl ProvisionRow {
    pub fn jobs_per_sec(&self) -> f64 {
        self.jobs as f64 / self.span.as_secs_f64().max(f64::EPSILON)
    }
    pub fn orders_per_sec(&self) -> f64 {
        self.orders as f64 / self.span.as_secs_f64().max(f64::EPSILON)
    }
}

pub async fn measure(stack: &Stack, orders: usize, levels: &[usize], floor_orders: usize) -> Result<Vec<ProvisionRow>> {
    let mut rows = Vec::new();
    for &concurrency in levels {
        let db = stack.fresh_db("mpanel_bench_provision").await?;
        let env = stack.env_for(&db);
        let (server, base) = stack.serve(&env, &format!("provision-serve-c{concurrency}.log")).await?;
        let worker = stack.spawn(
            &env,
            &["worker", "--concurrency", &concurrency.to_string()],
            &format!("provision-worker-c{concurrency}.log"),
        )?;
        let poster = OrderPoster::new(stack, &base, &format!("p{concurrency}"))?;
        let posting = poster.clone();
        let posted = load::run(orders, 8, move |i| {
            let posting = posting.clone();
            async move { posting.post(i).await }
        })
        .await;
        if posted.errors > 0 {
            bail!("{} orders failed: {:?}", posted.errors, posted.first_error);
        }
        let client = Stack::connect(&db.url).await?;
        wait_until_active(&client, orders as i64).await?;
        let row = client
            .query_one(
                "SELECT extract(epoch FROM max(s.activated_at) - min(o.created_at))::float8,
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM s.activated_at - o.created_at))::float8,
                        percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM s.activated_at - o.created_at))::float8,
                        (SELECT count(*) FROM jobs WHERE status = 'SUCCEEDED')
                 FROM subscriptions s JOIN orders o ON o.id = s.order_id",
                &[],
            )
            .await?;
        crate::stack::stop(worker).await;
        crate::stack::stop(server).await;
        let seconds = |i: usize| Duration::from_secs_f64(row.get::<_, f64>(i).max(0.0));
        let floor = floor(stack, &env, floor_orders, concurrency).await?;
        let result = ProvisionRow {
            concurrency,
            orders,
            jobs: row.get(3),
            span: seconds(0),
            order_to_active_p50: seconds(1),
            order_to_active_p99: seconds(2),
            floor,
        };
        println!(
            "provision c={concurrency}: {:.1} jobs/s, {:.1} orders/s, order->ACTIVE p50 {} ms; floor {:.1} orders/s",
            result.jobs_per_sec(),
            result.orders_per_sec(),
            load::ms(result.order_to_active_p50),
            result.floor.rate()
        );
        rows.push(result);
        clean_remote(stack).await?;
        stack.drop_db(&db).await?;
    }
    Ok(rows)
}

async fn wait_until_active(client: &tokio_postgres::Client, orders: i64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM subscriptions WHERE status = 'ACTIVE'),
                        (SELECT count(*) FROM jobs WHERE status = 'DEAD')",
                &[],
            )
            .await?;
        let (active, dead): (i64, i64) = (row.get(0), row.get(1));
        if active >= orders {
            return Ok(());
        }
        if dead > 0 {
            bail!("{dead} jobs went DEAD during the provisioning benchmark");
        }
        if Instant::now() > deadline {
            bail!("only {active} of {orders} subscriptions became ACTIVE in 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The same external work per order without mPanel: create the zone and
/// replace its records (curl, as the DNS job does with reqwest) and one ssh
/// command on the hosting server (as the hosting job does, over a new
/// connection), `concurrency` orders at a time.
async fn floor(stack: &Stack, env: &Env, orders: usize, concurrency: usize) -> Result<Sample> {
    let ssh = SshTarget::from_env(env, &stack.work_dir)?;
    let pdns_url = env.get("PDNS_API_URL").context("PDNS_API_URL")?.trim_end_matches('/').to_string();
    let server_id = env.get("PDNS_SERVER_ID").cloned().unwrap_or_else(|| "localhost".into());
    let zones = format!("{pdns_url}/servers/{server_id}/zones");
    let api_key = env.get("PDNS_API_KEY").context("PDNS_API_KEY")?.clone();
    let nameservers: Vec<String> =
        env.get("PDNS_NAMESERVERS").context("PDNS_NAMESERVERS")?.split(',').map(|s| s.trim().to_string()).collect();
    let web_root = env.get("MPANEL_TEST_WEB_ROOT").context("MPANEL_TEST_WEB_ROOT")?.clone();
    let sample = load::run(orders, concurrency, move |i| {
        let (ssh, zones, api_key, nameservers, web_root) =
            (ssh.clone(), zones.clone(), api_key.clone(), nameservers.clone(), web_root.clone());
        async move {
            let zone = format!("mpf-{concurrency}-{i}.com.");
            let create = json!({"name": zone, "kind": "Native", "nameservers": nameservers}).to_string();
            curl(&["-X", "POST", &zones, "-H", &format!("X-API-Key: {api_key}"), "--data", &create]).await?;
            let records = json!({"rrsets": [
                {"name": zone, "type": "A", "ttl": 3600, "changetype": "REPLACE", "records": [{"content": "127.0.0.1", "disabled": false}]},
                {"name": format!("www.{zone}"), "type": "CNAME", "ttl": 3600, "changetype": "REPLACE", "records": [{"content": zone, "disabled": false}]},
                {"name": zone, "type": "MX", "ttl": 3600, "changetype": "REPLACE", "records": [{"content": format!("10 mail.{zone}"), "disabled": false}]},
            ]})
            .to_string();
            curl(&["-X", "PATCH", &format!("{zones}/{zone}"), "-H", &format!("X-API-Key: {api_key}"), "--data", &records])
                .await?;
            let site = format!("{web_root}/mpf-{concurrency}-{i}.com/public");
            ssh.run(&["mkdir", "-p", "--", &site]).await
        }
    })
    .await;
    if sample.errors > 0 {
        bail!("{} floor orders failed: {:?}", sample.errors, sample.first_error);
    }
    Ok(sample)
}

/// One PowerDNS API call with curl. The local PowerDNS keeps zones in
/// SQLite, which answers 500 ("database is locked") to concurrent writers
/// now and then; like the DNS job, the floor tries again (at once, without
/// the job's backoff, so the floor stays a floor). 409 on create = exists.
async fn curl(args: &[&str]) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..50 {
        let output = tokio::process::Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json"])
            .args(args)
            .output()
            .await
            .map_err(|e| e.to_string())?;
        let code = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if code.starts_with('2') || code == "409" {
            return Ok(());
        }
        last = format!("HTTP {code} {}", String::from_utf8_lossy(&output.stderr));
        if !code.starts_with('5') {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(last)
}

#[derive(Clone)]
struct SshTarget {
    destination: String,
    options: Vec<String>,
}

impl SshTarget {
    fn from_env(env: &Env, work_dir: &Path) -> Result<SshTarget> {
        let host = env.get("MPANEL_TEST_SSH_HOST").context("MPANEL_TEST_SSH_HOST")?;
        let port = env.get("MPANEL_TEST_SSH_PORT").context("MPANEL_TEST_SSH_PORT")?;
        let user = env.get("MPANEL_TEST_SSH_USER").context("MPANEL_TEST_SSH_USER")?;
        let host_key = env.get("MPANEL_TEST_SSH_HOST_KEY").context("MPANEL_TEST_SSH_HOST_KEY")?;
        let key = env.get("SSH_PRIVATE_KEY_FILE").context("SSH_PRIVATE_KEY_FILE")?;
        let known_hosts = work_dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[{host}]:{port} {host_key}\n"))?;
        let options = [
            "-F".to_string(),
            "/dev/null".into(),
            "-i".into(),
            key.clone(),
            "-p".into(),
            port.clone(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
        ]
        .to_vec();
        Ok(SshTarget { destination: format!("{user}@{host}"), options })
    }

    async fn run(&self, command: &[&str]) -> Result<(), String> {
        let output = tokio::process::Command::new("ssh")
            .args(&self.options)
            .arg(&self.destination)
            .arg("--")
            .args(command)
            .output()
            .await
            .map_err(|e| e.to_string())?;
        if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
    }
}

/// Deletes the zones and web spaces the benchmark made (`mpb-`, `mpf-`).
pub async fn clean_remote(stack: &Stack) -> Result<()> {
    let env = &stack.base_env;
    let pdns_url = env.get("PDNS_API_URL").context("PDNS_API_URL")?.trim_end_matches('/');
    let server_id = env.get("PDNS_SERVER_ID").map(String::as_str).unwrap_or("localhost");
    let zones_url = format!("{pdns_url}/servers/{server_id}/zones");
    let api_key = env.get("PDNS_API_KEY").context("PDNS_API_KEY")?;
    let client = reqwest::Client::new();
    let zones: Vec<serde_json::Value> =
        client.get(&zones_url).header("X-API-Key", api_key).send().await?.error_for_status()?.json().await?;
    for zone in zones {
        let Some(name) = zone["name"].as_str() else { continue };
        if name.starts_with("mpb-") || name.starts_with("mpf-") {
            client.delete(format!("{zones_url}/{name}")).header("X-API-Key", api_key).send().await?;
        }
    }
    if let Some(root) = env.get("MPANEL_TEST_WEB_ROOT") {
        for entry in std::fs::read_dir(root)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("mpb-") || name.starts_with("mpf-") {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
    }
    Ok(())
}
