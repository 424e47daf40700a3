//! `POST /api/subscriptions/events`: billing events from the marketing /
//! billing site, signed like orders (Standard Webhooks) and idempotent by
//! `webhook-id`.
//!
//! ```json
//! { "tenantSlug": "demo", "type": "renewed" | "payment_failed" | "cancelled",
//!   "subscriptionId": "…"  (or "externalOrderId": "mkt-1001") }
//! ```
//!
//! - `renewed`: the period is extended by one interval from its current end;
//!   a failed payment is forgotten; a NON_PAYMENT suspension is lifted.
//! - `payment_failed`: remembered; the sweep suspends once the tenant's
//!   grace period (`settings.paymentGraceDays`, default 7) has passed.
//! - `cancelled`: the sweep terminates the subscription at its period end.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::Transaction;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::lifecycle::{Action, JobRef, Requester, request_in};
use super::{SubscriptionStatus, lock_status};
use crate::audit_log::{self, Actor, AuditEntry};
use crate::auth::Permission;
use crate::catalog::Interval;
use crate::error::{AppError, AppResult};
use crate::http::body::{Field, Problems};
use crate::http::routes::{ApiRoutes, Doc};
use crate::http::webhook::{self, Applied, Delivery, SignedWebhook};
use crate::state::AppState;
use crate::types::Named;
use crate::types::Slug;

pub fn routes() -> ApiRoutes {
    let doc = Doc::new("receiveBillingEvent", "subscriptions", "Billing event webhook (Standard Webhooks signature)")
        .body::<BillingEventInput>()
        .json::<BillingEventOutcome>(200)
        .signed_webhook()
        .without_rate_limit();
    ApiRoutes::new().route(Method::POST, "/api/subscriptions/events", Permission::Public, receive, doc)
}

crate::types::named_enum! {
    names = "snake_case";
    enum EventType {
        Renewed,
        PaymentFailed,
        Cancelled,
    }
}

enum Reference {
    Id(Uuid),
    ExternalOrder(String),
}

struct BillingEvent {
    tenant_slug: Slug,
    event_type: EventType,
    reference: Reference,
    occurred_at: Option<DateTime<Utc>>,
}

/// Names the subscription by `subscriptionId` or by the order's `externalOrderId`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BillingEventInput {
    #[schema(value_type = String, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
    tenant_slug: Field<String>,
    #[serde(rename = "type")]
    #[schema(value_type = EventType)]
    event_type: Field<EventType>,
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    subscription_id: Field<Uuid>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    external_order_id: Field<String>,
    /// When it happened at the billing site; an event older than the last
    /// one applied to the subscription is recorded and ignored.
    #[serde(default)]
    #[schema(value_type = Option<DateTime<Utc>>)]
    occurred_at: Field<DateTime<Utc>>,
}

/// The answer to a billing event; stored and replayed verbatim for duplicates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BillingEventOutcome {
    event_id: String,
    #[serde(rename = "type")]
    event_type: String,
    subscription_id: Uuid,
    /// The subscription's status when the event arrived.
    status: String,
    /// Jobs the event started (an unsuspend after a renewal).
    jobs: Vec<JobRef>,
    /// True when the event happened before the last one applied: it was
    /// recorded and changed nothing.
    ignored: bool,
}

impl TryFrom<BillingEventInput> for BillingEvent {
    type Error = AppError;

    fn try_from(body: BillingEventInput) -> AppResult<BillingEvent> {
        let mut p = Problems::new();
        let tenant_slug = p.required("tenantSlug", body.tenant_slug, |s| Slug::parse(&s));
        let event_type = p.required("type", body.event_type, Ok);
        let id_sent = matches!(body.subscription_id, Field::Given(_) | Field::Invalid { .. });
        let by_id = p.optional("subscriptionId", body.subscription_id, Ok);
        let by_external =
            p.optional("externalOrderId", body.external_order_id, Ok).filter(|ext| !ext.trim().is_empty());
        let occurred_at = p.optional("occurredAt", body.occurred_at, Ok);
        let reference = match (by_id, by_external) {
            (Some(id), _) => Some(Reference::Id(id)),
            (None, Some(ext)) => Some(Reference::ExternalOrder(ext)),
            (None, None) => {
                // A subscriptionId that was sent but is invalid already has its own error.
                if !id_sent {
                    p.add("subscriptionId", "subscriptionId or externalOrderId is required");
                }
                None
            }
        };
        let (Some(tenant_slug), Some(event_type), Some(reference), true) =
            (tenant_slug, event_type, reference, p.is_empty())
        else {
            return Err(p.into_error());
        };
        Ok(BillingEvent { tenant_slug, event_type, reference, occurred_at })
    }
}

