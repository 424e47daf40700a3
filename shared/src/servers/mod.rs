//! Hosting servers. A server is registered with its SSH host key, which
//! the workers pin: they connect to nothing else.

pub mod api;

use std::net::IpAddr;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::one_in_tenant;
use crate::error::AppResult;

const KEY_TYPES: [&str; 5] =
    ["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];

/// A public host key line (`ssh-ed25519 AAAA... [comment]`), normalised to
/// `type base64`. The blob must decode and name the same key type inside.
pub fn parse_host_key(raw: &str) -> Result<String, String> {
    let mut parts = raw.split_whitespace();
    let (Some(key_type), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("must be a public key line like \"ssh-ed25519 AAAA...\"".into());
    };
    if !KEY_TYPES.contains(&key_type) {
        return Err(format!("key type must be one of {}", KEY_TYPES.join(", ")));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| "the key is not valid base64".to_string())?;
    let declared = bytes
        .get(..4)
        .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
        .and_then(|len| bytes.get(4..4 + len))
        .ok_or_else(|| "the key data is truncated".to_string())?;
    if declared != key_type.as_bytes() {
        return Err("the key data does not match its type".into());
    }
    Ok(format!("{key_type} {blob}"))
}

/// An SSH host: an IP address or a host name of LDH labels.
pub fn parse_ssh_host(raw: &str) -> Result<String, String> {
    let host = raw.trim().to_ascii_lowercase();
    if host.parse::<IpAddr>().is_ok() {
        return Ok(host);
    }
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if valid { Ok(host) } else { Err("must be an IP address or a host name".into()) }
}

pub fn parse_ssh_user(raw: &str) -> Result<String, String> {
    let valid = !raw.is_empty()
        && raw.len() <= 32
        && raw.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid { Ok(raw.to_string()) } else { Err("must be a Unix user name (a-z, 0-9, _ and -)".into()) }
}

/// An absolute directory without `..`, of safe characters only.
pub fn parse_web_root(raw: &str) -> Result<String, String> {
    let path = raw.trim();
    let safe = path.starts_with('/')
        && path.len() > 1
        && path.len() <= 255
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
        && !path.split('/').any(|segment| segment == ".." || segment == ".");
    if safe {
        Ok(path.trim_end_matches('/').to_string())
    } else {
        Err("must be an absolute path of letters, digits, '.', '_', '-' and '/', without '..'".into())
    }
}

crate::types::named_enum! {
    /// What a server hosts.
    pub enum ServerRole {
        Web,
        Mail,
        Dns,
    }
}

crate::types::named_enum! {
    /// Which key jobs use for a server: its tenant's own, or (servers
    /// registered before tenant keys, until moved) the platform key.
    pub enum SshIdentity {
        Tenant,
        Platform,
    }
}

crate::types::named_enum! {
    /// A disabled server gets no new accounts; its existing sites stay.
    pub enum ServerStatus {
        Active,
        Disabled,
    }
}

pub(crate) fn parse_ip(raw: &str) -> Result<String, String> {
    raw.trim().parse::<IpAddr>().map(|ip| ip.to_string()).map_err(|_| "must be an IPv4 or IPv6 address".into())
}

pub(crate) fn parse_port(n: i64) -> Result<i32, String> {
    if (1..=65535).contains(&n) { Ok(n as i32) } else { Err("must be from 1 to 65535".into()) }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    pub id: Uuid,
    pub name: String,
    pub role: ServerRole,
    pub ip_address: String,
    pub ssh_host: String,
    pub ssh_port: i32,
    pub ssh_user: String,
    pub host_key: String,
    pub web_root: String,
    /// The key jobs use: TENANT (the tenant's own, `GET /api/ssh-key`) or
    /// PLATFORM (registered before tenant keys; move it to TENANT).
    pub ssh_identity: SshIdentity,
    pub status: ServerStatus,
    pub accounts: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str =
    "s.id, s.name, s.role, host(s.ip_address) AS ip_address, s.ssh_host, s.ssh_port, s.ssh_user,
    s.host_key, s.web_root, s.ssh_identity, s.status, s.created_at, s.updated_at,
    (SELECT count(*) FROM hosting_accounts h WHERE h.server_id = s.id AND h.status <> 'TERMINATED') AS accounts";

impl ServerView {
    fn from_row(row: &Row) -> AppResult<ServerView> {
        Ok(ServerView {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            ip_address: row.try_get("ip_address")?,
            ssh_host: row.try_get("ssh_host")?,
            ssh_port: row.try_get("ssh_port")?,
            ssh_user: row.try_get("ssh_user")?,
            host_key: row.try_get("host_key")?,
            web_root: row.try_get("web_root")?,
            ssh_identity: row.try_get("ssh_identity")?,
            status: row.try_get("status")?,
            accounts: row.try_get("accounts")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

pub(crate) async fn load(
    client: &impl tokio_postgres::GenericClient,
    tenant_id: Uuid,
    id: Uuid,
) -> AppResult<ServerView> {
    let sql = format!("SELECT {COLUMNS} FROM servers s WHERE s.id = $1 AND s.tenant_id = $2");
    one_in_tenant(client, &sql, id, tenant_id, ServerView::from_row).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys() {
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
        assert_eq!(parse_host_key(&format!("{ed} root@web1")).unwrap(), ed);
        for bad in [
            "",
            "ssh-ed25519",
            "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
            "ssh-ed25519 not-base64!",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "ssh-ed25519 AAAA",
        ] {
            assert!(parse_host_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_users_roots() {
        assert!(parse_ssh_host("10.0.0.5").is_ok());
        assert!(parse_ssh_host("web1.internal").is_ok());
        assert!(parse_ssh_host("-oProxyCommand=evil").is_err());
        assert!(parse_ssh_host("web 1").is_err());
        assert!(parse_ssh_user("deploy").is_ok());
        assert!(parse_ssh_user("-l root").is_err());
        assert!(parse_ssh_user("Root").is_err());
        assert_eq!(parse_web_root("/srv/www/").unwrap(), "/srv/www");
        for bad in ["srv/www", "/", "/srv/../etc", "/srv/www;rm", "/srv/$(x)", "/srv/ www"] {
            assert!(parse_web_root(bad).is_err(), "{bad}");
        }
    }
}
