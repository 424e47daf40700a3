//! The public listing (`/api/public/products`) and the admin catalogue:
//! `/api/products`, `/api/products/{id}/prices`,
//! `/api/prices/{id}`. Reads for every role, writes for BILLING and up;
//! every change writes an audit row in the same transaction.

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_postgres::GenericClient;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::{Currency, Interval, PRICE_COLUMNS, PRODUCT_COLUMNS, Price, Product, ProductType, parse_limits};
use crate::audit_log::{self, Actor, AuditEntry};
use crate::auth::Permission;
use crate::auth::principal::Principal;
use crate::db::one_in_tenant;
use crate::error::{AppError, AppResult};
use crate::http::body::{Field, Parse, Problems};
use crate::http::etag::cached_json;
use crate::http::extract::{Caller, IdPath, Json, Query};
use crate::http::pagination::{Page, PageParams, fetch_page};
use crate::http::routes::{ApiRoutes, Doc, QueryParam};
use crate::state::AppState;
use crate::types::{DisplayName, Named, Slug};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/products",
            Permission::ReadData,
            list,
            Doc::new("listProducts", "catalogue", "Products with their prices")
                .query(&[
                    QueryParam::Text("type", "Product type, e.g. SHARED_HOSTING"),
                    QueryParam::Text("active", "true or false"),
                ])
                .page::<Product>(),
        )
        .route(
            Method::POST,
            "/api/products",
            Permission::WriteCatalog,
            create,
            Doc::new("createProduct", "catalogue", "Create a product").body::<ProductInput>().json::<Product>(201),
        )
        .route(
            Method::GET,
            "/api/products/{id}",
            Permission::ReadData,
            get,
            Doc::new("getProduct", "catalogue", "One product").json::<Product>(200),
        )
        .route(
            Method::PATCH,
            "/api/products/{id}",
            Permission::WriteCatalog,
            patch,
            Doc::new("patchProduct", "catalogue", "Change the fields sent")
                .body::<ProductChanges>()
                .json::<Product>(200),
        )
        .route(
            Method::DELETE,
            "/api/products/{id}",
            Permission::WriteCatalog,
            deactivate,
            Doc::new("deactivateProduct", "catalogue", "Deactivate (soft delete)"),
        )
        .route(
            Method::POST,
            "/api/products/{id}/prices",
            Permission::WriteCatalog,
            create_price,
            Doc::new("createPrice", "catalogue", "Add a price to a product").body::<PriceInput>().json::<Price>(201),
        )
        .route(
            Method::PATCH,
            "/api/prices/{id}",
            Permission::WriteCatalog,
            patch_price,
            Doc::new("patchPrice", "catalogue", "Change the fields sent").body::<PriceChanges>().json::<Price>(200),
        )
        .route(
            Method::DELETE,
            "/api/prices/{id}",
            Permission::WriteCatalog,
            deactivate_price,
            Doc::new("deactivatePrice", "catalogue", "Deactivate (soft delete)"),
        )
}

const MAX_DESCRIPTION: usize = 5000;

