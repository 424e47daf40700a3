//! `GET /api/health` (the process answers) and `GET /api/ready` (Postgres and
//! Redis answer too). Every HTTP function serves both.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use serde::Serialize;

use super::AppState;
use super::routes::ApiRoutes;
use crate::auth::Permission;
use crate::error::{AppError, AppResult};
use crate::http::routes::Doc;

/// A readiness probe must answer quickly even when a dependency hangs.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/health",
            Permission::Public,
            health,
            Doc::new("health", "health", "The process answers")
                .json::<HealthStatus>(200)
                .self_contained()
                .without_rate_limit(),
        )
        .route(
            Method::GET,
            "/api/ready",
            Permission::Public,
            ready,
            Doc::new("ready", "health", "PostgreSQL and Redis answer too")
                .json::<HealthStatus>(200)
                .without_rate_limit(),
        )
}

/// `{"status": "ok"}` from /api/health, `{"status": "ready"}` from /api/ready.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HealthStatus {
    #[schema(examples("ok", "ready"))]
    status: &'static str,
}

async fn health() -> Json<HealthStatus> {
    Json(HealthStatus { status: "ok" })
}

async fn ready(State(state): State<AppState>) -> AppResult<Json<HealthStatus>> {
    let (postgres, redis) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, crate::db::ping(&state.db)),
        tokio::time::timeout(CHECK_TIMEOUT, state.kv.ping()),
    );
    let mut failed = Vec::new();
    match postgres {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failed.push(format!("postgres: {e}")),
        Err(_) => failed.push("postgres: timed out".to_string()),
    }
    match redis {
        Ok(Ok(())) => {}
        Ok(Err(e)) => failed.push(format!("redis: {e}")),
        Err(_) => failed.push("redis: timed out".to_string()),
    }
    if failed.is_empty() {
        Ok(Json(HealthStatus { status: "ready" }))
    } else {
        Err(AppError::Unavailable(failed.join("; ")))
    }
}
