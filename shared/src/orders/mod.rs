//! Order intake: a signed webhook becomes customer, order, subscription,
//! domain and jobs in ONE transaction (the transactional outbox), idempotent
//! by `webhook-id` and by `(tenant, externalOrderId)`.

pub mod api;

use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit_log::{self, Actor, AuditEntry};
use crate::catalog::{Currency, Interval, ProductType};
use crate::error::{AppError, AppResult, FieldError};
use crate::http::body::{Field, Problems};
use crate::http::webhook::{Applied, Delivery, SignedWebhook};
use crate::jobs::JobType;
use crate::types::Named;
use crate::types::{DisplayName, DomainName, EmailAddress, Phone, Slug};

crate::types::named_enum! {
    /// An order is PAID when it arrives; refunds and cancellations are the billing site's.
    pub enum OrderStatus {
        Paid,
        Cancelled,
        Refunded,
    }
}

/// Largest `metadata` object accepted, serialized.
const MAX_METADATA_BYTES: usize = 16 * 1024;

/// A webhook payload that passed every syntactic check.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub tenant_slug: Slug,
    pub external_order_id: String,
    pub email: EmailAddress,
    pub full_name: DisplayName,
    pub phone: Option<Phone>,
    pub price_slug: Slug,
    pub total_amount_cents: i64,
    pub currency: Currency,
    pub domain: Option<DomainName>,
    pub metadata: Value,
}

fn parse_external_id(raw: &str) -> Result<String, String> {
    let id = raw.trim();
    if id.is_empty() || id.chars().count() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    if id.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    Ok(id.to_string())
}

/// The buyer, found or created by email within the tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderCustomer {
    #[schema(value_type = String, format = "email")]
    email: Field<String>,
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    full_name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    phone: Field<String>,
}

/// The marketing site's order, signed as a Standard Webhook.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderInput {
    #[schema(value_type = String, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
    tenant_slug: Field<String>,
    /// The marketing site's order id; with the tenant, the idempotency key.
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    external_order_id: Field<String>,
    #[schema(value_type = OrderCustomer)]
    customer: Field<OrderCustomer>,
    #[schema(value_type = String, pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
    price_slug: Field<String>,
    #[schema(value_type = i64, minimum = 0)]
    total_amount_cents: Field<i64>,
    #[schema(value_type = String, pattern = r"^[A-Z]{3}$")]
    currency: Field<String>,
    /// Required by hosting products; an internationalised name is stored as its A-label.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    domain: Field<String>,
    /// Kept with the order; at most 16 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Field<Map<String, Value>>,
}

fn parse_metadata(map: Map<String, Value>) -> Result<Value, String> {
    let metadata = Value::Object(map);
    let size = serde_json::to_vec(&metadata).map(|b| b.len()).unwrap_or(usize::MAX);
    if size <= MAX_METADATA_BYTES { Ok(metadata) } else { Err("must be at most 16 KiB".to_string()) }
}

/// The customer's fields, named under `customer.`.
fn parse_customer(c: OrderCustomer, p: &mut Problems) -> Option<(EmailAddress, DisplayName, Option<Phone>)> {
    let email = p.required("email", c.email, |s| EmailAddress::parse(&s));
    let full_name = p.required("fullName", c.full_name, |s| DisplayName::parse(&s));
    let phone = p.optional("phone", c.phone, |s| Phone::parse(&s));
    Some((email?, full_name?, phone))
}

/// Converts the whole body into an [`OrderRequest`], naming every bad field.
impl TryFrom<OrderInput> for OrderRequest {
    type Error = AppError;

