//! Typed configuration, loaded once per process (once per Lambda container).
//!
//! Every secret may be given directly (`JWT_SECRET=...`) or as a Secrets
//! Manager ARN (`JWT_SECRET_ARN=arn:...`); the database also accepts an
//! RDS-style JSON secret (`DATABASE_URL_ARN`). Missing or malformed values
//! fail at start with one line naming the variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use crate::db::{DbConfig, DbTls};
use crate::secrets::Secret;
use crate::tls::SslMode;

/// A config problem, always naming the variable so the fix is obvious.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    pub var: String,
    pub reason: String,
}

impl ConfigError {
    fn new(var: &str, reason: impl Into<String>) -> Self {
        Self { var: var.to_string(), reason: reason.into() }
    }
}

/// Which optional parts a process needs. Each Lambda function asks only for
/// what it uses, so it is granted (and loads) only those secrets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub jwt: bool,
    pub webhook: bool,
    pub pdns: bool,
    pub sqs: bool,
    pub ssh: bool,
}

impl Needs {
    pub const NONE: Needs = Needs { jwt: false, webhook: false, pdns: false, sqs: false, ssh: false };
    pub const ALL: Needs = Needs { jwt: true, webhook: true, pdns: true, sqs: true, ssh: true };
}

#[derive(Debug, Clone)]
pub struct PdnsConfig {
    pub api_url: String,
    pub api_key: Secret<String>,
    pub server_id: String,
    /// Fully qualified, each ending with a dot.
    pub nameservers: Vec<String>,
}

/// Where the worker's SSH private key comes from.
#[derive(Debug, Clone)]
pub enum SshKeySource {
    File(PathBuf),
    /// Key material from Secrets Manager; written 0600 under the temp dir when used.
    Inline(Secret<String>),
}

#[derive(Debug, Clone)]
pub struct RateLimits {
    pub max_requests: u32,
    pub window: Duration,
    /// Failed logins per (account, client) per window.
    pub login_failures: u32,
    /// Failed logins per account from all clients together: higher, so a
    /// single client cannot lock the owner out.
    pub login_account_ceiling: u32,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: Secret<DbConfig>,
    pub db_pool_size: usize,
    /// Extra PEM roots every outbound TLS connection trusts (`TLS_CA_FILE`).
    pub tls_ca_files: Vec<PathBuf>,
    /// `DATABASE_URL_ARN`, read again when the password was rotated.
    pub database_secret_arn: Option<String>,
    /// `REDIS_URL_ARN`, read again when Redis refused its credentials.
    pub redis_secret_arn: Option<String>,
    pub redis_url: Secret<String>,
    /// Prefix of every Redis key; tests give each test its own.
    pub redis_key_prefix: String,
    pub http_addr: SocketAddr,
    /// A request that takes longer is answered 503 (`REQUEST_TIMEOUT_SECS`);
    /// on Lambda it must end before the function's own timeout.
    pub request_timeout: Duration,
    pub rate_limits: RateLimits,
    pub jwt_secret: Option<Secret<Vec<u8>>>,
    pub webhook_secret: Option<Secret<Vec<u8>>>,
    pub pdns: Option<PdnsConfig>,
    pub sqs_queue_url: Option<String>,
    /// The platform key: only for servers registered before tenant keys.
    pub ssh_private_key: Option<SshKeySource>,
    /// Where each tenant's own SSH key lives.
    pub tenant_keys: Option<TenantKeyStore>,
    /// Present when SQS or Secrets Manager is used.
    pub aws: Option<aws_config::SdkConfig>,
    pub jobs: JobSettings,
    /// Origins allowed to call the API from a browser (`CORS_ALLOWED_ORIGINS`).
    pub cors_allowed_origins: Vec<String>,
    /// Certificates through ACME; `None` when `ACME_DIRECTORY_URL=none`.
    pub acme: Option<AcmeConfig>,
}

/// Let's Encrypt's production directory, the default ACME server.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The ACME server and the DNS servers the certificate job checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    pub directory_url: String,
    /// The CA of the ACME server's own API certificate (`ACME_CA_FILE`),
    /// trusted beside the usual roots (a test server such as Pebble).
    pub ca_file: Option<PathBuf>,
    /// Asked who serves a domain before an order is placed (`DNS_RESOLVER`,
    /// `ip:port`); the system's resolver when unset.
    pub resolver: Option<SocketAddr>,
    /// Where PowerDNS answers DNS (`PDNS_DNS_ADDRS`): the challenge records
    /// must be served there before the ACME server is asked to look. When
    /// unset, the nameservers' own addresses on port 53.
    pub pdns_dns_addrs: Vec<SocketAddr>,
    /// Failed issuances the sweep retries (with backoff) before it stops
    /// and waits for staff (`ACME_MAX_FAILURES`).
    pub max_failures: i32,
}

/// The environment the config is read from: the process env in production,
/// a plain map in tests (mutating the process env is not thread-safe).
pub type Env = HashMap<String, String>;

pub fn process_env() -> Env {
    std::env::vars().collect()
}

impl Config {
    /// A Lambda function's, from the process environment, where Lambda also
    /// puts its role's credentials: the AWS SDK's credential chain is not
    /// needed, and not linked into the functions (see [`AwsCredentials`]).
    pub async fn from_lambda_env(needs: Needs) -> Result<Config, ConfigError> {
        Config::load_with(&process_env(), needs, AwsCredentials::ENVIRONMENT).await
    }

    /// Reads every section this process needs; each error names its
    /// variable. AWS credentials: the environment's, else the SDK's chain.
    pub async fn load(env: &Env, needs: Needs) -> Result<Config, ConfigError> {
        Config::load_with(env, needs, AwsCredentials::CHAIN).await
    }

    /// As [`Config::load`], in a Lambda function (see [`Config::from_lambda_env`]).
    pub async fn load_in_lambda(env: &Env, needs: Needs) -> Result<Config, ConfigError> {
        Config::load_with(env, needs, AwsCredentials::ENVIRONMENT).await
    }

