//! Tenants: the hosting companies that share one mPanel.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::audit_log::{self, Actor, AuditEntry};
use crate::error::{AppError, AppResult};
use crate::http::pagination::{Page, PageRequest, fetch_page};
use crate::types::{DisplayName, Slug};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

impl Tenant {
    fn from_row(row: &Row) -> AppResult<Tenant> {
        Ok(Tenant {
            id: row.try_get("id")?,
            slug: row.try_get("slug")?,
            name: row.try_get("name")?,
            status: row.try_get("status")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const COLUMNS: &str = "id, slug, name, status, created_at";

/// Creates a tenant and its audit row (run inside the caller's transaction).
pub async fn create(client: &impl GenericClient, slug: &Slug, name: &DisplayName, actor: Actor) -> AppResult<Tenant> {
    let row = client
        .query_typed_one(
            &format!("INSERT INTO tenants (slug, name) VALUES ($1, $2) RETURNING {COLUMNS}"),
            &[(&slug.as_str(), Type::TEXT), (&name.as_str(), Type::TEXT)],
        )
        .await?;
    let tenant = Tenant::from_row(&row)?;
    audit_log::record(
        client,
        &AuditEntry::new(Some(tenant.id), actor, "tenant.created")
            .target("tenant", tenant.id)
            .details(json!({ "slug": tenant.slug, "name": tenant.name })),
    )
    .await?;
    Ok(tenant)
}

pub async fn find_by_slug(client: &impl GenericClient, slug: &str) -> AppResult<Option<Tenant>> {
    let row = client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM tenants WHERE lower(slug) = lower($1)"),
            &[(&slug, Type::TEXT)],
        )
        .await?;
    row.as_ref().map(Tenant::from_row).transpose()
}

pub mod api;

/// The id of the ACTIVE tenant with this slug (404 otherwise): whom a
/// webhook speaks for.
pub async fn active_id(client: &impl GenericClient, slug: &Slug) -> AppResult<Uuid> {
    let row = client
        .query_typed_opt(
            "SELECT id FROM tenants WHERE lower(slug) = lower($1) AND status = 'ACTIVE'",
            &[(&slug.as_str(), Type::TEXT)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(row.try_get(0)?)
}

pub async fn list(client: &impl GenericClient, page: &PageRequest) -> AppResult<Page<Tenant>> {
    let every = format!("SELECT {COLUMNS} FROM tenants WHERE true");
    fetch_page(client, &every, ("created_at", "id"), &[], page, Tenant::from_row).await
}
