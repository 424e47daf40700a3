//! Provisioning with the real PowerDNS, sshd and mail server, beside a floor
//! that does the same work per order without mPanel.
//!
//! Saturation: a burst of orders per round, rounds interleaved with the
//! floor's (floor, mPanel, floor, mPanel, ...) so both meet the same machine.
//! Latency: orders posted at fixed rates below saturation, measured only in
//! the steady window, beside the floor's service time (one order alone).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use mpanel::provision::dns::{self, RecordSet};

use crate::intake::OrderPoster;
use crate::load::{self, Sample};
use crate::stack::{Env, Stack};

/// One burst of orders through `mpanel serve` + `mpanel worker`.
pub struct Burst {
    pub orders: usize,
    pub jobs: i64,
    /// First order received to last subscription active.
    pub span: Duration,
    pub order_to_active_p50: Duration,
    pub order_to_active_p99: Duration,
}

impl Burst {
    pub fn jobs_per_sec(&self) -> f64 {
        self.jobs as f64 / self.span.as_secs_f64().max(f64::EPSILON)
    }
    pub fn orders_per_sec(&self) -> f64 {
        self.orders as f64 / self.span.as_secs_f64().max(f64::EPSILON)
    }
}

/// One round at one worker count: the floor, then mPanel.
pub struct Round {
    pub floor: Sample,
    pub mpanel: Burst,
}

/// The floor's orders/s: its sample times each job's work (three an order).
pub fn floor_orders_per_sec(floor: &Sample) -> f64 {
    floor.rate() / JOBS_PER_ORDER as f64
}

const JOBS_PER_ORDER: usize = 3;

impl Round {
    /// Floor orders/s over mPanel's: above 1, mPanel is slower.
    pub fn ratio(&self) -> f64 {
        floor_orders_per_sec(&self.floor) / self.mpanel.orders_per_sec().max(f64::EPSILON)
    }
}

pub struct Level {
    pub workers: usize,
    pub rounds: Vec<Round>,
}

impl Level {
    pub fn median_ratio(&self) -> f64 {
        load::median(self.rounds.iter().map(Round::ratio).collect())
    }
    pub fn median_orders_per_sec(&self) -> f64 {
        load::median(self.rounds.iter().map(|r| r.mpanel.orders_per_sec()).collect())
    }
    pub fn median_jobs_per_sec(&self) -> f64 {
        load::median(self.rounds.iter().map(|r| r.mpanel.jobs_per_sec()).collect())
    }
    pub fn median_floor_rate(&self) -> f64 {
        load::median(self.rounds.iter().map(|r| floor_orders_per_sec(&r.floor)).collect())
    }
    /// Lowest and highest ratio of the rounds.
    pub fn ratio_spread(&self) -> (f64, f64) {
        load::spread(&self.rounds.iter().map(Round::ratio).collect::<Vec<_>>())
    }
}

/// Orders posted at a fixed rate: latency in the steady window.
pub struct Arrival {
    pub share: f64,
    pub rate: f64,
    pub measured: usize,
    pub p50: Duration,
    pub p99: Duration,
}

pub struct Provisioning {
    pub levels: Vec<Level>,
    pub arrival_workers: usize,
    pub arrivals: Vec<Arrival>,
    /// The floor's work for one order at a time.
    pub floor_service: Sample,
    pub burst_orders: usize,
    pub floor_orders: usize,
}

pub struct Plan {
    pub burst_orders: usize,
    pub floor_orders: usize,
    pub levels: Vec<usize>,
    pub rounds: usize,
    pub shares: Vec<f64>,
    pub steady: Duration,
}

