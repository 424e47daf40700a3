//! `/api/customers`: list and read customers.

use axum::http::Method;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Type;

use crate::auth::Permission;
use crate::db::{all_in_tenant, one_in_tenant};
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, Listing};
use crate::http::pagination::{Page, tenant_page};
use crate::http::routes::{ApiRoutes, Doc, QueryParam};
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
}

async fn list(
    Caller(state, principal): Caller,
    Listing { filters, page, mut problems }: Listing<Filters>,
) -> AppResult<axum::Json<Page<Customer>>> {
    let email = problems.param("email", filters.email, |e| {
        if e.len() > 254 { Err("must be at most 254 characters".to_string()) } else { Ok(e.to_string()) }
    });
    problems.finish()?;
    tenant_page(
        &state.db,
        principal.tenant_id,
        &format!(
            "SELECT {CUSTOMER_COLUMNS} FROM customers
             WHERE tenant_id = $1 AND ($2::text IS NULL OR lower(email) = lower($2))"
        ),
        ("created_at", "id"),
        &[(&email, Type::TEXT)],
        &page,
        Customer::from_row,
    )
    .await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CustomerDetail {
    #[serde(flatten)]
    customer: Customer,
    subscriptions: Vec<SubscriptionView>,
}

async fn get(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<axum::Json<CustomerDetail>> {
    let client = state.db.get().await?;
    let tenant = principal.tenant_id;
    let by_id = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1 AND tenant_id = $2");
    let customer = one_in_tenant(&**client, &by_id, id, tenant, Customer::from_row).await?;
    let theirs = format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions s
         WHERE s.customer_id = $1 AND s.tenant_id = $2 ORDER BY s.created_at DESC, s.id DESC LIMIT 200"
    );
    let subscriptions = all_in_tenant(&**client, &theirs, id, tenant, SubscriptionView::from_row).await?;
    Ok(axum::Json(CustomerDetail { customer, subscriptions }))
}
