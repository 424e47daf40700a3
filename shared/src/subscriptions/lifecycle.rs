//! Suspend, unsuspend and terminate: requested by staff or by billing
//! events, carried out by jobs, and applied to the subscription only when
//! the job succeeds.

use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{SubscriptionEvent, SubscriptionStatus, lock_status};
use crate::audit_log::{self, Actor, AuditEntry};
use crate::error::{AppError, AppResult};
use crate::jobs::JobType;
use crate::state::AppState;
use crate::types::DomainName;
use crate::types::Named;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Suspend,
    Unsuspend,
    Terminate,
}

impl Action {
    pub fn of(job_type: JobType) -> Option<Action> {
        match job_type {
            JobType::SuspendService => Some(Action::Suspend),
            JobType::UnsuspendService => Some(Action::Unsuspend),
            JobType::TerminateService => Some(Action::Terminate),
            _ => None,
        }
    }

    pub fn event(self) -> SubscriptionEvent {
        match self {
            Action::Suspend => SubscriptionEvent::Suspend,
            Action::Unsuspend => SubscriptionEvent::Unsuspend,
            Action::Terminate => SubscriptionEvent::Terminate,
        }
    }

    pub fn job_type(self) -> JobType {
        match self {
            Action::Suspend => JobType::SuspendService,
            Action::Unsuspend => JobType::UnsuspendService,
            Action::Terminate => JobType::TerminateService,
        }
    }

    /// Who may request it (and retry its job).
    pub fn permission(self) -> crate::auth::Permission {
        match self {
            Action::Suspend | Action::Unsuspend => crate::auth::Permission::SuspendSubscription,
            Action::Terminate => crate::auth::Permission::TerminateSubscription,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Suspend => "suspend",
            Action::Unsuspend => "unsuspend",
            Action::Terminate => "terminate",
        }
    }
}

/// Who asked, kept in the job so the final transition's audit row names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    User(Uuid),
    BillingEvent,
    Scheduler,
}

impl Requester {
    fn actor(self) -> Actor {
        match self {
            Requester::User(id) => Actor::User(id),
            Requester::BillingEvent => Actor::Webhook,
            Requester::Scheduler => Actor::System,
        }
    }

