//! Postgres: the pool, migrations, a transaction helper, and the map from
//! unique constraints to the API field they protect.
//!
//! Queries use `query_typed*` / `execute_typed`-style calls (unnamed
//! statements, one round trip) rather than `prepare`, because named prepared
//! statements pin connections in RDS Proxy.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::future::BoxFuture;
use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, Row};
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::secrets::Secret;
use crate::tls::SslMode;

pub use deadpool_postgres::Pool as DbPool;
/// A connection borrowed from the pool (derefs to `tokio_postgres::Client`).
pub type PooledClient = deadpool_postgres::Object;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// How long a request waits for a pooled connection before answering 503.
const POOL_WAIT: Duration = Duration::from_secs(5);

/// Where and how to connect: the driver's settings and the TLS they need.
#[derive(Clone)]
pub struct DbConfig {
    pub connect: tokio_postgres::Config,
    pub tls: DbTls,
}

/// The `sslmode` and the extra roots (`sslrootcert`, `TLS_CA_FILE`).
#[derive(Debug, Clone)]
pub struct DbTls {
    pub mode: SslMode,
    pub roots: Vec<std::path::PathBuf>,
}

impl DbConfig {
    /// Plaintext, as for a database on loopback.
    pub fn plain(connect: tokio_postgres::Config) -> DbConfig {
        let mut connect = connect;
        connect.ssl_mode(tokio_postgres::config::SslMode::Disable);
        DbConfig { connect, tls: DbTls { mode: SslMode::Disable, roots: Vec::new() } }
    }

    /// The connector for this configuration's TLS; none when disabled (a
    /// database on loopback), which spares every cold start the root store.
    fn connector(&self) -> anyhow::Result<Option<MakeRustlsConnect>> {
        if self.tls.mode == SslMode::Disable {
            return Ok(None);
        }
        let client = crate::tls::client_config(self.tls.mode, &self.tls.roots).map_err(anyhow::Error::msg)?;
        Ok(Some(MakeRustlsConnect::new(client)))
    }
}

/// Where a rotated database password is read again: the secret behind
/// `DATABASE_URL_ARN`.
pub trait PasswordSource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<String>>;
}

/// Opens pooled connections. When the server refuses the password (SQLSTATE
/// 28P01, as after a rotation), it reads the secret again once and retries;
/// a password that worked is kept for the connections after it.
struct RotatingConnect {
    /// None: plaintext (`sslmode=disable`).
    tls: Option<MakeRustlsConnect>,
    source: Option<std::sync::Arc<dyn PasswordSource>>,
    rotated: std::sync::RwLock<Option<String>>,
}

impl RotatingConnect {
    fn latest_password(&self) -> Option<String> {
        self.rotated.read().map(|p| p.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn keep(&self, password: String) {
        match self.rotated.write() {
            Ok(mut slot) => *slot = Some(password),
            Err(poisoned) => *poisoned.into_inner() = Some(password),
        }
    }
}

type Connected = (tokio_postgres::Client, tokio::task::JoinHandle<()>);

async fn connect_once(
    config: &tokio_postgres::Config,
    tls: Option<&MakeRustlsConnect>,
) -> Result<Connected, tokio_postgres::Error> {
    let task = match tls {
        Some(tls) => {
            let (client, connection) = config.connect(tls.clone()).await?;
            (client, spawn_connection(connection))
        }
        None => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            (client, spawn_connection(connection))
        }
    };
    Ok(task)
}

fn spawn_connection<F>(connection: F) -> tokio::task::JoinHandle<()>
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "database connection ended");
        }
    })
}