    async fn load_with(env: &Env, needs: Needs, credentials: AwsCredentials) -> Result<Config, ConfigError> {
        // The AWS SDK is only set up when something needs it, so a process
        // that uses no AWS service never looks for credentials or a region.
        let uses_aws = needs.sqs || env.iter().any(|(k, v)| k.ends_with("_ARN") && !v.is_empty());
        let tls_ca_files = load_tls_ca_files(env)?;
        let aws = if uses_aws { Some(aws_sdk_config_with(env, &tls_ca_files, credentials).await?) } else { None };
        let secrets = SecretSource::new(env, aws.as_ref());
        // Every secret is fetched at once (a cold start waits for the slowest
        // GetSecretValue, not their sum); the results are then taken in the
        // order a reader fixes them, so the first missing or bad one is named.
        // Each on the heap: six AWS SDK calls side by side make a future too
        // large for a test thread's stack in debug builds.
        let (database, redis, jwt_secret, webhook_secret, pdns, ssh_private_key) = tokio::join!(
            Box::pin(load_database(env, &secrets, &tls_ca_files)),
            Box::pin(load_redis(env, &secrets)),
            Box::pin(when(needs.jwt, load_jwt_secret(&secrets))),
            Box::pin(when(needs.webhook, load_webhook_secret(&secrets))),
            Box::pin(when(needs.pdns, load_pdns(env, &secrets))),
            Box::pin(when(needs.ssh, load_ssh_key(env, &secrets))),
        );
        let database = database?;
        let db_pool_size = load_pool_size(env)?;
        let (redis_url, redis_key_prefix) = redis?;
        let http_addr = parse_or(env, "MPANEL_HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], 3000)))?;
        let request_timeout = load_request_timeout(env)?;
        let rate_limits = load_rate_limits(env)?;
        let jwt_secret = jwt_secret?;
        let webhook_secret = webhook_secret?;
        let pdns = pdns?;
        let sqs_queue_url = if needs.sqs { Some(required(env, "SQS_QUEUE_URL")?) } else { None };
        let ssh_private_key = ssh_private_key?;
        let jobs = load_jobs(env)?;
        let tenant_keys = load_tenant_keys(env, aws.is_some())?;
        let cors_allowed_origins = parse_origins(env.get("CORS_ALLOWED_ORIGINS").map(String::as_str).unwrap_or(""))?;
        let acme = load_acme(env)?;
        Ok(Config {
            acme,
            cors_allowed_origins,
            jobs,
            database,
            db_pool_size,
            tls_ca_files,
            database_secret_arn: env.get("DATABASE_URL_ARN").filter(|v| !v.trim().is_empty()).cloned(),
            redis_secret_arn: env.get("REDIS_URL_ARN").filter(|v| !v.trim().is_empty()).cloned(),
            redis_url,
            redis_key_prefix,
            http_addr,
            request_timeout,
            rate_limits,
            jwt_secret,
            webhook_secret,
            pdns,
            sqs_queue_url,
            ssh_private_key: ssh_private_key.flatten(),
            tenant_keys,
            aws,
        })
    }
}

/// Runs `load` only when the process needs what it loads.
async fn when<T>(
    needed: bool,
    load: impl std::future::Future<Output = Result<T, ConfigError>>,
) -> Result<Option<T>, ConfigError> {
    if needed { load.await.map(Some) } else { Ok(None) }
}

async fn load_database(
    env: &Env,
    secrets: &SecretSource<'_>,
    ca_files: &[PathBuf],
) -> Result<Secret<DbConfig>, ConfigError> {
    match secrets.get("DATABASE_URL").await? {
        Some(SecretValue::Plain(url)) => database_from_url("DATABASE_URL", &url, env, ca_files),
        // A whole URL stored as the secret is taken as it is.
        Some(SecretValue::FromManager(text)) if text.trim_start().starts_with("postgres") => {
            database_from_url("DATABASE_URL_ARN", text.trim(), env, ca_files)
        }
        Some(SecretValue::FromManager(json)) => {
            let connect = parse_rds_secret("DATABASE_URL_ARN", &json, &DatabaseTarget::of(env)?)?;
            let mode = env.get("DATABASE_SSLMODE").filter(|v| !v.trim().is_empty()).map(|m| ("DATABASE_SSLMODE", m));
            let root = env.get("PGSSLROOTCERT").filter(|v| !v.trim().is_empty()).map(|r| ("PGSSLROOTCERT", r));
            secure(connect, mode, root, ca_files)
        }
        None => Err(ConfigError::new("DATABASE_URL", "is required (or DATABASE_URL_ARN)")),
    }
}

/// `TLS_CA_FILE`: one PEM file of extra roots, checked now rather than at the first connection.
fn load_tls_ca_files(env: &Env) -> Result<Vec<PathBuf>, ConfigError> {
    let Some(path) = env.get("TLS_CA_FILE").map(|p| p.trim()).filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    let files = vec![PathBuf::from(path)];
    crate::tls::check_ca_files(&files).map_err(|e| ConfigError::new("TLS_CA_FILE", e))?;
    Ok(files)
}

/// A postgres:// URL whose `sslmode` and `sslrootcert` (which the driver
/// does not know in libpq's spelling) are taken out and applied here.
fn database_from_url(var: &str, url: &str, env: &Env, ca_files: &[PathBuf]) -> Result<Secret<DbConfig>, ConfigError> {
    let (rest, mode, root) = split_tls_params(url);
    let connect = parse_database_url(var, &rest)?;
    let mode = match mode {
        Some(mode) => Some((var, mode)),
        None => env.get("DATABASE_SSLMODE").filter(|v| !v.trim().is_empty()).map(|m| ("DATABASE_SSLMODE", m.clone())),
    };
    let root = match root {
        Some(root) => Some((var, root)),
        None => env.get("PGSSLROOTCERT").filter(|v| !v.trim().is_empty()).map(|r| ("PGSSLROOTCERT", r.clone())),
    };
    secure(connect, mode.as_ref().map(|(v, m)| (*v, m)), root.as_ref().map(|(v, r)| (*v, r)), ca_files)
}

/// Applies the TLS settings: the mode given (named by the variable that
/// gave it), else `verify-full` for any host outside loopback and plaintext
/// on loopback; the root file given joins `TLS_CA_FILE`'s.
fn secure(
    mut connect: tokio_postgres::Config,
    mode: Option<(&str, &String)>,
    root: Option<(&str, &String)>,
    ca_files: &[PathBuf],
) -> Result<Secret<DbConfig>, ConfigError> {
    let mode = match mode {
        Some((var, text)) => text
            .trim()
            .parse::<SslMode>()
            .map_err(|_| ConfigError::new(var, "sslmode must be disable, require, verify-ca or verify-full"))?,
        None if on_loopback(&connect) => SslMode::Disable,
        None => SslMode::VerifyFull,
    };
    let mut roots = ca_files.to_vec();
    if let Some((var, path)) = root {
        let path = PathBuf::from(path.trim());
        crate::tls::check_ca_files(std::slice::from_ref(&path))
            .map_err(|e| ConfigError::new(var, format!("sslrootcert: {e}")))?;
        roots.push(path);
    }
    connect.ssl_mode(if mode == SslMode::Disable {
        tokio_postgres::config::SslMode::Disable
    } else {
        // The driver's Require: TLS or no connection, never a plaintext fallback.
        tokio_postgres::config::SslMode::Require
    });
    Ok(Secret::new(DbConfig { connect, tls: DbTls { mode, roots } }))
}

fn on_loopback(connect: &tokio_postgres::Config) -> bool {
    connect.get_hosts().iter().all(|host| match host {
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => true,
    })
}

/// Takes libpq's `sslmode` and `sslrootcert` out of a URL's query.
fn split_tls_params(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None, None);
    };
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(percent_decoded(value)),
            Some(("sslrootcert", value)) => root = Some(percent_decoded(value)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    (rest, mode, root)
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where to connect when the secret holds credentials: `DATABASE_HOST`
/// (the RDS Proxy endpoint), `DATABASE_PORT`, `DATABASE_NAME`. Each wins
/// over the secret's own field, since an RDS-managed secret names the
/// database instance, not the proxy in front of it.
#[derive(Default)]
struct DatabaseTarget {
    host: Option<String>,
    port: Option<u16>,
    name: Option<String>,
}

impl DatabaseTarget {
    fn of(env: &Env) -> Result<DatabaseTarget, ConfigError> {
        let set = |var: &str| env.get(var).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let port = match set("DATABASE_PORT") {
            Some(raw) => Some(
                raw.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| ConfigError::new("DATABASE_PORT", "must be a port number"))?,
            ),
            None => None,
        };
        Ok(DatabaseTarget { host: set("DATABASE_HOST"), port, name: set("DATABASE_NAME") })
    }
}