fn parse_description(raw: &str) -> Result<String, String> {
    let text = raw.trim();
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(format!("must be at most {MAX_DESCRIPTION} characters"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("must not contain control characters".into());
    }
    Ok(text.to_string())
}

fn parse_name(raw: &str) -> Result<String, String> {
    DisplayName::parse(raw).map(|n| n.as_str().to_string())
}

fn parse_slug(raw: &str) -> Result<String, String> {
    Slug::parse(raw).map(|s| s.as_str().to_string())
}

fn parse_amount(amount: i64) -> Result<i64, String> {
    if amount < 0 { Err("must be an integer of at least 0".into()) } else { Ok(amount) }
}

// ------------------------------------------------------------------ reads

#[derive(Debug, Deserialize)]
struct ListFilters {
    #[serde(rename = "type")]
    product_type: Option<String>,
    active: Option<String>,
    #[serde(flatten)]
    page: PageParams,
}

async fn list(
    Caller(state, principal): Caller,
    Query(filters): Query<ListFilters>,
) -> AppResult<axum::Json<Page<Product>>> {
    let mut p = Problems::new();
    let page = p.page(&filters.page);
    let product_type = p.param("type", filters.product_type, ProductType::from_name);
    let active = p.param("active", filters.active, |a| match a {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".to_string()),
    });
    p.finish()?;
    let client = state.db.get().await?;
    let mut page = fetch_page(
        &**client,
        &format!(
            "SELECT {PRODUCT_COLUMNS} FROM products
             WHERE tenant_id = $1 AND ($2::text IS NULL OR type = $2) AND ($3::bool IS NULL OR is_active = $3)"
        ),
        ("created_at", "id"),
        &[(&principal.tenant_id, Type::UUID), (&product_type, Type::TEXT), (&active, Type::BOOL)],
        &page,
        Product::from_row,
    )
    .await?;
    attach_prices(&**client, principal.tenant_id, &mut page.items).await?;
    Ok(axum::Json(page))
}

/// All prices (active or not) of the given products, cheapest first.
async fn attach_prices(client: &impl GenericClient, tenant_id: Uuid, products: &mut [Product]) -> AppResult<()> {
    if products.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = products.iter().map(|p| p.id).collect();
    let rows = client
        .query_typed(
            &format!(
                "SELECT {PRICE_COLUMNS} FROM prices WHERE tenant_id = $1 AND product_id = ANY($2)
                 ORDER BY is_popular DESC, amount_cents ASC, created_at ASC"
            ),
            &[(&tenant_id, Type::UUID), (&ids, Type::UUID_ARRAY)],
        )
        .await?;
    for row in &rows {
        let price = Price::from_row(row)?;
        if let Some(product) = products.iter_mut().find(|p| p.id == price.product_id) {
            product.prices.push(price);
        }
    }
    Ok(())
}

async fn load_product(client: &impl GenericClient, tenant_id: Uuid, id: Uuid) -> AppResult<Product> {
    let sql = format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1 AND tenant_id = $2");
    let mut products = [one_in_tenant(client, &sql, id, tenant_id, Product::from_row).await?];
    attach_prices(client, tenant_id, &mut products).await?;
    let [product] = products;
    Ok(product)
}

async fn get(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<axum::Json<Product>> {
    let client = state.db.get().await?;
    Ok(axum::Json(load_product(&**client, principal.tenant_id, id).await?))
}

// ------------------------------------------------------------------ product writes

crate::http::body::request_bodies! {
    /// A new product. `limits` is an object of non-negative integer limits
    /// (`{"emails": 5}`).
    pub(crate) struct ProductInput;
    /// The fields sent change; `description: null` clears it.
    pub(crate) struct ProductChanges;
    #[schema(min_length = 1, max_length = 200)]
    name: String;
    /// Unique in the tenant.
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
    slug: String;
    #[serde(rename = "type")]
    product_type: ProductType;
    #[schema(max_length = 5000)]
    optional description: String;
    optional limits: Map<String, Value> as Object;
    /// True when created without it.
    optional is_active: bool;
}

fn limits_of(map: Map<String, Value>) -> Result<Value, String> {
    parse_limits(&Value::Object(map))
}

async fn create(
    Caller(state, principal): Caller,
    Json(body): Json<ProductInput>,
) -> AppResult<(StatusCode, axum::Json<Product>)> {
    let mut p = Problems::new();
    let name = p.required("name", body.name, |s| parse_name(&s));
    let slug = p.required("slug", body.slug, |s| parse_slug(&s));
    let product_type = p.required("type", body.product_type, Ok);
    let description = p.optional("description", body.description, |s| parse_description(&s));
    let limits = p.optional("limits", body.limits, limits_of).unwrap_or_else(|| Value::Object(Map::new()));
    let is_active = p.optional("isActive", body.is_active, Ok).unwrap_or(true);
    let (Some(name), Some(slug), Some(product_type), true) = (name, slug, product_type, p.is_empty()) else {
        return Err(p.into_error());
    };
    let tenant_id = principal.tenant_id;
    let actor = Actor::User(principal.user_id);
    let product = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let row = tx
                .query_typed_one(
                    &format!(
                        "INSERT INTO products (tenant_id, name, slug, type, description, limits, is_active)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {PRODUCT_COLUMNS}"
                    ),
                    &[
                        (&tenant_id, Type::UUID),
                        (&name, Type::TEXT),
                        (&slug, Type::TEXT),
                        (&product_type, Type::TEXT),
                        (&description, Type::TEXT),
                        (&limits, Type::JSONB),
                        (&is_active, Type::BOOL),
                    ],
                )
                .await?;
            let product = Product::from_row(&row)?;
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, "product.created")
                    .target("product", product.id)
                    .details(json!({ "slug": product.slug, "type": product.product_type })),
            )
            .await?;
            Ok(product)
        })
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(product)))
}