impl deadpool_postgres::Connect for RotatingConnect {
    fn connect(&self, pg_config: &tokio_postgres::Config) -> BoxFuture<'_, Result<Connected, tokio_postgres::Error>> {
        let mut config = pg_config.clone();
        Box::pin(async move {
            if let Some(password) = self.latest_password() {
                config.password(password);
            }
            let refused = match connect_once(&config, self.tls.as_ref()).await {
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD) => e,
                other => return other,
            };
            let Some(source) = &self.source else { return Err(refused) };
            let fresh = match source.fetch().await {
                Ok(fresh) => fresh,
                Err(e) => {
                    tracing::warn!(error = %e, "the database refused the password and its secret could not be read again");
                    return Err(refused);
                }
            };
            config.password(fresh.clone());
            let connected = connect_once(&config, self.tls.as_ref()).await?;
            tracing::info!("the database password was rotated: connected with the secret read again");
            self.keep(fresh);
            Ok(connected)
        })
    }
}

pub fn pool(
    config: &Secret<DbConfig>,
    size: usize,
    password_source: Option<std::sync::Arc<dyn PasswordSource>>,
) -> anyhow::Result<Pool> {
    let config = config.expose();
    let connect = RotatingConnect { tls: config.connector()?, source: password_source, rotated: Default::default() };
    let manager = Manager::from_connect(
        config.connect.clone(),
        connect,
        ManagerConfig {
            // A recycled connection is handed out unless its connection task
            // has seen the socket close (a Postgres restart ends every one):
            // no round trip per checkout. A restart still costs only the
            // requests in flight, not a dead pool (the fault suite restarts it).
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_WAIT))
        .recycle_timeout(Some(POOL_WAIT))
        .build()?)
}

/// The embedded migrations (`migrations/V*.sql`).
pub fn migrations() -> Vec<refinery::Migration> {
    embedded::migrations::runner().get_migrations().clone()
}

/// Applies the given migrations, refusing when an applied one was changed
/// (checksum) or is missing. Serialised with an advisory lock so concurrent
/// deploys or test processes do not race.
pub async fn migrate_with(
    config: &Secret<DbConfig>,
    migrations: &[refinery::Migration],
) -> anyhow::Result<refinery::Report> {
    const MIGRATION_LOCK: i64 = 0x6d70_616e_656c; // "mpanel"
    let config = config.expose();
    let (mut client, conn_task) = connect_once(&config.connect, config.connector()?.as_ref()).await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = refinery::Runner::new(migrations)
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .run_async(&mut client)
        .await;
    // The lock dies with the session anyway; unlocking is a courtesy.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    drop(client);
    let _ = conn_task.await;
    Ok(result?)
}

pub async fn migrate(config: &Secret<DbConfig>) -> anyhow::Result<refinery::Report> {
    migrate_with(config, &migrations()).await
}

/// Every row of `sql` (whose `$1` is an id and `$2` the tenant) as a `T`:
/// each read of this API is scoped to the caller's tenant this way.
pub async fn all_in_tenant<T>(
    client: &impl GenericClient,
    sql: &str,
    id: Uuid,
    tenant_id: Uuid,
    from_row: impl Fn(&Row) -> AppResult<T>,
) -> AppResult<Vec<T>> {
    let rows = client.query_typed(sql, &[(&id, Type::UUID), (&tenant_id, Type::UUID)]).await?;
    rows.iter().map(from_row).collect()
}

/// The one row of `sql` (as for [`all_in_tenant`]); 404 when there is none.
pub async fn one_in_tenant<T>(
    client: &impl GenericClient,
    sql: &str,
    id: Uuid,
    tenant_id: Uuid,
    from_row: impl Fn(&Row) -> AppResult<T>,
) -> AppResult<T> {
    let row = client.query_typed_opt(sql, &[(&id, Type::UUID), (&tenant_id, Type::UUID)]).await?;
    row.as_ref().map(from_row).ok_or(AppError::NotFound)?
}

/// Fresh connections tried when a pooled one turns out dead at its first
/// statement. With `RecyclingMethod::Fast` a connection whose session ended
/// while it sat idle (a restart, a terminated backend, a rotated password)
/// is handed out until its connection task has seen the close; nothing has
/// run on it yet, so another connection may take the work over.
const STALE_RETRIES: usize = 3;

