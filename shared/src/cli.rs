//! The operator CLI (`mpanel`). Each command shares its code with the API.

use std::io::Read;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::combined_app;
use crate::audit_log::Actor;
use crate::auth::{Role, password};
use crate::config::{Config, Env, Needs};
use crate::error::AppError;
use crate::secrets::Secret;
use crate::state::AppState;
use crate::types::{DisplayName, EmailAddress, Slug};
use crate::{demo, tenants, users};

#[derive(Debug, Parser)]
#[command(name = "mpanel", version, about = "mPanel operator CLI")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (refuses if an applied one changed).
    Migrate,
    /// Serve every HTTP function's routes on one address.
    Serve {
        /// Listen address (default: MPANEL_HTTP_ADDR or 127.0.0.1:3000).
        #[arg(long)]
        addr: Option<SocketAddr>,
        /// Do not run the in-process worker pool.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run jobs: a pool of workers popping job ids from Redis, plus a periodic sweep.
    Worker {
        /// Jobs run at the same time.
        #[arg(long, default_value_t = 3)]
        concurrency: usize,
    },
    /// One scheduler pass: rescue expired leases, dispatch every due job.
    Sweep,
    /// Create a tenant.
    CreateTenant {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// Create a staff user (password from MPANEL_PASSWORD or stdin).
    CreateUser {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// SUPER_ADMIN, ADMIN, BILLING, SUPPORT or READ_ONLY.
        #[arg(long)]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Create (or refresh) the demo tenant, its admin, plans and local server.
    SeedDemo,
}

/// On one machine SQS is optional: the local worker pool takes job ids from
/// Redis, and the sweep resends from PostgreSQL whatever Redis missed. With
/// `SQS_QUEUE_URL` set, ids also go to SQS (the Lambda worker's trigger).
fn one_machine(env: &Env, needs: Needs) -> Needs {
    Needs { sqs: env.get("SQS_QUEUE_URL").is_some_and(|url| !url.trim().is_empty()), ..needs }
}

/// Runs one command with configuration read from `env` (the process env in
/// the binary, a per-test map in tests).
pub async fn run(cli: Cli, env: &Env) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate => {
            let config = Config::load(env, Needs::NONE).await?;
            let report = crate::db::migrate(&config.database).await.context("migration failed")?;
            let applied = report.applied_migrations();
            if applied.is_empty() {
                println!("database is up to date");
            }
            for m in applied {
                println!("applied {}", m);
            }
            Ok(())
        }
        Command::Serve { addr, no_worker } => {
            let config = Config::load(env, one_machine(env, Needs::ALL)).await?;
            let addr = addr.unwrap_or(config.http_addr);
            crate::db::migrate(&config.database).await.context("migration failed")?;
            let state = AppState::new(config)?;
            let shutdown = CancellationToken::new();
            let pool =
                (!no_worker).then(|| tokio::spawn(crate::engine::pool::run_pool(state.clone(), 3, shutdown.clone())));
            let listener =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(%addr, "mpanel serving");
            let signal = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                signal.cancel();
            });
            let stop = shutdown.clone();
            axum::serve(listener, combined_app(state).into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await?;
            if let Some(pool) = pool {
                let _ = pool.await;
            }
            Ok(())
        }
        Command::Worker { concurrency } => {
            let config = Config::load(env, one_machine(env, Needs { pdns: true, ssh: true, ..Needs::NONE })).await?;
            let state = AppState::new(config)?;
            let shutdown = CancellationToken::new();
            let signal = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                signal.cancel();
            });
            if !crate::engine::pool::run_pool(state, concurrency, shutdown).await {
                tracing::warn!("jobs still running at exit will be rescued when their leases expire");
            }
            Ok(())
        }
        Command::Sweep => {
            let config = Config::load(env, one_machine(env, Needs::NONE)).await?;
            let state = AppState::new(config)?;
            let report = crate::engine::sweep(&state).await.map_err(app_error)?;
            println!(
                "rescued {} job(s), {} dead; dispatched {} job(s); {} undelivered",
                report.rescued, report.dead, report.dispatched, report.undelivered
            );
            if report.undelivered > 0 {
                bail!("{} job(s) could not be dispatched (Redis and SQS unreachable)", report.undelivered);
            }
            Ok(())
        }
        Command::CreateTenant { slug, name } => {
            let slug = Slug::parse(&slug).map_err(|e| anyhow::anyhow!("--slug {e}"))?;
            let name = DisplayName::parse(&name).map_err(|e| anyhow::anyhow!("--name {e}"))?;
            let state = state_for_cli(env).await?;
            let client = state.db.get().await.map_err(|e| app_error(e.into()))?;
            let tenant = tenants::create(&**client, &slug, &name, Actor::System).await.map_err(app_error)?;
            println!("{}", tenant.id);
            Ok(())
        }
        Command::CreateUser { tenant, email, role, display_name } => {
            let email = EmailAddress::parse(&email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
            let role: Role = role.parse().map_err(|e| anyhow::anyhow!("--role {e}"))?;
            let display_name = display_name
                .map(|n| DisplayName::parse(&n))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--display-name {e}"))?;
            let password = read_password(env)?;
            password::check_rules("password", &password).map_err(|e| anyhow::anyhow!("password {}", e.message))?;
            let state = state_for_cli(env).await?;
            let client = state.db.get().await.map_err(|e| app_error(e.into()))?;
            let tenant = tenants::find_by_slug(&**client, &tenant)
                .await
                .map_err(app_error)?
                .with_context(|| format!("--tenant {tenant:?} does not exist"))?;
            let password_hash = password::hash(Secret::new(password)).await.map_err(app_error)?;
            let user = users::create(
                &**client,
                &users::NewUser { tenant_id: tenant.id, email, role, display_name, password_hash },
                Actor::System,
            )
            .await
            .map_err(app_error)?;
            println!("{}", user.id);
            Ok(())
        }
        Command::SeedDemo => {
            let state = state_for_cli(env).await?;
            let seeded = demo::seed(&state.db, env).await.map_err(app_error)?;
            println!("demo tenant:    {}", seeded.tenant_slug);
            println!("admin email:    {}", seeded.admin_email);
            println!("admin password: {}", seeded.admin_password.expose());
            Ok(())
        }
    }
}

async fn state_for_cli(env: &Env) -> anyhow::Result<AppState> {
    let config = Config::load(env, Needs::NONE).await?;
    AppState::new(config)
}

/// One line, no internals lost: the CLI prints the whole cause chain.
fn app_error(err: AppError) -> anyhow::Error {
    match err {
        AppError::Internal(e) => e,
        AppError::Validation(errors) => anyhow::anyhow!(
            "{}",
            errors.iter().map(|e| format!("{} {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
        ),
        AppError::Conflict { detail, .. } => anyhow::anyhow!("{detail}"),
        AppError::Unavailable(reason) => anyhow::anyhow!("unavailable: {reason}"),
        other => anyhow::anyhow!("{other}"),
    }
}

fn read_password(env: &Env) -> anyhow::Result<String> {
    if let Some(password) = env.get("MPANEL_PASSWORD") {
        return Ok(password.clone());
    }
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("cannot read the password from stdin")?;
    let password = input.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("password: set MPANEL_PASSWORD or pipe it on stdin");
    }
    Ok(password)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
