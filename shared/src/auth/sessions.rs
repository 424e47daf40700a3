//! Sessions: login, refresh-token rotation with reuse detection, logout.
//! A session is a refresh-token family; revoking the family ends the
//! session's access tokens as well (see `principal`).

use chrono::{Duration, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::Role;
use super::client::ClientMeta;
use super::password;
use super::tokens::{ACCESS_TOKEN_SECS, REFRESH_TOKEN_DAYS, TokenKeys, hash_refresh_token, new_refresh_token};
use crate::audit_log::{self, Actor, AuditEntry};
use crate::db::DbPool;
use crate::error::{AppError, AppResult};
use crate::ratelimit::{Limit, RateLimiter};
use crate::secrets::Secret;
use crate::types::EmailAddress;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionUser {
    pub id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub tenant_id: Uuid,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub user: SessionUser,
}

/// Looks up a user for login or refresh, with the tenant's status.
struct LoginRow {
    user: SessionUser,
    password_hash: String,
    user_active: bool,
    tenant_active: bool,
}

async fn login_row(
    client: &impl GenericClient,
    by: &str,
    value: &(dyn tokio_postgres::types::ToSql + Sync),
    ty: Type,
) -> AppResult<Option<LoginRow>> {
    let sql = format!(
        "SELECT u.id, u.email, u.display_name, u.role, u.tenant_id, u.password_hash,
                u.status = 'ACTIVE', t.status = 'ACTIVE'
         FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE {by}"
    );
    let Some(row) = client.query_typed_opt(&sql, &[(value, ty)]).await? else {
        return Ok(None);
    };
    Ok(Some(LoginRow {
        user: SessionUser {
            id: row.try_get(0)?,
            email: row.try_get(1)?,
            display_name: row.try_get(2)?,
            role: row.try_get(3)?,
            tenant_id: row.try_get(4)?,
        },
        password_hash: row.try_get(5)?,
        user_active: row.try_get(6)?,
        tenant_active: row.try_get(7)?,
    }))
}

/// What sign-in, refresh and sign-out use: the database, the login-failure
/// limiter and the token keys (absent in processes without a JWT secret).
#[derive(Clone, Copy)]
pub struct Sessions<'a> {
    pub db: &'a DbPool,
    pub limiter: &'a RateLimiter,
    /// Failed logins per (account, client) and per client.
    pub login_limit: Limit,
    /// Failed logins per account from every client together.
    pub login_ceiling: Limit,
    pub keys: Option<&'a TokenKeys>,
}

/// The one 401 of login, identical for unknown emails and wrong passwords.
fn bad_credentials() -> AppError {
    AppError::Unauthorized
}

pub async fn login(
    sessions: Sessions<'_>,
    email: &str,
    password_text: Secret<String>,
    meta: &ClientMeta,
) -> AppResult<TokenPair> {
    let normalized = email.trim().to_lowercase();
    let client_key = meta.ip_key();
    let pair_bucket = format!("login:pair:{normalized}:{client_key}");
    let account_bucket = format!("login:account:{normalized}");
    let ip_bucket = format!("login:ip:{client_key}");
    let (limit, ceiling) = (sessions.login_limit, sessions.login_ceiling);
    // Brute-force guard, failing closed (a Redis outage answers 503): this
    // attempt is counted, atomically, before the password is checked, so
    // parallel guesses cannot all pass; a success gives it back.
    sessions
        .limiter
        .consume_all(&[(&pair_bucket, limit), (&account_bucket, ceiling), (&ip_bucket, limit)])
        .await?
        .check()?;

    let client = sessions.db.get().await?;
    let row = match EmailAddress::parse(&normalized) {
        Ok(email) => login_row(&**client, "lower(u.email) = lower($1)", &email.as_str(), Type::TEXT).await?,
        Err(_) => None,
    };
    // Unknown emails are verified against a dummy hash: same time, same answer.
    let matched = password::verify(password_text, row.as_ref().map(|r| r.password_hash.clone())).await?;
    let row = match (row, matched) {
        (Some(row), true) => row,
        (row, _) => {
            let mut entry =
                AuditEntry::new(row.as_ref().map(|r| r.user.tenant_id), Actor::Anonymous, "auth.login_failed")
                    .details(json!({ "email": normalized.chars().take(254).collect::<String>() }));
            if let Some(r) = &row {
                entry = entry.target("user", r.user.id);
            }
            entry.ip = meta.ip;
            entry.user_agent = meta.user_agent.clone();
            audit_log::record(&**client, &entry).await?;
            return Err(bad_credentials());
        }
    };
    // The right password: no failure to count, and this client's earlier ones are forgiven.
    sessions.limiter.reset(&pair_bucket).await?;
    sessions.limiter.refund(&account_bucket, ceiling).await?;
    sessions.limiter.refund(&ip_bucket, limit).await?;
    if !row.user_active || !row.tenant_active {
        let mut entry = AuditEntry::new(Some(row.user.tenant_id), Actor::User(row.user.id), "auth.login_refused")
            .target("user", row.user.id)
            .details(json!({ "reason": if row.user_active { "tenant disabled" } else { "user disabled" } }));
        entry.ip = meta.ip;
        entry.user_agent = meta.user_agent.clone();
        audit_log::record(&**client, &entry).await?;
        return Err(AppError::Forbidden("This account is disabled.".into()));
    }
    let actor = Actor::User(row.user.id);
    open_session(sessions, row.user, meta, actor, "auth.login").await
}

