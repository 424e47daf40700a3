//! `/api/mail-accounts` (`?domain=`), `/api/mail-accounts/{id}`, and
//! `POST /api/mail-accounts/{id}/reset-password` (ADMIN), which returns a
//! new password once and stores only its Argon2id hash.

use axum::http::{Method, StatusCode};
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
use crate::http::body::{Field, Problems};
use crate::http::extract::{Caller, IdPath, Json, Listing};
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
        .route(
            Method::GET,
            "/api/hosting-accounts",
            Permission::ReadData,
            list_hosting_accounts,
            Doc::new("listHostingAccounts", "hosting", "Sites and their SFTP logins")
                .query(&[QueryParam::Text("domain", "Only this domain's account")])
                .page::<HostingAccount>(),
        )
        .route(
            Method::GET,
            "/api/hosting-accounts/{id}",
            Permission::ReadData,
            get_hosting_account,
            Doc::new("getHostingAccount", "hosting", "One site and its SFTP login").json::<HostingAccount>(200),
        )
        .route(
            Method::POST,
            "/api/hosting-accounts/{id}/reset-password",
            Permission::ManageSiteLogins,
            reset_sftp_password,
            Doc::new("resetSftpPassword", "hosting", "Set a new random SFTP password, shown once")
                .json::<SftpPassword>(200),
        )
        .route(
            Method::POST,
            "/api/hosting-accounts/{id}/ssh-keys",
            Permission::ManageSiteLogins,
            add_sftp_key,
            Doc::new("addSftpKey", "hosting", "Let a public key log in over SFTP")
                .body::<SftpKeyInput>()
                .json::<LoginChange>(202),
        )
}

/// A site on a hosting server and its SFTP login.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostingAccount {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub domain: String,
    /// The SFTP user (`s` + 16 hex digits of the id); null until the site exists.
    pub username: Option<String>,
    pub server_id: Uuid,
    pub status: String,
    pub document_root: String,
    pub created_at: DateTime<Utc>,
}

const HOSTING_COLUMNS: &str = "h.id, h.subscription_id, d.name AS domain, h.username, h.server_id, h.status,
    h.document_root, h.created_at FROM hosting_accounts h JOIN domains d ON d.id = h.domain_id";