pub async fn measure(stack: &Stack, plan: &Plan) -> Result<Provisioning> {
    let floor = Floor::new(stack).await?;
    let floor_service = floor.service(30).await?;
    // Every measurement starts from a hosting server without bench sites:
    // each nginx reload reads every server block and each useradd rewrites
    // /etc/passwd, so whoever ran second paid for the first one's sites
    // (mPanel, after the floor, ran with 150 to 450 of them).
    clean_remote(stack).await?;
    let mut levels = Vec::new();
    for &workers in &plan.levels {
        let mut rounds = Vec::new();
        for round in 0..plan.rounds {
            let floor_sample = floor.run(plan.floor_orders, workers, &format!("c{workers}r{round}")).await?;
            clean_remote(stack).await?;
            let mpanel = burst(stack, workers, plan.burst_orders, &format!("c{workers}r{round}")).await?;
            println!(
                "provision c={workers} round {round}: mPanel {:.2} orders/s ({:.1} jobs/s), floor {:.2} orders/s",
                mpanel.orders_per_sec(),
                mpanel.jobs_per_sec(),
                floor_orders_per_sec(&floor_sample)
            );
            rounds.push(Round { floor: floor_sample, mpanel });
            clean_remote(stack).await?;
        }
        levels.push(Level { workers, rounds });
    }
    let (arrival_workers, saturation) = levels
        .first()
        .map(|l| (l.workers, l.median_orders_per_sec()))
        .context("no worker level to measure arrivals at")?;
    let mut arrivals = Vec::new();
    for &share in &plan.shares {
        let arrival = at_rate(stack, arrival_workers, share, saturation * share, plan.steady).await?;
        println!(
            "provision at {:.0}% ({:.2} orders/s): p50 {} ms, p99 {} ms over {} orders",
            share * 100.0,
            arrival.rate,
            load::ms(arrival.p50),
            load::ms(arrival.p99),
            arrival.measured
        );
        arrivals.push(arrival);
        clean_remote(stack).await?;
    }
    floor.close().await;
    Ok(Provisioning {
        levels,
        arrival_workers,
        arrivals,
        floor_service,
        burst_orders: plan.burst_orders,
        floor_orders: plan.floor_orders,
    })
}

/// A database, `mpanel serve --no-worker` and `mpanel worker`, for one run.
struct Running {
    db: crate::stack::BenchDb,
    server: tokio::process::Child,
    worker: tokio::process::Child,
    poster: OrderPoster,
    client: tokio_postgres::Client,
}

async fn start(stack: &Stack, workers: usize, tag: &str) -> Result<Running> {
    let db = stack.fresh_db("mpanel_bench_provision").await?;
    let env = stack.env_for(&db);
    let (server, base) = stack.serve(&env, &format!("provision-serve-{tag}.log")).await?;
    let worker = stack.spawn(
        &env,
        &["worker", "--concurrency", &workers.to_string()],
        &format!("provision-worker-{tag}.log"),
    )?;
    let poster = OrderPoster::new(stack, &base, &format!("p{tag}"))?;
    let client = Stack::connect(&db.url).await?;
    Ok(Running { db, server, worker, poster, client })
}

async fn stop(stack: &Stack, running: Running) -> Result<()> {
    crate::stack::stop(running.worker).await;
    crate::stack::stop(running.server).await;
    drop(running.client);
    stack.drop_db(&running.db).await
}

/// `orders` posted at 8 clients, all at once: saturation.
async fn burst(stack: &Stack, workers: usize, orders: usize, tag: &str) -> Result<Burst> {
    let running = start(stack, workers, tag).await?;
    let posting = running.poster.clone();
    let posted = load::run(orders, 8, move |i| {
        let posting = posting.clone();
        async move { posting.post(i).await }
    })
    .await;
    if posted.errors > 0 {
        bail!("{} orders failed: {:?}", posted.errors, posted.first_error);
    }
    wait_until_active(&running.client, orders as i64).await?;
    let row = running
        .client
        .query_one(
            "SELECT extract(epoch FROM max(s.activated_at) - min(o.created_at))::float8,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM s.activated_at - o.created_at))::float8,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM s.activated_at - o.created_at))::float8,
                    (SELECT count(*) FROM jobs WHERE status = 'SUCCEEDED')
             FROM subscriptions s JOIN orders o ON o.id = s.order_id",
            &[],
        )
        .await?;
    let seconds = |i: usize| Duration::from_secs_f64(row.get::<_, f64>(i).max(0.0));
    let result = Burst {
        orders,
        jobs: row.get(3),
        span: seconds(0),
        order_to_active_p50: seconds(1),
        order_to_active_p99: seconds(2),
    };
    stop(stack, running).await?;
    Ok(result)
}

