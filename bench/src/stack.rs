//! The pieces a benchmark runs against: a fresh database per measurement,
//! `mpanel serve` / `mpanel worker` processes (release build) and their env.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

pub type Env = BTreeMap<String, String>;

pub struct Stack {
    /// The environment `./scripts/stack up` wrote (sourced by scripts/bench).
    pub base_env: Env,
    pub mpanel: PathBuf,
    pub work_dir: PathBuf,
    /// A moto queue of the benchmark's own (for the functions' cold starts
    /// and the SendMessage measurement; never consumed).
    pub queue_url: String,
}

/// A database of its own, migrated and seeded with the demo tenant.
pub struct BenchDb {
    pub name: String,
    pub url: String,
    pub admin_email: String,
    pub admin_password: String,
}

pub struct DemoPlan {
    pub tenant: uuid::Uuid,
    pub price: uuid::Uuid,
    pub product: uuid::Uuid,
}

impl Stack {
    /// The env for `mpanel serve` / `mpanel worker` in one measurement: its
    /// own database and Redis prefix, the general rate limit lifted so the
    /// load generator is not throttled, and no SQS: on one machine the pool
    /// takes job ids from Redis, and the local SQS (moto, a Python emulator
    /// that manages ~30 SendMessage/s here) would be all that is measured.
    /// What SendMessage costs is measured on its own beside the intake.
    pub fn env_for(&self, db: &BenchDb) -> Env {
        let mut env = self.base_env.clone();
        env.insert("DATABASE_URL".into(), db.url.clone());
        env.insert("REDIS_KEY_PREFIX".into(), format!("{}:", db.name));
        env.insert("RATE_LIMIT_MAX".into(), "100000000".into());
        env.insert("DB_POOL_SIZE".into(), "32".into());
        env.insert("RUST_LOG".into(), "warn".into());
        // No certificates: the floor issues none, and a certificate job per
        // order would share the workers with what is measured.
        env.insert("ACME_DIRECTORY_URL".into(), "none".into());
        env.remove("SQS_QUEUE_URL");
        env
    }

    /// The env a Lambda function gets: as above, with the benchmark's queue
    /// (the orders and admin functions require one).
    pub fn lambda_env_for(&self, db: &BenchDb) -> Env {
        let mut env = self.env_for(db);
        env.insert("SQS_QUEUE_URL".into(), self.queue_url.clone());
        env
    }

    fn database_url(&self, name: &str) -> Result<String> {
        let base = self.base_env.get("DATABASE_URL").context("DATABASE_URL is not set: source .stack/env")?;
        let (server, _) = base.rsplit_once('/').context("DATABASE_URL has no database name")?;
        Ok(format!("{server}/{name}"))
    }

    /// The demo tenant's id and its starter price's and product's ids.
    pub async fn demo_plan(client: &tokio_postgres::Client) -> Result<DemoPlan> {
        let row = client
            .query_one(
                "SELECT t.id, pr.id, pr.product_id FROM tenants t
                 JOIN prices pr ON pr.tenant_id = t.id AND pr.slug = 'starter-monthly' WHERE t.slug = $1",
                &[&mpanel::demo::DEMO_TENANT],
            )
            .await?;
        Ok(DemoPlan { tenant: row.get(0), price: row.get(1), product: row.get(2) })
    }

    /// A customer of `tenant` named after what seeds it (`<label>@example.org`).
    pub async fn customer(client: &tokio_postgres::Client, tenant: uuid::Uuid, label: &str) -> Result<uuid::Uuid> {
        let row = client
            .query_one(
                "INSERT INTO customers (tenant_id, email, full_name) VALUES ($1, $2::text || '@example.org', initcap($2::text) || ' Customer')
                 RETURNING id",
                &[&tenant, &label],
            )
            .await?;
        Ok(row.get(0))
    }

    pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Drops and recreates `name`, migrates it and seeds the demo tenant.
    pub async fn fresh_db(&self, name: &str) -> Result<BenchDb> {
        let admin = Stack::connect(&self.base_env["DATABASE_URL"]).await?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        let url = self.database_url(name)?;
        let mut db = BenchDb { name: name.into(), url, admin_email: String::new(), admin_password: String::new() };
        let env = self.env_for(&db);
        self.mpanel_command(&env, &["migrate"]).await?;
        let seeded = self.mpanel_command(&env, &["seed-demo"]).await?;
        for line in seeded.lines() {
            if let Some(email) = line.strip_prefix("admin email:") {
                db.admin_email = email.trim().into();
            }
            if let Some(password) = line.strip_prefix("admin password:") {
                db.admin_password = password.trim().into();
            }
        }
        if db.admin_password.is_empty() {
            bail!("seed-demo printed no admin password");
        }
        Ok(db)
    }

