//! `/api/auth/*`: login, refresh, logout, me.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::Permission;
use super::principal::Principal;
use super::sessions::{self, TokenPair};
use crate::error::AppResult;
use crate::http::AppState;
use crate::http::extract::{ClientMeta, Json};
use crate::http::routes::ApiRoutes;
use crate::secrets::Secret;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(Method::POST, "/api/auth/login", Permission::Public, login)
        .route(Method::POST, "/api/auth/refresh", Permission::Public, refresh)
        .route(Method::POST, "/api/auth/logout", Permission::Authenticated, logout)
        .route(Method::GET, "/api/auth/me", Permission::Authenticated, me)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginBody {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    Json(body): Json<LoginBody>,
) -> AppResult<axum::Json<TokenPair>> {
    let pair = sessions::login(&state, &body.email, Secret::new(body.password), &meta).await?;
    Ok(axum::Json(pair))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    meta: ClientMeta,
    Json(body): Json<RefreshBody>,
) -> AppResult<axum::Json<TokenPair>> {
    let pair = sessions::refresh(&state, &body.refresh_token, &meta).await?;
    Ok(axum::Json(pair))
}

async fn logout(State(state): State<AppState>, principal: Principal, meta: ClientMeta) -> AppResult<StatusCode> {
    sessions::logout(&state, principal.user_id, principal.home_tenant_id, principal.session_id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, principal: Principal) -> AppResult<axum::Json<Me>> {
    let user = sessions::me(&state, principal.user_id).await?;
    Ok(axum::Json(Me { user }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    user: sessions::SessionUser,
}
