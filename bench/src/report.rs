//! BENCHMARKS.md: machine, commands, figures and their ratios to the floor.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;

use crate::coldstart::ColdStartRow;
use crate::growth::{GrowthRow, ratio};
use crate::intake::IntakeRow;
use crate::load::ms;
use crate::login::LoginRow;
use crate::provision::Provisioning;

/// A function's release bootstrap, in bytes (0: not built).
pub struct SizeRow {
    pub function: String,
    pub x86_64: u64,
    pub arm64: Option<u64>,
}

pub struct Report {
    pub sizes: Vec<SizeRow>,
    pub intake: Vec<IntakeRow>,
    pub intake_orders: usize,
    pub provision: Provisioning,
    pub cold: Vec<ColdStartRow>,
    pub login: LoginRow,
    pub growth: Vec<GrowthRow>,
    pub sweep: Vec<crate::sweep::SweepRow>,
    pub total: Duration,
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {}; {}; {}; commit {}",
        kernel.trim(),
        command_output("rustc", &["--version"]),
        command_output("pgbench", &["--version"]),
        command_output("git", &["rev-parse", "--short", "HEAD"]),
    )
}

impl Report {
    /// Every function's stripped release bootstrap in MB (10^6 bytes), for
    /// the target of 8 MB on arm64, the architecture template.yaml deploys.
    fn render_sizes(&self, md: &mut String) -> Result<()> {
        let mb = |bytes: u64| match bytes {
            0 => "not built".to_string(),
            b => format!("{:.2}", b as f64 / 1e6),
        };
        writeln!(
            md,
            "\n**Sizes.** Each function's release `bootstrap` (stripped, fat LTO, `opt-level = \"s\"`, \
             `panic = \"abort\"`), in MB of 10^6 bytes. arm64 is what template.yaml deploys \
             (`scripts/release-build --arm64`); the cold starts above run the x86_64 build. Target: ≤ 8 MB.\n"
        )?;
        writeln!(md, "| function | x86_64 MB | arm64 MB |")?;
        writeln!(md, "|---|---:|---:|")?;
        for row in &self.sizes {
            let arm64 = row.arm64.map(mb).unwrap_or_else(|| "not measured".into());
            writeln!(md, "| {} | {} | {} |", row.function, mb(row.x86_64), arm64)?;
        }
        Ok(())
    }

    pub fn render(&self) -> Result<String> {
        let mut md = String::new();
        let today = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
        writeln!(md, "# Benchmarks\n")?;
        writeln!(
            md,
            "Written by `./scripts/bench` (after `./scripts/stack up`) on {today} in {:.0} s. Every figure \
             is measured beside its floor in the same run, because absolute times on a shared machine \
             drift; compare the ratios, not the absolute numbers, between runs.\n",
            self.total.as_secs_f64()
        )?;
        writeln!(md, "- Machine: {}", machine())?;
        writeln!(
            md,
            "- Command: `./scripts/stack up && ./scripts/bench` (`scripts/release-build --reuse`, then with `--bench`: the \
             release `bootstrap` of every function, then of `hello-lambda`, `sweep-floor`, `mpanel` and \
             `mpanel-bench`, then with `--arm64` the functions again for their sizes, built with \
             `cargo lambda build --release` or reused from `./scripts/test`'s build of the same build inputs; then \
             `mpanel-bench`, whose source is in `bench/`)."
        )?;
        writeln!(
            md,
            "- Services: the local stack (PostgreSQL 15, Redis, PowerDNS 4.7 on SQLite, sshd, nginx, Dovecot, \
             Postfix, OpenDKIM, moto for SQS, all on loopback). `mpanel serve` and `mpanel worker` are the release build with a database of \
             their own per measurement, job ids dispatched through Redis (one-machine mode, no SQS; see \
             section 1), and the general rate limit lifted.\n"
        )?;

        self.render_intake(&mut md)?;
        self.render_provision(&mut md)?;
        self.render_cold(&mut md)?;
        self.render_login(&mut md)?;
        self.render_growth(&mut md)?;
        crate::sweep::render(&self.sweep, &mut md)?;
        Ok(md)
    }

