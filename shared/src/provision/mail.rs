//! PROVISION_MAIL: the `postmaster@<domain>` mailbox, its password stored
//! only as an Argon2id PHC hash (read by Dovecot through `dovecot_users`).

use base64::Engine;
use serde_json::Value;
use tokio_postgres::types::Type;

use super::Provisioner;
use super::load_target;
use crate::auth::password;
use crate::error::AppError;
use crate::jobs::{ClaimedJob, JobError};
use crate::secrets::Secret;

pub const POSTMASTER: &str = "postmaster";
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
    if exists {
        return Ok(());
    }
    // Nobody knows this password: an admin sets one with reset-password.
    let hash = password::hash(generate_password()).await?;
    let quota = quota_mb(&target.limits);
    let inserted = client
        .query_typed(
            "INSERT INTO mail_accounts (tenant_id, subscription_id, domain_id, local_part, domain_name, password_hash, quota_mb)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                (&target.tenant_id, Type::UUID),
                (&target.subscription_id, Type::UUID),
                (&target.domain_id, Type::UUID),
                (&POSTMASTER, Type::TEXT),
                (&target.domain.as_str(), Type::TEXT),
                (&hash, Type::TEXT),
                (&quota, Type::INT4),
            ],
        )
        .await;
    match inserted.map_err(AppError::from) {
        Ok(_) => Ok(()),
        // A concurrent attempt created it first: same end state.
        Err(AppError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotas() {
        assert_eq!(quota_mb(&json!({"mailboxQuotaMb": 500, "diskMb": 10240})), 500);
        assert_eq!(quota_mb(&json!({"diskMb": 10240})), 10240);
        assert_eq!(quota_mb(&json!({})), 1024);
        assert_eq!(quota_mb(&json!({"diskMb": 0})), 1024);
    }
}
