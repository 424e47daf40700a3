//! Who is calling: the bearer token is verified once per request by the
//! `authenticate` layer, checked against the database (user and tenant
//! active, session not revoked, password not changed since), and the
//! acting tenant is resolved (`X-Tenant`, SUPER_ADMIN only).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::Role;
use crate::auth::tokens::TokenKeys;
use crate::db::DbPool;
use crate::error::AppError;

/// An authenticated staff member, scoped to the tenant they act in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    /// The tenant the user belongs to.
    pub home_tenant_id: Uuid,
    /// The tenant every query of this request is scoped to: the home tenant,
    /// or for SUPER_ADMIN the one named by `X-Tenant`.
    pub tenant_id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
}

/// Why a presented token was not accepted (kept small and cloneable; it
/// becomes an `AppError` only on routes that need a principal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    Unauthorized,
    ForeignTenant,
    UnknownTenant,
    Unavailable,
}

impl AuthFailure {
    pub fn into_error(self) -> AppError {
        match self {
            AuthFailure::Unauthorized => AppError::Unauthorized,
            AuthFailure::ForeignTenant => AppError::Forbidden("Only SUPER_ADMIN may act in another tenant.".into()),
            AuthFailure::UnknownTenant => AppError::NotFound,
            AuthFailure::Unavailable => AppError::Unavailable("authentication lookup failed".into()),
        }
    }
}

#[derive(Debug, Clone)]
pub enum AuthState {
    Authenticated(Principal),
    Failed(AuthFailure),
}

/// What `authenticate` needs: the keys that verify tokens and the database
/// that says whether the user, tenant and session are still alive.
#[derive(Clone)]
pub struct Authenticator {
    pub db: DbPool,
    pub tokens: Option<Arc<TokenKeys>>,
}

/// Outer layer of every HTTP function: resolves the bearer token (if any)
/// for the per-route guard and the `Principal` extractor.
pub async fn authenticate(State(auth): State<Authenticator>, mut req: Request, next: Next) -> Response {
    let bearer = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string());
    if let Some(header) = bearer {
        let x_tenant = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).map(str::to_string);
        let outcome = match header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")) {
            Some(token) => match resolve(&auth, token.trim(), x_tenant.as_deref()).await {
                Ok(principal) => AuthState::Authenticated(principal),
                Err(failure) => AuthState::Failed(failure),
            },
            None => AuthState::Failed(AuthFailure::Unauthorized),
        };
        req.extensions_mut().insert(outcome);
    }
    next.run(req).await
}

async fn resolve(auth: &Authenticator, token: &str, x_tenant: Option<&str>) -> Result<Principal, AuthFailure> {
    let keys = auth.tokens.as_ref().ok_or(AuthFailure::Unauthorized)?;
    let claims = keys.verify(token).map_err(|_| AuthFailure::Unauthorized)?;
    let client = auth.db.get().await.map_err(|_| AuthFailure::Unavailable)?;
    // One round trip: the user's current role and status, the tenant's
    // status, whether the session is alive, and the acting tenant.
    let row = client
        .query_typed_opt(
            "SELECT u.role, u.status, t.status, t.slug, u.password_changed_at,
                    EXISTS (SELECT 1 FROM refresh_tokens r
                            WHERE r.family_id = $2 AND r.user_id = u.id AND r.revoked_at IS NULL
                              AND r.expires_at > now()) AS session_live,
                    (SELECT x.id FROM tenants x WHERE lower(x.slug) = lower($3) AND x.status = 'ACTIVE') AS x_tenant_id
             FROM users u JOIN tenants t ON t.id = u.tenant_id
             WHERE u.id = $1 AND u.tenant_id = $4",
            &[
                (&claims.sub, Type::UUID),
                (&claims.sid, Type::UUID),
                (&x_tenant.unwrap_or(""), Type::TEXT),
                (&claims.tid, Type::UUID),
            ],
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "principal lookup failed");
            AuthFailure::Unavailable
        })?
        .ok_or(AuthFailure::Unauthorized)?;
    let get = |r: Result<String, tokio_postgres::Error>| r.map_err(|_| AuthFailure::Unavailable);
    let role: Role = get(row.try_get(0))?.parse().map_err(|_| AuthFailure::Unauthorized)?;
    let user_status = get(row.try_get(1))?;
    let tenant_status = get(row.try_get(2))?;
    let home_slug = get(row.try_get(3))?;
    let password_changed_at: DateTime<Utc> = row.try_get(4).map_err(|_| AuthFailure::Unavailable)?;
    let session_live: bool = row.try_get(5).map_err(|_| AuthFailure::Unavailable)?;
    let x_tenant_id: Option<Uuid> = row.try_get(6).map_err(|_| AuthFailure::Unavailable)?;

    if user_status != "ACTIVE" || tenant_status != "ACTIVE" || !session_live {
        return Err(AuthFailure::Unauthorized);
    }
    // Tokens issued before a password change are dead (iat has second precision).
    if claims.iat < password_changed_at.timestamp() {
        return Err(AuthFailure::Unauthorized);
    }
    let tenant_id = match x_tenant {
        None => claims.tid,
        Some(slug) if slug.eq_ignore_ascii_case(&home_slug) => claims.tid,
        Some(_) if role != Role::SuperAdmin => return Err(AuthFailure::ForeignTenant),
        Some(_) => x_tenant_id.ok_or(AuthFailure::UnknownTenant)?,
    };
    Ok(Principal { user_id: claims.sub, home_tenant_id: claims.tid, tenant_id, role, session_id: claims.sid })
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        match parts.extensions.get::<AuthState>() {
            Some(AuthState::Authenticated(p)) => Ok(p.clone()),
            Some(AuthState::Failed(f)) => Err(f.clone().into_error()),
            None => Err(AppError::Unauthorized),
        }
    }
}
