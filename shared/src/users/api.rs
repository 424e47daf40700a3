//! `/api/users`: staff management within the acting tenant (ADMIN+).
//! Nobody creates, promotes or edits a user above their own role, and
//! nobody disables themself.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::Deserialize;

use super::{NewUser, User, UserChanges};
use crate::audit_log::Actor;
use crate::auth::principal::Principal;
use crate::auth::{Permission, Role, password};
use crate::error::{AppError, AppResult, FieldError};
use crate::http::body::Problems;
use crate::http::extract::{Caller, IdPath, Json, Query};
use crate::http::pagination::{Page, PageParams};
use crate::http::routes::{ApiRoutes, Doc};
use crate::secrets::Secret;
use crate::state::AppState;
use crate::types::{DisplayName, EmailAddress, Named};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/users",
            Permission::ManageUsers,
            list,
            Doc::new("listUsers", "users", "Users of the tenant").page::<User>(),
        )
        .route(
            Method::POST,
            "/api/users",
            Permission::ManageUsers,
            create,
            Doc::new("createUser", "users", "Create a user (no role above your own)")
                .body::<NewUserBody>()
                .json::<User>(201),
        )
        .route(
            Method::GET,
            "/api/users/{id}",
            Permission::ManageUsers,
            get,
            Doc::new("getUser", "users", "One user").json::<User>(200),
        )
        .route(
            Method::PATCH,
            "/api/users/{id}",
            Permission::ManageUsers,
            patch,
            Doc::new("patchUser", "users", "Change role, status, name or password")
                .body::<UserChangesBody>()
                .json::<User>(200),
        )
        .route(
            Method::DELETE,
            "/api/users/{id}",
            Permission::ManageUsers,
            disable,
            Doc::new("disableUser", "users", "Disable a user and end their sessions"),
        )
}

async fn list(Caller(state, principal): Caller, Query(params): Query<PageParams>) -> AppResult<axum::Json<Page<User>>> {
    let mut p = Problems::new();
    let page = p.page(&params);
    p.finish()?;
    let client = state.db.get().await?;
    Ok(axum::Json(super::list(&**client, principal.tenant_id, &page).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewUserBody {
    email: String,
    password: String,
    role: String,
    display_name: Option<String>,
}

fn above_own_role() -> AppError {
    AppError::Forbidden("You cannot grant a role above your own.".into())
}

async fn create(
    Caller(state, principal): Caller,
    Json(body): Json<NewUserBody>,
) -> AppResult<(StatusCode, axum::Json<User>)> {
    let mut errors = Vec::new();
    let email = EmailAddress::parse(&body.email).map_err(|e| errors.push(FieldError::new("email", e))).ok();
    let role = Role::from_name(&body.role).map_err(|e| errors.push(FieldError::new("role", e))).ok();
    let display_name = match body.display_name.as_deref() {
        None => None,
        Some(raw) => DisplayName::parse(raw).map_err(|e| errors.push(FieldError::new("displayName", e))).ok(),
    };
    if let Err(e) = password::check_rules("password", &body.password) {
        errors.push(e);
    }
    let (Some(email), Some(role), true) = (email, role, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    if role > principal.role {
        return Err(above_own_role());
    }
    let password_hash = password::hash(Secret::new(body.password)).await?;
    let new = NewUser { tenant_id: principal.tenant_id, email, role, display_name, password_hash };
    let actor = Actor::User(principal.user_id);
    let user =
        crate::db::in_transaction(&state.db, move |tx| Box::pin(async move { super::create(tx, &new, actor).await }))
            .await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

async fn get(State(state): State<AppState>, principal: Principal, IdPath(id): IdPath) -> AppResult<axum::Json<User>> {
    let client = state.db.get().await?;
    let user = super::find_in_tenant(&**client, principal.tenant_id, id).await?.ok_or(AppError::NotFound)?;
    Ok(axum::Json(user))
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UserChangesBody {
    #[serde(default, deserialize_with = "present")]
    display_name: Option<Option<String>>,
    role: Option<String>,
    status: Option<String>,
    password: Option<String>,
}

async fn patch(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
    Json(body): Json<UserChangesBody>,
) -> AppResult<axum::Json<User>> {
    let mut errors = Vec::new();
    let mut changes = UserChanges::default();
    if let Some(name) = body.display_name {
        changes.display_name = Some(match name {
            None => None,
            Some(raw) => DisplayName::parse(&raw).map_err(|e| errors.push(FieldError::new("displayName", e))).ok(),
        });
    }
    if let Some(raw) = body.role.as_deref() {
        changes.role = Role::from_name(raw).map_err(|e| errors.push(FieldError::new("role", e))).ok();
    }
    if let Some(raw) = body.status.as_deref() {
        changes.active = match raw {
            "ACTIVE" => Some(true),
            "DISABLED" => Some(false),
            _ => {
                errors.push(FieldError::new("status", "must be ACTIVE or DISABLED"));
                None
            }
        };
    }
    if let Some(pw) = body.password.as_deref()
        && let Err(e) = password::check_rules("password", pw)
    {
        errors.push(e);
    }
    if changes.active == Some(false) && id == principal.user_id {
        errors.push(FieldError::new("status", "you cannot disable yourself"));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    if let Some(pw) = body.password {
        changes.password_hash = Some(password::hash(Secret::new(pw)).await?);
    }
    apply(&state, &principal, id, changes).await.map(axum::Json)
}

async fn disable(State(state): State<AppState>, principal: Principal, IdPath(id): IdPath) -> AppResult<StatusCode> {
    if id == principal.user_id {
        return Err(AppError::validation("id", "you cannot disable yourself"));
    }
    let changes = UserChanges { active: Some(false), ..UserChanges::default() };
    apply(&state, &principal, id, changes).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Loads the target under a row lock, checks role ceilings, applies.
async fn apply(state: &AppState, principal: &Principal, id: uuid::Uuid, changes: UserChanges) -> AppResult<User> {
    let principal = principal.clone();
    crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let locked = tx
                .query_typed_opt(
                    "SELECT role FROM users WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
                    &[
                        (&id, tokio_postgres::types::Type::UUID),
                        (&principal.tenant_id, tokio_postgres::types::Type::UUID),
                    ],
                )
                .await?
                .ok_or(AppError::NotFound)?;
            let current: Role = locked.try_get(0)?;
            if current > principal.role || changes.role.is_some_and(|r| r > principal.role) {
                return Err(above_own_role());
            }
            super::update(tx, principal.tenant_id, id, &changes, Actor::User(principal.user_id)).await
        })
    })
    .await
}