    fn try_from(body: OrderInput) -> AppResult<OrderRequest> {
        let mut p = Problems::new();
        let tenant_slug = p.required("tenantSlug", body.tenant_slug, |s| Slug::parse(&s));
        let external_order_id = p.required("externalOrderId", body.external_order_id, |s| parse_external_id(&s));
        let customer = p.nested("customer", body.customer, parse_customer);
        let price_slug = p.required("priceSlug", body.price_slug, |s| Slug::parse(&s));
        let total_amount_cents = p.required("totalAmountCents", body.total_amount_cents, |n| {
            if n >= 0 { Ok(n) } else { Err("must be at least 0".to_string()) }
        });
        let currency = p.required("currency", body.currency, |s| Currency::parse(&s));
        let domain = p.optional("domain", body.domain, |s| DomainName::parse(&s));
        let metadata = p.optional("metadata", body.metadata, parse_metadata).unwrap_or_else(|| json!({}));
        let (
            Some(tenant_slug),
            Some(external_order_id),
            Some((email, full_name, phone)),
            Some(price_slug),
            Some(total_amount_cents),
            Some(currency),
            true,
        ) = (tenant_slug, external_order_id, customer, price_slug, total_amount_cents, currency, p.is_empty())
        else {
            return Err(p.into_error());
        };
        Ok(OrderRequest {
            tenant_slug,
            external_order_id,
            email,
            full_name,
            phone,
            price_slug,
            total_amount_cents,
            currency,
            domain,
            metadata,
        })
    }
}

/// The webhook's answer; stored and replayed verbatim for duplicates.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntakeResponse {
    pub order_id: Uuid,
    pub subscription_id: Uuid,
    pub customer_id: Uuid,
    /// The subscription's status (PENDING, or ACTIVE for products without jobs).
    pub status: String,
    pub order_status: String,
    pub jobs: Vec<IntakeJob>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntakeJob {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub job_type: String,
    pub status: String,
}

/// The price an order names, with its product.
struct PriceRow {
    price_id: Uuid,
    product_id: Uuid,
    amount_cents: i64,
    currency: String,
    interval: Interval,
    product_type: ProductType,
    emails: i64,
}

/// Jobs that provision a product type.
pub fn jobs_for(product_type: ProductType, emails: i64) -> Vec<JobType> {
    match product_type {
        ProductType::SharedHosting if emails > 0 => {
            vec![JobType::ProvisionDns, JobType::ProvisionHosting, JobType::ProvisionMail]
        }
        ProductType::SharedHosting => vec![JobType::ProvisionDns, JobType::ProvisionHosting],
        ProductType::Dns => vec![JobType::ProvisionDns],
        ProductType::Email => vec![JobType::ProvisionDns, JobType::ProvisionMail],
        // Nothing to set up automatically: active at once.
        ProductType::Vps | ProductType::Addon => Vec::new(),
    }
}

impl SignedWebhook for OrderRequest {
    const SOURCE: &'static str = "ORDERS";
    const STATUS: StatusCode = StatusCode::CREATED;
    type Answer = IntakeResponse;
    type Body = OrderInput;

    /// Validates against the tenant's catalogue, then writes the order, its
    /// customer, subscription, domain and jobs. Nothing is written unless
    /// everything is.
    async fn apply(self, tx: &Transaction<'_>, delivery: &Delivery) -> AppResult<Applied<IntakeResponse>> {
        let tenant_id = crate::tenants::active_id(tx, &self.tenant_slug).await?;
        let price = load_price(tx, tenant_id, &self).await?;
        write_order(tx, tenant_id, delivery, &self, &price).await
    }
}