    fn render_intake(&self, md: &mut String) -> Result<()> {
        writeln!(md, "## 1. Order intake vs the database\n")?;
        writeln!(
            md,
            "{} signed orders per concurrency level, each a new customer and domain on the demo starter plan \
             (order, subscription, domain, three jobs, audit entry, delivery record in one transaction, then \
             the Redis dispatch), posted to `POST /api/orders` by `mpanel-bench` (reqwest, keep-alive), in {} \
             rounds interleaved with pgbench's (mPanel, pgbench, mPanel, ...). pgbench runs the same \
             statements in the same order (`intake.pgbench.sql`, generated from the demo tenant's ids) with \
             the same number of transactions and clients against the same schema. mPanel / pgbench is the \
             median of the rounds' ratios (1 = as fast as the statements alone), with their lowest and \
             highest; the other figures are medians of the rounds.\n",
            self.intake_orders,
            self.intake.first().map_or(0, |row| row.rounds.len())
        )?;
        writeln!(
            md,
            "| clients | mPanel orders/s | p50 ms | p99 ms | pgbench tps | pgbench avg ms | mPanel / pgbench | spread | moto SendMessage/s | SendMessage p50 ms |"
        )?;
        writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        let mut worst: f64 = f64::INFINITY;
        for row in &self.intake {
            let (low, high) = row.share_spread();
            worst = worst.min(row.median_share());
            writeln!(
                md,
                "| {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2}× | {:.2}–{:.2}× | {:.0} | {} |",
                row.concurrency,
                row.median_rate(),
                row.median_ms(50.0),
                row.median_ms(99.0),
                row.median_tps(),
                row.median_pgbench_ms(),
                row.median_share(),
                low,
                high,
                row.send_message.rate(),
                ms(row.send_message.percentile(50.0)),
            )?;
        }
        writeln!(
            md,
            "\n`mpanel serve` here runs without `SQS_QUEUE_URL` (one machine: job ids go to Redis). Deployed, the \
             orders function also sends one SQS SendMessage per order after the commit; the last two columns \
             are that call alone against the local emulator (moto, Python, on the same two cores; 300 calls \
             per level with the AWS SDK as mPanel configures it). moto serialises its requests, so with SQS \
             configured locally the intake runs at moto's rate; in AWS a SendMessage takes a few \
             milliseconds and does not queue behind other clients."
        )?;
        writeln!(md, "\npgbench commands:\n")?;
        for row in &self.intake {
            writeln!(md, "    {}", row.pgbench_command)?;
        }
        if worst < 0.5 {
            writeln!(
                md,
                "\n**Why below 0.5×:** pgbench sends the statements and nothing else. Each mPanel order also \
                 crosses HTTP, verifies the HMAC signature, parses and validates the body (strict IDNA and the \
                 public-suffix list on the domain), serialises the answer, and after the commit pushes the job \
                 ids to Redis and records the dispatch, and the load generator signs every order, all on the same two \
                 cores as PostgreSQL. At one client the gap is the per-request CPU time; with more clients \
                 both sides share the cores, so the ratio is what that CPU costs against a database that \
                 is not yet saturated."
            )?;
        }
        writeln!(md)?;
        Ok(())
    }

