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
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::Transaction;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::lifecycle::{Action, JobRef, Requester, request_in};
use super::{SubscriptionStatus, lock_status};
use crate::audit_log::{self, Actor, AuditEntry};
use crate::auth::Permission;
use crate::catalog::Interval;
use crate::error::{AppError, AppResult};
use crate::http::fields::Fields;
use crate::http::routes::{ApiRoutes, Limited};
use crate::http::webhook::{self, Applied, Delivery, SignedWebhook};
use crate::state::AppState;
use crate::types::Named;
use crate::types::Slug;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new().add(Method::POST, "/api/subscriptions/events", Permission::Public, Limited::No, receive)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    Renewed,
    PaymentFailed,
    Cancelled,
}

fn parse_type(raw: &str) -> Result<EventType, String> {
    match raw {
        "renewed" => Ok(EventType::Renewed),
        "payment_failed" => Ok(EventType::PaymentFailed),
        "cancelled" => Ok(EventType::Cancelled),
        _ => Err("must be one of renewed, payment_failed, cancelled".into()),
    }
}

enum Reference {
    Id(Uuid),
    ExternalOrder(String),
}

struct BillingEvent {
    tenant_slug: Slug,
    event_type: EventType,
    type_name: String,
    reference: Reference,
}

pub(crate) const EVENT_FIELDS: [&str; 5] = ["tenantSlug", "type", "subscriptionId", "externalOrderId", "occurredAt"];

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
}

fn parse_event(body: &Value) -> AppResult<BillingEvent> {
    let mut f = Fields::new(body)?;
    let tenant_slug = f.string("tenantSlug").and_then(|raw| f.parse("tenantSlug", Some(raw), Slug::parse));
    let type_raw = f.string("type");
    let event_type = type_raw.and_then(|raw| f.parse("type", Some(raw), parse_type));
    let by_id = f.opt_string("subscriptionId").flatten().and_then(|raw| {
        f.parse("subscriptionId", Some(raw), |s| Uuid::parse_str(s).map_err(|_| "must be a UUID".into()))
    });
    let by_external = f.opt_string("externalOrderId").flatten().map(str::to_string);
    let reference = match (by_id, by_external) {
        (Some(id), _) => Some(Reference::Id(id)),
        (None, Some(ext)) if !ext.trim().is_empty() => Some(Reference::ExternalOrder(ext)),
        _ => {
            // A subscriptionId that was sent but is invalid already has its own error.
            if f.raw("subscriptionId").is_none_or(Value::is_null) {
                f.error("subscriptionId", "subscriptionId or externalOrderId is required");
            }
            None
        }
    };
    f.finish(&EVENT_FIELDS)?;
    match (tenant_slug, event_type, reference) {
        (Some(tenant_slug), Some(event_type), Some(reference)) => {
            Ok(BillingEvent { tenant_slug, event_type, type_name: type_raw.unwrap_or_default().to_string(), reference })
        }
        _ => Err(AppError::internal(anyhow::anyhow!("event fields validated but missing"))),
    }
}

async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> AppResult<Response> {
    webhook::receive::<BillingEvent>(&state, &headers, body).await
}

impl SignedWebhook for BillingEvent {
    const SOURCE: &'static str = "SUBSCRIPTION_EVENTS";
    const STATUS: StatusCode = StatusCode::OK;
    type Answer = BillingEventOutcome;

    fn parse(body: &Value) -> AppResult<BillingEvent> {
        parse_event(body)
    }

    fn apply<'t>(
        self,
        tx: &'t Transaction<'t>,
        delivery: &'t Delivery,
    ) -> BoxFuture<'t, AppResult<Applied<BillingEventOutcome>>> {
        Box::pin(apply_event(tx, &delivery.webhook_id, self))
    }
}

