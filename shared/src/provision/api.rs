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
use crate::http::extract::{Caller, DomainFilter, DomainList, IdPath, Json, Listing, domain_page};
use crate::http::pagination::Page;
use crate::http::routes::{ApiRoutes, Doc, QueryParam};

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
            "/api/mail-accounts",
            Permission::ManageMail,
            create_mail_account,
            Doc::new(
                "createMailAccount",
                "mail",
                "A new mailbox (up to the plan's limits.emails); its password is shown once",
            )
            .body::<NewMailAccount>()
            .json::<PasswordReset>(201),
        )
        .route(
            Method::DELETE,
            "/api/mail-accounts/{id}",
            Permission::ManageMail,
            delete_mail_account,
            Doc::new("deleteMailAccount", "mail", "Remove a mailbox: no more logins or mail"),
        )
        .route(
            Method::GET,
            "/api/mail-aliases",
            Permission::ReadData,
            list_aliases,
            Doc::new("listMailAliases", "mail", "Aliases and forwarders")
                .query(&[QueryParam::Text("domain", "Only this domain's aliases")])
                .page::<MailAlias>(),
        )
        .route(
            Method::POST,
            "/api/mail-aliases",
            Permission::ManageMail,
            create_alias,
            Doc::new("createMailAlias", "mail", "An address that forwards to others")
                .body::<NewMailAlias>()
                .json::<MailAlias>(201),
        )
        .route(
            Method::DELETE,
            "/api/mail-aliases/{id}",
            Permission::ManageMail,
            delete_alias,
            Doc::new("deleteMailAlias", "mail", "Remove an alias"),
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
    listing: Listing<DomainFilter>,
) -> AppResult<axum::Json<Page<HostingAccount>>> {
    let select = format!("SELECT {HOSTING_COLUMNS}");
    let list = DomainList { select: &select, tenant: "h.tenant_id", domain: "d.name", key: ("h.created_at", "h.id") };
    domain_page(&state.db, principal.tenant_id, listing, list, HostingAccount::from_row).await
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

async fn list(
    Caller(state, principal): Caller,
    listing: Listing<DomainFilter>,
) -> AppResult<axum::Json<Page<MailAccount>>> {
    let select = format!("SELECT {COLUMNS} FROM mail_accounts");
    let list = DomainList { select: &select, tenant: "tenant_id", domain: "domain_name", key: ("created_at", "id") };
    domain_page(&state.db, principal.tenant_id, listing, list, MailAccount::from_row).await
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

/// A local part as mailboxes and aliases take it: lower case letters,
/// digits and `._+-`, neither starting nor ending with punctuation.
fn parse_local_part(raw: &str) -> Result<String, String> {
    let local = raw.trim().to_ascii_lowercase();
    let inner_ok = local.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._+-".contains(c));
    let ends_ok = local.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && local.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if local.is_empty() || local.len() > 64 || !inner_ok || !ends_ok || local.contains("..") {
        return Err("must be 1 to 64 of a-z, 0-9 and . _ + - (starting and ending with a letter or digit)".into());
    }
    Ok(local)
}

/// `{subscriptionId, localPart}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewMailAccount {
    #[schema(value_type = String, format = Uuid)]
    subscription_id: Field<String>,
    #[schema(value_type = String, max_length = 64)]
    local_part: Field<String>,
}

/// The subscription's live domain and its plan's mailbox limit, checked
/// under the subscription's lock; 404 when it is not this tenant's.
async fn mail_domain(
    tx: &tokio_postgres::Transaction<'_>,
    tenant_id: Uuid,
    subscription_id: Uuid,
) -> AppResult<(Uuid, String, serde_json::Value)> {
    let plan = crate::catalog::lock_plan(tx, tenant_id, subscription_id)
        .await?
        // A body naming another tenant's subscription, or none: 422, not 404.
        .ok_or_else(|| {
            AppError::Validation(vec![crate::error::FieldError::new(
                "subscriptionId",
                "is not a subscription of this tenant",
            )])
        })?;
    if plan.status == "TERMINATED" {
        return Err(AppError::Conflict {
            field: Some("subscriptionId".into()),
            detail: "The subscription is terminated.".into(),
        });
    }
    let (domain_id, domain) = plan.domain.ok_or_else(|| AppError::Conflict {
        field: Some("subscriptionId".into()),
        detail: "The subscription has no domain to hold mail.".into(),
    })?;
    Ok((domain_id, domain, plan.limits))
}

async fn address_taken(tx: &tokio_postgres::Transaction<'_>, local: &str, domain: &str) -> AppResult<bool> {
    let row = tx
        .query_typed_opt(
            "SELECT 1 FROM mail_accounts WHERE lower(local_part || '@' || domain_name) = lower($1 || '@' || $2)
             UNION ALL
             SELECT 1 FROM mail_aliases WHERE lower(local_part || '@' || domain_name) = lower($1 || '@' || $2)",
            &[(&local, Type::TEXT), (&domain, Type::TEXT)],
        )
        .await?;
    Ok(row.is_some())
}

fn address_conflict(address: &str) -> AppError {
    AppError::Conflict { field: Some("localPart".into()), detail: format!("{address} already exists.") }
}

async fn create_mail_account(
    Caller(state, principal): Caller,
    Json(body): Json<NewMailAccount>,
) -> AppResult<(StatusCode, axum::Json<PasswordReset>)> {
    let mut p = Problems::new();
    let subscription_id = p.required("subscriptionId", body.subscription_id, |s: String| crate::types::parse_uuid(&s));
    let local = p.required("localPart", body.local_part, |s: String| parse_local_part(&s));
    let (Some(subscription_id), Some(local)) = (subscription_id, local) else { return Err(p.into_error()) };
    p.finish()?;
    let new_password = super::mail::generate_password();
    let hash = password::hash(new_password.clone()).await?;
    let (tenant_id, actor) = (principal.tenant_id, Actor::User(principal.user_id));
    let (id, address) = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let (domain_id, domain, limits) = mail_domain(tx, tenant_id, subscription_id).await?;
            let address = format!("{local}@{domain}");
            if address_taken(tx, &local, &domain).await? {
                return Err(address_conflict(&address));
            }
            let allowed = limits.get("emails").and_then(serde_json::Value::as_i64).unwrap_or(0);
            let used: i64 = tx
                .query_typed_one(
                    "SELECT count(*) FROM mail_accounts WHERE subscription_id = $1",
                    &[(&subscription_id, Type::UUID)],
                )
                .await?
                .try_get(0)?;
            if used >= allowed {
                return Err(AppError::Conflict {
                    field: Some("subscriptionId".into()),
                    detail: format!("The plan allows {allowed} mailboxes and {used} exist."),
                });
            }
            let quota = super::mail::quota_mb(&limits);
            let id: Uuid = tx
                .query_typed_one(
                    "INSERT INTO mail_accounts (tenant_id, subscription_id, domain_id, local_part, domain_name, password_hash, quota_mb)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[
                        (&tenant_id, Type::UUID),
                        (&subscription_id, Type::UUID),
                        (&domain_id, Type::UUID),
                        (&local, Type::TEXT),
                        (&domain, Type::TEXT),
                        (&hash, Type::TEXT),
                        (&quota, Type::INT4),
                    ],
                )
                .await?
                .try_get(0)?;
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, "mail_account.created")
                    .target("mail_account", id)
                    .details(json!({ "address": address, "subscriptionId": subscription_id })),
            )
            .await?;
            Ok((id, address))
        })
    })
    .await?;
    // The only time the password is ever shown.
    Ok((StatusCode::CREATED, axum::Json(PasswordReset { id, address, password: new_password.expose().clone() })))
}