/// Orders posted one every `1/rate` s for a warm-up, the steady window and
/// a tail; latency counts only orders received in the steady window.
async fn at_rate(stack: &Stack, workers: usize, share: f64, rate: f64, steady: Duration) -> Result<Arrival> {
    const WARM_UP: Duration = Duration::from_secs(10);
    const TAIL: Duration = Duration::from_secs(5);
    let tag = format!("a{:.0}", share * 100.0);
    let running = start(stack, workers, &tag).await?;
    let total = ((WARM_UP + steady + TAIL).as_secs_f64() * rate).ceil() as usize;
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let started = tokio::time::Instant::now();
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..total {
        tokio::time::sleep_until(started + gap.mul_f64(i as f64)).await;
        let poster = running.poster.clone();
        posts.spawn(async move { poster.post(i).await });
    }
    while let Some(posted) = posts.join_next().await {
        posted?.map_err(|e| anyhow::anyhow!("an order failed: {e}"))?;
    }
    wait_until_active(&running.client, total as i64).await?;
    // The steady window, by the database's own clock: from the first order
    // plus the warm-up, for `steady`.
    let row = running
        .client
        .query_one(
            "WITH first AS (SELECT min(created_at) AS t FROM orders),
                  steady AS (SELECT s.activated_at - o.created_at AS took FROM subscriptions s
                             JOIN orders o ON o.id = s.order_id, first
                             WHERE o.created_at >= first.t + make_interval(secs => $1)
                               AND o.created_at < first.t + make_interval(secs => $1 + $2))
             SELECT count(*),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM took))::float8,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM took))::float8
             FROM steady",
            &[&WARM_UP.as_secs_f64(), &steady.as_secs_f64()],
        )
        .await?;
    let seconds = |i: usize| Duration::from_secs_f64(row.get::<_, Option<f64>>(i).unwrap_or(0.0).max(0.0));
    let arrival = Arrival { share, rate, measured: row.get::<_, i64>(0) as usize, p50: seconds(1), p99: seconds(2) };
    stop(stack, running).await?;
    Ok(arrival)
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

/// The same work per order as mPanel's three jobs, without mPanel, and like
/// them three units that `concurrency` workers take in any order: the zone
/// created with the same six rrsets in one PowerDNS request; the site made
/// by the same remote command (`sudo -n mpanel-site create`, default page on
/// stdin); the mailbox row and the DKIM key made by `sudo -n mpanel-mail
/// dkim-key`, its TXT record added to the zone (made with it when the DNS
/// unit has not run yet, as mPanel does). SSH over one kept master, as
/// mPanel's worker keeps one; HTTP and PostgreSQL over kept connections.
#[derive(Clone)]
struct Floor {
    http: reqwest::Client,
    zones: String,
    api_key: String,
    nameservers: Vec<String>,
    ssh: Arc<SshMaster>,
    db: Arc<tokio_postgres::Client>,
}

impl Floor {
    async fn new(stack: &Stack) -> Result<Floor> {
        let env = &stack.base_env;
        let pdns_url = env.get("PDNS_API_URL").context("PDNS_API_URL")?.trim_end_matches('/').to_string();
        let server_id = env.get("PDNS_SERVER_ID").cloned().unwrap_or_else(|| "localhost".into());
        let nameservers: Vec<String> =
            env.get("PDNS_NAMESERVERS").context("PDNS_NAMESERVERS")?.split(',').map(|s| s.trim().to_string()).collect();
        let db = Stack::connect(&env["DATABASE_URL"]).await?;
        // The mailbox table's shape, without its foreign keys (the floor has
        // no subscriptions): the same row, the same indexes.
        db.batch_execute(
            "DROP TABLE IF EXISTS bench_floor_mailboxes;
             CREATE TABLE bench_floor_mailboxes (LIKE mail_accounts INCLUDING ALL);",
        )
        .await?;
        Ok(Floor {
            http: reqwest::Client::builder().pool_max_idle_per_host(64).build()?,
            zones: format!("{pdns_url}/servers/{server_id}/zones"),
            api_key: env.get("PDNS_API_KEY").context("PDNS_API_KEY")?.clone(),
            nameservers,
            ssh: Arc::new(SshMaster::open(env, &stack.work_dir).await?),
            db: Arc::new(db),
        })
    }