    fn describe(self) -> Value {
        match self {
            Requester::User(id) => json!({ "type": "USER", "id": id }),
            Requester::BillingEvent => json!({ "type": "BILLING_EVENT" }),
            Requester::Scheduler => json!({ "type": "SCHEDULER" }),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRef {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub job_type: String,
    pub status: String,
}

/// The jobs carrying out a request; `created` is false when an identical
/// request was already in flight and its jobs are returned instead.
#[derive(Debug, Clone)]
pub struct Requested {
    pub jobs: Vec<JobRef>,
    pub created: bool,
}

/// The subscription's jobs that are queued, running or retrying.
async fn in_flight(tx: &tokio_postgres::Transaction<'_>, subscription_id: Uuid) -> AppResult<Vec<JobRef>> {
    let rows = tx
        .query_typed(
            "SELECT id, type, status FROM jobs WHERE subscription_id = $1
               AND status IN ('PENDING', 'RUNNING', 'RETRYING') AND type <> 'ISSUE_CERTIFICATE'
             ORDER BY created_at, id",
            &[(&subscription_id, Type::UUID)],
        )
        .await?;
    rows.iter().map(|r| Ok(JobRef { id: r.try_get(0)?, job_type: r.try_get(1)?, status: r.try_get(2)? })).collect()
}

/// One thing at a time per subscription: a lifecycle action never runs
/// beside another action or beside provisioning still in flight (which
/// could, say, recreate a zone a terminate just deleted), and provisioning
/// never beside a lifecycle action. The answer is a 409 naming the other job.
fn refuse_overlap(job_type: JobType, others: &[JobRef]) -> AppResult<()> {
    let lifecycle = Action::of(job_type).is_some();
    let clash = others.iter().find(|other| {
        let other_is_lifecycle = JobType::from_name(&other.job_type).ok().and_then(Action::of).is_some();
        other.job_type != job_type.as_str() && (lifecycle || other_is_lifecycle)
    });
    match clash {
        Some(other) => Err(AppError::Conflict {
            field: Some("status".into()),
            detail: format!(
                "Another job ({} {}, {}) is still in progress for this subscription.",
                other.job_type, other.id, other.status
            ),
        }),
        None => Ok(()),
    }
}

/// Whether a DEAD job may run again (`POST /api/jobs/{id}/retry`), under the
/// subscription's lock: a lifecycle job needs its action's permission, a
/// subscription whose status still allows it, and nothing else in flight.
pub async fn check_retry(
    tx: &tokio_postgres::Transaction<'_>,
    tenant_id: Uuid,
    subscription_id: Uuid,
    job_type: JobType,
    role: crate::auth::Role,
) -> AppResult<()> {
    if let Some(action) = Action::of(job_type)
        && !action.permission().allows(role)
    {
        return Err(AppError::Forbidden(format!(
            "Retrying a {} job needs the {} permission.",
            job_type.as_str(),
            action.name()
        )));
    }
    let status = lock_status(tx, tenant_id, subscription_id).await?;
    refuse_overlap(job_type, &in_flight(tx, subscription_id).await?)?;
    if let Some(action) = Action::of(job_type) {
        status.transition(action.event())?;
    }
    Ok(())
}

/// Records a request and enqueues its job, in the caller's transaction.
pub async fn request_in(
    tx: &tokio_postgres::Transaction<'_>,
    tenant_id: Uuid,
    subscription_id: Uuid,
    action: Action,
    reason: Option<&str>,
    suspended_for: &str,
    requester: Requester,
) -> AppResult<Requested> {
    let status = lock_status(tx, tenant_id, subscription_id).await?;
    let in_flight = in_flight(tx, subscription_id).await?;
    refuse_overlap(action.job_type(), &in_flight)?;
    let same: Vec<JobRef> = in_flight.into_iter().filter(|j| j.job_type == action.job_type().as_str()).collect();
    if !same.is_empty() {
        return Ok(Requested { jobs: same, created: false });
    }
    status.transition(action.event())?;

    let domain: Option<String> = tx
        .query_typed_opt(
            "SELECT name FROM domains WHERE subscription_id = $1 AND status <> 'RELEASED' ORDER BY created_at DESC LIMIT 1",
            &[(&subscription_id, Type::UUID)],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let archive = domain
        .as_deref()
        .and_then(|d| DomainName::stored(d).ok())
        .map(|d| crate::provision::lifecycle::archive_name(&d, chrono::Utc::now().date_naive()));
    let payload = json!({
        "domain": domain, "reason": reason, "suspendedFor": suspended_for,
        "archiveName": archive, "requestedBy": requester.describe(),
    });
    let job_type = action.job_type().as_str();
    let row = tx
        .query_typed_one(
            "INSERT INTO jobs (tenant_id, subscription_id, type, payload) VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                (&tenant_id, Type::UUID),
                (&subscription_id, Type::UUID),
                (&job_type, Type::TEXT),
                (&payload, Type::JSONB),
            ],
        )
        .await?;
    let job = JobRef { id: row.try_get(0)?, job_type: job_type.into(), status: "PENDING".into() };
    audit_log::record(
        tx,
        &AuditEntry::new(Some(tenant_id), requester.actor(), action_requested(action))
            .target("subscription", subscription_id)
            .details(json!({ "jobId": job.id, "reason": reason, "from": status.as_str() })),
    )
    .await?;
    Ok(Requested { jobs: vec![job], created: true })
}

fn action_requested(action: Action) -> &'static str {
    match action {
        Action::Suspend => "subscription.suspend_requested",
        Action::Unsuspend => "subscription.unsuspend_requested",
        Action::Terminate => "subscription.terminate_requested",
    }
}

/// Staff request (API): own transaction, then dispatch.
pub async fn request(
    state: &AppState,
    tenant_id: Uuid,
    subscription_id: Uuid,
    action: Action,
    reason: Option<String>,
    requester: Requester,
) -> AppResult<Requested> {
    let suspended_for = if matches!(requester, Requester::User(_)) { "STAFF" } else { "NON_PAYMENT" };
    let requested = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            request_in(tx, tenant_id, subscription_id, action, reason.as_deref(), suspended_for, requester).await
        })
    })
    .await?;
    if requested.created {
        let ids: Vec<Uuid> = requested.jobs.iter().map(|j| j.id).collect();
        state.dispatcher.dispatch(&state.db, &ids).await;
    }
    tracing::info!(%subscription_id, action = action.name(), created = requested.created, "lifecycle requested");
    Ok(requested)
}