    fn render_provision(&self, md: &mut String) -> Result<()> {
        let p = &self.provision;
        writeln!(md, "## 2. Provisioning vs the same work without mPanel\n")?;
        writeln!(
            md,
            "Each order is three jobs: the PowerDNS zone with its six rrsets, the site on the stack's sshd \
             host (`sudo -n mpanel-site create`: directories, default page, SFTP user, nginx server block and \
             reload), and the mailbox (its row, the DKIM key made by `sudo -n mpanel-mail dkim-key` and \
             published as TXT). mPanel: orders posted at 8 clients to `mpanel serve --no-worker` beside \
             `mpanel worker --concurrency N`, a fresh database per round, certificates off. The floor does \
             the same work per order without mPanel, as the same three units that N workers take in any \
             order: the zone with the same rrsets in one POST, the same two remote commands over one kept \
             ssh master, the mailbox row into a table of the same shape, the DKIM TXT added to the zone \
             (reqwest and tokio-postgres over kept connections; no queue, no job rows, no activation).\n"
        )?;
        writeln!(
            md,
            "**Saturation.** {} orders per mPanel round, {} per floor round; {} interleaved rounds per worker \
             count (floor, mPanel, floor, mPanel, ...). The ratio is floor orders/s over mPanel orders/s \
             (above 1: mPanel is slower), the median of the rounds with their lowest and highest.\n",
            p.burst_orders,
            p.floor_orders,
            p.levels.first().map_or(0, |l| l.rounds.len())
        )?;
        writeln!(
            md,
            "| workers | mPanel jobs/s | mPanel orders/s | order→ACTIVE p50 / p99 ms (burst) | floor orders/s | floor / mPanel (median) | spread |"
        )?;
        writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|")?;
        for level in &p.levels {
            let (low, high) = level.ratio_spread();
            let millis = |of: fn(&crate::provision::Burst) -> Duration| {
                crate::load::median(level.rounds.iter().map(|r| of(&r.mpanel).as_secs_f64() * 1000.0).collect())
            };
            let (p50, p99) = (millis(|b| b.order_to_active_p50), millis(|b| b.order_to_active_p99));
            writeln!(
                md,
                "| {} | {:.1} | {:.2} | {:.0} / {:.0} | {:.2} | {:.2}× | {:.2}–{:.2}× |",
                level.workers,
                level.median_jobs_per_sec(),
                level.median_orders_per_sec(),
                p50,
                p99,
                level.median_floor_rate(),
                level.median_ratio(),
                low,
                high
            )?;
        }
        writeln!(
            md,
            "\n**Latency below saturation.** Orders posted at a fixed rate (a share of the {}-worker median \
             saturation) for 10 s of warm-up, the steady window and 5 s more; order→ACTIVE counts only orders \
             received in the steady window. The floor's service time is one order's work alone (p50 of {} \
             orders, one at a time): {} ms.\n",
            p.arrival_workers,
            p.floor_service.latencies.len(),
            ms(p.floor_service.percentile(50.0))
        )?;
        writeln!(md, "| share | orders/s | orders measured | p50 ms | p99 ms | p50 / floor service |")?;
        writeln!(md, "|---:|---:|---:|---:|---:|---:|")?;
        let service = p.floor_service.percentile(50.0).as_secs_f64().max(f64::EPSILON);
        for a in &p.arrivals {
            writeln!(
                md,
                "| {:.0}% | {:.2} | {} | {} | {} | {:.2}× |",
                a.share * 100.0,
                a.rate,
                a.measured,
                ms(a.p50),
                ms(a.p99),
                a.p50.as_secs_f64() / service
            )?;
        }
        writeln!(md)?;
        Ok(())
    }

    fn render_cold(&self, md: &mut String) -> Result<()> {
        writeln!(md, "## 3. Cold start of the release bootstraps\n")?;
        writeln!(
            md,
            "Each `bootstrap` from `cargo lambda build --release` (x86_64) is exec'd as Lambda starts it, \
             against a Runtime API stand-in on loopback in `mpanel-bench`. Every round starts each line once, \
             in table order, so drift touches all lines alike; each figure is the median over the rounds. \
             \"Init\" is exec → the first `GET /runtime/invocation/next` (config, secrets, pools, router); \
             \"first response\" is exec → the answer to the first event (a health check for HTTP \
             functions, which queries PostgreSQL and Redis over new connections; an empty SQS batch for the \
             worker; the scheduled event for the scheduler, a whole sweep). `hello-lambda` \
             (bench/src/bin/hello-lambda.rs, an echo on `lambda_runtime`) is the floor. Targets: init ≤ 1.5× \
             and first response ≤ 3× hello-lambda's, for the functions configured from the environment.\n"
        )?;
        writeln!(
            md,
            "| function | size MiB | init ms | init / hello | first response ms | response / hello | peak RSS MiB |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|---:|")?;
        let hello = self.cold.iter().find(|r| r.function == "hello-lambda");
        for row in &self.cold {
            let (init, response) = hello
                .map(|h| {
                    (ratio(row.to_first_request, h.to_first_request), ratio(row.to_first_response, h.to_first_response))
                })
                .unwrap_or_default();
            writeln!(
                md,
                "| {} | {:.1} | {} | {:.1}× | {} | {:.1}× | {:.1} |",
                row.function,
                row.size as f64 / 1024.0 / 1024.0,
                ms(row.to_first_request),
                init,
                ms(row.to_first_response),
                response,
                row.peak_rss_kib as f64 / 1024.0,
            )?;
        }
        self.render_sizes(md)?;
        let first_response = |name: &str| self.cold.iter().find(|r| r.function == name).map(|r| r.to_first_response);
        if let (Some(scheduler), Some(floor)) = (first_response("scheduler"), first_response("sweep-floor")) {
            writeln!(
                md,
                "\nThe scheduler's first response is a whole sweep pass. Its floor is `sweep-floor` \
                 (bench/src/bin/sweep-floor.rs): hello-lambda that, at its first event, opens one PostgreSQL and \
                 one Redis connection and runs the same pass's statements one after another. Scheduler / \
                 sweep-floor: **{:.2}×** ({} ms against {} ms).",
                ratio(scheduler, floor),
                ms(scheduler),
                ms(floor)
            )?;
        }
        writeln!(
            md,
            "\nThe lines \"secrets by ARN\" read `DATABASE_URL`, `REDIS_URL`, `JWT_SECRET`, \
             `MARKETING_WEBHOOK_SECRET` and `PDNS_API_KEY` (those each function needs) from Secrets Manager at \
             init, here moto: a Python emulator on the same two cores, so those lines measure moto as much as \
             the function. In AWS a GetSecretValue takes a few milliseconds, and the function makes its \
             calls at the same time.\n"
        )?;
        Ok(())
    }