async fn load_price(client: &impl GenericClient, tenant_id: Uuid, order: &OrderRequest) -> AppResult<PriceRow> {
    let row = client
        .query_typed_opt(
            "SELECT pr.id, p.id, pr.amount_cents, pr.currency, pr.interval, p.type,
                    COALESCE((p.limits->>'emails')::bigint, 0)
             FROM prices pr JOIN products p ON p.id = pr.product_id AND p.tenant_id = pr.tenant_id
             WHERE pr.tenant_id = $1 AND lower(pr.slug) = lower($2) AND pr.is_active AND p.is_active",
            &[(&tenant_id, Type::UUID), (&order.price_slug.as_str(), Type::TEXT)],
        )
        .await?
        .ok_or_else(|| AppError::validation("priceSlug", "is not an active price of this tenant"))?;
    let price = PriceRow {
        price_id: row.try_get(0)?,
        product_id: row.try_get(1)?,
        amount_cents: row.try_get(2)?,
        currency: row.try_get(3)?,
        interval: row.try_get(4)?,
        product_type: row.try_get(5)?,
        emails: row.try_get(6)?,
    };
    let mut errors = Vec::new();
    if order.total_amount_cents != price.amount_cents {
        errors.push(FieldError::new(
            "totalAmountCents",
            format!("must equal the price's amount ({})", price.amount_cents),
        ));
    }
    if order.currency.code() != price.currency {
        errors.push(FieldError::new("currency", format!("must equal the price's currency ({})", price.currency)));
    }
    let needs_domain = matches!(price.product_type, ProductType::SharedHosting | ProductType::Dns | ProductType::Email);
    if needs_domain && order.domain.is_none() {
        errors.push(FieldError::new("domain", format!("is required for {}", price.product_type.as_str())));
    }
    if errors.is_empty() { Ok(price) } else { Err(AppError::Validation(errors)) }
}

/// What the steps of one order's writes share.
struct NewOrder<'a> {
    tx: &'a Transaction<'a>,
    tenant_id: Uuid,
    delivery: &'a Delivery,
    order: &'a OrderRequest,
    price: &'a PriceRow,
}

async fn write_order(
    tx: &Transaction<'_>,
    tenant_id: Uuid,
    delivery: &Delivery,
    order: &OrderRequest,
    price: &PriceRow,
) -> AppResult<Applied<IntakeResponse>> {
    let new = NewOrder { tx, tenant_id, delivery, order, price };
    if let Some(repeat) = earlier_answer(&new).await? {
        return Ok(repeat);
    }
    let customer_id = find_or_create_customer(tx, tenant_id, order).await?;
    let order_id = insert_order(&new, customer_id).await?;
    let job_types = jobs_for(price.product_type, price.emails);
    // Nothing to provision: active at once.
    let active_at_once = job_types.is_empty();
    let subscription_id = insert_subscription(&new, customer_id, order_id, active_at_once).await?;
    if let Some(domain) = &order.domain {
        claim_domain(&new, subscription_id, domain, active_at_once).await?;
    }
    let jobs = insert_jobs(&new, subscription_id, job_types).await?;
    let response = IntakeResponse {
        order_id,
        subscription_id,
        customer_id,
        status: if active_at_once { "ACTIVE" } else { "PENDING" }.into(),
        order_status: "PAID".into(),
        jobs,
    };
    audit_log::record(
        tx,
        &AuditEntry::new(Some(tenant_id), Actor::Webhook, "order.created").target("order", order_id).details(json!({
            "externalOrderId": order.external_order_id, "webhookId": delivery.webhook_id,
            "subscriptionId": subscription_id, "domain": order.domain.as_ref().map(DomainName::as_str),
        })),
    )
    .await?;
    let jobs = response.jobs.iter().map(|j| j.id).collect();
    Ok(Applied::Done { tenant_id, answer: response, order_id: Some(order_id), jobs })
}

/// The first answer when this order (same tenant and externalOrderId) was
/// taken before under another webhook-id; a 409 if it was a different order.
async fn earlier_answer(new: &NewOrder<'_>) -> AppResult<Option<Applied<IntakeResponse>>> {
    let NewOrder { tx, tenant_id, delivery, order, .. } = *new;
    // Serialises deliveries of the same order (the 50-duplicates case); the
    // losers then find the winner's rows below.
    tx.query_typed(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 0))",
        &[(&tenant_id.to_string(), Type::TEXT), (&order.external_order_id, Type::TEXT)],
    )
    .await?;
    let Some(existing) = tx
        .query_typed_opt(
            "SELECT id, request_hash FROM orders WHERE tenant_id = $1 AND external_order_id = $2",
            &[(&tenant_id, Type::UUID), (&order.external_order_id, Type::TEXT)],
        )
        .await?
    else {
        return Ok(None);
    };
    let order_id: Uuid = existing.try_get(0)?;
    let hash: Vec<u8> = existing.try_get(1)?;
    if hash != delivery.request_hash {
        return Err(AppError::conflict(
            "externalOrderId",
            "this externalOrderId was already used with a different order",
        ));
    }
    let first: Value = tx
        .query_typed_one(
            "SELECT response_body FROM webhook_deliveries WHERE order_id = $1 ORDER BY received_at LIMIT 1",
            &[(&order_id, Type::UUID)],
        )
        .await?
        .try_get(0)?;
    Ok(Some(Applied::Repeat { tenant_id, answer: first, order_id: Some(order_id) }))
}