/// Why a lifecycle job is no longer wanted, checked under the
/// subscription's row lock just before it runs: the status no longer allows
/// it, a NON_PAYMENT suspension after the payment arrived, a termination at
/// period end after a renewal. `None`: run it.
pub async fn no_longer_wanted(db: &crate::db::DbPool, job: &crate::jobs::ClaimedJob) -> AppResult<Option<String>> {
    let Some(action) = Action::of(job.job_type) else { return Ok(None) };
    let Some(subscription_id) = job.subscription_id else { return Ok(None) };
    let (tenant_id, payload) = (job.tenant_id, job.payload.clone());
    crate::db::in_transaction(db, move |tx| {
        Box::pin(async move {
            let status = lock_status(tx, tenant_id, subscription_id).await?;
            if status.transition(action.event()).is_err() {
                return Ok(Some(format!("the subscription is {}", status.as_str())));
            }
            let row = tx
                .query_typed_one(
                    "SELECT payment_failed_at IS NOT NULL, cancel_at_period_end AND current_period_end <= now()
                     FROM subscriptions WHERE id = $1",
                    &[(&subscription_id, Type::UUID)],
                )
                .await?;
            let (payment_failed, period_over): (bool, Option<bool>) = (row.try_get(0)?, row.try_get(1)?);
            let by_scheduler = payload.pointer("/requestedBy/type").and_then(Value::as_str) == Some("SCHEDULER");
            Ok(match action {
                Action::Suspend if by_scheduler && !payment_failed => Some("the payment arrived".to_string()),
                Action::Terminate if by_scheduler && period_over != Some(true) => {
                    Some("the subscription was renewed".to_string())
                }
                _ => None,
            })
        })
    })
    .await
}

/// Applies a lifecycle job's success to the subscription and its domain,
/// under the subscription's row lock (called by the job engine).
pub async fn apply_success(
    tx: &tokio_postgres::Transaction<'_>,
    tenant_id: Uuid,
    subscription_id: Uuid,
    job_type: JobType,
    payload: &Value,
) -> AppResult<()> {
    let Some(action) = Action::of(job_type) else { return Ok(()) };
    let status = lock_status(tx, tenant_id, subscription_id).await?;
    let next: SubscriptionStatus = match status.transition(action.event()) {
        Ok(next) => next,
        Err(e) => {
            // The world changed meanwhile (e.g. terminated by hand): keep the truth.
            tracing::warn!(%subscription_id, error = %e, "lifecycle job finished but the transition no longer applies");
            return Ok(());
        }
    };
    let reason = payload.get("reason").and_then(Value::as_str);
    let suspended_for = payload.get("suspendedFor").and_then(Value::as_str).unwrap_or("STAFF");
    let domain_status = match action {
        Action::Suspend => {
            tx.query_typed(
                "UPDATE subscriptions SET status = $2, suspended_at = now(), suspended_reason = $3,
                        suspended_for = $4, updated_at = now() WHERE id = $1",
                &[
                    (&subscription_id, Type::UUID),
                    (&next, Type::TEXT),
                    (&reason, Type::TEXT),
                    (&suspended_for, Type::TEXT),
                ],
            )
            .await?;
            // Paid while the suspension was under way: undo it at once.
            let paid: bool = tx
                .query_typed_one(
                    "SELECT payment_failed_at IS NULL FROM subscriptions WHERE id = $1",
                    &[(&subscription_id, Type::UUID)],
                )
                .await?
                .try_get(0)?;
            if suspended_for == "NON_PAYMENT" && paid {
                let unsuspend = request_in(
                    tx,
                    tenant_id,
                    subscription_id,
                    Action::Unsuspend,
                    Some("payment received"),
                    "NON_PAYMENT",
                    Requester::BillingEvent,
                );
                Box::pin(unsuspend).await?;
            }
            "SUSPENDED"
        }
        Action::Unsuspend => {
            tx.query_typed(
                "UPDATE subscriptions SET status = $2, suspended_at = NULL, suspended_reason = NULL,
                        suspended_for = NULL, updated_at = now() WHERE id = $1",
                &[(&subscription_id, Type::UUID), (&next, Type::TEXT)],
            )
            .await?;
            "ACTIVE"
        }
        Action::Terminate => {
            tx.query_typed(
                "UPDATE subscriptions SET status = $2, terminated_at = now(), updated_at = now() WHERE id = $1",
                &[(&subscription_id, Type::UUID), (&next, Type::TEXT)],
            )
            .await?;
            // The site script removed its key and certificate files.
            crate::certificates::mark_deleted(tx, subscription_id).await?;
            "RELEASED"
        }
    };
    tx.query_typed(
        "UPDATE domains SET status = $2, updated_at = now(),
                released_at = CASE WHEN $2 = 'RELEASED' THEN now() ELSE released_at END
         WHERE subscription_id = $1 AND status <> 'RELEASED'",
        &[(&subscription_id, Type::UUID), (&domain_status, Type::TEXT)],
    )
    .await?;
    let action_name = match action {
        Action::Suspend => "subscription.suspended",
        Action::Unsuspend => "subscription.unsuspended",
        Action::Terminate => "subscription.terminated",
    };
    audit_log::record(
        tx,
        &AuditEntry::new(Some(tenant_id), Actor::System, action_name).target("subscription", subscription_id).details(
            json!({
                "from": status.as_str(), "to": next.as_str(), "reason": reason,
                "requestedBy": payload.get("requestedBy"),
            }),
        ),
    )
    .await?;
    Ok(())
}