/// Starts a session for an active user of an active tenant without a
/// password, for the operator CLI (`mpanel event render`): whoever runs it
/// holds the database and the JWT secret anyway. Audited as `auth.session_issued`.
pub async fn operator_session(sessions: Sessions<'_>, user_id: Uuid) -> AppResult<TokenPair> {
    let client = sessions.db.get().await?;
    let row = login_row(&**client, "u.id = $1", &user_id, Type::UUID).await?.ok_or(AppError::NotFound)?;
    if !row.user_active || !row.tenant_active {
        return Err(AppError::Forbidden("This account is disabled.".into()));
    }
    let meta = ClientMeta { ip: None, user_agent: Some("mpanel-cli".into()) };
    open_session(sessions, row.user, &meta, Actor::System, "auth.session_issued").await
}

/// A new refresh-token family, recorded with its audit row in one transaction.
async fn open_session(
    sessions: Sessions<'_>,
    user: SessionUser,
    meta: &ClientMeta,
    actor: Actor,
    action: &'static str,
) -> AppResult<TokenPair> {
    let family_id = Uuid::new_v4();
    let (refresh_token, refresh_hash) = new_refresh_token();
    let tx_user = user.clone();
    let tx_meta = meta.clone();
    crate::db::in_transaction(sessions.db, move |tx| {
        Box::pin(async move {
            insert_refresh_token(tx, &tx_user, family_id, &refresh_hash, &tx_meta).await?;
            tx.query_typed("UPDATE users SET last_login_at = now() WHERE id = $1", &[(&tx_user.id, Type::UUID)])
                .await?;
            let mut entry = AuditEntry::new(Some(tx_user.tenant_id), actor, action)
                .target("user", tx_user.id)
                .details(json!({ "sessionId": family_id }));
            entry.ip = tx_meta.ip;
            entry.user_agent = tx_meta.user_agent.clone();
            audit_log::record(tx, &entry).await?;
            Ok(())
        })
    })
    .await?;
    token_pair(sessions, user, family_id, refresh_token)
}