fn load_request_timeout(env: &Env) -> Result<Duration, ConfigError> {
    let secs: u64 = parse_or(env, "REQUEST_TIMEOUT_SECS", 30)?;
    if !(1..=900).contains(&secs) {
        return Err(ConfigError::new("REQUEST_TIMEOUT_SECS", "must be from 1 to 900"));
    }
    Ok(Duration::from_secs(secs))
}

fn load_pool_size(env: &Env) -> Result<usize, ConfigError> {
    // One request at a time per Lambda container: a tiny pool behind RDS Proxy.
    let default_pool = if env.contains_key("AWS_LAMBDA_FUNCTION_NAME") { 2 } else { 16 };
    let size = parse_or(env, "DB_POOL_SIZE", default_pool)?;
    if size == 0 {
        return Err(ConfigError::new("DB_POOL_SIZE", "must be at least 1"));
    }
    Ok(size)
}

async fn load_redis(env: &Env, secrets: &SecretSource<'_>) -> Result<(Secret<String>, String), ConfigError> {
    let url = secrets
        .get("REDIS_URL")
        .await?
        .map(SecretValue::into_string)
        .ok_or_else(|| ConfigError::new("REDIS_URL", "is required (or REDIS_URL_ARN)"))?;
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(ConfigError::new("REDIS_URL", "must start with redis:// or rediss://"));
    }
    let prefix = env.get("REDIS_KEY_PREFIX").cloned().unwrap_or_else(|| "mpanel:".to_string());
    Ok((Secret::new(url), prefix))
}

fn load_rate_limits(env: &Env) -> Result<RateLimits, ConfigError> {
    let login_failures = parse_or(env, "LOGIN_FAILURE_LIMIT", 10u32)?;
    let limits = RateLimits {
        max_requests: parse_or(env, "RATE_LIMIT_MAX", 100u32)?,
        window: Duration::from_secs(parse_or(env, "RATE_LIMIT_WINDOW_SECS", 900u64)?),
        login_failures,
        login_account_ceiling: parse_or(env, "LOGIN_ACCOUNT_FAILURE_CEILING", login_failures.saturating_mul(5))?,
    };
    if limits.window.is_zero() {
        return Err(ConfigError::new("RATE_LIMIT_WINDOW_SECS", "must be at least 1"));
    }
    Ok(limits)
}

async fn load_jwt_secret(secrets: &SecretSource<'_>) -> Result<Secret<Vec<u8>>, ConfigError> {
    let raw = secrets
        .get("JWT_SECRET")
        .await?
        .map(SecretValue::into_string)
        .ok_or_else(|| ConfigError::new("JWT_SECRET", "is required (or JWT_SECRET_ARN)"))?;
    if raw.len() < 32 {
        return Err(ConfigError::new("JWT_SECRET", "must be at least 32 bytes"));
    }
    Ok(Secret::new(raw.into_bytes()))
}

