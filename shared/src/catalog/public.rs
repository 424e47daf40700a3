//! `GET /api/public/products?tenant=<slug>`: what the marketing site shows.
//! Active products with at least one active price, their active prices
//! popular first then cheapest; products cheapest first. No ids: the
//! marketing site orders by price slug. Cacheable for 60 s, with an ETag.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::auth::Permission;
use crate::error::{AppError, AppResult};
use crate::http::AppState;
use crate::http::extract::Query;
use crate::http::routes::{ApiRoutes, Limited};

pub fn routes() -> ApiRoutes {
    // Not rate limited per client: one marketing server renders every visitor's
    // page; responses are cacheable and API Gateway throttles the stage.
    ApiRoutes::new().add(Method::GET, "/api/public/products", Permission::Public, Limited::No, list)
}

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

#[derive(Debug, Deserialize)]
struct Params {
    tenant: Option<String>,
}

async fn list(State(state): State<AppState>, headers: HeaderMap, Query(params): Query<Params>) -> AppResult<Response> {
    let slug = params.tenant.filter(|t| !t.is_empty()).ok_or_else(|| AppError::validation("tenant", "is required"))?;
    let client = state.db.get().await?;
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
    let body = serde_json::to_vec(&listing).map_err(AppError::internal)?;
    Ok(cached_json(&headers, body))
}

/// A strong ETag of the body; `If-None-Match` that matches → 304.
fn cached_json(request_headers: &HeaderMap, body: Vec<u8>) -> Response {
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let matches = request_headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag);
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    };
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_round_trip() {
        let first = cached_json(&HeaderMap::new(), b"{\"a\":1}".to_vec());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, etag.clone());
        assert_eq!(cached_json(&headers, b"{\"a\":1}".to_vec()).status(), StatusCode::NOT_MODIFIED);
        // Another body, another tag.
        assert_eq!(cached_json(&headers, b"{\"a\":2}".to_vec()).status(), StatusCode::OK);
        let weak = HeaderValue::from_str(&format!("\"x\", W/{}", etag.to_str().unwrap())).unwrap();
        headers.insert(IF_NONE_MATCH, weak);
        assert_eq!(cached_json(&headers, b"{\"a\":1}".to_vec()).status(), StatusCode::NOT_MODIFIED);
    }
}