impl HostingAccount {
    fn from_row(row: &Row) -> AppResult<HostingAccount> {
        Ok(HostingAccount {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            domain: row.try_get("domain")?,
            username: row.try_get("username")?,
            server_id: row.try_get("server_id")?,
            status: row.try_get("status")?,
            document_root: row.try_get("document_root")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

async fn list_hosting_accounts(
    Caller(state, principal): Caller,
    Listing { filters, page, mut problems }: Listing<Filters>,
) -> AppResult<axum::Json<Page<HostingAccount>>> {
    let domain = problems.param("domain", filters.domain, DomainName::parse);
    problems.finish()?;
    tenant_page(
        &state.db,
        principal.tenant_id,
        &format!("SELECT {HOSTING_COLUMNS} WHERE h.tenant_id = $1 AND ($2::text IS NULL OR d.name = $2)"),
        ("h.created_at", "h.id"),
        &[(&domain.as_ref().map(DomainName::as_str), Type::TEXT)],
        &page,
        HostingAccount::from_row,
    )
    .await
}

async fn get_hosting_account(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
) -> AppResult<axum::Json<HostingAccount>> {
    let client = state.db.get().await?;
    let by_id = format!("SELECT {HOSTING_COLUMNS} WHERE h.id = $1 AND h.tenant_id = $2");
    Ok(axum::Json(one_in_tenant(&**client, &by_id, id, principal.tenant_id, HostingAccount::from_row).await?))
}

/// The answer to an SFTP password reset: the only time it is shown. The
/// login takes it once its job has run on the server (seconds).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SftpPassword {
    id: Uuid,
    username: String,
    password: String,
    sftp_host: String,
    sftp_port: i32,
    /// The job that sets it on the server.
    job_id: Uuid,
}

/// A public key line, `ssh-ed25519 AAAA... [comment]`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SftpKeyInput {
    #[schema(value_type = String)]
    public_key: Field<String>,
}

/// A change to a login, carried out by its job.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoginChange {
    id: Uuid,
    job_id: Uuid,
}

/// The login a change was queued for, and its job.
struct QueuedChange {
    username: String,
    sftp_host: String,
    sftp_port: i32,
    job_id: Uuid,
}

/// A live account's login (409 before its site exists or after it is gone),
/// and an UPDATE_SFTP_LOGIN job carrying `change`, audited, in one transaction.
async fn change_login(
    state: &crate::state::AppState,
    principal: &crate::auth::principal::Principal,
    id: Uuid,
    change: serde_json::Value,
    action: &'static str,
) -> AppResult<QueuedChange> {
    let (tenant_id, actor) = (principal.tenant_id, Actor::User(principal.user_id));
    let queued = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let row = tx
                .query_typed_opt(
                    "SELECT h.subscription_id, h.username, h.status, s.ssh_host, s.ssh_port
                     FROM hosting_accounts h JOIN servers s ON s.id = h.server_id
                     WHERE h.id = $1 AND h.tenant_id = $2 FOR UPDATE OF h",
                    &[(&id, Type::UUID), (&tenant_id, Type::UUID)],
                )
                .await?
                .ok_or(AppError::NotFound)?;
            let (username, status): (Option<String>, String) = (row.try_get(1)?, row.try_get(2)?);
            let Some(username) = username.filter(|_| status != "TERMINATED") else {
                return Err(AppError::Conflict {
                    field: Some("status".into()),
                    detail: format!("The site's login does not exist (the account is {status})."),
                });
            };
            let subscription_id: Uuid = row.try_get(0)?;
            let mut payload = change;
            payload["hostingAccountId"] = json!(id);
            let job: Uuid = tx
                .query_typed_one(
                    "INSERT INTO jobs (tenant_id, subscription_id, type, payload)
                     VALUES ($1, $2, 'UPDATE_SFTP_LOGIN', $3) RETURNING id",
                    &[(&tenant_id, Type::UUID), (&subscription_id, Type::UUID), (&payload, Type::JSONB)],
                )
                .await?
                .try_get(0)?;
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, action)
                    .target("hosting_account", id)
                    .details(json!({ "jobId": job, "username": username })),
            )
            .await?;
            Ok(QueuedChange { username, sftp_host: row.try_get(3)?, sftp_port: row.try_get(4)?, job_id: job })
        })
    })
    .await?;
    state.dispatcher.dispatch(&state.db, &[queued.job_id]).await;
    Ok(queued)
}

async fn reset_sftp_password(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
) -> AppResult<axum::Json<SftpPassword>> {
    let password = super::mail::generate_password();
    let hash = sha_crypt::sha512_simple(password.expose(), &sha_crypt::Sha512Params::default())
        .map_err(|e| AppError::internal(anyhow::anyhow!("sha-512 crypt: {e:?}")))?;
    let change = json!({ "passwordHash": hash });
    let QueuedChange { username, sftp_host, sftp_port, job_id } =
        change_login(&state, &principal, id, change, "hosting_account.password_reset").await?;
    Ok(axum::Json(SftpPassword { id, username, password: password.expose().clone(), sftp_host, sftp_port, job_id }))
}

async fn add_sftp_key(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
    Json(body): Json<SftpKeyInput>,
) -> AppResult<(StatusCode, axum::Json<LoginChange>)> {
    let mut p = Problems::new();
    let key = p.required("publicKey", body.public_key, |raw| crate::servers::parse_host_key(&raw));
    let Some(key) = key.filter(|_| p.is_empty()) else { return Err(p.into_error()) };
    let queued = change_login(&state, &principal, id, json!({ "publicKey": key }), "hosting_account.key_added").await?;
    Ok((StatusCode::ACCEPTED, axum::Json(LoginChange { id, job_id: queued.job_id })))
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
