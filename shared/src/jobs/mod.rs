//! Jobs: units of provisioning work, stored in Postgres (the truth) and
//! dispatched as hints through Redis and SQS.

pub mod claimed;
pub mod state;

pub use claimed::{ClaimedJob, Done, JobError, Lease};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::AppResult;

crate::types::named_enum! {
    pub enum JobType {
        ProvisionDns,
        ProvisionHosting,
        ProvisionMail,
        SuspendService,
        UnsuspendService,
        TerminateService,
        /// A new SFTP password or key for a site's login.
        UpdateSftpLogin,
        /// The site's certificate: ACME DNS-01, then installed on its server.
        IssueCertificate,
    }
}

impl JobType {
    /// Jobs whose success (all of them) activates a subscription.
    pub fn is_provisioning(self) -> bool {
        matches!(self, JobType::ProvisionDns | JobType::ProvisionHosting | JobType::ProvisionMail)
    }
}

crate::types::named_enum! {
    pub enum JobStatus {
        Pending,
        Running,
        Retrying,
        Succeeded,
        Dead,
    }
}

/// A job as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: Uuid,
    pub subscription_id: Option<Uuid>,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub const JOB_COLUMNS: &str = "id, subscription_id, type, status, attempts, max_attempts, run_after, last_error, created_at, updated_at, finished_at";

/// A subscription's jobs, oldest first.
pub async fn of_subscription(
    client: &impl tokio_postgres::GenericClient,
    subscription_id: Uuid,
    tenant_id: Uuid,
) -> AppResult<Vec<JobView>> {
    let sql =
        format!("SELECT {JOB_COLUMNS} FROM jobs WHERE subscription_id = $1 AND tenant_id = $2 ORDER BY created_at, id");
    crate::db::all_in_tenant(client, &sql, subscription_id, tenant_id, JobView::from_row).await
}

impl JobView {
    pub fn from_row(row: &Row) -> AppResult<JobView> {
        Ok(JobView {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            job_type: row.try_get("type")?,
            status: row.try_get("status")?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            run_after: row.try_get("run_after")?,
            last_error: row.try_get("last_error")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}
