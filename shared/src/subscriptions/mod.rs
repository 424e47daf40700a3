//! Subscriptions and `/api/subscriptions`.

pub mod api;
pub mod events;
pub mod lifecycle;
pub mod state;

pub use state::{SubscriptionEvent, SubscriptionStatus};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::AppResult;
use crate::types::Named;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub order_id: Uuid,
    pub product_id: Uuid,
    pub price_id: Uuid,
    pub status: SubscriptionStatus,
    /// The domain the subscription holds (or held), if any.
    pub domain: Option<String>,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub suspended_reason: Option<String>,
    pub activated_at: Option<DateTime<Utc>>,
    /// The newest DEAD job of a type with no later job: what staff must
    /// retry (or resolve) before that work happens.
    pub dead_job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Select list for `subscriptions s` (with its most recent domain).
pub const SUBSCRIPTION_COLUMNS: &str = "s.id, s.customer_id, s.order_id, s.product_id, s.price_id, s.status,
    (SELECT d.name FROM domains d WHERE d.subscription_id = s.id ORDER BY d.created_at DESC LIMIT 1) AS domain,
    s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.suspended_reason, s.activated_at,
    (SELECT j.id FROM jobs j WHERE j.subscription_id = s.id AND j.status = 'DEAD'
       AND NOT EXISTS (SELECT 1 FROM jobs k WHERE k.subscription_id = s.id AND k.type = j.type
                         AND k.created_at > j.created_at)
     ORDER BY j.created_at DESC, j.id LIMIT 1) AS dead_job_id,
    s.created_at, s.updated_at";

/// One subscription of the tenant; 404 when there is none.
pub async fn load(
    client: &impl tokio_postgres::GenericClient,
    tenant_id: Uuid,
    id: Uuid,
) -> AppResult<SubscriptionView> {
    let by_id = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE s.id = $1 AND s.tenant_id = $2");
    crate::db::one_in_tenant(client, &by_id, id, tenant_id, SubscriptionView::from_row).await
}

impl SubscriptionView {
    pub fn from_row(row: &Row) -> AppResult<SubscriptionView> {
        Ok(SubscriptionView {
            id: row.try_get("id")?,
            customer_id: row.try_get("customer_id")?,
            order_id: row.try_get("order_id")?,
            product_id: row.try_get("product_id")?,
            price_id: row.try_get("price_id")?,
            status: row.try_get("status")?,
            domain: row.try_get("domain")?,
            current_period_start: row.try_get("current_period_start")?,
            current_period_end: row.try_get("current_period_end")?,
            cancel_at_period_end: row.try_get("cancel_at_period_end")?,
            suspended_reason: row.try_get("suspended_reason")?,
            activated_at: row.try_get("activated_at")?,
            dead_job_id: row.try_get("dead_job_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

use serde_json::json;
use tokio_postgres::types::Type;

use crate::audit_log::{self, Actor, AuditEntry};
use crate::error::AppError;

pub(crate) async fn lock_status(
    tx: &tokio_postgres::Transaction<'_>,
    tenant_id: Uuid,
    id: Uuid,
) -> AppResult<SubscriptionStatus> {
    let row = tx
        .query_typed_opt(
            "SELECT status FROM subscriptions WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
            &[(&id, Type::UUID), (&tenant_id, Type::UUID)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(row.try_get(0)?)
}

async fn set_status(
    tx: &tokio_postgres::Transaction<'_>,
    tenant_id: Uuid,
    id: Uuid,
    from: SubscriptionStatus,
    to: SubscriptionStatus,
    action: &'static str,
    details: serde_json::Value,
) -> AppResult<()> {
    tx.query_typed(
        "UPDATE subscriptions SET status = $2, updated_at = now(),
                activated_at = CASE WHEN $2 = 'ACTIVE' AND activated_at IS NULL THEN now() ELSE activated_at END
         WHERE id = $1",
        &[(&id, Type::UUID), (&to, Type::TEXT)],
    )
    .await?;
    let mut details = details;
    if let Some(map) = details.as_object_mut() {
        map.insert("from".into(), json!(from.as_str()));
        map.insert("to".into(), json!(to.as_str()));
    }
    audit_log::record(
        tx,
        &AuditEntry::new(Some(tenant_id), Actor::System, action).target("subscription", id).details(details),
    )
    .await
}

/// Called after every successful job, under a lock on the subscription row:
/// the subscription (and its domain) become ACTIVE once every provisioning
/// job has succeeded, in whatever order they finished.
pub async fn activate_if_ready(tx: &tokio_postgres::Transaction<'_>, tenant_id: Uuid, id: Uuid) -> AppResult<bool> {
    let status = lock_status(tx, tenant_id, id).await?;
    let Ok(next) = status.transition(SubscriptionEvent::Activate) else {
        return Ok(false);
    };
    let remaining: i64 = tx
        .query_typed_one(
            "SELECT count(*) FROM jobs WHERE subscription_id = $1
               AND type IN ('PROVISION_DNS', 'PROVISION_HOSTING', 'PROVISION_MAIL') AND status <> 'SUCCEEDED'",
            &[(&id, Type::UUID)],
        )
        .await?
        .try_get(0)?;
    if remaining > 0 {
        return Ok(false);
    }
    set_status(tx, tenant_id, id, status, next, "subscription.activated", json!({})).await?;
    tx.query_typed(
        "UPDATE domains SET status = 'ACTIVE', updated_at = now() WHERE subscription_id = $1 AND status = 'PENDING'",
        &[(&id, Type::UUID)],
    )
    .await?;
    Ok(true)
}

/// A provisioning job died: the subscription shows it.
pub async fn mark_provisioning_failed(
    tx: &tokio_postgres::Transaction<'_>,
    tenant_id: Uuid,
    id: Uuid,
    job_id: Uuid,
) -> AppResult<()> {
    let status = lock_status(tx, tenant_id, id).await?;
    if let Ok(next) = status.transition(SubscriptionEvent::ProvisioningFailed) {
        set_status(tx, tenant_id, id, status, next, "subscription.provisioning_failed", json!({ "jobId": job_id }))
            .await?;
    }
    Ok(())
}

/// An operator retried a dead provisioning job: the subscription waits again.
pub async fn retry_provisioning(tx: &tokio_postgres::Transaction<'_>, tenant_id: Uuid, id: Uuid) -> AppResult<()> {
    let status = lock_status(tx, tenant_id, id).await?;
    if let Ok(next) = status.transition(SubscriptionEvent::RetryProvisioning) {
        set_status(tx, tenant_id, id, status, next, "subscription.provisioning_retried", json!({})).await?;
    }
    Ok(())
}