/// A column assignment in an UPDATE built from the fields a PATCH sent.
struct Assignment {
    column: &'static str,
    field: &'static str,
    value: Box<dyn ToSql + Sync + Send>,
    ty: Type,
    audit: Value,
}

fn assign<T: ToSql + Sync + Send + serde::Serialize + 'static>(
    column: &'static str,
    field: &'static str,
    value: T,
    ty: Type,
) -> Assignment {
    let audit = serde_json::to_value(&value).unwrap_or(Value::Null);
    Assignment { column, field, value: Box::new(value), ty, audit }
}

/// The column assignments a PATCH asks for, read field by field.
#[derive(Default)]
struct Changes {
    problems: Problems,
    assignments: Vec<Assignment>,
}

/// A field of a PATCH body: its name, its column and the column's type.
type Column = (&'static str, &'static str, Type);

/// What an assignment can bind (and record in the audit row).
trait ColumnValue: ToSql + Sync + Send + serde::Serialize + 'static {}

impl<V: ToSql + Sync + Send + serde::Serialize + 'static> ColumnValue for V {}

impl Changes {
    /// `key` (a field that cannot be cleared) changes `column` when sent.
    fn set<T, U: ColumnValue>(
        &mut self,
        (key, column, ty): Column,
        field: Field<T>,
        parse: impl Parse<T, U>,
    ) -> &mut Self {
        if let Some(v) = self.problems.change(key, field, parse) {
            self.assignments.push(assign(column, key, v, ty));
        }
        self
    }

    /// Like [`set`](Self::set), and `null` clears the column.
    fn set_or_clear<T, U: ColumnValue>(
        &mut self,
        column: Column,
        field: Field<T>,
        parse: impl Parse<T, U>,
    ) -> &mut Self {
        self.set(column, field.nullable(), |v: Option<T>| v.map(parse).transpose())
    }

    /// The name and slug products and prices both have.
    fn name_and_slug(&mut self, name: Field<String>, slug: Field<String>) -> &mut Changes {
        self.set(("name", "name", Type::TEXT), name, |s| parse_name(&s))
            .set(("slug", "slug", Type::TEXT), slug, |s| parse_slug(&s))
    }

    fn finish(self) -> AppResult<Vec<Assignment>> {
        self.problems.finish()?;
        Ok(self.assignments)
    }
}

