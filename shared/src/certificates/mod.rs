//! Certificates: one per live domain of a hosting subscription, issued
//! through ACME DNS-01 (the `ISSUE_CERTIFICATE` job, in `provision`),
//! renewed in place at two thirds of its lifetime by the sweep, and shown by
//! `GET /api/certificates`. The private key is kept sealed with the
//! tenant's data key (`sealing`), never in clear in Postgres.

pub mod acme;
pub mod api;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, Row, Transaction};
use uuid::Uuid;

use crate::audit_log::{self, Actor, AuditEntry};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

crate::types::named_enum! {
    pub enum CertificateStatus {
        /// Being issued for the first time.
        Pending,
        Issued,
        /// A renewal is under way or failing; the certificate in use is still valid.
        Renewing,
        /// No valid certificate: issuance failed (see `lastError`).
        Failed,
        Expired,
        /// The subscription was terminated: key and files are gone.
        Deleted,
    }
}

/// A certificate as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateView {
    pub id: Uuid,
    pub subscription_id: Option<Uuid>,
    pub domain: String,
    /// Every name the certificate covers.
    pub names: Vec<String>,
    pub status: CertificateStatus,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub not_after: Option<DateTime<Utc>>,
    /// When the sweep renews it: two thirds into its lifetime.
    pub renew_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Consecutive failed issuances.
    pub failures: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub installed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const CERTIFICATE_SELECT: &str = "SELECT c.id, c.subscription_id, d.name AS domain, c.names, c.status, c.issuer, \
     c.serial, c.not_before, c.not_after, c.renew_at, c.last_error, c.failures, c.next_attempt_at, c.installed_at, \
     c.created_at, c.updated_at FROM ssl_certificates c JOIN domains d ON d.id = c.domain_id";