async fn insert_refresh_token(
    client: &impl GenericClient,
    user: &SessionUser,
    family_id: Uuid,
    hash: &[u8; 32],
    meta: &ClientMeta,
) -> AppResult<Uuid> {
    let expires_at = Utc::now() + Duration::days(REFRESH_TOKEN_DAYS);
    let row = client
        .query_typed_one(
            "INSERT INTO refresh_tokens (tenant_id, user_id, family_id, token_hash, expires_at, ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[
                (&user.tenant_id, Type::UUID),
                (&user.id, Type::UUID),
                (&family_id, Type::UUID),
                (&hash.as_slice(), Type::BYTEA),
                (&expires_at, Type::TIMESTAMPTZ),
                (&meta.ip, Type::INET),
                (&meta.user_agent, Type::TEXT),
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

fn token_pair(
    sessions: Sessions<'_>,
    user: SessionUser,
    family_id: Uuid,
    refresh_token: Secret<String>,
) -> AppResult<TokenPair> {
    let keys = sessions.keys.ok_or_else(|| AppError::internal(anyhow::anyhow!("JWT secret not configured")))?;
    let access_token = keys.issue(user.id, user.tenant_id, user.role, family_id)?;
    Ok(TokenPair {
        access_token,
        refresh_token: refresh_token.expose().clone(),
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_SECS,
        user,
    })
}

enum RefreshOutcome {
    Rotated(SessionUser, Uuid, Secret<String>),
    /// A dead token was presented: its family is now revoked (committed).
    Reused,
    Invalid,
}

/// Rotates a refresh token. Presenting a used or revoked one revokes the
/// whole family and writes an audit row; the revocation is committed even
/// though the caller gets a 401.
pub async fn refresh(sessions: Sessions<'_>, presented: &str, meta: &ClientMeta) -> AppResult<TokenPair> {
    let hash = hash_refresh_token(presented);
    let meta_tx = meta.clone();
    let outcome = crate::db::in_transaction(sessions.db, move |tx| {
        Box::pin(async move {
            let Some(row) = tx
                .query_typed_opt(
                    "SELECT id, family_id, user_id, tenant_id, used_at IS NOT NULL OR revoked_at IS NOT NULL,
                            expires_at <= now()
                     FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                    &[(&hash.as_slice(), Type::BYTEA)],
                )
                .await?
            else {
                return Ok(RefreshOutcome::Invalid);
            };
            let token_id: Uuid = row.try_get(0)?;
            let family_id: Uuid = row.try_get(1)?;
            let user_id: Uuid = row.try_get(2)?;
            let tenant_id: Uuid = row.try_get(3)?;
            let dead: bool = row.try_get(4)?;
            let expired: bool = row.try_get(5)?;
            if dead {
                revoke_family(tx, family_id).await?;
                let mut entry = AuditEntry::new(Some(tenant_id), Actor::User(user_id), "auth.refresh_reuse")
                    .target("user", user_id)
                    .details(json!({ "sessionId": family_id }));
                entry.ip = meta_tx.ip;
                entry.user_agent = meta_tx.user_agent.clone();
                audit_log::record(tx, &entry).await?;
                return Ok(RefreshOutcome::Reused);
            }
            if expired {
                return Ok(RefreshOutcome::Invalid);
            }
            let Some(login) = login_row(tx, "u.id = $1", &user_id, Type::UUID).await? else {
                return Ok(RefreshOutcome::Invalid);
            };
            if !login.user_active || !login.tenant_active {
                revoke_family(tx, family_id).await?;
                return Ok(RefreshOutcome::Invalid);
            }
            let (new_token, new_hash) = new_refresh_token();
            let new_id = insert_refresh_token(tx, &login.user, family_id, &new_hash, &meta_tx).await?;
            tx.query_typed(
                "UPDATE refresh_tokens SET used_at = now(), replaced_by = $2 WHERE id = $1",
                &[(&token_id, Type::UUID), (&new_id, Type::UUID)],
            )
            .await?;
            Ok(RefreshOutcome::Rotated(login.user, family_id, new_token))
        })
    })
    .await?;
    match outcome {
        RefreshOutcome::Rotated(user, family_id, token) => token_pair(sessions, user, family_id, token),
        RefreshOutcome::Reused | RefreshOutcome::Invalid => Err(AppError::Unauthorized),
    }
}

async fn revoke_family(client: &impl GenericClient, family_id: Uuid) -> AppResult<()> {
    client
        .query_typed(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
            &[(&family_id, Type::UUID)],
        )
        .await?;
    Ok(())
}

/// Ends one session (logout).
pub async fn logout(
    sessions: Sessions<'_>,
    user_id: Uuid,
    tenant_id: Uuid,
    session_id: Uuid,
    meta: &ClientMeta,
) -> AppResult<()> {
    let meta = meta.clone();
    crate::db::in_transaction(sessions.db, move |tx| {
        Box::pin(async move {
            revoke_family(tx, session_id).await?;
            let mut entry = AuditEntry::new(Some(tenant_id), Actor::User(user_id), "auth.logout")
                .target("user", user_id)
                .details(json!({ "sessionId": session_id }));
            entry.ip = meta.ip;
            entry.user_agent = meta.user_agent.clone();
            audit_log::record(tx, &entry).await?;
            Ok(())
        })
    })
    .await
}

/// Ends every session of a user (disabled, or password changed).
pub async fn revoke_all_for_user(client: &impl GenericClient, user_id: Uuid) -> AppResult<u64> {
    Ok(client
        .execute_typed(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            &[(&user_id, Type::UUID)],
        )
        .await?)
}

/// The signed-in user's profile (`/api/auth/me`).
pub async fn me(sessions: Sessions<'_>, user_id: Uuid) -> AppResult<SessionUser> {
    let client = sessions.db.get().await?;
    login_row(&**client, "u.id = $1", &user_id, Type::UUID).await?.map(|r| r.user).ok_or(AppError::Unauthorized)
}
