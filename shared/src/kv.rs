//! Redis: a lazily connected, self-reconnecting handle with a key prefix.
//!
//! Connecting lazily means a process starts (and answers `/api/health`) while
//! Redis is down, and recovers by itself once Redis is back.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::error::{AppError, AppResult};
use crate::secrets::Secret;

#[derive(Clone)]
pub struct Kv {
    client: redis::Client,
    manager: ConnectionManager,
    prefix: String,
}

impl Kv {
    /// `rediss://` URLs trust the RDS bundle's Amazon roots (ElastiCache)
    /// and `ca_files` (`TLS_CA_FILE`); the redis client takes roots as PEM only.
    pub fn new(url: &Secret<String>, prefix: &str, ca_files: &[std::path::PathBuf]) -> anyhow::Result<Kv> {
        let url = url.expose().as_str();
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
        Ok(Kv { client, manager, prefix: prefix.to_string() })
    }

    /// The full key for a logical name (`rl:login:…` → `mpanel:rl:login:…`).
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// A connection handle; cheap to clone, multiplexed.
    pub fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// A connection of its own, for blocking commands (BRPOP) that would
    /// otherwise stall every user of the shared multiplexed connection.
    pub async fn dedicated(&self, timeout: Duration) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(timeout));
        self.client.get_multiplexed_async_connection_with_config(&config).await
    }

    pub async fn ping(&self) -> AppResult<()> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

impl From<redis::RedisError> for AppError {
    fn from(err: redis::RedisError) -> Self {
        AppError::Unavailable(format!("redis: {err}"))
    }
}