async fn load_webhook_secret(secrets: &SecretSource<'_>) -> Result<Secret<Vec<u8>>, ConfigError> {
    let raw =
        secrets.get("MARKETING_WEBHOOK_SECRET").await?.map(SecretValue::into_string).ok_or_else(|| {
            ConfigError::new("MARKETING_WEBHOOK_SECRET", "is required (or MARKETING_WEBHOOK_SECRET_ARN)")
        })?;
    Ok(Secret::new(parse_webhook_secret(&raw)?))
}

async fn load_pdns(env: &Env, secrets: &SecretSource<'_>) -> Result<PdnsConfig, ConfigError> {
    let api_url = required(env, "PDNS_API_URL")?;
    if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
        return Err(ConfigError::new("PDNS_API_URL", "must be an http(s) URL"));
    }
    let api_key = secrets
        .get("PDNS_API_KEY")
        .await?
        .map(SecretValue::into_string)
        .ok_or_else(|| ConfigError::new("PDNS_API_KEY", "is required (or PDNS_API_KEY_ARN)"))?;
    Ok(PdnsConfig {
        api_url: api_url.trim_end_matches('/').to_string(),
        api_key: Secret::new(api_key),
        server_id: env.get("PDNS_SERVER_ID").cloned().unwrap_or_else(|| "localhost".into()),
        nameservers: parse_nameservers(&required(env, "PDNS_NAMESERVERS")?)?,
    })
}

/// Where tenants' SSH keys live: `SSH_KEY_DIR` (created 0700 if missing),
/// else Secrets Manager when AWS is configured (`SSH_KEY_SECRET_PREFIX`,
/// default `mpanel/tenant-ssh/`), else nowhere (no SSH from this process).
fn load_tenant_keys(env: &Env, aws: bool) -> Result<Option<TenantKeyStore>, ConfigError> {
    if let Some(dir) = env.get("SSH_KEY_DIR").filter(|d| !d.trim().is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() {
            return Err(ConfigError::new("SSH_KEY_DIR", "must be an absolute path"));
        }
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| ConfigError::new("SSH_KEY_DIR", format!("cannot be created as a private directory: {e}")))?;
        return Ok(Some(TenantKeyStore::Dir(dir)));
    }
    if aws {
        let prefix = env.get("SSH_KEY_SECRET_PREFIX").cloned().unwrap_or_else(|| "mpanel/tenant-ssh/".into());
        return Ok(Some(TenantKeyStore::SecretsManager { prefix }));
    }
    Ok(None)
}

/// Where tenants' private SSH keys are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantKeyStore {
    Dir(PathBuf),
    SecretsManager { prefix: String },
}

/// The platform key (`SSH_PRIVATE_KEY_FILE` or `_ARN`), optional: only
/// servers registered before tenant keys use it.
async fn load_ssh_key(env: &Env, secrets: &SecretSource<'_>) -> Result<Option<SshKeySource>, ConfigError> {
    match (env.get("SSH_PRIVATE_KEY_FILE"), env.get("SSH_PRIVATE_KEY_ARN")) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            "SSH_PRIVATE_KEY_FILE",
            "set either SSH_PRIVATE_KEY_FILE or SSH_PRIVATE_KEY_ARN, not both",
        )),
        (Some(path), None) => {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(ConfigError::new("SSH_PRIVATE_KEY_FILE", "is not a readable file"));
            }
            Ok(Some(SshKeySource::File(path)))
        }
        (None, Some(_)) => {
            let key = secrets
                .get("SSH_PRIVATE_KEY")
                .await?
                .map(SecretValue::into_string)
                .ok_or_else(|| ConfigError::new("SSH_PRIVATE_KEY_ARN", "is empty"))?;
            Ok(Some(SshKeySource::Inline(Secret::new(key))))
        }
        (None, None) => Ok(None),
    }
}

