//! `/api/audit-logs` (ADMIN+): the acting tenant's audit trail, newest first.

use axum::http::Method;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::auth::Permission;
use crate::error::AppResult;
use crate::http::extract::{Caller, Listing};
use crate::http::pagination::{Page, PeriodParams, tenant_page};
use crate::http::routes::{ApiRoutes, Doc, QueryParam};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new().route(
        Method::GET,
        "/api/audit-logs",
        Permission::ReadAudit,
        list,
        Doc::new("listAuditLogs", "audit", "Audit log, newest first")
            .query(&[
                QueryParam::Text("action", "Action name, e.g. user.created"),
                QueryParam::Time("from", "At or after"),
                QueryParam::Time("to", "Before"),
            ])
            .page::<AuditLog>(),
    )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditLog {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub actor_type: String,
    pub actor_user_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

impl AuditLog {
    fn from_row(row: &Row) -> AppResult<AuditLog> {
        Ok(AuditLog {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            actor_type: row.try_get("actor_type")?,
            actor_user_id: row.try_get("actor_user_id")?,
            action: row.try_get("action")?,
            target_type: row.try_get("target_type")?,
            target_id: row.try_get("target_id")?,
            ip: row.try_get("ip")?,
            user_agent: row.try_get("user_agent")?,
            details: row.try_get("details")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Deserialize)]
struct Filters {
    action: Option<String>,
    #[serde(flatten)]
    period: PeriodParams,
}

async fn list(
    Caller(state, principal): Caller,
    Listing { filters, page, mut problems }: Listing<Filters>,
) -> AppResult<axum::Json<Page<AuditLog>>> {
    let (from, to) = problems.period(filters.period);
    let action = problems.param("action", filters.action, |a| {
        let name =
            a.len() <= 100 && a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
        if name { Ok(a.to_string()) } else { Err("must be an action name like auth.login".to_string()) }
    });
    problems.finish()?;
    tenant_page(
        &state.db,
        principal.tenant_id,
        "SELECT id, tenant_id, actor_type, actor_user_id, action, target_type, target_id,
                host(ip) AS ip, user_agent, details, created_at
         FROM audit_logs
         WHERE tenant_id = $1 AND ($2::text IS NULL OR action = $2)
           AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)",
        ("created_at", "id"),
        &[(&action, Type::TEXT), (&from, Type::TIMESTAMPTZ), (&to, Type::TIMESTAMPTZ)],
        &page,
        AuditLog::from_row,
    )
    .await
}
