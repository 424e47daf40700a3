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
    /// Sample Lambda events (`events/`).
    Event {
        #[command(subcommand)]
        action: EventCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Print an event with its placeholders filled in: `{{token:ROLE}}` and
    /// `{{refresh:ROLE}}` (a new session of the tenant's first active user
    /// of that role; `ROLE@label` for a session of its own), `{{signature}}`
    /// with `{{now}}` (Standard Webhooks headers over the body), `{{requestId}}`;
    /// anything else from `--set`.
    Render {
        file: std::path::PathBuf,
        /// The tenant whose users the tokens belong to.
        #[arg(long, default_value = "acme")]
        tenant: String,
        /// NAME=VALUE for a placeholder (repeatable; wins over the derived ones).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
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
        Command::Event { action: EventCommand::Render { file, tenant, set } } => {
            let raw = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            println!("{}", render_event(env, &raw, &tenant, &set).await?);
            Ok(())
        }
        Command::SeedDemo => {
            let state = state_for_cli(env).await?;
            let seeded = demo::seed(&state.db, env).await.map_err(app_error)?;
            demo::authorize_local_key(&state, env, seeded.tenant_id).await.map_err(app_error)?;
            println!("demo tenant:    {}", seeded.tenant_slug);
            println!("admin email:    {}", seeded.admin_email);
            println!("admin password: {}", seeded.admin_password.expose());
            Ok(())
        }
    }
}

/// The names between `{{` and `}}`, in order of appearance, without repeats.
pub fn event_placeholders(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].to_string();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end + 2..];
    }
    names
}

/// Fills `{{name}}` from `values`; then, when the event asks for
/// `{{signature}}`, sets its Standard Webhooks headers (`webhook-timestamp`
/// = `now`, `webhook-signature` over `webhook-id` and the body) with `key`.
pub fn fill_event(
    raw: &str,
    values: &std::collections::HashMap<String, String>,
    webhook_key: Option<&[u8]>,
    now: i64,
) -> anyhow::Result<String> {
    let mut text = raw.to_string();
    for (name, value) in values {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    if !text.contains("{{signature}}") {
        return Ok(text);
    }
    let key = webhook_key.context("the event is signed: MARKETING_WEBHOOK_SECRET (or _ARN) is needed")?;
    let mut event: serde_json::Value = serde_json::from_str(&text).context("the event is not JSON")?;
    let body = event["body"].as_str().unwrap_or_default().to_string();
    let id = event["headers"]["webhook-id"].as_str().context("a signed event needs a webhook-id header")?.to_string();
    event["headers"]["webhook-timestamp"] = serde_json::json!(now.to_string());
    event["headers"]["webhook-signature"] = serde_json::json!(crate::webhooks::sign(&id, now, body.as_bytes(), key));
    Ok(event.to_string())
}

/// `mpanel event render`: derives what it can, takes the rest from `--set`,
/// and names every placeholder left without a value.
pub async fn render_event(env: &Env, raw: &str, tenant: &str, set: &[String]) -> anyhow::Result<String> {
    let mut values = std::collections::HashMap::new();
    for pair in set {
        let (name, value) = pair.split_once('=').with_context(|| format!("--set {pair}: expected NAME=VALUE"))?;
        values.insert(name.to_string(), value.to_string());
    }
    let names = event_placeholders(raw);
    let wanted: Vec<&String> = names.iter().filter(|n| !values.contains_key(*n)).collect();
    let sessions_needed = wanted.iter().any(|n| n.starts_with("token:") || n.starts_with("refresh:"));
    let signed = wanted.iter().any(|n| *n == "signature");
    let mut missing = Vec::new();
    let config = Config::load(env, Needs { jwt: sessions_needed, webhook: signed, ..Needs::NONE }).await?;
    let state = AppState::new(config)?;
    for name in wanted {
        if values.contains_key(name) {
            continue; // filled with its session's other half
        }
        if let Some(label) = name.strip_prefix("token:").or_else(|| name.strip_prefix("refresh:")) {
            let role_name = label.split_once('@').map_or(label, |(role, _)| role);
            let role: Role =
                role_name.parse().map_err(|_| anyhow::anyhow!("{{{{{name}}}}}: {role_name} is not a role"))?;
            let user_id = first_active_user(&state, tenant, role).await?;
            let pair = crate::auth::sessions::operator_session(state.sessions(), user_id).await.map_err(app_error)?;
            values.insert(format!("token:{label}"), pair.access_token);
            values.insert(format!("refresh:{label}"), pair.refresh_token);
        } else if name == "requestId" {
            values.insert(name.clone(), uuid::Uuid::new_v4().to_string());
        } else if name != "signature" && name != "now" {
            missing.push(name.clone());
        }
    }
    if !missing.is_empty() {
        bail!("no value for {} (pass --set NAME=VALUE)", missing.join(", "));
    }
    let key = state.config.webhook_secret.as_ref().map(|k| k.expose().as_slice());
    fill_event(raw, &values, key, chrono::Utc::now().timestamp())
}

async fn first_active_user(state: &AppState, tenant: &str, role: Role) -> anyhow::Result<uuid::Uuid> {
    let client = state.db.get().await.context("cannot reach PostgreSQL")?;
    let row = client
        .query_opt(
            "SELECT u.id FROM users u JOIN tenants t ON t.id = u.tenant_id
             WHERE t.slug = $1 AND u.role = $2 AND u.status = 'ACTIVE' AND t.status = 'ACTIVE'
             ORDER BY u.created_at, u.id LIMIT 1",
            &[&tenant, &role],
        )
        .await?;
    match row {
        Some(row) => Ok(row.try_get(0)?),
        None => bail!("tenant {tenant} has no active {} user", crate::types::Named::as_str(role)),
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