async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> AppResult<Response> {
    webhook::receive::<BillingEvent>(&state, &headers, body).await
}

impl SignedWebhook for BillingEvent {
    const SOURCE: &'static str = "SUBSCRIPTION_EVENTS";
    type Answer = BillingEventOutcome;
    type Body = BillingEventInput;

    async fn apply(self, tx: &Transaction<'_>, delivery: &Delivery) -> AppResult<Applied<BillingEventOutcome>> {
        apply_event(tx, &delivery.webhook_id, self).await
    }
}

/// The subscription an event names, locked for the event's change.
struct EventTarget {
    tenant_id: Uuid,
    subscription_id: Uuid,
    interval: Interval,
    period_end: Option<DateTime<Utc>>,
    suspended_for: Option<String>,
    status: SubscriptionStatus,
    /// When the last applied event happened.
    last_event_at: Option<DateTime<Utc>>,
}

async fn apply_event(
    tx: &Transaction<'_>,
    webhook_id: &str,
    event: BillingEvent,
) -> AppResult<Applied<BillingEventOutcome>> {
    let target = find_subscription(tx, &event).await?;
    if target.status == SubscriptionStatus::Terminated {
        return Err(AppError::Conflict {
            field: Some("status".into()),
            detail: "The subscription is TERMINATED; billing events no longer apply.".into(),
        });
    }
    let occurred_at = event.occurred_at.unwrap_or_else(Utc::now);
    let ignored = target.last_event_at.is_some_and(|last| occurred_at < last);
    let (action, jobs) = if ignored {
        ("subscription.billing_event_ignored", Vec::new())
    } else {
        tx.query_typed(
            "UPDATE subscriptions SET billing_event_at = $2 WHERE id = $1",
            &[(&target.subscription_id, Type::UUID), (&occurred_at, Type::TIMESTAMPTZ)],
        )
        .await?;
        match event.event_type {
            EventType::PaymentFailed => (payment_failed(tx, &target).await?, Vec::new()),
            EventType::Cancelled => (cancelled(tx, &target).await?, Vec::new()),
            EventType::Renewed => renewed(tx, &target).await?,
        }
    };
    let EventTarget { tenant_id, subscription_id, status, last_event_at, .. } = target;
    audit_log::record(
        tx,
        &AuditEntry::new(Some(tenant_id), Actor::Webhook, action).target("subscription", subscription_id).details(
            json!({
                "webhookId": webhook_id, "type": event.event_type.to_string(), "occurredAt": occurred_at,
                "lastEventAt": last_event_at,
            }),
        ),
    )
    .await?;
    let created: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let answer = BillingEventOutcome {
        event_id: webhook_id.to_string(),
        event_type: event.event_type.to_string(),
        subscription_id,
        status: status.as_str().to_string(),
        jobs,
        ignored,
    };
    Ok(Applied::Done { tenant_id, answer, order_id: None, jobs: created })
}

/// The tenant's subscription by id or by its order's external id (404
/// otherwise), locked before its billing state is read, so concurrent
/// events apply one after the other (two renewals extend twice).
async fn find_subscription(tx: &Transaction<'_>, event: &BillingEvent) -> AppResult<EventTarget> {
    let tenant_id = crate::tenants::active_id(tx, &event.tenant_slug).await?;
    let subscription_id: Uuid = match &event.reference {
        Reference::Id(id) => *id,
        Reference::ExternalOrder(ext) => tx
            .query_typed_opt(
                "SELECT s.id FROM subscriptions s JOIN orders o ON o.id = s.order_id
                 WHERE o.external_order_id = $1 AND s.tenant_id = $2",
                &[(ext, Type::TEXT), (&tenant_id, Type::UUID)],
            )
            .await?
            .ok_or(AppError::NotFound)?
            .try_get(0)?,
    };
    let status = lock_status(tx, tenant_id, subscription_id).await?;
    let row = tx
        .query_typed_one(
            "SELECT pr.interval, s.current_period_end, s.suspended_for, s.billing_event_at FROM subscriptions s
             JOIN prices pr ON pr.id = s.price_id WHERE s.id = $1",
            &[(&subscription_id, Type::UUID)],
        )
        .await?;
    Ok(EventTarget {
        tenant_id,
        subscription_id,
        interval: row.try_get(0)?,
        period_end: row.try_get(1)?,
        suspended_for: row.try_get(2)?,
        status,
        last_event_at: row.try_get(3)?,
    })
}