async fn delete_mail_account(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<StatusCode> {
    delete_address(&state.db, principal.tenant_id, Actor::User(principal.user_id), id, Address::Mailbox).await
}

/// What a mail address of the tenant's is.
#[derive(Clone, Copy)]
enum Address {
    Mailbox,
    Alias,
}

/// Deletes one of the tenant's mailboxes or aliases, audited with its address.
async fn delete_address(
    db: &crate::db::DbPool,
    tenant_id: Uuid,
    actor: Actor,
    id: Uuid,
    address: Address,
) -> AppResult<StatusCode> {
    let (table, target, action) = match address {
        Address::Mailbox => ("mail_accounts", "mail_account", "mail_account.deleted"),
        Address::Alias => ("mail_aliases", "mail_alias", "mail_alias.deleted"),
    };
    crate::db::in_transaction(db, move |tx| {
        Box::pin(async move {
            let row = tx
                .query_typed_opt(
                    &format!(
                        "DELETE FROM {table} WHERE id = $1 AND tenant_id = $2 RETURNING local_part || '@' || domain_name"
                    ),
                    &[(&id, Type::UUID), (&tenant_id, Type::UUID)],
                )
                .await?
                .ok_or(AppError::NotFound)?;
            let address: String = row.try_get(0)?;
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, action).target(target, id).details(json!({ "address": address })),
            )
            .await
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An address that forwards to others.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailAlias {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub address: String,
    pub domain: String,
    pub destinations: Vec<String>,
    pub created_at: DateTime<Utc>,
}

const ALIAS_COLUMNS: &str =
    "id, subscription_id, local_part || '@' || domain_name AS address, domain_name, destinations, created_at";

impl MailAlias {
    fn from_row(row: &Row) -> AppResult<MailAlias> {
        Ok(MailAlias {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            address: row.try_get("address")?,
            domain: row.try_get("domain_name")?,
            destinations: row.try_get("destinations")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// `{subscriptionId, localPart, destinations: [...]}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewMailAlias {
    #[schema(value_type = String, format = Uuid)]
    subscription_id: Field<String>,
    #[schema(value_type = String, max_length = 64)]
    local_part: Field<String>,
    /// 1 to 50 addresses. (Read as JSON and checked here: `Field` takes no lists.)
    #[serde(default)]
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 50)]
    destinations: Option<serde_json::Value>,
}

fn parse_destinations(raw: serde_json::Value) -> Result<Vec<String>, String> {
    let list = raw.as_array().ok_or("must be a list of email addresses")?;
    if list.is_empty() || list.len() > 50 {
        return Err("must hold 1 to 50 addresses".into());
    }
    list.iter()
        .map(|d| d.as_str().ok_or_else(|| "must be a list of email addresses".to_string()))
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .map(|d| crate::types::EmailAddress::parse(d).map(|e| e.as_str().to_ascii_lowercase()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("each {e}"))
}

async fn list_aliases(
    Caller(state, principal): Caller,
    listing: Listing<DomainFilter>,
) -> AppResult<axum::Json<Page<MailAlias>>> {
    let select = format!("SELECT {ALIAS_COLUMNS} FROM mail_aliases");
    let list = DomainList { select: &select, tenant: "tenant_id", domain: "domain_name", key: ("created_at", "id") };
    domain_page(&state.db, principal.tenant_id, listing, list, MailAlias::from_row).await
}

async fn create_alias(
    Caller(state, principal): Caller,
    Json(body): Json<NewMailAlias>,
) -> AppResult<(StatusCode, axum::Json<MailAlias>)> {
    let mut p = Problems::new();
    let subscription_id = p.required("subscriptionId", body.subscription_id, |s: String| crate::types::parse_uuid(&s));
    let local = p.required("localPart", body.local_part, |s: String| parse_local_part(&s));
    let destinations = match body.destinations {
        None => Field::Absent,
        Some(serde_json::Value::Null) => Field::Null,
        Some(value) => Field::Given(value),
    };
    let destinations = p.required("destinations", destinations, parse_destinations);
    let (Some(subscription_id), Some(local), Some(destinations)) = (subscription_id, local, destinations) else {
        return Err(p.into_error());
    };
    p.finish()?;
    let (tenant_id, actor) = (principal.tenant_id, Actor::User(principal.user_id));
    let alias = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let (domain_id, domain, _) = mail_domain(tx, tenant_id, subscription_id).await?;
            if address_taken(tx, &local, &domain).await? {
                return Err(address_conflict(&format!("{local}@{domain}")));
            }
            let row = tx
                .query_typed_one(
                    &format!(
                        "INSERT INTO mail_aliases (tenant_id, subscription_id, domain_id, local_part, domain_name, destinations)
                         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ALIAS_COLUMNS}"
                    ),
                    &[
                        (&tenant_id, Type::UUID),
                        (&subscription_id, Type::UUID),
                        (&domain_id, Type::UUID),
                        (&local, Type::TEXT),
                        (&domain, Type::TEXT),
                        (&destinations, Type::TEXT_ARRAY),
                    ],
                )
                .await?;
            let alias = MailAlias::from_row(&row)?;
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, "mail_alias.created")
                    .target("mail_alias", alias.id)
                    .details(json!({ "address": alias.address, "destinations": alias.destinations })),
            )
            .await?;
            Ok(alias)
        })
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(alias)))
}

async fn delete_alias(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<StatusCode> {
    delete_address(&state.db, principal.tenant_id, Actor::User(principal.user_id), id, Address::Alias).await
}
