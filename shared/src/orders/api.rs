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
use crate::auth::principal::Principal;
use crate::customers::{CUSTOMER_COLUMNS, Customer};
use crate::error::{AppError, AppResult};
use crate::http::body::Problems;
use crate::http::extract::{IdPath, Query};
use crate::http::pagination::{Page, PageParams, fetch_page, parse_time};
use crate::http::routes::{ApiRoutes, Doc, Limited, QueryParam};
use crate::http::webhook;
use crate::jobs::{JOB_COLUMNS, JobView};
use crate::state::AppState;
use crate::subscriptions::{SUBSCRIPTION_COLUMNS, SubscriptionView};
use crate::types::{Named, parse_uuid};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        // Authenticated by its signature, not a session; exempt from the
        // per-client limit (the marketing site is one client).
        .add(Method::POST, "/api/orders", Permission::Public, Limited::No, receive, Doc::new("receiveOrder", "orders", "Order webhook from the marketing site (Standard Webhooks signature; idempotent by webhook-id and externalOrderId)").body::<super::OrderInput>().json::<super::IntakeResponse>(201).signed_webhook())
        .route(Method::GET, "/api/orders", Permission::ReadData, list, Doc::new("listOrders", "orders", "Orders, newest first").query(&[QueryParam::Text("status", "Order status"), QueryParam::Uuid("customerId", "Only this customer's orders"), QueryParam::Time("from", "Created at or after"), QueryParam::Time("to", "Created before")]).page::<OrderView>())
        .route(Method::GET, "/api/orders/{id}", Permission::ReadData, get, Doc::new("getOrder", "orders", "One order with its customer, subscription and jobs").json::<OrderDetail>(200))
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
    status: Option<String>,
    customer_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(flatten)]
    page: PageParams,
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(filters): Query<Filters>,
) -> AppResult<axum::Json<Page<OrderView>>> {
    let mut p = Problems::new();
    let page = p.page(&filters.page);
    let status = p.param("status", filters.status, OrderStatus::from_name);
    let customer_id = p.param("customerId", filters.customer_id, parse_uuid);
    let from = p.param("from", filters.from, parse_time);
    let to = p.param("to", filters.to, parse_time);
    p.finish()?;
    let client = state.db.get().await?;
    let page = fetch_page(
        &**client,
        &format!(
            "SELECT {ORDER_COLUMNS} FROM orders
             WHERE tenant_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR customer_id = $3)
               AND ($4::timestamptz IS NULL OR created_at >= $4) AND ($5::timestamptz IS NULL OR created_at < $5)"
        ),
        ("created_at", "id"),
        &[
            (&principal.tenant_id, Type::UUID),
            (&status, Type::TEXT),
            (&customer_id, Type::UUID),
            (&from, Type::TIMESTAMPTZ),
            (&to, Type::TIMESTAMPTZ),
        ],
        &page,
        OrderView::from_row,
    )
    .await?;
    Ok(axum::Json(page))
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

async fn get(
    State(state): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
) -> AppResult<axum::Json<OrderDetail>> {
    let client = state.db.get().await?;
    let tenant = principal.tenant_id;
    let row = client
        .query_typed_opt(
            &format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND tenant_id = $2"),
            &[(&id, Type::UUID), (&tenant, Type::UUID)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let order = OrderView::from_row(&row)?;
    let customer = Customer::from_row(
        &client
            .query_typed_one(
                &format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1 AND tenant_id = $2"),
                &[(&order.customer_id, Type::UUID), (&tenant, Type::UUID)],
            )
            .await?,
    )?;
    let subscription = client
        .query_typed_opt(
            &format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s WHERE s.order_id = $1 AND s.tenant_id = $2"),
            &[(&id, Type::UUID), (&tenant, Type::UUID)],
        )
        .await?
        .as_ref()
        .map(SubscriptionView::from_row)
        .transpose()?;
    let jobs = match &subscription {
        None => Vec::new(),
        Some(s) => client
            .query_typed(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE subscription_id = $1 AND tenant_id = $2 ORDER BY created_at, id"),
                &[(&s.id, Type::UUID), (&tenant, Type::UUID)],
            )
            .await?
            .iter()
            .map(JobView::from_row)
            .collect::<AppResult<Vec<_>>>()?,
    };
    Ok(axum::Json(OrderDetail { order, customer, subscription, jobs }))
}