async fn insert_order(new: &NewOrder<'_>, customer_id: Uuid) -> AppResult<Uuid> {
    let NewOrder { tx, tenant_id, delivery, order, price } = *new;
    let row = tx
        .query_typed_one(
            "INSERT INTO orders (tenant_id, customer_id, price_id, external_order_id, status, total_amount_cents,
                                 currency, domain, metadata, request_hash)
             VALUES ($1, $2, $3, $4, 'PAID', $5, $6, $7, $8, $9) RETURNING id",
            &[
                (&tenant_id, Type::UUID),
                (&customer_id, Type::UUID),
                (&price.price_id, Type::UUID),
                (&order.external_order_id, Type::TEXT),
                (&order.total_amount_cents, Type::INT8),
                (&order.currency.code(), Type::TEXT),
                (&order.domain.as_ref().map(DomainName::as_str), Type::TEXT),
                (&order.metadata, Type::JSONB),
                (&delivery.request_hash.as_slice(), Type::BYTEA),
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The subscription, its first period starting now.
async fn insert_subscription(
    new: &NewOrder<'_>,
    customer_id: Uuid,
    order_id: Uuid,
    active_at_once: bool,
) -> AppResult<Uuid> {
    let NewOrder { tx, tenant_id, price, .. } = *new;
    let now = Utc::now();
    let status = if active_at_once { "ACTIVE" } else { "PENDING" };
    let row = tx
        .query_typed_one(
            "INSERT INTO subscriptions (tenant_id, customer_id, order_id, product_id, price_id, status,
                                        current_period_start, current_period_end, activated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $6 = 'ACTIVE' THEN $7 END) RETURNING id",
            &[
                (&tenant_id, Type::UUID),
                (&customer_id, Type::UUID),
                (&order_id, Type::UUID),
                (&price.product_id, Type::UUID),
                (&price.price_id, Type::UUID),
                (&status, Type::TEXT),
                (&now, Type::TIMESTAMPTZ),
                (&price.interval.period_end(now), Type::TIMESTAMPTZ),
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The domain for this subscription. The partial unique index holds one live
/// holder per domain across all tenants; a clash is a 409 naming `domain`
/// and rolls everything back.
async fn claim_domain(
    new: &NewOrder<'_>,
    subscription_id: Uuid,
    domain: &DomainName,
    active_at_once: bool,
) -> AppResult<()> {
    new.tx
        .query_typed(
            "INSERT INTO domains (tenant_id, subscription_id, name, status) VALUES ($1, $2, $3, $4)",
            &[
                (&new.tenant_id, Type::UUID),
                (&subscription_id, Type::UUID),
                (&domain.as_str(), Type::TEXT),
                (&if active_at_once { "ACTIVE" } else { "PENDING" }, Type::TEXT),
            ],
        )
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::Conflict { .. } => {
                AppError::conflict("domain", "this domain already belongs to an active or pending subscription")
            }
            other => other,
        })?;
    Ok(())
}

/// The provisioning jobs, PENDING; dispatched once the transaction commits.
/// One statement for all of them (one round trip, not one per job).
async fn insert_jobs(new: &NewOrder<'_>, subscription_id: Uuid, job_types: Vec<JobType>) -> AppResult<Vec<IntakeJob>> {
    if job_types.is_empty() {
        return Ok(Vec::new());
    }
    let payload = json!({ "domain": new.order.domain.as_ref().map(DomainName::as_str) });
    let types: Vec<&str> = job_types.iter().map(|t| t.as_str()).collect();
    let rows = new
        .tx
        .query_typed(
            "INSERT INTO jobs (tenant_id, subscription_id, type, payload)
             SELECT $1, $2, job_type, $4 FROM unnest($3::text[]) AS job_type
             RETURNING id, type",
            &[
                (&new.tenant_id, Type::UUID),
                (&subscription_id, Type::UUID),
                (&types, Type::TEXT_ARRAY),
                (&payload, Type::JSONB),
            ],
        )
        .await?;
    let mut inserted = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get(0)?;
        let job_type: JobType = row.try_get(1)?;
        inserted.push((job_type, id));
    }
    // In the order the types were asked for (each type once per order).
    job_types
        .into_iter()
        .map(|job_type| {
            let id = inserted
                .iter()
                .find(|(t, _)| *t == job_type)
                .map(|(_, id)| *id)
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("job {} was not inserted", job_type.as_str())))?;
            Ok(IntakeJob { id, job_type: job_type.as_str().into(), status: "PENDING".into() })
        })
        .collect()
}