    fn render_login(&self, md: &mut String) -> Result<()> {
        writeln!(md, "## 4. Login vs one Argon2id verification\n")?;
        let login = self.login.login.percentile(50.0);
        let raw = self.login.argon2.percentile(50.0);
        writeln!(
            md,
            "`POST /api/auth/login` with the seeded admin's password, sequentially, beside `argon2` verifying \
             the same stored hash in `mpanel-bench` ({}).\n",
            self.login.params
        )?;
        writeln!(md, "| login p50 ms | login p99 ms | raw verify p50 ms | login / verify |")?;
        writeln!(md, "|---:|---:|---:|---:|")?;
        writeln!(
            md,
            "| {} | {} | {} | {:.2}× |\n",
            ms(login),
            ms(self.login.login.percentile(99.0)),
            ms(raw),
            ratio(login, raw)
        )?;
        if ratio(login, raw) > 2.0 {
            writeln!(
                md,
                "**Why more than 2×:** besides the verification, a login looks the user up, checks the login \
                 rate limit in Redis, creates a session and a refresh token family, signs the JWT and writes \
                 the audit entry.\n"
            )?;
        }
        Ok(())
    }

    fn render_growth(&self, md: &mut String) -> Result<()> {
        writeln!(md, "## 5. Growth: `/api/orders` at 10^3 and 10^6 orders\n")?;
        writeln!(
            md,
            "The demo tenant's orders are seeded with one `INSERT ... SELECT FROM generate_series` and \
             `ANALYZE`d; `GET /api/orders?limit=50` (first page) and the same with the keyset cursor of the \
             row 90% of the way down the list (deep page), sequential requests as the seeded ADMIN.\n"
        )?;
        writeln!(md, "| orders | first page p50 ms | deep page (row) | deep page p50 ms |")?;
        writeln!(md, "|---:|---:|---:|---:|")?;
        for row in &self.growth {
            writeln!(
                md,
                "| {} | {} | {} | {} |",
                row.orders,
                ms(row.first_page.percentile(50.0)),
                row.deep_offset,
                ms(row.deep_page.percentile(50.0))
            )?;
        }
        if let (Some(small), Some(large)) = (self.growth.first(), self.growth.last()) {
            let first = ratio(large.first_page.percentile(50.0), small.first_page.percentile(50.0));
            let deep = ratio(large.deep_page.percentile(50.0), small.deep_page.percentile(50.0));
            writeln!(
                md,
                "\nLatency ratio {} / {} orders: first page {first:.2}×, deep page {deep:.2}×.\n",
                large.orders, small.orders
            )?;
            writeln!(md, "Plan of the deep page's query at {} orders:\n", large.orders)?;
            for line in large.plan.lines() {
                writeln!(md, "    {line}")?;
            }
            if first.max(deep) > 2.0 {
                writeln!(
                    md,
                    "\n**Why more than 2×:** see the plan above; an index scan reads the same number of \
                     rows at either size, so a larger ratio comes from a colder cache, not from a scan."
                )?;
            }
        }
        writeln!(md)?;
        Ok(())
    }
}
