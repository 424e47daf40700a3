//! `/api/customers`: list and read customers.

use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

use crate::auth::Permission;
use crate::auth::principal::Principal;
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::{IdPath, Query};
use crate::http::pagination::{Page, PageParams, PageRequest, Position, page_or_errors};
use crate::http::routes::{ApiRoutes, Doc, QueryParam};
use crate::state::AppState;
use crate::subscriptions::{SUBSCRIPTION_COLUMNS, SubscriptionView};

use super::{CUSTOMER_COLUMNS, Customer};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/customers",
            Permission::ReadData,
            list,
            Doc::new("listCustomers", "customers", "Customers of the tenant")
                .query(&[QueryParam::Text("email", "Exact email address")])
                .page::<Customer>(),
        )
        .route(
            Method::GET,
            "/api/customers/{id}",
            Permission::ReadData,
            get,
            Doc::new("getCustomer", "customers", "One customer with their subscriptions").json::<CustomerDetail>(200),
        )
}

#[derive(Debug, Deserialize)]
struct Filters {
    email: Option<String>,
    #[serde(flatten)]
    page: PageParams,
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(filters): Query<Filters>,
) -> AppResult<axum::Json<Page<Customer>>> {
    let mut errors: Vec<FieldError> = Vec::new();
    let page = PageRequest::parse(&filters.page).map_err(|e| errors.extend(e)).ok();
    let email = filters.email.filter(|e| !e.is_empty());
    if email.as_ref().is_some_and(|e| e.len() > 254) {
        errors.push(FieldError::new("email", "must be at most 254 characters"));
    }
    let page = page_or_errors(page, errors)?;
    let client = state.db.get().await?;
    let rows = client
        .query_typed(
            &format!(
                "SELECT {CUSTOMER_COLUMNS} FROM customers
                 WHERE tenant_id = $1 AND ($2::text IS NULL OR lower(email) = lower($2)) AND (created_at, id) < ($3, $4)
                 ORDER BY created_at DESC, id DESC LIMIT $5"
            ),
            &[
                (&principal.tenant_id, Type::UUID),
                (&email, Type::TEXT),
                (&page.after.created_at, Type::TIMESTAMPTZ),
                (&page.after.id, Type::UUID),
                (&page.fetch(), Type::INT8),
            ],
        )
        .await?;
    let customers = rows.iter().map(Customer::from_row).collect::<AppResult<Vec<_>>>()?;
    Ok(axum::Json(Page::from_rows(customers, &page, |c| Position { created_at: c.created_at, id: c.id })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CustomerDetail {
    #[serde(flatten)]
    customer: Customer,
    subscriptions: Vec<SubscriptionView>,
}

async fn get(
    State(state): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
) -> AppResult<axum::Json<CustomerDetail>> {
    let client = state.db.get().await?;
    let row = client
        .query_typed_opt(
            &format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1 AND tenant_id = $2"),
            &[(&id, Type::UUID), (&principal.tenant_id, Type::UUID)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let subscriptions = client
        .query_typed(
            &format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s
                 WHERE s.customer_id = $1 AND s.tenant_id = $2 ORDER BY s.created_at DESC, s.id DESC LIMIT 200"
            ),
            &[(&id, Type::UUID), (&principal.tenant_id, Type::UUID)],
        )
        .await?
        .iter()
        .map(SubscriptionView::from_row)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(axum::Json(CustomerDetail { customer: Customer::from_row(&row)?, subscriptions }))
}