/// `ACME_DIRECTORY_URL` (Let's Encrypt production unless set; `none`
/// turns automatic certificates off), `ACME_CA_FILE`, `DNS_RESOLVER`,
/// `PDNS_DNS_ADDRS`, `ACME_MAX_FAILURES`.
fn load_acme(env: &Env) -> Result<Option<AcmeConfig>, ConfigError> {
    let value = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let directory_url = value("ACME_DIRECTORY_URL").unwrap_or(LETS_ENCRYPT_PRODUCTION);
    if directory_url.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if !directory_url.starts_with("https://") || directory_url.len() > 500 {
        return Err(ConfigError::new("ACME_DIRECTORY_URL", "must be an https:// URL (or none)"));
    }
    let ca_file = value("ACME_CA_FILE").map(PathBuf::from);
    if let Some(path) = &ca_file {
        crate::tls::check_ca_files(std::slice::from_ref(path)).map_err(|e| ConfigError::new("ACME_CA_FILE", e))?;
    }
    let resolver = match value("DNS_RESOLVER") {
        Some(text) => {
            Some(parse_dns_addr(text).ok_or_else(|| ConfigError::new("DNS_RESOLVER", "must be ip or ip:port"))?)
        }
        None => None,
    };
    let pdns_dns_addrs = match value("PDNS_DNS_ADDRS") {
        Some(text) => text
            .split(',')
            .map(|a| parse_dns_addr(a.trim()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ConfigError::new("PDNS_DNS_ADDRS", "must be a comma list of ip or ip:port"))?,
        None => Vec::new(),
    };
    Ok(Some(AcmeConfig {
        directory_url: directory_url.to_string(),
        ca_file,
        resolver,
        pdns_dns_addrs,
        max_failures: parse_or(env, "ACME_MAX_FAILURES", 5i32)?.max(1),
    }))
}

/// `ip`, `ip:port` or `[ipv6]:port`; port 53 when none is given.
fn parse_dns_addr(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| text.parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

fn load_jobs(env: &Env) -> Result<JobSettings, ConfigError> {
    let lease = Duration::from_secs(parse_or(env, "JOB_LEASE_SECS", 300u64)?.max(1));
    let time_limit = match env.get("JOB_TIME_LIMIT_SECS") {
        Some(_) => Duration::from_secs(parse_or(env, "JOB_TIME_LIMIT_SECS", 0u64)?.max(1)),
        None => lease.mul_f64(0.8),
    };
    Ok(JobSettings {
        lease,
        time_limit,
        retry_base: Duration::from_millis(parse_or(env, "JOB_RETRY_BASE_MS", 5_000u64)?),
        retry_cap: Duration::from_secs(parse_or(env, "JOB_RETRY_CAP_SECS", 3_600u64)?),
        max_attempts: parse_or(env, "JOB_MAX_ATTEMPTS", 8i32)?.max(1),
        sweep_interval: Duration::from_secs(parse_or(env, "SWEEP_INTERVAL_SECS", 30u64)?.max(1)),
        worker_grace: Duration::from_secs(parse_or(env, "WORKER_GRACE_SECS", 30u64)?),
    })
}

/// AWS SDK config from the same env map (region and endpoint), so moto works
/// locally and the real endpoints are used on Lambda.
/// The region is required (Lambda always sets it): looking it up from
/// instance metadata would be slow and wrong outside AWS.
pub async fn aws_sdk_config(env: &Env) -> Result<aws_config::SdkConfig, ConfigError> {
    aws_sdk_config_with(env, &load_tls_ca_files(env)?, AwsCredentials::CHAIN).await
}

const AWS_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// As [`aws_sdk_config`], with `TLS_CA_FILE` already read and checked.
async fn aws_sdk_config_with(
    env: &Env,
    ca_files: &[PathBuf],
    credentials_from: AwsCredentials,
) -> Result<aws_config::SdkConfig, ConfigError> {
    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ConfigError::new("AWS_REGION", "is required when SQS or a *_ARN secret is used"))?;
    // Short timeouts and few retries: a dispatch must not hold a request for
    // long when SQS is unreachable (the sweep resends later anyway).
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(AWS_CONNECT_TIMEOUT)
        .operation_attempt_timeout(std::time::Duration::from_secs(3))
        .operation_timeout(std::time::Duration::from_secs(7))
        .build();
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(2);
    let credentials = match (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(key)) => Some(aws_sdk_secretsmanager::config::Credentials::new(
            id.clone(),
            key.clone(),
            env.get("AWS_SESSION_TOKEN").cloned(),
            None,
            "mpanel-env",
        )),
        _ => None,
    };
    let settings = AwsSettings {
        region: aws_config::Region::new(region.clone()),
        endpoint: env.get("AWS_ENDPOINT_URL").cloned(),
        timeouts,
        retries,
        http: aws_http_client(ca_files)?,
        credentials,
    };
    (credentials_from.build)(settings).await
}

/// Where the AWS SDK's credentials come from, as the function that builds
/// its config: a pointer, so a binary links the SDK's credential chain
/// (profiles, SSO, web identity, container and instance metadata, with
/// STS: about 0.3 MB) only when it names [`AwsCredentials::CHAIN`]. The
/// Lambda functions name [`AwsCredentials::ENVIRONMENT`] only.
#[derive(Clone, Copy)]
pub struct AwsCredentials {
    build: fn(AwsSettings) -> futures::future::BoxFuture<'static, Result<aws_config::SdkConfig, ConfigError>>,
}

impl AwsCredentials {
    /// The environment's keys when set, else the SDK's chain: `mpanel` on
    /// a server, the tests.
    pub const CHAIN: AwsCredentials = AwsCredentials { build: |settings| Box::pin(with_credential_chain(settings)) };
    /// The environment's keys only, which Lambda sets from the function's role.
    pub const ENVIRONMENT: AwsCredentials =
        AwsCredentials { build: |settings| Box::pin(with_environment_credentials(settings)) };
}

struct AwsSettings {
    region: aws_config::Region,
    endpoint: Option<String>,
    timeouts: aws_config::timeout::TimeoutConfig,
    retries: aws_config::retry::RetryConfig,
    http: aws_sdk_sqs::config::SharedHttpClient,
    credentials: Option<aws_sdk_secretsmanager::config::Credentials>,
}

async fn with_credential_chain(settings: AwsSettings) -> Result<aws_config::SdkConfig, ConfigError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(settings.region)
        .timeout_config(settings.timeouts)
        .retry_config(settings.retries)
        .http_client(settings.http);
    if let Some(endpoint) = settings.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(credentials) = settings.credentials {
        loader = loader.credentials_provider(credentials);
    }
    Ok(loader.load().await)
}

/// The SDK's clients fill in the rest (sleep, time source, identity cache)
/// as they do after `aws_config::defaults(..).load()`.
async fn with_environment_credentials(settings: AwsSettings) -> Result<aws_config::SdkConfig, ConfigError> {
    let credentials = settings.credentials.ok_or_else(|| {
        ConfigError::new(
            "AWS_ACCESS_KEY_ID",
            "and AWS_SECRET_ACCESS_KEY are required: Lambda sets them from the function's role",
        )
    })?;
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(settings.region)
        .timeout_config(settings.timeouts)
        .retry_config(settings.retries)
        .http_client(settings.http)
        .credentials_provider(aws_sdk_secretsmanager::config::SharedCredentialsProvider::new(credentials));
    if let Some(endpoint) = settings.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Ok(builder.build())
}

