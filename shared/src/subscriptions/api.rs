//! `GET /api/subscriptions` (`?status=&customerId=`) and `/api/subscriptions/{id}`.

use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::lifecycle::{self, Action, JobRef, Requester};
use super::{SUBSCRIPTION_COLUMNS, SubscriptionStatus, SubscriptionView};
use crate::auth::Permission;
use crate::auth::principal::Principal;
use crate::error::AppResult;
use crate::http::body::{Field, Problems};
use crate::http::extract::{Caller, IdPath, Json, Listing, StatusCustomerFilter};
use crate::http::pagination::{Page, tenant_page};
use crate::http::routes::{ApiRoutes, Doc, QueryParam};
use crate::jobs::JobView;
use crate::state::AppState;
use crate::types::Named;

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/subscriptions",
            Permission::ReadData,
            list,
            Doc::new("listSubscriptions", "subscriptions", "Subscriptions, newest first")
                .query(&[
                    QueryParam::Text("status", "Subscription status"),
                    QueryParam::Uuid("customerId", "Only this customer's subscriptions"),
                ])
                .page::<SubscriptionView>(),
        )
        .route(
            Method::GET,
            "/api/subscriptions/{id}",
            Permission::ReadData,
            get,
            Doc::new("getSubscription", "subscriptions", "One subscription with its jobs")
                .json::<SubscriptionDetail>(200),
        )
        .route(
            Method::POST,
            "/api/subscriptions/{id}/suspend",
            Permission::SuspendSubscription,
            suspend,
            Doc::new(
                "suspendSubscription",
                "subscriptions",
                "Suspend: web space disabled, mail disabled (through jobs)",
            )
            .body::<SuspendBody>()
            .json::<ActionAccepted>(202),
        )
        .route(
            Method::POST,
            "/api/subscriptions/{id}/unsuspend",
            Permission::SuspendSubscription,
            unsuspend,
            Doc::new("unsuspendSubscription", "subscriptions", "Restore a suspended subscription (through jobs)")
                .json::<ActionAccepted>(202),
        )
        .route(
            Method::POST,
            "/api/subscriptions/{id}/terminate",
            Permission::TerminateSubscription,
            terminate,
            Doc::new(
                "terminateSubscription",
                "subscriptions",
                "Terminate: archive the site, remove the zone and mailboxes (through jobs)",
            )
            .json::<ActionAccepted>(202),
        )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActionAccepted {
    subscription: SubscriptionView,
    jobs: Vec<JobRef>,
}

async fn act(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    action: Action,
    reason: Option<String>,
) -> AppResult<(StatusCode, axum::Json<ActionAccepted>)> {
    let requested =
        lifecycle::request(state, principal.tenant_id, id, action, reason, Requester::User(principal.user_id)).await?;
    let client = state.db.get().await?;
    let subscription = super::load(&**client, principal.tenant_id, id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(ActionAccepted { subscription, jobs: requested.jobs })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuspendBody {
    /// Shown to staff.
    #[schema(value_type = String, min_length = 1, max_length = 1000)]
    reason: Field<String>,
}

fn parse_reason(raw: &str) -> Result<String, String> {
    let reason = raw.trim();
    if reason.is_empty() || reason.chars().count() > 1000 {
        Err("must be 1 to 1000 characters".to_string())
    } else if reason.chars().any(|c| c.is_control() && c != '\n') {
        Err("must not contain control characters".to_string())
    } else {
        Ok(reason.to_string())
    }
}

async fn suspend(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
    Json(body): Json<SuspendBody>,
) -> AppResult<(StatusCode, axum::Json<ActionAccepted>)> {
    let mut p = Problems::new();
    let reason = p.required("reason", body.reason, |s| parse_reason(&s));
    p.finish()?;
    act(&state, &principal, id, Action::Suspend, reason).await
}

async fn unsuspend(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
) -> AppResult<(StatusCode, axum::Json<ActionAccepted>)> {
    act(&state, &principal, id, Action::Unsuspend, None).await
}

async fn terminate(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
) -> AppResult<(StatusCode, axum::Json<ActionAccepted>)> {
    act(&state, &principal, id, Action::Terminate, None).await
}

async fn list(
    Caller(state, principal): Caller,
    Listing { filters, page, mut problems }: Listing<StatusCustomerFilter>,
) -> AppResult<axum::Json<Page<SubscriptionView>>> {
    let (status, customer_id) = filters.read(&mut problems, SubscriptionStatus::from_name);
    problems.finish()?;
    tenant_page(
        &state.db,
        principal.tenant_id,
        &format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s
             WHERE s.tenant_id = $1 AND ($2::text IS NULL OR s.status = $2) AND ($3::uuid IS NULL OR s.customer_id = $3)"
        ),
        ("s.created_at", "s.id"),
        &[(&status, Type::TEXT), (&customer_id, Type::UUID)],
        &page,
        SubscriptionView::from_row,
    )
    .await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscriptionDetail {
    #[serde(flatten)]
    subscription: SubscriptionView,
    jobs: Vec<JobView>,
    /// The site's current certificate, if it has one.
    certificate: Option<crate::certificates::CertificateView>,
}

async fn get(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<axum::Json<SubscriptionDetail>> {
    let client = state.db.get().await?;
    let subscription = super::load(&**client, principal.tenant_id, id).await?;
    let jobs = crate::jobs::of_subscription(&**client, id, principal.tenant_id).await?;
    let certificate = crate::certificates::current_of_subscription(&**client, principal.tenant_id, id).await?;
    Ok(axum::Json(SubscriptionDetail { subscription, jobs, certificate }))
}
