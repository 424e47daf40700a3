//! Redis: a lazily connected, self-reconnecting handle with a key prefix.
//!
//! Connecting lazily means a process starts (and answers `/api/health`) while
//! Redis is down, and recovers by itself once Redis is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{AppError, AppResult};
use crate::secrets::Secret;

/// Where the Redis URL is read again after the server refused its
/// credentials (an AUTH rotation): the secret behind `REDIS_URL_ARN`.
pub trait UrlSource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<String>>;
}

#[derive(Clone)]
pub struct Kv {
    connected: Arc<RwLock<Connected>>,
    prefix: String,
    ca_files: Vec<std::path::PathBuf>,
    source: Option<Arc<dyn UrlSource>>,
    /// Set while a re-read of the secret is under way (one at a time).
    refreshing: Arc<AtomicBool>,
}

struct Connected {
    client: redis::Client,
    manager: ConnectionManager,
}

fn connect(url: &str, ca_files: &[std::path::PathBuf]) -> anyhow::Result<Connected> {
    let client = if url.starts_with("rediss://") {
        let roots = crate::tls::extra_roots_pem(ca_files).map_err(anyhow::Error::msg)?;
        redis::Client::build_with_tls(url, redis::TlsCertificates { client_tls: None, root_cert: Some(roots) })?
    } else {
        redis::Client::open(url)?
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
    Ok(Connected { client, manager })
}

impl Kv {
    /// `rediss://` URLs trust the RDS bundle's Amazon roots (ElastiCache)
    /// and `ca_files` (`TLS_CA_FILE`); the redis client takes roots as PEM
    /// only. With a `source`, refused credentials make it read the URL again.
    pub fn new(
        url: &Secret<String>,
        prefix: &str,
        ca_files: &[std::path::PathBuf],
        source: Option<Arc<dyn UrlSource>>,
    ) -> anyhow::Result<Kv> {
        let connected = connect(url.expose(), ca_files)?;
        Ok(Kv {
            connected: Arc::new(RwLock::new(connected)),
            prefix: prefix.to_string(),
            ca_files: ca_files.to_vec(),
            source,
            refreshing: Arc::new(AtomicBool::new(false)),
        })
    }

    fn current<T>(&self, read: impl FnOnce(&Connected) -> T) -> T {
        match self.connected.read() {
            Ok(connected) => read(&connected),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }

    /// Runs `op` on the shared connection, again (at most twice more) when
    /// the connection had dropped (the manager reconnects) or Redis refused
    /// our credentials, after reading the URL from its secret again (an AUTH
    /// rotation). Our commands are safe to repeat: a lost job hint is resent
    /// by the sweep, and a rate-limit cell taken twice errs on the strict side.
    pub async fn run<'a, T>(
        &'a self,
        op: impl Fn(ConnectionManager) -> BoxFuture<'a, redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        let mut result = op(self.conn()).await;
        for _ in 0..2 {
            match &result {
                Err(e) if is_refused_credentials(e) => {
                    if !self.read_credentials_again().await {
                        break;
                    }
                }
                Err(e) if e.is_connection_dropped() || e.is_io_error() => {}
                _ => break,
            }
            result = op(self.conn()).await;
        }
        result
    }

    /// One command through [`Kv::run`].
    pub async fn query<T: redis::FromRedisValue + Send + 'static>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        self.run(|mut conn| {
            let cmd = cmd.clone();
            Box::pin(async move { cmd.query_async(&mut conn).await })
        })
        .await
    }

    /// One Lua script through [`Kv::run`] (EVALSHA, loading it when Redis lacks it).
    pub async fn invoke<T: redis::FromRedisValue + Send + 'static>(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[String],
    ) -> redis::RedisResult<T> {
        self.run(|mut conn| {
            let (script, keys, args) = (script.clone(), keys.to_vec(), args.to_vec());
            Box::pin(async move {
                let mut invocation = script.prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                for arg in &args {
                    invocation.arg(arg);
                }
                invocation.invoke_async(&mut conn).await
            })
        })
        .await
    }

    /// Connects with the URL its secret holds now; false when there is no
    /// secret, another task is already at it, or the secret cannot be used.
    async fn read_credentials_again(&self) -> bool {
        let Some(source) = &self.source else { return false };
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return false;
        }
        let done = match source.fetch().await.and_then(|url| connect(&url, &self.ca_files)) {
            Ok(fresh) => {
                match self.connected.write() {
                    Ok(mut slot) => *slot = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
                tracing::info!("redis refused its credentials: reconnected with the secret read again");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis refused its credentials and its secret could not be used");
                false
            }
        };
        self.refreshing.store(false, Ordering::SeqCst);
        done
    }

    /// The full key for a logical name (`rl:login:…` → `mpanel:rl:login:…`).
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// A connection handle; cheap to clone, multiplexed. Commands go
    /// through [`Kv::run`], which recovers from dropped connections and
    /// rotated credentials.
    pub fn conn(&self) -> ConnectionManager {
        self.current(|c| c.manager.clone())
    }

    /// A connection of its own, for blocking commands (BRPOP) that would
    /// otherwise stall every user of the shared multiplexed connection.
    pub async fn dedicated(&self, timeout: Duration) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(timeout));
        let client = self.current(|c| c.client.clone());
        let connected = client.get_multiplexed_async_connection_with_config(&config).await;
        if let Err(e) = &connected
            && is_refused_credentials(e)
        {
            self.read_credentials_again().await;
        }
        connected
    }

    pub async fn ping(&self) -> AppResult<()> {
        let _: String =
            self.run(|mut conn| Box::pin(async move { redis::cmd("PING").query_async(&mut conn).await })).await?;
        Ok(())
    }
}

fn is_refused_credentials(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::AuthenticationFailed || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
}

impl From<redis::RedisError> for AppError {
    fn from(err: redis::RedisError) -> Self {
        AppError::Unavailable(format!("redis: {err}"))
    }
}
