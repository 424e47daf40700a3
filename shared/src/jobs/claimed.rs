//! What the engine hands an executor and what an executor hands back: the
//! engine and the executors both import these, never each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Cleared by the engine's heartbeat when the lease could not be
    /// extended: the job was rescued elsewhere and must not go on.
    pub lease: Lease,
}

/// Whether this worker still holds the job's lease. Executors check it
/// before each remote step, so a job whose lease was lost never does
/// destructive work twice.
#[derive(Debug, Clone, Default)]
pub struct Lease {
    lost: Arc<AtomicBool>,
}

impl Lease {
    pub fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub fn check(&self) -> Result<(), JobError> {
        if self.is_lost() {
            Err(JobError::retryable("the job's lease was lost; stopped before the next remote step"))
        } else {
            Ok(())
        }
    }
}

/// What a successful attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// The work is done; the engine applies it to the subscription.
    Applied,
    /// The work was no longer wanted when the job re-checked it under the
    /// subscription's lock (e.g. paid meanwhile): nothing was changed.
    Skipped(String),
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
