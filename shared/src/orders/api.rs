//! `POST /api/orders` (the signed marketing webhook) and the admin reads
//! `GET /api/orders`, `GET /api/orders/{id}`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{OrderRequest, OrderStatus};
use crate::auth::Permission;
use crate::customers::{CUSTOMER_COLUMNS, Customer};
use crate::db::{all_in_tenant, one_in_tenant};
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, Listing, StatusCustomerFilter};
use crate::http::pagination::{Page, PeriodParams, tenant_page};
use crate::http::routes::{ApiRoutes, Doc, QueryParam};
use crate::http::webhook;
use crate::jobs::JobView;
use crate::state::AppState;
use crate::subscriptions::{SUBSCRIPTION_COLUMNS, SubscriptionView};
use crate::types::Named;

pub fn routes() -> ApiRoutes {
    // Authenticated by its signature, not a session; exempt from the
    // per-client limit (the marketing site is one client).
    let webhook = Doc::new(
        "receiveOrder",
        "orders",
        "Order webhook from the marketing site (Standard Webhooks signature; idempotent by webhook-id and \
         externalOrderId)",
    )
    .body::<super::OrderInput>()
    .json::<super::IntakeResponse>(201)
    .signed_webhook()
    .without_rate_limit();
    let list_doc = Doc::new("listOrders", "orders", "Orders, newest first")
        .query(&[
            QueryParam::Text("status", "Order status"),
            QueryParam::Uuid("customerId", "Only this customer's orders"),
            QueryParam::Time("from", "Created at or after"),
            QueryParam::Time("to", "Created before"),
        ])
        .page::<OrderView>();
    let get_doc =
        Doc::new("getOrder", "orders", "One order with its customer, subscription and jobs").json::<OrderDetail>(200);
    ApiRoutes::new()
        .route(Method::POST, "/api/orders", Permission::Public, receive, webhook)
        .route(Method::GET, "/api/orders", Permission::ReadData, list, list_doc)
        .route(Method::GET, "/api/orders/{id}", Permission::ReadData, get, get_doc)
}

async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> AppResult<Response> {
    webhook::receive::<OrderRequest>(&state, &headers, body).await
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub id: Uuid,
    pub external_order_id: String,
    pub status: String,
    pub customer_id: Uuid,
    pub price_id: Uuid,
    pub total_amount_cents: i64,
    pub currency: String,
    pub domain: Option<String>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

const ORDER_COLUMNS: &str =
    "id, external_order_id, status, customer_id, price_id, total_amount_cents, currency, domain, metadata, created_at";

impl OrderView {
    fn from_row(row: &Row) -> AppResult<OrderView> {
        Ok(OrderView {
            id: row.try_get("id")?,
            external_order_id: row.try_get("external_order_id")?,
            status: row.try_get("status")?,
            customer_id: row.try_get("customer_id")?,
            price_id: row.try_get("price_id")?,
            total_amount_cents: row.try_get("total_amount_cents")?,
            currency: row.try_get("currency")?,
            domain: row.try_get("domain")?,
            metadata: row.try_get("metadata")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filters {
    #[serde(flatten)]
    owner: StatusCustomerFilter,
    #[serde(flatten)]
    period: PeriodParams,
}

async fn list(
    Caller(state, principal): Caller,
    Listing { filters, page, mut problems }: Listing<Filters>,
) -> AppResult<axum::Json<Page<OrderView>>> {
    let (status, customer_id) = filters.owner.read(&mut problems, OrderStatus::from_name);
    let (from, to) = problems.period(filters.period);
    problems.finish()?;
    tenant_page(
        &state.db,
        principal.tenant_id,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders
             WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR customer_id = $3)
               AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)"
        ),
        ("created_at", "id"),
        &[(&status, Type::TEXT), (&customer_id, Type::UUID), (&from, Type::TIMESTAMPTZ), (&to, Type::TIMESTAMPTZ)],
        &page,
        OrderView::from_row,
    )
    .await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderDetail {
    #[serde(flatten)]
    order: OrderView,
    customer: Customer,
    subscription: Option<SubscriptionView>,
    jobs: Vec<JobView>,
}

async fn get(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<axum::Json<OrderDetail>> {
    let client = state.db.get().await?;
    let tenant = principal.tenant_id;
    let by_id = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND tenant_id = $2");
    let order = one_in_tenant(&**client, &by_id, id, tenant, OrderView::from_row).await?;
    let customer_by_id = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1 AND tenant_id = $2");
    let customer = one_in_tenant(&**client, &customer_by_id, order.customer_id, tenant, Customer::from_row).await?;
    let by_order =
        format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE s.order_id = $1 AND s.tenant_id = $2");
    let subscription =
        all_in_tenant(&**client, &by_order, id, tenant, SubscriptionView::from_row).await?.into_iter().next();
    let jobs = match &subscription {
        None => Vec::new(),
        Some(s) => crate::jobs::of_subscription(&**client, s.id, tenant).await?,
    };
    Ok(axum::Json(OrderDetail { order, customer, subscription, jobs }))
}
