//! What the engine hands an executor and what an executor hands back: the
//! engine and the executors both import these, never each other.

use serde_json::Value;
use uuid::Uuid;

use super::JobType;
use crate::error::AppError;

/// A job this worker holds the lease on.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub subscription_id: Option<Uuid>,
    pub job_type: JobType,
    pub payload: Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub worker: String,
}

/// Why an attempt failed. Permanent errors (bad input, a host-key mismatch,
/// a 4xx from PowerDNS) skip the remaining attempts: retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub retryable: bool,
    pub message: String,
}

impl JobError {
    pub fn retryable(message: impl Into<String>) -> JobError {
        JobError { retryable: true, message: message.into() }
    }

    pub fn permanent(message: impl Into<String>) -> JobError {
        JobError { retryable: false, message: message.into() }
    }
}

impl From<AppError> for JobError {
    /// Our own database or Redis trouble is worth retrying.
    fn from(e: AppError) -> JobError {
        JobError::retryable(match e {
            AppError::Internal(inner) => format!("{inner:#}"),
            other => other.to_string(),
        })
    }
}

impl From<tokio_postgres::Error> for JobError {
    fn from(e: tokio_postgres::Error) -> JobError {
        JobError::from(AppError::from(e))
    }
}

impl From<deadpool_postgres::PoolError> for JobError {
    fn from(e: deadpool_postgres::PoolError) -> JobError {
        JobError::from(AppError::from(e))
    }
}