    /// `orders` orders' units, `concurrency` at a time.
    async fn run(&self, orders: usize, concurrency: usize, tag: &str) -> Result<Sample> {
        let floor = self.clone();
        let tag = tag.to_string();
        let sample = load::run(orders * JOBS_PER_ORDER, concurrency, move |unit| {
            let (floor, domain) = (floor.clone(), format!("mpf-{tag}-{}.com", unit / JOBS_PER_ORDER));
            async move { floor.unit(&domain, unit % JOBS_PER_ORDER).await }
        })
        .await;
        if sample.errors > 0 {
            bail!("{} floor units failed: {:?}", sample.errors, sample.first_error);
        }
        Ok(sample)
    }

    /// One order at a time, its three units side by side: the time an order
    /// takes when nothing waits.
    async fn service(&self, orders: usize) -> Result<Sample> {
        let started = Instant::now();
        let mut latencies = Vec::new();
        for i in 0..orders {
            let domain = format!("mpf-s-{i}.com");
            let t = Instant::now();
            let (dns, site, mail) = tokio::join!(self.unit(&domain, 0), self.unit(&domain, 1), self.unit(&domain, 2));
            dns.and(site).and(mail).map_err(|e| anyhow::anyhow!("floor order {domain}: {e}"))?;
            latencies.push(t.elapsed());
        }
        Ok(Sample::from_latencies(latencies, started.elapsed()))
    }

    async fn unit(&self, domain: &str, unit: usize) -> Result<(), String> {
        let name = mpanel::types::DomainName::parse(domain)?;
        let zone = name.fqdn();
        let owner = format!("bench-floor:{domain}");
        match unit {
            0 => {
                let ip: std::net::IpAddr = [127, 0, 0, 1].into();
                let sets = mpanel::provision::dns::records_for(&name, Some(ip), Some(ip));
                self.zone_with(&zone, &owner, &sets).await
            }
            1 => {
                let account = Uuid::new_v4().simple().to_string();
                let page = mpanel::provision::hosting::default_page(&name);
                let command = ["sudo", "-n", mpanel::provision::hosting::SITE_COMMAND, "create", &account, domain];
                self.ssh.run(&command, &page).await.map(drop)
            }
            _ => {
                self.db
                    .execute(
                        "INSERT INTO bench_floor_mailboxes (tenant_id, subscription_id, domain_id, local_part, domain_name, quota_mb)
                         VALUES ($1, $2, $3, 'postmaster', $4, 2048)",
                        &[&Uuid::new_v4(), &Uuid::new_v4(), &Uuid::new_v4(), &domain],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let dkim = self.ssh.run(&["sudo", "-n", "mpanel-mail", "dkim-key", domain, "mpanel"], "").await?;
                let txt = mpanel::provision::mail::txt_strings(dkim.trim());
                let dkim = RecordSet { name: format!("mpanel._domainkey.{zone}"), rtype: "TXT", contents: vec![txt] };
                self.zone_with(&zone, &owner, &[dkim]).await
            }
        }
    }

    /// The zone created holding `sets`, or, when it exists, `sets` put in by
    /// one PATCH.
    /// The request bodies are mPanel's own (`provision::dns`), so the floor
    /// sends exactly what a DNS job sends.
    async fn zone_with(&self, zone: &str, owner: &str, sets: &[RecordSet]) -> Result<(), String> {
        let create = dns::new_zone_body(zone, owner, &self.nameservers, sets);
        if self.pdns(self.http.post(&self.zones).json(&create)).await? != reqwest::StatusCode::CONFLICT {
            return Ok(());
        }
        let rrsets: Vec<Value> = sets.iter().map(|set| dns::rrset_json(set, dns::TTL, Some("REPLACE"))).collect();
        self.pdns(self.http.patch(format!("{}/{zone}", self.zones)).json(&json!({ "rrsets": rrsets }))).await.map(drop)
    }

    /// One PowerDNS call (409 counts as an answer); 5xx (the local PowerDNS
    /// keeps zones in SQLite, which answers 500 to a concurrent writer) is
    /// tried again, as mPanel does, but at once, so the floor stays a floor.
    async fn pdns(&self, request: reqwest::RequestBuilder) -> Result<reqwest::StatusCode, String> {
        let mut last = String::new();
        for _ in 0..50 {
            let attempt = request.try_clone().ok_or("a request that cannot be retried")?;
            let response = attempt.header("X-API-Key", &self.api_key).send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            if status.is_success() || status == reqwest::StatusCode::CONFLICT {
                return Ok(status);
            }
            last = format!("HTTP {status}: {}", response.text().await.unwrap_or_default());
            if !status.is_server_error() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(last)
    }

    async fn close(&self) {
        self.ssh.close().await;
        let _ = self.db.batch_execute("DROP TABLE IF EXISTS bench_floor_mailboxes").await;
    }
}

/// One ssh master to the stack's sshd (the platform key, the pinned host
/// key); commands run over it with `ssh -S`.
struct SshMaster {
    options: Vec<String>,
    control: PathBuf,
    destination: String,
}

impl SshMaster {
    async fn open(env: &Env, work_dir: &Path) -> Result<SshMaster> {
        let host = env.get("MPANEL_TEST_SSH_HOST").context("MPANEL_TEST_SSH_HOST")?;
        let port = env.get("MPANEL_TEST_SSH_PORT").context("MPANEL_TEST_SSH_PORT")?;
        let user = env.get("MPANEL_TEST_SSH_USER").context("MPANEL_TEST_SSH_USER")?;
        let host_key = env.get("MPANEL_TEST_SSH_HOST_KEY").context("MPANEL_TEST_SSH_HOST_KEY")?;
        let key = env.get("SSH_PRIVATE_KEY_FILE").context("SSH_PRIVATE_KEY_FILE")?;
        let known_hosts = work_dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[{host}]:{port} {host_key}\n"))?;
        let control = work_dir.join("floor-ssh.sock");
        let _ = std::fs::remove_file(&control);
        let options: Vec<String> = [
            "-F",
            "/dev/null",
            "-i",
            key,
            "-p",
            port,
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["-o".to_string(), format!("UserKnownHostsFile={}", known_hosts.display())])
        .collect();
        let master = SshMaster { options, control, destination: format!("{user}@{host}") };
        let started = tokio::process::Command::new("ssh")
            .args(&master.options)
            .args(["-M", "-N", "-f", "-o", "ControlPersist=120", "-S"])
            .arg(&master.control)
            .arg(&master.destination)
            .status()
            .await?;
        if !started.success() {
            bail!("the floor's ssh master did not start");
        }
        Ok(master)
    }

    async fn run(&self, command: &[&str], stdin: &str) -> Result<String, String> {
        let mut child = tokio::process::Command::new("ssh")
            .args(["-S"])
            .arg(&self.control)
            .args(&self.options)
            .arg(&self.destination)
            .arg("--")
            .args(command)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes()).await;
        }
        let output = child.wait_with_output().await.map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!("{}: {}", command.join(" "), String::from_utf8_lossy(&output.stderr)))
        }
    }

    async fn close(&self) {
        let _ = tokio::process::Command::new("ssh")
            .args(["-S"])
            .arg(&self.control)
            .args(["-O", "exit"])
            .arg(&self.destination)
            .output()
            .await;
    }
}

