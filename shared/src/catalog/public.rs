//! The public catalogue (`GET /api/public/products?tenant=<slug>`): what
//! the marketing site shows.
//! Active products with at least one active price, their active prices
//! popular first then cheapest; products cheapest first. No ids: the
//! marketing site orders by price slug. Cacheable for 60 s, with an ETag.

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PublicPrice {
    name: String,
    slug: String,
    interval: String,
    amount_cents: i64,
    currency: String,
    is_popular: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PublicProduct {
    name: String,
    slug: String,
    #[serde(rename = "type")]
    product_type: String,
    description: Option<String>,
    limits: Value,
    prices: Vec<PublicPrice>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PublicTenant {
    slug: String,
    name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Listing {
    tenant: PublicTenant,
    products: Vec<PublicProduct>,
}

/// The listing of an active tenant, by slug; 404 for any other.
pub(crate) async fn listing(client: &impl GenericClient, slug: &str) -> AppResult<Listing> {
    let tenant = client
        .query_typed_opt(
            "SELECT id, slug, name FROM tenants WHERE lower(slug) = lower($1) AND status = 'ACTIVE'",
            &[(&slug, Type::TEXT)],
        )
        .await?
        .ok_or(AppError::NotFound)?;
    let tenant_id: Uuid = tenant.try_get(0)?;
    let rows = client
        .query_typed(
            "SELECT p.id, p.name, p.slug, p.type, p.description, p.limits,
                    pr.name, pr.slug, pr.interval, pr.amount_cents, pr.currency, pr.is_popular
             FROM products p
             JOIN prices pr ON pr.product_id = p.id AND pr.tenant_id = p.tenant_id AND pr.is_active
             WHERE p.tenant_id = $1 AND p.is_active
             ORDER BY p.id, pr.is_popular DESC, pr.amount_cents ASC, pr.slug ASC",
            &[(&tenant_id, Type::UUID)],
        )
        .await?;

    let mut products: Vec<(Uuid, PublicProduct)> = Vec::new();
    for row in &rows {
        let id: Uuid = row.try_get(0)?;
        let price = PublicPrice {
            name: row.try_get(6)?,
            slug: row.try_get(7)?,
            interval: row.try_get(8)?,
            amount_cents: row.try_get(9)?,
            currency: row.try_get(10)?,
            is_popular: row.try_get(11)?,
        };
        match products.last_mut() {
            Some((last_id, product)) if *last_id == id => product.prices.push(price),
            _ => products.push((
                id,
                PublicProduct {
                    name: row.try_get(1)?,
                    slug: row.try_get(2)?,
                    product_type: row.try_get(3)?,
                    description: row.try_get(4)?,
                    limits: row.try_get(5)?,
                    prices: vec![price],
                },
            )),
        }
    }
    let mut products: Vec<PublicProduct> = products.into_iter().map(|(_, p)| p).collect();
    products.sort_by(|a, b| {
        let cheapest = |p: &PublicProduct| p.prices.iter().map(|pr| pr.amount_cents).min().unwrap_or(i64::MAX);
        cheapest(a).cmp(&cheapest(b)).then_with(|| a.name.cmp(&b.name)).then_with(|| a.slug.cmp(&b.slug))
    });
    let listing = Listing { tenant: PublicTenant { slug: tenant.try_get(1)?, name: tenant.try_get(2)? }, products };
    Ok(listing)
}
