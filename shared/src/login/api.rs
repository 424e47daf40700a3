//! `/api/auth/*`: login, refresh, logout, me.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::Permission;
use crate::auth::client::ClientMeta;
use crate::auth::principal::Principal;
use crate::auth::sessions::{self, TokenPair};
use crate::error::AppResult;
use crate::http::extract::Json;
use crate::http::routes::{ApiRoutes, Doc};
use crate::secrets::Secret;
use crate::state::AppState;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::POST,
            "/api/auth/login",
            Permission::Public,
            login,
            Doc::new("login", "auth", "Sign in with email and password")
                .body::<LoginBody>()
                .json::<TokenPair>(200)
                .checks_credentials(),
        )
        .route(
            Method::POST,
            "/api/auth/refresh",
            Permission::Public,
            refresh,
            Doc::new("refresh", "auth", "Trade a refresh token for a new pair (rotating)")
                .body::<RefreshBody>()
                .json::<TokenPair>(200)
                .checks_credentials(),
        )
        .route(
            Method::POST,
            "/api/auth/logout",
            Permission::Authenticated,
            logout,
            Doc::new("logout", "auth", "End this session"),
        )
        .route(
            Method::GET,
            "/api/auth/me",
            Permission::Authenticated,
            me,
            Doc::new("me", "auth", "The signed-in user").json::<Me>(200),
        )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    Json(body): Json<LoginBody>,
) -> AppResult<axum::Json<TokenPair>> {
    let pair = sessions::login(state.sessions(), &body.email, Secret::new(body.password), &meta).await?;
    Ok(axum::Json(pair))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    meta: ClientMeta,
    Json(body): Json<RefreshBody>,
) -> AppResult<axum::Json<TokenPair>> {
    let pair = sessions::refresh(state.sessions(), &body.refresh_token, &meta).await?;
    Ok(axum::Json(pair))
}

async fn logout(State(state): State<AppState>, principal: Principal, meta: ClientMeta) -> AppResult<StatusCode> {
    sessions::logout(state.sessions(), principal.user_id, principal.home_tenant_id, principal.session_id, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, principal: Principal) -> AppResult<axum::Json<Me>> {
    let user = sessions::me(state.sessions(), principal.user_id).await?;
    Ok(axum::Json(Me { user }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    user: sessions::SessionUser,
}