/// Deletes the zones the benchmark made (`mpb-`, `mpf-`) and, through
/// `scripts/clean-sites`, their sites, users, nginx blocks, maildirs and
/// DKIM keys.
pub async fn clean_remote(stack: &Stack) -> Result<()> {
    let env = &stack.base_env;
    let pdns_url = env.get("PDNS_API_URL").context("PDNS_API_URL")?.trim_end_matches('/');
    let server_id = env.get("PDNS_SERVER_ID").map(String::as_str).unwrap_or("localhost");
    let zones_url = format!("{pdns_url}/servers/{server_id}/zones");
    let api_key = env.get("PDNS_API_KEY").context("PDNS_API_KEY")?;
    let client = reqwest::Client::new();
    let zones: Vec<Value> =
        client.get(&zones_url).header("X-API-Key", api_key).send().await?.error_for_status()?.json().await?;
    for zone in zones {
        let Some(name) = zone["name"].as_str() else { continue };
        if name.starts_with("mpb-") || name.starts_with("mpf-") {
            client.delete(format!("{zones_url}/{name}")).header("X-API-Key", api_key).send().await?;
        }
    }
    let cleaned = tokio::process::Command::new("scripts/clean-sites").args(["mpb-", "mpf-"]).envs(env).status().await?;
    if !cleaned.success() {
        bail!("scripts/clean-sites failed");
    }
    Ok(())
}