/// Remembered; the sweep suspends once the tenant's grace period has passed.
async fn payment_failed(tx: &Transaction<'_>, target: &EventTarget) -> AppResult<&'static str> {
    tx.query_typed(
        "UPDATE subscriptions SET payment_failed_at = COALESCE(payment_failed_at, now()), updated_at = now() WHERE id = $1",
        &[(&target.subscription_id, Type::UUID)],
    )
    .await?;
    Ok("subscription.payment_failed")
}

/// The sweep terminates the subscription at its period end.
async fn cancelled(tx: &Transaction<'_>, target: &EventTarget) -> AppResult<&'static str> {
    tx.query_typed(
        "UPDATE subscriptions SET cancel_at_period_end = true, updated_at = now() WHERE id = $1",
        &[(&target.subscription_id, Type::UUID)],
    )
    .await?;
    Ok("subscription.cancelled")
}

/// One more interval from the current end (a lapsed period restarts from
/// now); a failed payment is forgotten and a NON_PAYMENT suspension lifted.
async fn renewed(tx: &Transaction<'_>, target: &EventTarget) -> AppResult<(&'static str, Vec<JobRef>)> {
    let now = Utc::now();
    let base = target.period_end.filter(|end| *end > now).unwrap_or(now);
    let new_end = target.interval.period_end(base);
    tx.query_typed(
        "UPDATE subscriptions SET current_period_end = COALESCE($2, current_period_end), payment_failed_at = NULL,
                cancel_at_period_end = false, updated_at = now() WHERE id = $1",
        &[(&target.subscription_id, Type::UUID), (&new_end, Type::TIMESTAMPTZ)],
    )
    .await?;
    let mut jobs = Vec::new();
    if target.status == SubscriptionStatus::Suspended && target.suspended_for.as_deref() == Some("NON_PAYMENT") {
        let requested = request_in(
            tx,
            target.tenant_id,
            target.subscription_id,
            Action::Unsuspend,
            Some("payment received"),
            "NON_PAYMENT",
            Requester::BillingEvent,
        )
        .await?;
        jobs = requested.jobs;
    }
    Ok(("subscription.renewed", jobs))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn parse(body: &Value) -> AppResult<BillingEvent> {
        BillingEvent::try_from(crate::http::extract::from_value::<BillingEventInput>(body.clone())?)
    }

    fn error_fields(body: Value) -> Vec<String> {
        match parse(&body) {
            Err(AppError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("expected a 422, got {other:?}"),
            Ok(_) => panic!("expected a 422 for {body}"),
        }
    }

    #[test]
    fn a_reference_that_is_null_or_missing_is_a_422_not_a_500() {
        for body in [
            json!({"tenantSlug": "acme", "type": "renewed", "subscriptionId": null, "externalOrderId": null}),
            json!({"tenantSlug": "acme", "type": "renewed", "subscriptionId": null}),
            json!({"tenantSlug": "acme", "type": "renewed", "externalOrderId": "  "}),
            json!({"tenantSlug": "acme", "type": "renewed"}),
        ] {
            assert_eq!(error_fields(body), ["subscriptionId"]);
        }
    }

    #[test]
    fn an_invalid_subscription_id_is_named_once() {
        let fields = error_fields(json!({"tenantSlug": "acme", "type": "renewed", "subscriptionId": "nope"}));
        assert_eq!(fields, ["subscriptionId"]);
    }

    #[test]
    fn either_reference_is_enough() {
        let by_id = json!({"tenantSlug": "acme", "type": "cancelled", "subscriptionId": Uuid::nil().to_string()});
        assert!(matches!(parse(&by_id).map(|e| e.reference), Ok(Reference::Id(_))));
        let by_order = json!({"tenantSlug": "acme", "type": "payment_failed", "externalOrderId": "ord-1"});
        assert!(matches!(parse(&by_order).map(|e| e.reference), Ok(Reference::ExternalOrder(_))));
    }
}