impl CertificateView {
    pub fn from_row(row: &Row) -> AppResult<CertificateView> {
        Ok(CertificateView {
            id: row.try_get("id")?,
            subscription_id: row.try_get("subscription_id")?,
            domain: row.try_get("domain")?,
            names: row.try_get("names")?,
            status: row.try_get("status")?,
            issuer: row.try_get("issuer")?,
            serial: row.try_get("serial")?,
            not_before: row.try_get("not_before")?,
            not_after: row.try_get("not_after")?,
            renew_at: row.try_get("renew_at")?,
            last_error: row.try_get("last_error")?,
            failures: row.try_get("failures")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            installed_at: row.try_get("installed_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// The subscription's current certificate (any but a deleted one).
pub async fn current_of_subscription(
    client: &impl GenericClient,
    tenant_id: Uuid,
    subscription_id: Uuid,
) -> AppResult<Option<CertificateView>> {
    let sql = format!(
        "{CERTIFICATE_SELECT} WHERE c.subscription_id = $1 AND c.tenant_id = $2 AND c.status <> 'DELETED'
         ORDER BY c.created_at DESC LIMIT 1"
    );
    let row = client.query_typed_opt(&sql, &[(&subscription_id, Type::UUID), (&tenant_id, Type::UUID)]).await?;
    row.as_ref().map(CertificateView::from_row).transpose()
}

/// What asking for a certificate did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequested {
    pub subscription_id: Uuid,
    /// The `ISSUE_CERTIFICATE` job: a new one, or the one already in flight.
    pub job_id: Uuid,
    pub created: bool,
}

/// Why a certificate is asked for (kept in the job's payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The subscription just became active.
    Activated,
    /// Staff asked (`POST /api/subscriptions/{id}/certificate`).
    Reissue,
    /// The sweep: two thirds of the lifetime are over, or a retry is due.
    Renewal,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Activated => "ACTIVATED",
            Reason::Reissue => "REISSUE",
            Reason::Renewal => "RENEWAL",
        }
    }
}

/// Queues an `ISSUE_CERTIFICATE` job for a hosting subscription with a live
/// domain, unless one is already in flight (that one is returned). `None`:
/// the subscription has no site that takes a certificate.
pub async fn request_in(
    tx: &Transaction<'_>,
    tenant_id: Uuid,
    subscription_id: Uuid,
    reason: Reason,
) -> AppResult<Option<CertificateRequested>> {
    let plan = crate::catalog::lock_plan(tx, tenant_id, subscription_id).await?.ok_or(AppError::NotFound)?;
    if plan.product_type != "SHARED_HOSTING" || plan.domain.is_none() {
        return Ok(None);
    }
    let status = plan.status;
    if !matches!(status.as_str(), "ACTIVE" | "SUSPENDED") {
        return Err(AppError::Conflict {
            field: Some("status".into()),
            detail: format!("The subscription is {status}: only an active or suspended site gets a certificate."),
        });
    }
    let in_flight = tx
        .query_typed(
            "SELECT id, type FROM jobs WHERE subscription_id = $1 AND status IN ('PENDING', 'RUNNING', 'RETRYING')
             AND type IN ('ISSUE_CERTIFICATE', 'TERMINATE_SERVICE') ORDER BY created_at",
            &[(&subscription_id, Type::UUID)],
        )
        .await?;
    let mut reusable = None;
    for job in &in_flight {
        let (id, job_type): (Uuid, String) = (job.try_get(0)?, job.try_get(1)?);
        if job_type == "TERMINATE_SERVICE" {
            return Err(AppError::Conflict {
                field: Some("status".into()),
                detail: format!("The subscription is being terminated (job {id})."),
            });
        }
        reusable.get_or_insert(id);
    }
    if let Some(job_id) = reusable {
        return Ok(Some(CertificateRequested { subscription_id, job_id, created: false }));
    }
    // A new request starts a fresh count of failures.
    if reason != Reason::Renewal {
        tx.query_typed(
            "UPDATE ssl_certificates SET failures = 0, next_attempt_at = NULL, updated_at = now()
             WHERE subscription_id = $1 AND status <> 'DELETED'",
            &[(&subscription_id, Type::UUID)],
        )
        .await?;
    }
    // The certificate in use stays in use while its successor is issued.
    tx.query_typed(
        "UPDATE ssl_certificates SET status = 'RENEWING', updated_at = now()
         WHERE subscription_id = $1 AND status = 'ISSUED'",
        &[(&subscription_id, Type::UUID)],
    )
    .await?;
    let payload = json!({ "reason": reason.as_str() });
    let job_id: Uuid = tx
        .query_typed_one(
            "INSERT INTO jobs (tenant_id, subscription_id, type, payload) VALUES ($1, $2, 'ISSUE_CERTIFICATE', $3)
             RETURNING id",
            &[(&tenant_id, Type::UUID), (&subscription_id, Type::UUID), (&payload, Type::JSONB)],
        )
        .await?
        .try_get(0)?;
    Ok(Some(CertificateRequested { subscription_id, job_id, created: true }))
}

/// The subscription was terminated: its certificate is gone with the site.
pub async fn mark_deleted(tx: &Transaction<'_>, subscription_id: Uuid) -> AppResult<()> {
    tx.query_typed(
        "UPDATE ssl_certificates SET status = 'DELETED', private_key_sealed = NULL, renew_at = NULL,
                next_attempt_at = NULL, updated_at = now()
         WHERE subscription_id = $1 AND status <> 'DELETED'",
        &[(&subscription_id, Type::UUID)],
    )
    .await?;
    Ok(())
}

/// The wait before the sweep tries a failed issuance again: one hour,
/// doubling with each failure, at most a day.
pub fn retry_delay(failures: i32) -> chrono::Duration {
    let hours = 1i64 << failures.clamp(1, 6).saturating_sub(1);
    chrono::Duration::hours(hours.min(24))
}

/// Two thirds into the lifetime, whatever the lifetime is.
pub fn renewal_time(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    not_before + (not_after - not_before) * 2 / 3
}

/// What a sweep pass did for certificates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateReport {
    pub requested: u64,
    pub alarms: u64,
    pub expired: u64,
}