    pub async fn drop_db(&self, db: &BenchDb) -> Result<()> {
        let admin = Stack::connect(&self.base_env["DATABASE_URL"]).await?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name)).await?;
        Ok(())
    }

    async fn mpanel_command(&self, env: &Env, args: &[&str]) -> Result<String> {
        let output = Command::new(&self.mpanel).args(args).env_clear().envs(env).output().await?;
        if !output.status.success() {
            bail!("mpanel {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts `mpanel <args>` with its log in the work dir; killed on drop.
    pub fn spawn(&self, env: &Env, args: &[&str], log_name: &str) -> Result<Child> {
        let log = std::fs::File::create(self.work_dir.join(log_name))?;
        let child = Command::new(&self.mpanel)
            .args(args)
            .env_clear()
            .envs(env)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(child)
    }

    /// `mpanel serve` on a free loopback port, once its health check answers.
    pub async fn serve(&self, env: &Env, log_name: &str) -> Result<(Child, String)> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let child = self.spawn(env, &["serve", "--addr", &addr, "--no-worker"], log_name)?;
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{base}/api/health")).send().await
                && r.status().is_success()
            {
                return Ok((child, base));
            }
            if Instant::now() > deadline {
                bail!("mpanel serve did not answer on {addr}; see {}", self.work_dir.join(log_name).display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An SQS client configured as mPanel configures its own.
pub async fn sqs_client(env: &Env) -> Result<aws_sdk_sqs::Client> {
    Ok(aws_sdk_sqs::Client::new(&aws_config_of(env).await?))
}

/// The variables a function may read by ARN instead (`NAME_ARN`).
const SECRET_VARIABLES: [&str; 5] =
    ["DATABASE_URL", "REDIS_URL", "JWT_SECRET", "MARKETING_WEBHOOK_SECRET", "PDNS_API_KEY"];

/// `env` with each secret it holds moved into Secrets Manager (moto) and
/// named by ARN instead; and the ARNs, to delete afterwards.
pub async fn secrets_by_arn(env: &Env) -> Result<(Env, Vec<String>)> {
    let aws = aws_config_of(env).await?;
    let client = aws_sdk_secretsmanager::Client::new(&aws);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut by_arn = env.clone();
    let mut arns = Vec::new();
    for name in SECRET_VARIABLES {
        let Some(value) = by_arn.remove(name) else { continue };
        let created = client
            .create_secret()
            .name(format!("bench-{run}-{name}"))
            .secret_string(value)
            .send()
            .await
            .with_context(|| format!("creating the {name} secret"))?;
        let arn = created.arn().context("moto returned no ARN")?.to_string();
        by_arn.insert(format!("{name}_ARN"), arn.clone());
        arns.push(arn);
    }
    Ok((by_arn, arns))
}

pub async fn delete_secrets(env: &Env, arns: &[String]) -> Result<()> {
    let client = aws_sdk_secretsmanager::Client::new(&aws_config_of(env).await?);
    for arn in arns {
        client.delete_secret().secret_id(arn).force_delete_without_recovery(true).send().await?;
    }
    Ok(())
}

async fn aws_config_of(env: &Env) -> Result<aws_config::SdkConfig> {
    let env: mpanel::config::Env = env.clone().into_iter().collect();
    mpanel::config::aws_sdk_config(&env).await.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Creates the benchmark's queue in the local SQS emulator.
pub async fn create_queue(env: &Env) -> Result<String> {
    let sqs = sqs_client(env).await?;
    let created = sqs.create_queue().queue_name(format!("bench-{}", uuid::Uuid::new_v4().simple())).send().await?;
    created.queue_url().map(str::to_string).context("moto returned no queue url")
}

pub async fn delete_queue(env: &Env, queue_url: &str) -> Result<()> {
    sqs_client(env).await?.delete_queue().queue_url(queue_url).send().await?;
    Ok(())
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub async fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        // SIGTERM first: the worker finishes what it holds.
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    }
    if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