/// The SDK's HTTPS client, trusting the Amazon Trust Services roots (every
/// AWS endpoint chains to one) and `TLS_CA_FILE`. Not the system's roots:
/// loading them (rustls-native-certs, a 200 kB PEM) was two thirds of the
/// init of every function with an SQS or Secrets Manager client.
fn aws_http_client(ca_files: &[PathBuf]) -> Result<aws_sdk_sqs::config::SharedHttpClient, ConfigError> {
    let roots = crate::tls::roots_of(crate::tls::AMAZON_TRUST_ANCHORS, ca_files)
        .and_then(crate::tls::client_config_trusting)
        .map_err(|e| ConfigError::new("TLS_CA_FILE", e))?;
    // The SDK's own timeouts bound each call; the connect timeout is set on
    // the client, which is built before the SDK hands it its settings.
    let client = crate::outbound::client(roots, AWS_CONNECT_TIMEOUT, None)
        .map_err(|e| ConfigError::new("TLS_CA_FILE", e.to_string()))?;
    Ok(crate::outbound::for_aws_sdk(client))
}

enum SecretValue {
    Plain(String),
    FromManager(String),
}

impl SecretValue {
    fn into_string(self) -> String {
        match self {
            SecretValue::Plain(s) | SecretValue::FromManager(s) => s,
        }
    }
}

/// A secret read again after the server refused what it held at start (a
/// rotation): the database password, or the Redis URL.
pub struct SecretReader {
    client: aws_sdk_secretsmanager::Client,
    var: &'static str,
    arn: String,
}

impl SecretReader {
    /// For `DATABASE_URL_ARN`, when the database credentials come from Secrets Manager.
    pub fn database(config: &Config) -> Option<SecretReader> {
        SecretReader::of(config, "DATABASE_URL_ARN", config.database_secret_arn.clone()?)
    }

    /// For `REDIS_URL_ARN`, when the Redis URL comes from Secrets Manager.
    pub fn redis(config: &Config) -> Option<SecretReader> {
        SecretReader::of(config, "REDIS_URL_ARN", config.redis_secret_arn.clone()?)
    }

    fn of(config: &Config, var: &'static str, arn: String) -> Option<SecretReader> {
        let client = aws_sdk_secretsmanager::Client::new(config.aws.as_ref()?);
        Some(SecretReader { client, var, arn })
    }

    async fn text(&self) -> anyhow::Result<String> {
        let out =
            self.client.get_secret_value().secret_id(&self.arn).send().await.map_err(|e| {
                anyhow::anyhow!("{}: {}", self.var, aws_sdk_secretsmanager::error::DisplayErrorContext(&e))
            })?;
        out.secret_string().map(str::to_string).ok_or_else(|| anyhow::anyhow!("{}: no string value", self.var))
    }
}

impl crate::db::PasswordSource for SecretReader {
    fn fetch(&self) -> futures::future::BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(async move { password_in_secret(&self.text().await?) })
    }
}

impl crate::kv::UrlSource for SecretReader {
    fn fetch(&self) -> futures::future::BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(self.text())
    }
}

/// The password of a database secret in either shape (URL or RDS JSON).
fn password_in_secret(text: &str) -> anyhow::Result<String> {
    if text.trim_start().starts_with("postgres") {
        let (rest, _, _) = split_tls_params(text.trim());
        let config = parse_database_url("DATABASE_URL_ARN", &rest)?;
        let password =
            config.get_password().ok_or_else(|| anyhow::anyhow!("DATABASE_URL_ARN: the URL has no password"))?;
        return Ok(String::from_utf8_lossy(password).into_owned());
    }
    let secret: RdsSecret =
        serde_json::from_str(text).map_err(|_| anyhow::anyhow!("DATABASE_URL_ARN: not a database secret"))?;
    Ok(secret.password)
}

/// What template.yaml stores in the secrets the operator fills in after the first deploy.
const TEMPLATE_PLACEHOLDER: &str = "unset";

/// Resolves `NAME` from the env or `NAME_ARN` from Secrets Manager.
struct SecretSource<'a> {
    env: &'a Env,
    client: Option<aws_sdk_secretsmanager::Client>,
}

impl<'a> SecretSource<'a> {
    fn new(env: &'a Env, aws: Option<&aws_config::SdkConfig>) -> Self {
        // A client only when some secret is read by ARN (SQS alone needs none).
        let by_arn = env.iter().any(|(k, v)| k.ends_with("_ARN") && !v.trim().is_empty());
        Self { env, client: aws.filter(|_| by_arn).map(aws_sdk_secretsmanager::Client::new) }
    }

    async fn get(&self, name: &str) -> Result<Option<SecretValue>, ConfigError> {
        let arn_var = format!("{name}_ARN");
        let plain = self.env.get(name).filter(|v| !v.is_empty());
        let arn = self.env.get(&arn_var).filter(|v| !v.is_empty());
        match (plain, arn) {
            (Some(_), Some(_)) => Err(ConfigError::new(name, format!("set either {name} or {arn_var}, not both"))),
            (Some(value), None) => Ok(Some(SecretValue::Plain(value.clone()))),
            (None, Some(arn)) => {
                let client = self
                    .client
                    .as_ref()
                    .ok_or_else(|| ConfigError::new(&arn_var, "needs the AWS SDK (set AWS_REGION)"))?;
                let out = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
                    ConfigError::new(
                        &arn_var,
                        format!(
                            "cannot read the secret from Secrets Manager: {}",
                            aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                        ),
                    )
                })?;
                let value =
                    out.secret_string().ok_or_else(|| ConfigError::new(&arn_var, "the secret has no string value"))?;
                if value.trim() == TEMPLATE_PLACEHOLDER {
                    return Err(ConfigError::new(
                        &arn_var,
                        "still holds the template's placeholder `unset`: put the real value (README, \"Filling in the secrets\")",
                    ));
                }
                Ok(Some(SecretValue::FromManager(value.to_string())))
            }
            (None, None) => Ok(None),
        }
    }
}

fn required(env: &Env, var: &str) -> Result<String, ConfigError> {
    env.get(var).filter(|v| !v.trim().is_empty()).cloned().ok_or_else(|| ConfigError::new(var, "is required"))
}