/// Renewals (two thirds into the lifetime of the certificate in use, read
/// from its dates) and retries that are due become jobs; certificates whose
/// renewal still fails seven days before they expire raise the alarm once.
pub async fn sweep(state: &AppState) -> AppResult<CertificateReport> {
    let mut report = CertificateReport::default();
    let Some(acme) = &state.config.acme else { return Ok(report) };
    let client = state.db.get().await?;
    report.expired = client
        .execute_typed(
            "UPDATE ssl_certificates SET status = 'EXPIRED', updated_at = now()
             WHERE status IN ('ISSUED', 'RENEWING') AND not_after <= now()",
            &[],
        )
        .await?;
    let due = client
        .query_typed(
            "SELECT c.tenant_id, c.subscription_id FROM ssl_certificates c
             JOIN subscriptions s ON s.id = c.subscription_id
             WHERE s.status IN ('ACTIVE', 'SUSPENDED') AND c.failures < $1
               AND COALESCE(c.next_attempt_at, '-infinity') <= now()
               AND ((c.status IN ('ISSUED', 'RENEWING')
                     AND c.not_before + (c.not_after - c.not_before) * 2 / 3 <= now())
                    OR c.status IN ('FAILED', 'EXPIRED'))
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subscription_id = c.subscription_id
                                 AND j.type = 'ISSUE_CERTIFICATE' AND j.status IN ('PENDING', 'RUNNING', 'RETRYING'))
             ORDER BY c.renew_at NULLS FIRST LIMIT 200",
            &[(&acme.max_failures, Type::INT4)],
        )
        .await?;
    let alarms = client
        .query_typed(
            "UPDATE ssl_certificates SET alarm_raised_at = now()
             WHERE status IN ('RENEWING', 'FAILED') AND failures > 0 AND alarm_raised_at IS NULL
               AND not_after IS NOT NULL AND not_after <= now() + interval '7 days'
             RETURNING id, tenant_id, subscription_id, not_after, last_error",
            &[],
        )
        .await?;
    drop(client);
    for row in &alarms {
        let (id, tenant_id): (Uuid, Uuid) = (row.try_get(0)?, row.try_get(1)?);
        let subscription_id: Option<Uuid> = row.try_get(2)?;
        let not_after: DateTime<Utc> = row.try_get(3)?;
        let last_error: Option<String> = row.try_get(4)?;
        let entry = AuditEntry::new(Some(tenant_id), Actor::System, "certificate.renewal_failing")
            .target("certificate", id)
            .details(json!({ "subscriptionId": subscription_id, "notAfter": not_after, "lastError": last_error }));
        crate::db::in_transaction(&state.db, move |tx| Box::pin(async move { audit_log::record(tx, &entry).await }))
            .await?;
        tracing::error!(alert = true, certificate_id = %id, %tenant_id, %not_after, error = ?last_error,
            "certificate renewal is still failing and it expires within seven days");
        report.alarms += 1;
    }
    let mut jobs = Vec::new();
    for row in &due {
        let (tenant_id, subscription_id): (Uuid, Uuid) = (row.try_get(0)?, row.try_get(1)?);
        let requested = crate::db::in_transaction(&state.db, move |tx| {
            Box::pin(async move { request_in(tx, tenant_id, subscription_id, Reason::Renewal).await })
        })
        .await;
        match requested {
            Ok(Some(r)) if r.created => jobs.push(r.job_id),
            Ok(_) => {}
            // Being terminated, or no longer active: the next pass looks again.
            Err(AppError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    report.requested = jobs.len() as u64;
    state.dispatcher.dispatch(&state.db, &jobs).await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_at_two_thirds_of_any_lifetime() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(renewal_time(start, start + chrono::Duration::days(90)), start + chrono::Duration::days(60));
        assert_eq!(renewal_time(start, start + chrono::Duration::days(6)), start + chrono::Duration::days(4));
    }

    #[test]
    fn retries_back_off_to_a_day() {
        let hours: Vec<i64> = (1..=7).map(|n| retry_delay(n).num_hours()).collect();
        assert_eq!(hours, [1, 2, 4, 8, 16, 24, 24]);
    }
}