/// `UPDATE <table> SET <assignments>, updated_at = now() WHERE id = $1 AND tenant_id = $2 RETURNING <columns>`,
/// plus an audit row naming the changed fields. Only the fields sent change.
async fn apply_update(
    client: &impl GenericClient,
    table: &'static str,
    columns: &str,
    id: Uuid,
    principal: &Principal,
    assignments: Vec<Assignment>,
    action: &'static str,
) -> AppResult<tokio_postgres::Row> {
    let mut sets: Vec<String> = Vec::new();
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![(&id, Type::UUID), (&principal.tenant_id, Type::UUID)];
    let mut changed = Map::new();
    for (i, a) in assignments.iter().enumerate() {
        sets.push(format!("{} = ${}", a.column, i + 3));
        params.push((a.value.as_ref() as &(dyn ToSql + Sync), a.ty.clone()));
        changed.insert(a.field.to_string(), a.audit.clone());
    }
    sets.push("updated_at = now()".into());
    let sql = format!("UPDATE {table} SET {} WHERE id = $1 AND tenant_id = $2 RETURNING {columns}", sets.join(", "));
    let row = client.query_typed_opt(&sql, &params).await?.ok_or(AppError::NotFound)?;
    audit_log::record(
        client,
        &AuditEntry::new(Some(principal.tenant_id), Actor::User(principal.user_id), action)
            .target(table.trim_end_matches('s'), id)
            .details(Value::Object(changed)),
    )
    .await?;
    Ok(row)
}

async fn patch(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
    Json(body): Json<ProductChanges>,
) -> AppResult<axum::Json<Product>> {
    let mut changes = Changes::default();
    changes
        .name_and_slug(body.name, body.slug)
        .set(("type", "type", Type::TEXT), body.product_type, Ok)
        .set_or_clear(("description", "description", Type::TEXT), body.description, |s| parse_description(&s))
        .set(("limits", "limits", Type::JSONB), body.limits, limits_of)
        .set(("isActive", "is_active", Type::BOOL), body.is_active, Ok);
    let changes = changes.finish()?;
    let product = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            if !changes.is_empty() {
                apply_update(tx, "products", PRODUCT_COLUMNS, id, &principal, changes, "product.updated").await?;
            }
            load_product(tx, principal.tenant_id, id).await
        })
    })
    .await?;
    Ok(axum::Json(product))
}

/// Soft delete: the product becomes inactive (and leaves the public listing);
/// orders and subscriptions keep pointing at it.
async fn deactivate(State(state): State<AppState>, principal: Principal, IdPath(id): IdPath) -> AppResult<StatusCode> {
    crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let changes = vec![assign("is_active", "isActive", false, Type::BOOL)];
            apply_update(tx, "products", PRODUCT_COLUMNS, id, &principal, changes, "product.deleted").await?;
            Ok(())
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ price writes

crate::http::body::request_bodies! {
    /// A new price of a product.
    pub(crate) struct PriceInput;
    /// The fields sent change.
    pub(crate) struct PriceChanges;
    #[schema(min_length = 1, max_length = 200)]
    name: String;
    /// Unique in the tenant; the marketing site orders by it.
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
    slug: String;
    interval: Interval;
    #[schema(minimum = 0)]
    amount_cents: i64;
    /// ISO 4217, e.g. USD.
    #[schema(pattern = r"^[A-Z]{3}$")]
    currency: String;
    /// False when created without it.
    optional is_popular: bool;
    /// True when created without it.
    optional is_active: bool;
}

async fn create_price(
    Caller(state, principal): Caller,
    IdPath(product_id): IdPath,
    Json(body): Json<PriceInput>,
) -> AppResult<(StatusCode, axum::Json<Price>)> {
    let mut p = Problems::new();
    let name = p.required("name", body.name, |s| parse_name(&s));
    let slug = p.required("slug", body.slug, |s| parse_slug(&s));
    let interval = p.required("interval", body.interval, Ok);
    let amount = p.required("amountCents", body.amount_cents, parse_amount);
    let currency = p.required("currency", body.currency, |s| Currency::parse(&s));
    let is_popular = p.optional("isPopular", body.is_popular, Ok).unwrap_or(false);
    let is_active = p.optional("isActive", body.is_active, Ok).unwrap_or(true);
    let (Some(name), Some(slug), Some(interval), Some(amount), Some(currency), true) =
        (name, slug, interval, amount, currency, p.is_empty())
    else {
        return Err(p.into_error());
    };
    let tenant_id = principal.tenant_id;
    let actor = Actor::User(principal.user_id);
    let price = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            // The product must be this tenant's (404 otherwise), locked so a
            // concurrent delete cannot interleave.
            tx.query_typed_opt(
                "SELECT 1 FROM products WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
                &[(&product_id, Type::UUID), (&tenant_id, Type::UUID)],
            )
            .await?
            .ok_or(AppError::NotFound)?;
            let row = tx
                .query_typed_one(
                    &format!(
                        "INSERT INTO prices (tenant_id, product_id, name, slug, interval, amount_cents, currency, is_popular, is_active)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {PRICE_COLUMNS}"
                    ),
                    &[
                        (&tenant_id, Type::UUID),
                        (&product_id, Type::UUID),
                        (&name, Type::TEXT),
                        (&slug, Type::TEXT),
                        (&interval, Type::TEXT),
                        (&amount, Type::INT8),
                        (&currency.code(), Type::TEXT),
                        (&is_popular, Type::BOOL),
                        (&is_active, Type::BOOL),
                    ],
                )
                .await?;
            let price = Price::from_row(&row)?;
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, "price.created")
                    .target("price", price.id)
                    .details(json!({
                        "productId": product_id, "slug": price.slug, "amountCents": price.amount_cents,
                        "currency": price.currency, "interval": price.interval
                    })),
            )
            .await?;
            Ok(price)
        })
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(price)))
}