fn parse_or<T: FromStr>(env: &Env, var: &str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.get(var).filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e| ConfigError::new(var, format!("cannot parse {raw:?}: {e}"))),
    }
}

fn parse_database_url(var: &str, url: &str) -> Result<tokio_postgres::Config, ConfigError> {
    let mut cfg = tokio_postgres::Config::from_str(url)
        // The parse error can echo the URL (with its password): keep it out.
        .map_err(|_| ConfigError::new(var, "is not a valid postgres:// URL"))?;
    if cfg.get_hosts().is_empty() {
        return Err(ConfigError::new(var, "has no host"));
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(5));
    }
    Ok(cfg)
}

/// The JSON shape of a database secret as RDS manages it: `username` and
/// `password`, and on some secrets also `engine`, `host`, `port`, `dbname`.
#[derive(Deserialize)]
struct RdsSecret {
    username: String,
    password: String,
    host: Option<String>,
    port: Option<u16>,
    dbname: Option<String>,
}

fn parse_rds_secret(var: &str, json: &str, target: &DatabaseTarget) -> Result<tokio_postgres::Config, ConfigError> {
    let secret: RdsSecret = serde_json::from_str(json).map_err(|_| {
        ConfigError::new(var, "is neither a postgres:// URL nor an RDS secret {username,password[,host,port,dbname]}")
    })?;
    let host = target
        .host
        .clone()
        .or(secret.host)
        .ok_or_else(|| ConfigError::new("DATABASE_HOST", "is required: the secret names no host"))?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(&secret.username)
        .password(&secret.password)
        .host(&host)
        .port(target.port.or(secret.port).unwrap_or(5432))
        .dbname(target.name.as_deref().or(secret.dbname.as_deref()).unwrap_or("postgres"))
        .connect_timeout(Duration::from_secs(5));
    Ok(cfg)
}

/// `whsec_` + base64 of at least 24 random bytes (Standard Webhooks).
pub fn parse_webhook_secret(raw: &str) -> Result<Vec<u8>, ConfigError> {
    const VAR: &str = "MARKETING_WEBHOOK_SECRET";
    let encoded = raw.trim().strip_prefix("whsec_").ok_or_else(|| ConfigError::new(VAR, "must start with whsec_"))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| ConfigError::new(VAR, "is not valid base64 after whsec_"))?;
    if key.len() < 24 {
        return Err(ConfigError::new(VAR, "must encode at least 24 bytes"));
    }
    Ok(key)
}

/// `https://example.com,https://www.example.com`: exact origins, never `*`.
fn parse_origins(raw: &str) -> Result<Vec<String>, ConfigError> {
    let mut origins = Vec::new();
    for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let scheme_ok = origin.starts_with("https://") || origin.starts_with("http://");
        let rest = origin.split_once("://").map(|(_, r)| r).unwrap_or("");
        if !scheme_ok || rest.is_empty() || rest.contains('/') || origin.contains('*') {
            return Err(ConfigError::new(
                "CORS_ALLOWED_ORIGINS",
                format!("{origin:?} is not an origin like https://example.com (no paths, no wildcards)"),
            ));
        }
        origins.push(origin.to_string());
    }
    Ok(origins)
}

fn parse_nameservers(raw: &str) -> Result<Vec<String>, ConfigError> {
    let names: Vec<String> =
        raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_ascii_lowercase).collect();
    if names.is_empty() {
        return Err(ConfigError::new("PDNS_NAMESERVERS", "needs at least one name"));
    }
    for name in &names {
        let valid = name.ends_with('.')
            && name.len() > 1
            && name
                .trim_end_matches('.')
                .split('.')
                .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !valid {
            return Err(ConfigError::new(
                "PDNS_NAMESERVERS",
                format!("{name:?} is not a fully qualified host name ending with a dot"),
            ));
        }
    }
    Ok(names)
}

