//! `/api/mail-accounts` (`?domain=`), `/api/mail-accounts/{id}`, and
//! `POST /api/mail-accounts/{id}/reset-password` (ADMIN), which returns a
//! new password once and stores only its Argon2id hash.

use axum::http::Method;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::audit_log::{self, Actor, AuditEntry};
use crate::auth::{Permission, password};
use crate::db::one_in_tenant;
use crate::error::{AppError, AppResult};
use crate::http::extract::{Caller, IdPath, Listing};
use crate::http::pagination::{Page, tenant_page};
use crate::http::routes::{ApiRoutes, Doc, QueryParam};
use crate::types::DomainName;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/mail-accounts",
            Permission::ReadData,
            list,
            Doc::new("listMailAccounts", "mail", "Mailboxes")
                .query(&[QueryParam::Text("domain", "Only this domain's mailboxes")])
                .page::<MailAccount>(),
        )
        .route(
            Method::GET,
            "/api/mail-accounts/{id}",
            Permission::ReadData,
            get,
            Doc::new("getMailAccount", "mail", "One mailbox").json::<MailAccount>(200),
        )
        .route(
            Method::POST,
            "/api/mail-accounts/{id}/reset-password",
            Permission::ManageMail,
            reset_password,
            Doc::new("resetMailPassword", "mail", "Set a new random password, shown once").json::<PasswordReset>(200),
        )
        .route(
            Method::GET,
            "/api/ssh-key",
            Permission::WriteServers,
            ssh_key,
            Doc::new("getSshKey", "servers", "This tenant's own SSH public key, to install on its hosting servers")
                .json::<SshKey>(200),
        )
}

/// The tenant's SSH public key (made on first use); jobs for its servers
/// log in with the private half only.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SshKey {
    /// An `authorized_keys` line: `ssh-ed25519 AAAA... mpanel`.
    pub public_key: String,
}

async fn ssh_key(Caller(state, principal): Caller) -> AppResult<axum::Json<SshKey>> {
    let keys = state.tenant_keys.as_deref().ok_or_else(|| {
        AppError::Unavailable("No SSH key store is configured (SSH_KEY_DIR or Secrets Manager).".into())
    })?;
    let public_key = keys.public_key(&state.db, principal.tenant_id).await?;
    Ok(axum::Json(SshKey { public_key }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailAccount {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub address: String,
    pub domain: String,
    pub quota_mb: i32,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, subscription_id, local_part || '@' || domain_name AS address, domain_name, quota_mb, status, created_at";

impl MailAccount {
    fn from_row(row: &Row) -> AppResult<MailAccount> {
        Ok(MailAccount {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            address: row.try_get("address")?,
            domain: row.try_get("domain_name")?,
            quota_mb: row.try_get("quota_mb")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Filters {
    domain: Option<String>,
}

async fn list(
    Caller(state, principal): Caller,
    Listing { filters, page, mut problems }: Listing<Filters>,
) -> AppResult<axum::Json<Page<MailAccount>>> {
    let domain = problems.param("domain", filters.domain, DomainName::parse);
    problems.finish()?;
    tenant_page(
        &state.db,
        principal.tenant_id,
        &format!("SELECT {COLUMNS} FROM mail_accounts WHERE tenant_id = $1 AND ($2::text IS NULL OR domain_name = $2)"),
        ("created_at", "id"),
        &[(&domain.as_ref().map(DomainName::as_str), Type::TEXT)],
        &page,
        MailAccount::from_row,
    )
    .await
}

async fn get(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<axum::Json<MailAccount>> {
    let client = state.db.get().await?;
    let by_id = format!("SELECT {COLUMNS} FROM mail_accounts WHERE id = $1 AND tenant_id = $2");
    Ok(axum::Json(one_in_tenant(&**client, &by_id, id, principal.tenant_id, MailAccount::from_row).await?))
}

async fn reset_password(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<axum::Json<PasswordReset>> {
    let new_password = super::mail::generate_password();
    let hash = password::hash(new_password.clone()).await?;
    let tenant_id = principal.tenant_id;
    let actor = Actor::User(principal.user_id);
    let address = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let row = tx
                .query_typed_opt(
                    "UPDATE mail_accounts SET password_hash = $3, updated_at = now() WHERE id = $1 AND tenant_id = $2
                     RETURNING local_part || '@' || domain_name",
                    &[(&id, Type::UUID), (&tenant_id, Type::UUID), (&hash, Type::TEXT)],
                )
                .await?
                .ok_or(AppError::NotFound)?;
            let address: String = row.try_get(0)?;
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, "mail_account.password_reset")
                    .target("mail_account", id)
                    .details(json!({ "address": address })),
            )
            .await?;
            Ok(address)
        })
    })
    .await?;
    // The only time the password is ever shown.
    Ok(axum::Json(PasswordReset { id, address, password: new_password.expose().clone() }))
}

/// The answer to a reset: the only time the password is ever shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PasswordReset {
    id: Uuid,
    address: String,
    password: String,
}
