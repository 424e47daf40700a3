//! Staff users. Creation is shared by `mpanel create-user` and the API.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::audit_log::{self, Actor, AuditEntry};
use crate::auth::Role;
use crate::error::{AppError, AppResult};
use crate::http::pagination::{Page, PageRequest, fetch_page};
use crate::types::{DisplayName, EmailAddress, Named};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl User {
    fn from_row(row: &Row) -> AppResult<User> {
        Ok(User {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            email: row.try_get("email")?,
            display_name: row.try_get("display_name")?,
            role: row.try_get("role")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const COLUMNS: &str = "id, tenant_id, email, display_name, role, status, created_at";

pub struct NewUser {
    pub tenant_id: Uuid,
    pub email: EmailAddress,
    pub role: Role,
    pub display_name: Option<DisplayName>,
    /// Argon2id PHC string (see `auth::password::hash`).
    pub password_hash: String,
}

pub async fn create(client: &impl GenericClient, new: &NewUser, actor: Actor) -> AppResult<User> {
    let display_name = new.display_name.as_ref().map(DisplayName::as_str);
    let row = client
        .query_typed_one(
            &format!(
                "INSERT INTO users (tenant_id, email, password_hash, display_name, role)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[
                (&new.tenant_id, Type::UUID),
                (&new.email.as_str(), Type::TEXT),
                (&new.password_hash, Type::TEXT),
                (&display_name, Type::TEXT),
                (&new.role, Type::TEXT),
            ],
        )
        .await?;
    let user = User::from_row(&row)?;
    audit_log::record(
        client,
        &AuditEntry::new(Some(user.tenant_id), actor, "user.created")
            .target("user", user.id)
            .details(json!({ "email": user.email, "role": user.role })),
    )
    .await?;
    Ok(user)
}

pub async fn find_by_email(client: &impl GenericClient, email: &EmailAddress) -> AppResult<Option<User>> {
    let row = client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)"),
            &[(&email.as_str(), Type::TEXT)],
        )
        .await?;
    row.as_ref().map(User::from_row).transpose()
}

/// Replaces a user's password hash (and records when, so older sessions can be revoked).
pub async fn set_password_hash(
    client: &impl GenericClient,
    user_id: Uuid,
    password_hash: &str,
    actor: Actor,
) -> AppResult<()> {
    let row = client
        .query_typed_opt(
            "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now()
             WHERE id = $1 RETURNING tenant_id",
            &[(&user_id, Type::UUID), (&password_hash, Type::TEXT)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let tenant_id: Uuid = row.try_get(0)?;
    audit_log::record(
        client,
        &AuditEntry::new(Some(tenant_id), actor, "user.password_changed").target("user", user_id),
    )
    .await?;
    Ok(())
}

pub mod api;

/// A user of `tenant_id`, or `None` (also for other tenants' users).
pub async fn find_in_tenant(client: &impl GenericClient, tenant_id: Uuid, id: Uuid) -> AppResult<Option<User>> {
    let row = client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE id = $1 AND tenant_id = $2"),
            &[(&id, Type::UUID), (&tenant_id, Type::UUID)],
        )
        .await?;
    row.as_ref().map(User::from_row).transpose()
}

pub async fn list(client: &impl GenericClient, tenant_id: Uuid, page: &PageRequest) -> AppResult<Page<User>> {
    let filtered = format!("SELECT {COLUMNS} FROM users WHERE tenant_id = $1");
    fetch_page(client, &filtered, ("created_at", "id"), &[(&tenant_id, Type::UUID)], page, User::from_row).await
}

/// The fields a PATCH may change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub display_name: Option<Option<DisplayName>>,
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
}

/// Applies changes within the caller's transaction. Disabling a user or
/// changing their password ends all their sessions.
pub async fn update(
    client: &impl GenericClient,
    tenant_id: Uuid,
    id: Uuid,
    changes: &UserChanges,
    actor: Actor,
) -> AppResult<User> {
    let display_name = changes.display_name.as_ref().map(|n| n.as_ref().map(|n| n.as_str().to_string()));
    let role = changes.role.map(Role::as_str);
    let status = changes.active.map(|a| if a { "ACTIVE" } else { "DISABLED" });
    let row = client
        .query_typed_opt(
            &format!(
                "UPDATE users SET
                    display_name = CASE WHEN $3 THEN $4 ELSE display_name END,
                    role = COALESCE($5, role),
                    status = COALESCE($6, status),
                    password_hash = COALESCE($7, password_hash),
                    password_changed_at = CASE WHEN $7 IS NULL THEN password_changed_at ELSE now() END,
                    updated_at = now()
                 WHERE id = $1 AND tenant_id = $2
                 RETURNING {COLUMNS}"
            ),
            &[
                (&id, Type::UUID),
                (&tenant_id, Type::UUID),
                (&display_name.is_some(), Type::BOOL),
                (&display_name.flatten(), Type::TEXT),
                (&role, Type::TEXT),
                (&status, Type::TEXT),
                (&changes.password_hash, Type::TEXT),
            ],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let user = User::from_row(&row)?;
    if changes.active == Some(false) || changes.password_hash.is_some() {
        crate::auth::sessions::revoke_all_for_user(client, user.id).await?;
    }
    let mut changed = serde_json::Map::new();
    if changes.display_name.is_some() {
        changed.insert("displayName".into(), json!(user.display_name));
    }
    if let Some(role) = changes.role {
        changed.insert("role".into(), json!(role));
    }
    if changes.active.is_some() {
        changed.insert("status".into(), json!(user.status));
    }
    if changes.password_hash.is_some() {
        changed.insert("password".into(), json!("changed"));
    }
    audit_log::record(
        client,
        &AuditEntry::new(Some(tenant_id), actor, "user.updated")
            .target("user", user.id)
            .details(serde_json::Value::Object(changed)),
    )
    .await?;
    Ok(user)
}
