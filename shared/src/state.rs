//! The process's handles: configuration, the Postgres pool, Redis, the job
//! dispatcher, the rate limiter, token keys and the outbound HTTP client.
//! Built once per process / Lambda container; every floor above reads it.

use std::sync::Arc;

use crate::auth::principal::Authenticator;
use crate::auth::sessions::Sessions;
use crate::auth::tokens::TokenKeys;
use crate::config::{Config, SecretReader};
use crate::db::DbPool;
use crate::dispatch::Dispatcher;
use crate::kv::Kv;
use crate::ratelimit::{Limit, RateLimiter};
use crate::tls::SslMode;

/// What every handler can reach. Built once per process / Lambda container.
/// One shared allocation: axum clones the state into every route, and a
/// field-by-field clone (the Redis handles' key prefixes, the SDK config)
/// was 0.42 M of the admin function's 3.2 M instructions of init.
#[derive(Clone)]
pub struct AppState(Arc<Handles>);

impl std::ops::Deref for AppState {
    type Target = Handles;
    fn deref(&self) -> &Handles {
        &self.0
    }
}

/// [`AppState`]'s contents.
pub struct Handles {
    pub config: Arc<Config>,
    pub db: DbPool,
    pub kv: Kv,
    pub limiter: RateLimiter,
    pub dispatcher: Dispatcher,
    /// Present when the process has a JWT secret (every HTTP function does).
    pub tokens: Option<Arc<TokenKeys>>,
    /// For PowerDNS; built once, it pools connections. Only a process that
    /// talks to PowerDNS (the worker, `mpanel serve`) builds one.
    pub http: Option<reqwest::Client>,
    /// Each tenant's SSH identity, where a key store is configured.
    pub tenant_keys: Option<Arc<crate::ssh_identity::TenantKeys>>,
    /// The SSH masters of this process's jobs, one per hosting server.
    pub ssh_masters: Arc<crate::ssh_masters::SshMasters>,
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<AppState> {
        // Both re-read their secret when the server refuses what it held (a rotation).
        let db_password = SecretReader::database(&config).map(|s| Arc::new(s) as Arc<dyn crate::db::PasswordSource>);
        let db = crate::db::pool(&config.database, config.db_pool_size, db_password)?;
        let redis_url = SecretReader::redis(&config).map(|s| Arc::new(s) as Arc<dyn crate::kv::UrlSource>);
        let kv = Kv::new(&config.redis_url, &config.redis_key_prefix, &config.tls_ca_files, redis_url)?;
        let tokens = config.jwt_secret.as_ref().map(|s| Arc::new(TokenKeys::new(s)));
        let dispatcher = Dispatcher::new(kv.clone(), config.aws.as_ref(), config.sqs_queue_url.clone());
        let http = match config.pdns {
            Some(_) => Some(crate::outbound::client(
                crate::tls::client_config(SslMode::VerifyFull, &config.tls_ca_files).map_err(anyhow::Error::msg)?,
                std::time::Duration::from_secs(5),
                Some(std::time::Duration::from_secs(15)),
            )?),
            None => None,
        };
        let tenant_keys = config
            .tenant_keys
            .clone()
            .map(|store| Arc::new(crate::ssh_identity::TenantKeys::new(store, config.aws.as_ref())));
        Ok(AppState(Arc::new(Handles {
            tenant_keys,
            ssh_masters: Arc::new(crate::ssh_masters::SshMasters::new()),
            http,
            config: Arc::new(config),
            db,
            limiter: RateLimiter::new(kv.clone()),
            dispatcher,
            kv,
            tokens,
        })))
    }
}

impl AppState {
    /// Removes every configured secret from a text bound for storage or logs
    /// (job errors can echo request headers or URLs).
    pub fn redact(&self, text: &str) -> String {
        let config = &self.config;
        let mut secrets: Vec<String> = Vec::new();
        if let Some(p) = &config.pdns {
            secrets.push(p.api_key.expose().clone());
        }
        if let Some(j) = &config.jwt_secret {
            secrets.push(String::from_utf8_lossy(j.expose()).into_owned());
        }
        if let Some(pw) = config.database.expose().connect.get_password() {
            secrets.push(String::from_utf8_lossy(pw).into_owned());
        }
        if let Some(crate::config::SshKeySource::Inline(key)) = &config.ssh_private_key {
            secrets.extend(key.expose().lines().filter(|l| l.len() > 16).map(str::to_string));
        }
        let mut out = text.to_string();
        for secret in secrets.iter().filter(|s| s.len() >= 6) {
            out = out.replace(secret.as_str(), "[redacted]");
        }
        out.chars().take(4000).collect()
    }
}

impl AppState {
    /// What the bearer-token layer reads.
    pub fn authenticator(&self) -> Authenticator {
        Authenticator { db: self.db.clone(), tokens: self.tokens.clone() }
    }

    /// What sign-in, refresh and sign-out use.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions {
            db: &self.db,
            limiter: &self.limiter,
            login_limit: Limit { max: self.config.rate_limits.login_failures, window: self.config.rate_limits.window },
            login_ceiling: Limit {
                max: self.config.rate_limits.login_account_ceiling,
                window: self.config.rate_limits.window,
            },
            keys: self.tokens.as_deref(),
        }
    }
}
