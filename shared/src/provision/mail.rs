//! PROVISION_MAIL: the `postmaster@<domain>` mailbox, without a password
//! until staff set one (reset-password shows it once and stores only its
//! Argon2id hash, which Dovecot reads through `dovecot_users`),
//! and the domain's DKIM key: made on the mail server by `mpanel-mail
//! dkim-key` (the private half never leaves it), its public half published
//! as `<selector>._domainkey.<domain>` TXT through PowerDNS.

use base64::Engine;
use serde_json::Value;
use tokio_postgres::types::Type;

use std::process::Output;

use openssh::Session;

use super::dns::{PdnsClient, RecordSet, zone_owner};
use super::hosting::{classify_ssh_error, error_chain, over_ssh};
use super::{Provisioner, Server, Target, assign_server, load_server, load_target};
use crate::error::AppError;
use crate::jobs::{ClaimedJob, JobError};
use crate::secrets::Secret;

pub const POSTMASTER: &str = "postmaster";
/// The DKIM selector of every domain's key.
pub const DKIM_SELECTOR: &str = "mpanel";
const DEFAULT_QUOTA_MB: i64 = 1024;

/// Mailbox quota: `limits.mailboxQuotaMb`, else the plan's `diskMb`, else 1 GiB.
pub fn quota_mb(limits: &Value) -> i32 {
    let pick = |key: &str| limits.get(key).and_then(Value::as_i64).filter(|n| *n > 0);
    pick("mailboxQuotaMb").or_else(|| pick("diskMb")).unwrap_or(DEFAULT_QUOTA_MB).min(i64::from(i32::MAX)) as i32
}

/// A new random mailbox password (shown once, by the reset endpoint).
pub fn generate_password() -> Secret<String> {
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>()))
}

pub async fn provision(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let target = load_target(p.db, job).await?;
    let client = p.db.get().await?;
    let exists = client
        .query_typed_opt(
            "SELECT 1 FROM mail_accounts WHERE lower(local_part || '@' || domain_name) = lower($1 || '@' || $2)",
            &[(&POSTMASTER, Type::TEXT), (&target.domain.as_str(), Type::TEXT)],
        )
        .await?
        .is_some();
    if !exists {
        // No password yet (so no login): an admin sets one with
        // reset-password. Hashing one nobody would see cost an Argon2id run.
        let quota = quota_mb(&target.limits);
        let inserted = client
            .query_typed(
                "INSERT INTO mail_accounts (tenant_id, subscription_id, domain_id, local_part, domain_name, quota_mb)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    (&target.tenant_id, Type::UUID),
                    (&target.subscription_id, Type::UUID),
                    (&target.domain_id, Type::UUID),
                    (&POSTMASTER, Type::TEXT),
                    (&target.domain.as_str(), Type::TEXT),
                    (&quota, Type::INT4),
                ],
            )
            .await;
        match inserted.map_err(AppError::from) {
            // A concurrent attempt created it first: same end state.
            Ok(_) | Err(AppError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(client);
    job.lease.check()?;
    publish_dkim_key(p, &target).await
}

/// The server that holds a domain's mail: the tenant's active MAIL server,
/// else the site's own server.
pub async fn mail_host(p: Provisioner<'_>, target: &Target, assign: bool) -> Result<Option<Server>, JobError> {
    let client = p.db.get().await?;
    let mail_server = client
        .query_typed_opt(
            "SELECT id FROM servers WHERE tenant_id = $1 AND role = 'MAIL' AND status = 'ACTIVE'
             ORDER BY created_at, id LIMIT 1",
            &[(&target.tenant_id, Type::UUID)],
        )
        .await?;
    if let Some(row) = mail_server {
        return Ok(Some(load_server(p.db, row.try_get(0)?).await?));
    }
    if assign {
        return Ok(Some(assign_server(p.db, target).await?));
    }
    let site = client
        .query_typed_opt(
            "SELECT server_id FROM hosting_accounts WHERE subscription_id = $1 ORDER BY created_at DESC LIMIT 1",
            &[(&target.subscription_id, Type::UUID)],
        )
        .await?;
    match site {
        Some(row) => Ok(Some(load_server(p.db, row.try_get(0)?).await?)),
        None => Ok(None),
    }
}

/// Runs `sudo -n mpanel-mail <args>`; exit 3 (not ours) and 2 (refused
/// arguments) are permanent, anything else is worth retrying.
pub async fn mail_command(session: &Session, server: &Server, args: &[&str]) -> Result<Output, JobError> {
    let output = session
        .command("sudo")
        .arg("-n")
        .arg("mpanel-mail")
        .args(args)
        .output()
        .await
        .map_err(|e| classify_ssh_error(&error_chain(&e)))?;
    let stderr: String = String::from_utf8_lossy(&output.stderr).chars().take(500).collect();
    match output.status.code() {
        Some(0) => Ok(output),
        Some(3) => Err(JobError::permanent(format!("mail server {}: {}", server.id, stderr.trim()))),
        Some(2) => Err(JobError::permanent(format!(
            "mail server {}: mpanel-mail refused the arguments (is the mail server setup installed and current?): {}",
            server.id,
            stderr.trim()
        ))),
        code => {
            tracing::warn!(server_id = %server.id, status = ?code, stderr = %stderr.trim(), "mpanel-mail failed");
            Err(JobError::retryable(format!("mail server {}: mpanel-mail exited {code:?}", server.id)))
        }
    }
}

/// A TXT value as DNS strings of at most 255 characters each.
pub fn txt_strings(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    chars.chunks(255).map(|chunk| format!("\"{}\"", chunk.iter().collect::<String>())).collect::<Vec<_>>().join(" ")
}

async fn publish_dkim_key(p: Provisioner<'_>, target: &Target) -> Result<(), JobError> {
    let server = mail_host(p, target, true).await?.ok_or_else(|| JobError::retryable("no mail server"))?;
    let (on, args) = (&server, &["dkim-key", target.domain.as_str(), DKIM_SELECTOR]);
    let output = over_ssh(p, &server, |session| async move { mail_command(&session, on, args).await }).await?;
    let value = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let valid = value.starts_with("v=DKIM1;")
        && value.contains("p=")
        && value.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if !valid || value.len() > 2000 {
        return Err(JobError::permanent(format!("mail server {}: mpanel-mail gave no DKIM record", server.id)));
    }
    let pdns = PdnsClient::new(p)?;
    let zone = target.domain.fqdn();
    let record = RecordSet {
        name: format!("{DKIM_SELECTOR}._domainkey.{zone}"),
        rtype: "TXT",
        contents: vec![txt_strings(&value)],
    };
    // The DNS job may not have run yet: the zone is made the same way (ours).
    pdns.ensure_zone_with(&zone, &zone_owner(target), &[record]).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_txt_values_are_split_into_dns_strings() {
        let value = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(400);
        let strings = txt_strings(&value);
        assert_eq!(strings.matches('"').count(), 4, "{strings}");
        assert_eq!(strings.replace("\" \"", "").trim_matches('"'), value);
    }

    #[test]
    fn quotas() {
        assert_eq!(quota_mb(&json!({"mailboxQuotaMb": 500, "diskMb": 10240})), 500);
        assert_eq!(quota_mb(&json!({"diskMb": 10240})), 10240);
        assert_eq!(quota_mb(&json!({})), 1024);
        assert_eq!(quota_mb(&json!({"diskMb": 0})), 1024);
    }
}