/// The session behind this connection is gone (not a statement's error).
fn session_ended(err: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if let Some(db) = err.as_db_error() {
        return db.code().code().starts_with("08")
            || [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN].contains(db.code());
    }
    connection_lost(err)
}

/// The client's connection is gone (closed, or its socket failed): nothing
/// more can run on it.
fn connection_lost(err: &tokio_postgres::Error) -> bool {
    err.is_closed() || std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>())
}

/// Runs `work` in one transaction: commit on `Ok`, roll back on `Err` (the
/// transaction is dropped unfinished, which rolls it back). A connection
/// whose session ended while idle fails its `BEGIN` and is replaced.
pub async fn in_transaction<T, F>(pool: &Pool, work: F) -> AppResult<T>
where
    T: Send,
    F: for<'t> FnOnce(&'t tokio_postgres::Transaction<'_>) -> BoxFuture<'t, AppResult<T>> + Send,
{
    let mut client = pool.get().await?;
    let mut retries = STALE_RETRIES;
    loop {
        let failed = match client.transaction().await {
            Ok(tx) => {
                let value = work(&tx).await?;
                tx.commit().await?;
                return Ok(value);
            }
            Err(e) => e,
        };
        if retries == 0 || !session_ended(&failed) {
            return Err(failed.into());
        }
        retries -= 1;
        // Out of the pool for good, not back into it.
        drop(deadpool_postgres::Object::take(client));
        client = pool.get().await?;
    }
}

/// Cheap readiness probe; a connection whose session ended while idle is
/// replaced, as in [`in_transaction`].
pub async fn ping(pool: &Pool) -> AppResult<()> {
    let mut retries = STALE_RETRIES;
    loop {
        let client = pool.get().await?;
        match client.query_typed("SELECT 1", &[]).await {
            Ok(_) => return Ok(()),
            Err(e) if retries > 0 && session_ended(&e) => {
                retries -= 1;
                drop(deadpool_postgres::Object::take(client));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Maps a unique constraint (or unique index) name to the API field it
/// protects, so a clash becomes a 409 that names the field.
pub fn constraint_field(constraint: &str) -> Option<&'static str> {
    Some(match constraint {
        "tenants_slug_key" => "slug",
        "users_email_key" => "email",
        "servers_tenant_name_key" => "name",
        "products_tenant_slug_key" => "slug",
        "prices_tenant_slug_key" => "slug",
        "customers_tenant_email_key" => "customer.email",
        "orders_tenant_external_id_key" => "externalOrderId",
        "domains_name_held_key" => "domain",
        "dns_zones_name_key" => "domain",
        "mail_accounts_address_key" => "address",
        "webhook_deliveries_source_webhook_id_key" => "webhook-id",
        _ => return None,
    })
}

/// Database errors: connection trouble is 503 (retry later); unique-key
/// clashes are 409 naming the field; everything else is internal.
impl From<tokio_postgres::Error> for AppError {
    fn from(err: tokio_postgres::Error) -> Self {
        if let Some(db) = err.as_db_error() {
            if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
                let field = db.constraint().and_then(constraint_field).unwrap_or("id");
                return AppError::conflict(field, format!("{field} is already in use"));
            }
            // Connection exceptions (08), resources (53) and operator
            // intervention (57, e.g. a restart) are outages: retry later.
            let class = &db.code().code()[..2];
            if matches!(class, "08" | "53" | "57") {
                return AppError::Unavailable(format!("database: {}", db.message()));
            }
            return AppError::Internal(anyhow::Error::new(err).context("database error"));
        }
        if connection_lost(&err) {
            return AppError::Unavailable(format!("database: {err}"));
        }
        AppError::Internal(anyhow::Error::new(err).context("database error"))
    }
}

impl From<deadpool_postgres::PoolError> for AppError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => AppError::Unavailable(format!("database pool: {other}")),
        }
    }
}