/// Settings of the engine (see `Config::jobs`): leases, retries, sweeps.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How long a claim holds without a heartbeat; the engine extends it
    /// every third of it while the job runs.
    pub lease: Duration,
    /// How long one job may run (`JOB_TIME_LIMIT_SECS`, default 80% of the
    /// lease; longer is safe because the heartbeat keeps the lease).
    pub time_limit: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub max_attempts: i32,
    pub sweep_interval: Duration,
    pub worker_grace: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base_env() -> Env {
        [
            ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db"),
            ("REDIS_URL", "redis://127.0.0.1:6379/"),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[tokio::test]
    async fn minimal_env_loads_with_defaults() {
        let cfg = Config::load(&base_env(), Needs::NONE).await.unwrap();
        assert_eq!(cfg.rate_limits.max_requests, 100);
        assert_eq!(cfg.rate_limits.window, Duration::from_secs(900));
        assert_eq!(cfg.rate_limits.login_failures, 10);
        assert_eq!(cfg.rate_limits.login_account_ceiling, 50);
        assert_eq!(cfg.http_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(cfg.db_pool_size, 16);
        assert!(cfg.jwt_secret.is_none());
    }

    #[tokio::test]
    async fn lambda_gets_a_small_pool() {
        let mut env = base_env();
        env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), "auth".into());
        let cfg = Config::load(&env, Needs::NONE).await.unwrap();
        assert_eq!(cfg.db_pool_size, 2);
    }

    #[tokio::test]
    async fn a_lambda_function_takes_aws_credentials_from_its_environment_only() {
        use aws_sdk_sqs::config::ProvideCredentials;
        let mut env = base_env();
        env.insert("SQS_QUEUE_URL".into(), "https://sqs.us-east-1.amazonaws.com/1/jobs".into());
        let err = Config::load_in_lambda(&env, Needs { sqs: true, ..Needs::NONE }).await.unwrap_err();
        assert_eq!(err.var, "AWS_ACCESS_KEY_ID");

        env.insert("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into());
        env.insert("AWS_SECRET_ACCESS_KEY".into(), "secret".into());
        env.insert("AWS_SESSION_TOKEN".into(), "token".into());
        let cfg = Config::load_in_lambda(&env, Needs { sqs: true, ..Needs::NONE }).await.unwrap();
        let aws = cfg.aws.expect("an SDK config");
        let credentials = aws.credentials_provider().expect("a provider").provide_credentials().await.unwrap();
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.session_token(), Some("token"));
        assert_eq!(aws.region().map(|r| r.as_ref()), Some("us-east-1"));
    }

    #[tokio::test]
    async fn missing_database_names_the_variable() {
        let mut env = base_env();
        env.remove("DATABASE_URL");
        let err = Config::load(&env, Needs::NONE).await.unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        assert!(!err.to_string().contains('\n'));
    }

    #[tokio::test]
    async fn malformed_number_names_the_variable() {
        let mut env = base_env();
        env.insert("RATE_LIMIT_MAX".into(), "lots".into());
        let err = Config::load(&env, Needs::NONE).await.unwrap_err();
        assert_eq!(err.var, "RATE_LIMIT_MAX");
    }

    #[tokio::test]
    async fn bad_database_url_does_not_echo_password() {
        let mut env = base_env();
        env.insert("DATABASE_URL".into(), "postgres://u:s3cr3t@host:notaport/db".into());
        let err = Config::load(&env, Needs::NONE).await.unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[tokio::test]
    async fn required_secrets_are_enforced_per_need() {
        let env = base_env();
        let err = Config::load(&env, Needs { jwt: true, ..Needs::NONE }).await.unwrap_err();
        assert_eq!(err.var, "JWT_SECRET");

        let mut env = base_env();
        env.insert("JWT_SECRET".into(), "too-short".into());
        let err = Config::load(&env, Needs { jwt: true, ..Needs::NONE }).await.unwrap_err();
        assert!(err.to_string().contains("32 bytes"));
    }

    #[tokio::test]
    async fn plain_and_arn_together_is_an_error() {
        let mut env = base_env();
        env.insert("REDIS_URL_ARN".into(), "arn:aws:secretsmanager:us-east-1:1:secret:x".into());
        let err = Config::load(&env, Needs::NONE).await.unwrap_err();
        assert_eq!(err.var, "REDIS_URL");
    }

    #[test]
    fn webhook_secret_rules() {
        assert!(parse_webhook_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(parse_webhook_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(parse_webhook_secret("whsec_!!!").is_err());
        // 12 bytes is too short.
        assert!(parse_webhook_secret("whsec_AAAAAAAAAAAAAAAA").is_err());
    }

    #[test]
    fn nameservers_must_be_fqdn() {
        assert_eq!(
            parse_nameservers("ns1.example.com., NS2.example.com.").unwrap(),
            vec!["ns1.example.com.", "ns2.example.com."]
        );
        assert!(parse_nameservers("ns1.example.com").is_err());
        assert!(parse_nameservers("").is_err());
        assert!(parse_nameservers("ns1;rm -rf.example.").is_err());
    }

    #[test]
    fn rds_secret_is_parsed() {
        let none = DatabaseTarget::default();
        let cfg = parse_rds_secret(
            "DATABASE_URL_ARN",
            r#"{"username":"app","password":"pw","host":"db.internal","port":6543,"dbname":"mp"}"#,
            &none,
        )
        .unwrap();
        let cfg = &cfg;
        assert_eq!(cfg.get_user(), Some("app"));
        assert_eq!(cfg.get_ports(), &[6543]);
        assert_eq!(cfg.get_dbname(), Some("mp"));
        assert!(parse_rds_secret("DATABASE_URL_ARN", "not json", &none).is_err());
    }

    #[test]
    fn an_rds_managed_secret_of_credentials_only_connects_where_the_env_says() {
        let credentials = r#"{"username":"app","password":"pw"}"#;
        let missing = parse_rds_secret("DATABASE_URL_ARN", credentials, &DatabaseTarget::default()).unwrap_err();
        assert_eq!(missing.var, "DATABASE_HOST");
        let env: Env = [("DATABASE_HOST", "proxy.internal"), ("DATABASE_PORT", "6432"), ("DATABASE_NAME", "mpanel")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let target = DatabaseTarget::of(&env).unwrap();
        let cfg = parse_rds_secret("DATABASE_URL_ARN", credentials, &target).unwrap();
        let cfg = &cfg;
        assert_eq!(cfg.get_hosts(), &[tokio_postgres::config::Host::Tcp("proxy.internal".into())]);
        assert_eq!(cfg.get_ports(), &[6432]);
        assert_eq!(cfg.get_dbname(), Some("mpanel"));
        // The proxy endpoint wins over the instance the secret names.
        let with_host = r#"{"username":"app","password":"pw","host":"db-1.internal","port":5432}"#;
        let cfg = parse_rds_secret("DATABASE_URL_ARN", with_host, &target).unwrap();
        assert_eq!(cfg.get_hosts(), &[tokio_postgres::config::Host::Tcp("proxy.internal".into())]);
        let bad: Env = [("DATABASE_PORT".to_string(), "port".to_string())].into_iter().collect();
        assert_eq!(DatabaseTarget::of(&bad).err().map(|e| e.var), Some("DATABASE_PORT".to_string()));
    }

    #[test]
    fn a_secrets_manager_client_is_built_only_when_a_secret_is_read_by_arn() {
        let aws = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let mut env: Env = [("SQS_QUEUE_URL".to_string(), "http://127.0.0.1:5000/q".to_string())].into_iter().collect();
        assert!(SecretSource::new(&env, Some(&aws)).client.is_none());
        env.insert("JWT_SECRET_ARN".into(), "arn:aws:secretsmanager:us-east-1:1:secret:x".into());
        assert!(SecretSource::new(&env, Some(&aws)).client.is_some());
    }
}