/// What the billing part of a sweep requested.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BillingReport {
    pub suspended: u64,
    pub terminated: u64,
}

/// Suspends subscriptions whose payment failed longer ago than the tenant's
/// grace period (`settings.paymentGraceDays`, default 7), and terminates
/// cancelled ones at the end of their period. A subscription with a job in
/// flight is left for a later pass, and one whose job for this action went
/// DEAD is never asked again (the DEAD job raised its alert; staff retry it),
/// so neither takes one of the pass's 200 places.
pub async fn billing_sweep(state: &AppState) -> AppResult<BillingReport> {
    let client = state.db.get().await?;
    let overdue = client
        .query_typed(
            "SELECT s.id, s.tenant_id FROM subscriptions s JOIN tenants t ON t.id = s.tenant_id
             WHERE s.status = 'ACTIVE' AND s.payment_failed_at IS NOT NULL
               AND s.payment_failed_at + make_interval(days => COALESCE((t.settings->>'paymentGraceDays')::int, 7)) <= now()
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subscription_id = s.id
                                 AND ((j.status IN ('PENDING', 'RUNNING', 'RETRYING') AND j.type <> 'ISSUE_CERTIFICATE')
                                      OR (j.status = 'DEAD' AND j.type = 'SUSPEND_SERVICE'
                                          AND j.created_at >= s.payment_failed_at)))
             ORDER BY s.payment_failed_at LIMIT 200",
            &[],
        )
        .await?;
    let ending = client
        .query_typed(
            "SELECT s.id, s.tenant_id FROM subscriptions s
             WHERE s.cancel_at_period_end AND s.status IN ('ACTIVE', 'SUSPENDED') AND s.current_period_end <= now()
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subscription_id = s.id
                                 AND ((j.status IN ('PENDING', 'RUNNING', 'RETRYING') AND j.type <> 'ISSUE_CERTIFICATE')
                                      OR (j.status = 'DEAD' AND j.type = 'TERMINATE_SERVICE')))
             ORDER BY s.current_period_end LIMIT 200",
            &[],
        )
        .await?;
    drop(client);
    let mut report = BillingReport::default();
    for (rows, action) in [(&overdue, Action::Suspend), (&ending, Action::Terminate)] {
        for row in rows {
            let (id, tenant): (Uuid, Uuid) = (row.try_get(0)?, row.try_get(1)?);
            let reason = match action {
                Action::Suspend => Some("payment failed".to_string()),
                _ => Some("cancelled at the end of the period".to_string()),
            };
            match request(state, tenant, id, action, reason, Requester::Scheduler).await {
                Ok(r) if r.created => match action {
                    Action::Suspend => report.suspended += 1,
                    _ => report.terminated += 1,
                },
                Ok(_) => {}
                // Another action in flight: the next pass looks again.
                Err(AppError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(report)
}