async fn find_or_create_customer(
    client: &impl GenericClient,
    tenant_id: Uuid,
    order: &OrderRequest,
) -> AppResult<Uuid> {
    // DO NOTHING (not DO UPDATE): after the first order the customer row is
    // never locked, so many concurrent orders of one customer do not queue.
    let inserted = client
        .query_typed_opt(
            "INSERT INTO customers (tenant_id, email, full_name, phone) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, lower(email)) DO NOTHING RETURNING id",
            &[
                (&tenant_id, Type::UUID),
                (&order.email.as_str(), Type::TEXT),
                (&order.full_name.as_str(), Type::TEXT),
                (&order.phone.as_ref().map(Phone::as_str), Type::TEXT),
            ],
        )
        .await?;
    if let Some(row) = inserted {
        return Ok(row.try_get(0)?);
    }
    let existing = client
        .query_typed_one(
            "SELECT id FROM customers WHERE tenant_id = $1 AND lower(email) = lower($2)",
            &[(&tenant_id, Type::UUID), (&order.email.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(existing.try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Value {
        json!({
            "tenantSlug": "demo", "externalOrderId": "mkt-1001",
            "customer": {"email": "jo@example.org", "fullName": "Jo Doe", "phone": "+15550100"},
            "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD",
            "domain": "jo-example.com", "metadata": {}
        })
    }

    fn parse(body: &Value) -> AppResult<OrderRequest> {
        OrderRequest::try_from(crate::http::extract::from_value::<OrderInput>(body.clone())?)
    }

    fn fields_of(body: Value) -> Vec<String> {
        match parse(&body) {
            Err(AppError::Validation(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected 422, got {:?}", other.map(|o| o.external_order_id)),
        }
    }

    #[test]
    fn parses_the_contract_example() {
        let order = parse(&valid()).unwrap();
        assert_eq!(order.email.as_str(), "jo@example.org");
        assert_eq!(order.domain.unwrap().as_str(), "jo-example.com");
        assert_eq!(order.currency.code(), "USD");
    }

    #[test]
    fn names_nested_fields() {
        let mut body = valid();
        body["customer"]["email"] = json!("not an email");
        body["domain"] = json!("localhost");
        assert_eq!(fields_of(body), ["customer.email", "domain"]);
        let mut body = valid();
        body.as_object_mut().unwrap().remove("customer");
        assert_eq!(fields_of(body), ["customer"]);
        let mut body = valid();
        body["metadata"] = json!([1]);
        body["totalAmountCents"] = json!(-1);
        assert_eq!(fields_of(body), ["totalAmountCents", "metadata"]);
    }

    #[test]
    fn job_plans() {
        assert_eq!(jobs_for(ProductType::SharedHosting, 5).len(), 3);
        assert_eq!(jobs_for(ProductType::SharedHosting, 0), [JobType::ProvisionDns, JobType::ProvisionHosting]);
        assert!(jobs_for(ProductType::Vps, 0).is_empty());
    }
}
