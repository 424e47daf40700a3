//! `/api/tenants` (SUPER_ADMIN): list and create tenants.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::Deserialize;

use super::Tenant;
use crate::audit_log::Actor;
use crate::auth::Permission;
use crate::error::{AppError, AppResult, FieldError};
use crate::http::body::Problems;
use crate::http::extract::{Caller, Json, Query};
use crate::http::pagination::{Page, PageParams};
use crate::http::routes::{ApiRoutes, Doc};
use crate::state::AppState;
use crate::types::{DisplayName, Slug};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/tenants",
            Permission::ManageTenants,
            list,
            Doc::new("listTenants", "tenants", "Tenants (SUPER_ADMIN)").page::<Tenant>(),
        )
        .route(
            Method::POST,
            "/api/tenants",
            Permission::ManageTenants,
            create,
            Doc::new("createTenant", "tenants", "Create a tenant (SUPER_ADMIN)")
                .body::<NewTenantBody>()
                .json::<Tenant>(201),
        )
}

async fn list(State(state): State<AppState>, Query(params): Query<PageParams>) -> AppResult<axum::Json<Page<Tenant>>> {
    let mut p = Problems::new();
    let page = p.page(&params);
    p.finish()?;
    let client = state.db.get().await?;
    Ok(axum::Json(super::list(&**client, &page).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenantBody {
    slug: String,
    name: String,
}

async fn create(
    Caller(state, principal): Caller,
    Json(body): Json<NewTenantBody>,
) -> AppResult<(StatusCode, axum::Json<Tenant>)> {
    let mut errors = Vec::new();
    let slug = Slug::parse(&body.slug).map_err(|e| errors.push(FieldError::new("slug", e))).ok();
    let name = DisplayName::parse(&body.name).map_err(|e| errors.push(FieldError::new("name", e))).ok();
    let (Some(slug), Some(name)) = (slug, name) else {
        return Err(AppError::Validation(errors));
    };
    let actor = Actor::User(principal.user_id);
    let tenant = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move { super::create(tx, &slug, &name, actor).await })
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(tenant)))
}