async fn apply_event(
    tx: &Transaction<'_>,
    webhook_id: &str,
    event: BillingEvent,
) -> AppResult<Applied<BillingEventOutcome>> {
    let tenant_id: Uuid = tx
        .query_typed_opt(
            "SELECT id FROM tenants WHERE lower(slug) = lower($1) AND status = 'ACTIVE'",
            &[(&event.tenant_slug.as_str(), Type::TEXT)],
        )
        .await?
        .ok_or(AppError::NotFound)?
        .try_get(0)?;
    let row = match &event.reference {
        Reference::Id(id) => {
            tx.query_typed_opt(
                "SELECT s.id, pr.interval, s.current_period_end, s.suspended_for FROM subscriptions s
                 JOIN prices pr ON pr.id = s.price_id WHERE s.id = $1 AND s.tenant_id = $2",
                &[(id, Type::UUID), (&tenant_id, Type::UUID)],
            )
            .await?
        }
        Reference::ExternalOrder(ext) => {
            tx.query_typed_opt(
                "SELECT s.id, pr.interval, s.current_period_end, s.suspended_for FROM subscriptions s
                 JOIN prices pr ON pr.id = s.price_id JOIN orders o ON o.id = s.order_id
                 WHERE o.external_order_id = $1 AND s.tenant_id = $2",
                &[(ext, Type::TEXT), (&tenant_id, Type::UUID)],
            )
            .await?
        }
    }
    .ok_or(AppError::NotFound)?;
    let subscription_id: Uuid = row.try_get(0)?;
    let interval: String = row.try_get(1)?;
    let interval = Interval::from_name(&interval).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    let period_end: Option<DateTime<Utc>> = row.try_get(2)?;
    let suspended_for: Option<String> = row.try_get(3)?;
    let status = lock_status(tx, tenant_id, subscription_id).await?;
    if status == SubscriptionStatus::Terminated {
        return Err(AppError::Conflict {
            field: Some("status".into()),
            detail: "The subscription is TERMINATED; billing events no longer apply.".into(),
        });
    }

    let mut jobs: Vec<JobRef> = Vec::new();
    let action = match event.event_type {
        EventType::PaymentFailed => {
            tx.query_typed(
                "UPDATE subscriptions SET payment_failed_at = COALESCE(payment_failed_at, now()), updated_at = now() WHERE id = $1",
                &[(&subscription_id, Type::UUID)],
            )
            .await?;
            "subscription.payment_failed"
        }
        EventType::Cancelled => {
            tx.query_typed(
                "UPDATE subscriptions SET cancel_at_period_end = true, updated_at = now() WHERE id = $1",
                &[(&subscription_id, Type::UUID)],
            )
            .await?;
            "subscription.cancelled"
        }
        EventType::Renewed => {
            // From the current end; a lapsed period restarts from now.
            let now = Utc::now();
            let base = period_end.filter(|end| *end > now).unwrap_or(now);
            let new_end = interval.period_end(base);
            tx.query_typed(
                "UPDATE subscriptions SET current_period_end = COALESCE($2, current_period_end), payment_failed_at = NULL,
                        cancel_at_period_end = false, updated_at = now() WHERE id = $1",
                &[(&subscription_id, Type::UUID), (&new_end, Type::TIMESTAMPTZ)],
            )
            .await?;
            if status == SubscriptionStatus::Suspended && suspended_for.as_deref() == Some("NON_PAYMENT") {
                let requested = request_in(
                    tx,
                    tenant_id,
                    subscription_id,
                    Action::Unsuspend,
                    Some("payment received"),
                    "NON_PAYMENT",
                    Requester::BillingEvent,
                )
                .await?;
                jobs = requested.jobs;
            }
            "subscription.renewed"
        }
    };
    audit_log::record(
        tx,
        &AuditEntry::new(Some(tenant_id), Actor::Webhook, action)
            .target("subscription", subscription_id)
            .details(json!({ "webhookId": webhook_id })),
    )
    .await?;
    let created: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let answer = BillingEventOutcome {
        event_id: webhook_id.to_string(),
        event_type: event.type_name,
        subscription_id,
        status: status.as_str().to_string(),
        jobs,
    };
    Ok(Applied::Done { tenant_id, answer, order_id: None, jobs: created })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_fields(body: Value) -> Vec<String> {
        match parse_event(&body) {
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
        assert!(matches!(parse_event(&by_id).map(|e| e.reference), Ok(Reference::Id(_))));
        let by_order = json!({"tenantSlug": "acme", "type": "payment_failed", "externalOrderId": "ord-1"});
        assert!(matches!(parse_event(&by_order).map(|e| e.reference), Ok(Reference::ExternalOrder(_))));
    }
}