async fn patch_price(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
    Json(body): Json<PriceChanges>,
) -> AppResult<axum::Json<Price>> {
    let mut changes = Changes::default();
    changes
        .name_and_slug(body.name, body.slug)
        .set(("interval", "interval", Type::TEXT), body.interval, Ok)
        .set(("amountCents", "amount_cents", Type::INT8), body.amount_cents, parse_amount)
        .set(("currency", "currency", Type::TEXT), body.currency, |s| Currency::parse(&s).map(|c| c.code()))
        .set(("isPopular", "is_popular", Type::BOOL), body.is_popular, Ok)
        .set(("isActive", "is_active", Type::BOOL), body.is_active, Ok);
    let changes = changes.finish()?;
    let price = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let row = if changes.is_empty() {
                tx.query_typed_opt(
                    &format!("SELECT {PRICE_COLUMNS} FROM prices WHERE id = $1 AND tenant_id = $2"),
                    &[(&id, Type::UUID), (&principal.tenant_id, Type::UUID)],
                )
                .await?
                .ok_or(AppError::NotFound)?
            } else {
                apply_update(tx, "prices", PRICE_COLUMNS, id, &principal, changes, "price.updated").await?
            };
            Price::from_row(&row)
        })
    })
    .await?;
    Ok(axum::Json(price))
}

async fn deactivate_price(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<StatusCode> {
    crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let changes = vec![assign("is_active", "isActive", false, Type::BOOL)];
            apply_update(tx, "prices", PRICE_COLUMNS, id, &principal, changes, "price.deleted").await?;
            Ok(())
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/public/products`: what the marketing site shows (ETag, 60 s cache).
pub fn public_routes() -> ApiRoutes {
    // Not rate limited per client: one marketing server renders every visitor's
    // page; responses are cacheable and API Gateway throttles the stage.
    let doc =
        Doc::new("publicProducts", "catalogue", "A tenant's active products and prices (ETag; 304 on If-None-Match)")
            .query(&[QueryParam::RequiredText("tenant", "The tenant's slug")])
            .json::<super::public::Listing>(200)
            .etag()
            .without_rate_limit();
    ApiRoutes::new().route(Method::GET, "/api/public/products", Permission::Public, public_list, doc)
}

#[derive(Debug, Deserialize)]
struct PublicParams {
    tenant: Option<String>,
}

async fn public_list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<PublicParams>,
) -> AppResult<Response> {
    let slug = params.tenant.filter(|t| !t.is_empty()).ok_or_else(|| AppError::validation("tenant", "is required"))?;
    let client = state.db.get().await?;
    let listing = super::public::listing(&**client, &slug).await?;
    let body = serde_json::to_vec(&listing).map_err(AppError::internal)?;
    Ok(cached_json(&headers, body))
}
