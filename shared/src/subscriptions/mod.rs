//! Subscriptions and `/api/subscriptions`.

pub mod api;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::AppResult;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub order_id: Uuid,
    pub product_id: Uuid,
    pub price_id: Uuid,
    pub status: String,
    /// The domain the subscription holds (or held), if any.
    pub domain: Option<String>,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub suspended_reason: Option<String>,
    pub activated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Select list for `subscriptions s` (with its most recent domain).
pub const SUBSCRIPTION_COLUMNS: &str = "s.id, s.customer_id, s.order_id, s.product_id, s.price_id, s.status,
    (SELECT d.name FROM domains d WHERE d.subscription_id = s.id ORDER BY d.created_at DESC LIMIT 1) AS domain,
    s.current_period_start, s.current_period_end, s.cancel_at_period_end, s.suspended_reason, s.activated_at,
    s.created_at, s.updated_at";

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
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}
