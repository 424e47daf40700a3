//! `/api/jobs` (`?status=&type=&subscriptionId=`), `/api/jobs/{id}` (with
//! its attempts) and `POST /api/jobs/{id}/retry`.

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::audit_log::Actor;
use crate::auth::Permission;
use crate::db::{all_in_tenant, one_in_tenant};
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, Listing};
use crate::http::pagination::{Page, tenant_page};
use crate::http::routes::{ApiRoutes, Doc, QueryParam};
use crate::jobs::{JOB_COLUMNS, JobStatus, JobType, JobView};
use crate::state::AppState;
use crate::types::{Named, parse_uuid};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/jobs",
            Permission::ReadData,
            list,
            Doc::new("listJobs", "jobs", "Provisioning jobs, newest first")
                .query(&[
                    QueryParam::Text("status", "PENDING, RUNNING, RETRYING, SUCCEEDED or DEAD"),
                    QueryParam::Text("type", "Job type, e.g. PROVISION_DNS"),
                    QueryParam::Uuid("subscriptionId", "Only this subscription's jobs"),
                ])
                .page::<JobView>(),
        )
        .route(
            Method::GET,
            "/api/jobs/{id}",
            Permission::ReadData,
            get,
            Doc::new("getJob", "jobs", "One job with its payload and attempts").json::<JobDetail>(200),
        )
        .route(
            Method::POST,
            "/api/jobs/{id}/retry",
            Permission::RetryJob,
            retry,
            Doc::new("retryJob", "jobs", "Run a DEAD job again").json::<JobDetail>(202),
        )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filters {
    status: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    subscription_id: Option<String>,
}

async fn list(
    Caller(state, principal): Caller,
    Listing { filters, page, mut problems }: Listing<Filters>,
) -> AppResult<axum::Json<Page<JobView>>> {
    let status = problems.param("status", filters.status, JobStatus::from_name);
    let job_type = problems.param("type", filters.job_type, JobType::from_name);
    let subscription_id = problems.param("subscriptionId", filters.subscription_id, parse_uuid);
    problems.finish()?;
    tenant_page(
        &state.db,
        principal.tenant_id,
        &format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR type = $3)
               AND ($4::uuid IS NULL OR subscription_id = $4)"
        ),
        ("created_at", "id"),
        &[(&status, Type::TEXT), (&job_type, Type::TEXT), (&subscription_id, Type::UUID)],
        &page,
        JobView::from_row,
    )
    .await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attempt {
    attempt: i32,
    worker: Option<String>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobDetail {
    #[serde(flatten)]
    job: JobView,
    payload: serde_json::Value,
    attempt_history: Vec<Attempt>,
}

async fn load(state: &AppState, tenant_id: Uuid, id: Uuid) -> AppResult<JobDetail> {
    let client = state.db.get().await?;
    let by_id = format!("SELECT {JOB_COLUMNS}, payload FROM jobs WHERE id = $1 AND tenant_id = $2");
    let (job, payload) =
        one_in_tenant(&**client, &by_id, id, tenant_id, |row| Ok((JobView::from_row(row)?, row.try_get("payload")?)))
            .await?;
    let attempts = "SELECT attempt, worker, started_at, finished_at, outcome, error FROM job_attempts
                    WHERE job_id = $1 AND tenant_id = $2 ORDER BY attempt";
    let attempt_history = all_in_tenant(&**client, attempts, id, tenant_id, |r| {
        Ok(Attempt {
            attempt: r.try_get(0)?,
            worker: r.try_get(1)?,
            started_at: r.try_get(2)?,
            finished_at: r.try_get(3)?,
            outcome: r.try_get(4)?,
            error: r.try_get(5)?,
        })
    })
    .await?;
    Ok(JobDetail { job, payload, attempt_history })
}

async fn get(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<axum::Json<JobDetail>> {
    Ok(axum::Json(load(&state, principal.tenant_id, id).await?))
}

async fn retry(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<(StatusCode, axum::Json<JobDetail>)> {
    super::retry_dead(&state, principal.tenant_id, id, Actor::User(principal.user_id), principal.role).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(load(&state, principal.tenant_id, id).await?)))
}
