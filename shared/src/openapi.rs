//! The OpenAPI 3.1 document served at `GET /api/openapi.json`.
//!
//! Operations are built from the route table itself (`app::all_routes`):
//! its method, path and permission decide the security requirement and the
//! 401/403/429 answers; [`ROUTE_DOCS`] adds what the table cannot know (summary,
//! query parameters, body, success answer). Response schemas are derived
//! (`ToSchema`) from the very structs the handlers serialise. Request bodies
//! read with the `Fields` reader (for field-level 422s) are described by the
//! structs in [`bodies`], whose field names tests compare with the handlers'.

use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, KnownFormat, Ref, RefOr, Required, ResponseBuilder, Schema};

use crate::auth::Permission;
use crate::error::PROBLEM_JSON;
use crate::http::routes::{Limited, RouteSpec};

pub const PATH: &str = "/api/openapi.json";

/// Query parameters a route reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryParam {
    /// Free text, e.g. a status name or an email.
    Text(&'static str, &'static str),
    Uuid(&'static str, &'static str),
    /// An RFC 3339 time.
    Time(&'static str, &'static str),
    /// A required text parameter.
    RequiredText(&'static str, &'static str),
}

/// What a route answers on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A JSON body of the named component schema.
    Json(u16, &'static str),
    /// `{"items": [<named schema>], "nextCursor": ...}` with `limit`/`cursor` parameters.
    Page(&'static str),
    /// 204 No Content.
    Empty,
}

/// The part of an operation's description the route table cannot know.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub operation_id: &'static str,
    pub tag: &'static str,
    pub summary: &'static str,
    pub query: &'static [QueryParam],
    /// The component schema of the JSON request body, if the route reads one.
    pub body: Option<&'static str>,
    pub reply: Reply,
}

const fn doc(
    method: &'static str,
    path: &'static str,
    operation_id: &'static str,
    tag: &'static str,
    summary: &'static str,
    body: Option<&'static str>,
    reply: Reply,
) -> RouteDoc {
    RouteDoc { method, path, operation_id, tag, summary, query: &[], body, reply }
}

const fn list(path: &'static str, operation_id: &'static str, tag: &'static str, item: &'static str) -> RouteDoc {
    doc("GET", path, operation_id, tag, "", None, Reply::Page(item))
}

const fn with_query(mut d: RouteDoc, summary: &'static str, query: &'static [QueryParam]) -> RouteDoc {
    d.summary = summary;
    d.query = query;
    d
}

use QueryParam::{RequiredText, Text, Time, Uuid as UuidParam};
use Reply::{Empty, Json};

/// One entry per route of `app::all_routes`; a test fails when a route has none.
pub const ROUTE_DOCS: &[RouteDoc] = &[
    doc("GET", "/api/health", "health", "health", "The process answers", None, Json(200, "HealthStatus")),
    doc("GET", "/api/ready", "ready", "health", "PostgreSQL and Redis answer too", None, Json(200, "HealthStatus")),
    doc("GET", PATH, "openapi", "health", "This document", None, Json(200, "OpenApiDocument")),
    doc(
        "POST",
        "/api/auth/login",
        "login",
        "auth",
        "Sign in with email and password",
        Some("LoginBody"),
        Json(200, "TokenPair"),
    ),
    doc(
        "POST",
        "/api/auth/refresh",
        "refresh",
        "auth",
        "Trade a refresh token for a new pair (rotating)",
        Some("RefreshBody"),
        Json(200, "TokenPair"),
    ),
    doc("POST", "/api/auth/logout", "logout", "auth", "End this session", None, Empty),
    doc("GET", "/api/auth/me", "me", "auth", "The signed-in user", None, Json(200, "Me")),
    with_query(
        doc("GET", "/api/public/products", "publicProducts", "catalogue", "", None, Json(200, "Listing")),
        "A tenant's active products and prices (ETag; 304 on If-None-Match)",
        &[RequiredText("tenant", "The tenant's slug")],
    ),
    with_query(
        list("/api/products", "listProducts", "catalogue", "Product"),
        "Products with their prices",
        &[Text("type", "Product type, e.g. SHARED_HOSTING"), Text("active", "true or false")],
    ),
    doc(
        "POST",
        "/api/products",
        "createProduct",
        "catalogue",
        "Create a product",
        Some("ProductInput"),
        Json(201, "Product"),
    ),
    doc("GET", "/api/products/{id}", "getProduct", "catalogue", "One product", None, Json(200, "Product")),
    doc(
        "PATCH",
        "/api/products/{id}",
        "patchProduct",
        "catalogue",
        "Change the fields sent",
        Some("ProductChanges"),
        Json(200, "Product"),
    ),
    doc("DELETE", "/api/products/{id}", "deactivateProduct", "catalogue", "Deactivate (soft delete)", None, Empty),
    doc(
        "POST",
        "/api/products/{id}/prices",
        "createPrice",
        "catalogue",
        "Add a price to a product",
        Some("PriceInput"),
        Json(201, "Price"),
    ),
    doc(
        "PATCH",
        "/api/prices/{id}",
        "patchPrice",
        "catalogue",
        "Change the fields sent",
        Some("PriceChanges"),
        Json(200, "Price"),
    ),
    doc("DELETE", "/api/prices/{id}", "deactivatePrice", "catalogue", "Deactivate (soft delete)", None, Empty),
    doc(
        "POST",
        "/api/orders",
        "receiveOrder",
        "orders",
        "Order webhook from the marketing site (Standard Webhooks signature; idempotent by webhook-id and externalOrderId)",
        Some("OrderInput"),
        Json(201, "IntakeResponse"),
    ),
    with_query(
        list("/api/orders", "listOrders", "orders", "OrderView"),
        "Orders, newest first",
        &[
            Text("status", "Order status"),
            UuidParam("customerId", "Only this customer's orders"),
            Time("from", "Created at or after"),
            Time("to", "Created before"),
        ],
    ),
    doc(
        "GET",
        "/api/orders/{id}",
        "getOrder",
        "orders",
        "One order with its customer, subscription and jobs",
        None,
        Json(200, "OrderDetail"),
    ),
    doc(
        "POST",
        "/api/subscriptions/events",
        "receiveBillingEvent",
        "subscriptions",
        "Billing event webhook (Standard Webhooks signature)",
        Some("BillingEventInput"),
        Json(200, "BillingEventOutcome"),
    ),
    with_query(list("/api/users", "listUsers", "users", "User"), "Users of the tenant", &[]),
    doc(
        "POST",
        "/api/users",
        "createUser",
        "users",
        "Create a user (no role above your own)",
        Some("NewUserBody"),
        Json(201, "User"),
    ),
    doc("GET", "/api/users/{id}", "getUser", "users", "One user", None, Json(200, "User")),
    doc(
        "PATCH",
        "/api/users/{id}",
        "patchUser",
        "users",
        "Change role, status, name or password",
        Some("UserChangesBody"),
        Json(200, "User"),
    ),
    doc("DELETE", "/api/users/{id}", "disableUser", "users", "Disable a user and end their sessions", None, Empty),
    with_query(
        list("/api/customers", "listCustomers", "customers", "Customer"),
        "Customers of the tenant",
        &[Text("email", "Exact email address")],
    ),
    doc(
        "GET",
        "/api/customers/{id}",
        "getCustomer",
        "customers",
        "One customer with their subscriptions",
        None,
        Json(200, "CustomerDetail"),
    ),
    with_query(
        list("/api/subscriptions", "listSubscriptions", "subscriptions", "SubscriptionView"),
        "Subscriptions, newest first",
        &[Text("status", "Subscription status"), UuidParam("customerId", "Only this customer's subscriptions")],
    ),
    doc(
        "GET",
        "/api/subscriptions/{id}",
        "getSubscription",
        "subscriptions",
        "One subscription with its jobs",
        None,
        Json(200, "SubscriptionDetail"),
    ),
    doc(
        "POST",
        "/api/subscriptions/{id}/suspend",
        "suspendSubscription",
        "subscriptions",
        "Suspend: web space disabled, mail disabled (through jobs)",
        Some("SuspendBody"),
        Json(202, "ActionAccepted"),
    ),
    doc(
        "POST",
        "/api/subscriptions/{id}/unsuspend",
        "unsuspendSubscription",
        "subscriptions",
        "Restore a suspended subscription (through jobs)",
        None,
        Json(202, "ActionAccepted"),
    ),
    doc(
        "POST",
        "/api/subscriptions/{id}/terminate",
        "terminateSubscription",
        "subscriptions",
        "Terminate: archive the site, remove the zone and mailboxes (through jobs)",
        None,
        Json(202, "ActionAccepted"),
    ),
    with_query(
        list("/api/jobs", "listJobs", "jobs", "JobView"),
        "Provisioning jobs, newest first",
        &[
            Text("status", "PENDING, RUNNING, RETRYING, SUCCEEDED or DEAD"),
            Text("type", "Job type, e.g. PROVISION_DNS"),
            UuidParam("subscriptionId", "Only this subscription's jobs"),
        ],
    ),
    doc(
        "GET",
        "/api/jobs/{id}",
        "getJob",
        "jobs",
        "One job with its payload and attempts",
        None,
        Json(200, "JobDetail"),
    ),
    doc("POST", "/api/jobs/{id}/retry", "retryJob", "jobs", "Run a DEAD job again", None, Json(202, "JobDetail")),
    with_query(list("/api/servers", "listServers", "servers", "ServerView"), "Hosting servers", &[]),
    doc(
        "POST",
        "/api/servers",
        "createServer",
        "servers",
        "Register a hosting server (its SSH host key is pinned)",
        Some("ServerInput"),
        Json(201, "ServerView"),
    ),
    doc("GET", "/api/servers/{id}", "getServer", "servers", "One server", None, Json(200, "ServerView")),
    doc(
        "PATCH",
        "/api/servers/{id}",
        "patchServer",
        "servers",
        "Change the fields sent",
        Some("ServerChanges"),
        Json(200, "ServerView"),
    ),
    doc("DELETE", "/api/servers/{id}", "disableServer", "servers", "Disable a server (no new accounts)", None, Empty),
    with_query(
        list("/api/mail-accounts", "listMailAccounts", "mail", "MailAccount"),
        "Mailboxes",
        &[Text("domain", "Only this domain's mailboxes")],
    ),
    doc("GET", "/api/mail-accounts/{id}", "getMailAccount", "mail", "One mailbox", None, Json(200, "MailAccount")),
    doc(
        "POST",
        "/api/mail-accounts/{id}/reset-password",
        "resetMailPassword",
        "mail",
        "Set a new random password, shown once",
        None,
        Json(200, "PasswordReset"),
    ),
    with_query(list("/api/tenants", "listTenants", "tenants", "Tenant"), "Tenants (SUPER_ADMIN)", &[]),
    doc(
        "POST",
        "/api/tenants",
        "createTenant",
        "tenants",
        "Create a tenant (SUPER_ADMIN)",
        Some("NewTenantBody"),
        Json(201, "Tenant"),
    ),
    with_query(
        list("/api/audit-logs", "listAuditLogs", "audit", "AuditLog"),
        "Audit log, newest first",
        &[Text("action", "Action name, e.g. user.created"), Time("from", "At or after"), Time("to", "Before")],
    ),
];

/// Request bodies the handlers read field by field. They exist to be described.
pub mod bodies {
    #![allow(dead_code)]

    use serde::Deserialize;
    use utoipa::ToSchema;

    use crate::catalog::{Interval, ProductType};

    /// `limits` is a JSON object of numeric or boolean product limits.
    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct ProductInput {
        #[schema(min_length = 1, max_length = 200)]
        name: String,
        /// `^[a-z0-9]+(-[a-z0-9]+)*$`, unique in the tenant.
        #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
        slug: String,
        #[serde(rename = "type")]
        product_type: ProductType,
        description: Option<String>,
        limits: Option<serde_json::Map<String, serde_json::Value>>,
        is_active: Option<bool>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct ProductChanges {
        #[schema(min_length = 1, max_length = 200)]
        name: Option<String>,
        #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
        slug: Option<String>,
        #[serde(rename = "type")]
        product_type: Option<ProductType>,
        description: Option<String>,
        limits: Option<serde_json::Map<String, serde_json::Value>>,
        is_active: Option<bool>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct PriceInput {
        #[schema(min_length = 1, max_length = 200)]
        name: String,
        #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
        slug: String,
        interval: Interval,
        #[schema(minimum = 0)]
        amount_cents: i64,
        /// ISO 4217, e.g. USD.
        #[schema(pattern = r"^[A-Z]{3}$")]
        currency: String,
        is_popular: Option<bool>,
        is_active: Option<bool>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct PriceChanges {
        #[schema(min_length = 1, max_length = 200)]
        name: Option<String>,
        #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
        slug: Option<String>,
        interval: Option<Interval>,
        #[schema(minimum = 0)]
        amount_cents: Option<i64>,
        #[schema(pattern = r"^[A-Z]{3}$")]
        currency: Option<String>,
        is_popular: Option<bool>,
        is_active: Option<bool>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ServerRole {
        Web,
        Mail,
        Dns,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ServerStatus {
        Active,
        Disabled,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct ServerInput {
        #[schema(min_length = 1, max_length = 200)]
        name: String,
        role: ServerRole,
        ip_address: String,
        ssh_host: String,
        /// Defaults to 22.
        #[schema(minimum = 1, maximum = 65535)]
        ssh_port: Option<i32>,
        ssh_user: String,
        /// The server's public host key (`ssh-ed25519 AAAA...`), pinned in known_hosts.
        host_key: String,
        /// Absolute path under which sites are created.
        web_root: String,
        status: Option<ServerStatus>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct ServerChanges {
        #[schema(min_length = 1, max_length = 200)]
        name: Option<String>,
        role: Option<ServerRole>,
        ip_address: Option<String>,
        ssh_host: Option<String>,
        #[schema(minimum = 1, maximum = 65535)]
        ssh_port: Option<i32>,
        ssh_user: Option<String>,
        host_key: Option<String>,
        web_root: Option<String>,
        status: Option<ServerStatus>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SuspendBody {
        /// Shown to staff; 1 to 1000 characters.
        reason: String,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct OrderCustomer {
        #[schema(format = "email")]
        email: String,
        #[schema(min_length = 1, max_length = 200)]
        full_name: String,
        phone: Option<String>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct OrderInput {
        #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
        tenant_slug: String,
        /// The marketing site's order id; with the tenant, the idempotency key.
        external_order_id: String,
        customer: OrderCustomer,
        #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
        price_slug: String,
        #[schema(minimum = 0)]
        total_amount_cents: i64,
        #[schema(pattern = r"^[A-Z]{3}$")]
        currency: String,
        /// Required by hosting products; an internationalised name is stored as its A-label.
        domain: Option<String>,
        /// Kept with the order; at most 16 KiB.
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
    }

    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum BillingEventType {
        Renewed,
        PaymentFailed,
        Cancelled,
    }

    /// Names the subscription by `subscriptionId` or by the order's `externalOrderId`.
    #[derive(Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct BillingEventInput {
        #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 64)]
        tenant_slug: String,
        #[serde(rename = "type")]
        event_type: BillingEventType,
        subscription_id: Option<uuid::Uuid>,
        external_order_id: Option<String>,
        occurred_at: Option<chrono::DateTime<chrono::Utc>>,
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mPanel API",
        description = "Billing and provisioning for web hosting: the marketing site's order and billing \
                       webhooks, the public catalogue, and the staff admin API (JWT bearer).",
        license(name = "MIT", identifier = "MIT")
    ),
    components(schemas(
        crate::error::Problem,
        crate::error::FieldError,
        crate::http::health::HealthStatus,
        crate::login::api::LoginBody,
        crate::login::api::RefreshBody,
        crate::login::api::Me,
        crate::auth::sessions::TokenPair,
        crate::catalog::public::Listing,
        crate::catalog::Product,
        crate::catalog::Price,
        crate::orders::IntakeResponse,
        crate::orders::api::OrderView,
        crate::orders::api::OrderDetail,
        crate::users::User,
        crate::users::api::NewUserBody,
        crate::users::api::UserChangesBody,
        crate::customers::Customer,
        crate::customers::api::CustomerDetail,
        crate::subscriptions::SubscriptionView,
        crate::subscriptions::api::SubscriptionDetail,
        crate::subscriptions::api::ActionAccepted,
        crate::subscriptions::events::BillingEventOutcome,
        crate::jobs::JobView,
        crate::engine::api::JobDetail,
        crate::servers::ServerView,
        crate::provision::api::MailAccount,
        crate::provision::api::PasswordReset,
        crate::tenants::Tenant,
        crate::tenants::api::NewTenantBody,
        crate::audit::api::AuditLog,
        bodies::ProductInput,
        bodies::ProductChanges,
        bodies::PriceInput,
        bodies::PriceChanges,
        bodies::ServerInput,
        bodies::ServerChanges,
        bodies::SuspendBody,
        bodies::OrderInput,
        bodies::BillingEventInput,
    ))
)]
struct ApiDoc;

/// The entry of a route, if it has one.
pub fn route_doc(spec: &RouteSpec) -> Option<&'static RouteDoc> {
    ROUTE_DOCS.iter().find(|d| d.method == spec.method.as_str() && d.path == spec.path)
}

/// The document for a route table (the app passes every route it serves).
pub fn build(routes: &[RouteSpec]) -> utoipa::openapi::OpenApi {
    let mut api = ApiDoc::openapi();
    if let Some(components) = api.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        // The document itself is any OpenAPI object; described loosely on purpose.
        components.schemas.insert("OpenApiDocument".into(), ObjectBuilder::new().into());
    }
    for spec in routes {
        // A route without an entry is left out here and fails the coverage test.
        let Some(doc) = route_doc(spec) else { continue };
        let method = match doc.method {
            "POST" => HttpMethod::Post,
            "PATCH" => HttpMethod::Patch,
            "PUT" => HttpMethod::Put,
            "DELETE" => HttpMethod::Delete,
            _ => HttpMethod::Get,
        };
        api.paths.add_path_operation(doc.path, vec![method], operation(spec, doc));
    }
    api
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn string_schema(format: Option<KnownFormat>) -> Schema {
    let mut schema = ObjectBuilder::new().schema_type(SchemaType::new(Type::String));
    if let Some(format) = format {
        schema = schema.format(Some(SchemaFormat::KnownFormat(format)));
    }
    schema.into()
}

fn page_schema(item: &str) -> Schema {
    ObjectBuilder::new()
        .property("items", ArrayBuilder::new().items(schema_ref(item)))
        .required("items")
        .property(
            "nextCursor",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("Pass as `cursor` for the next page; null on the last page")),
        )
        .required("nextCursor")
        .into()
}

fn query_parameter(name: &str, description: &str, schema: Schema, required: bool) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .description(Some(description))
        .required(if required { Required::True } else { Required::False })
        .schema(Some(schema))
        .build()
}

fn header_parameter(name: &str, description: &str, required: bool) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .description(Some(description))
        .required(if required { Required::True } else { Required::False })
        .schema(Some(string_schema(None)))
        .build()
}

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(schema_ref("Problem"))).build())
}

fn retry_after(response: ResponseBuilder) -> ResponseBuilder {
    response.header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(SchemaType::new(Type::Integer)))
            .description(Some("Seconds to wait before retrying"))
            .build(),
    )
}

/// Whether the route is one of the two signed webhooks.
fn is_webhook(path: &str) -> bool {
    matches!(path, "/api/orders" | "/api/subscriptions/events")
}

fn operation(spec: &RouteSpec, doc: &RouteDoc) -> utoipa::openapi::path::Operation {
    let mut op = OperationBuilder::new()
        .operation_id(Some(doc.operation_id))
        .tag(doc.tag)
        .summary((!doc.summary.is_empty()).then_some(doc.summary));
    let webhook = doc.method == "POST" && is_webhook(doc.path);
    let has_id = doc.path.contains("{id}");
    let paged = matches!(doc.reply, Reply::Page(_));

    if has_id {
        op = op.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string_schema(Some(KnownFormat::Uuid)))),
        );
    }
    for param in doc.query {
        op = op.parameter(match *param {
            QueryParam::Text(name, description) => query_parameter(name, description, string_schema(None), false),
            QueryParam::RequiredText(name, description) => {
                query_parameter(name, description, string_schema(None), true)
            }
            QueryParam::Uuid(name, description) => {
                query_parameter(name, description, string_schema(Some(KnownFormat::Uuid)), false)
            }
            QueryParam::Time(name, description) => {
                query_parameter(name, description, string_schema(Some(KnownFormat::DateTime)), false)
            }
        });
    }
    if paged {
        let limit = ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Integer))
            .minimum(Some(1))
            .maximum(Some(crate::http::pagination::MAX_LIMIT))
            .default(Some(crate::http::pagination::DEFAULT_LIMIT.into()));
        op = op.parameter(query_parameter("limit", "Page size", limit.into(), false)).parameter(query_parameter(
            "cursor",
            "The nextCursor of the previous page",
            string_schema(None),
            false,
        ));
    }
    if webhook {
        op = op
            .parameter(header_parameter("webhook-id", "Unique message id (the idempotency key)", true))
            .parameter(header_parameter("webhook-timestamp", "Unix seconds; at most 5 minutes off", true))
            .parameter(header_parameter("webhook-signature", "`v1,<base64 HMAC-SHA256>` (Standard Webhooks)", true));
    }
    if doc.path == "/api/public/products" {
        op = op.parameter(header_parameter("If-None-Match", "The ETag of a listing already held", false));
    }
    if spec.permission != Permission::Public {
        op = op
            .parameter(header_parameter("X-Tenant", "SUPER_ADMIN only: the slug of the tenant to act in", false))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    }
    if let Some(body) = doc.body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", ContentBuilder::new().schema(Some(schema_ref(body))).build())
                .build(),
        ));
    }

    op = match doc.reply {
        Reply::Json(status, schema) => op.response(
            status.to_string(),
            ResponseBuilder::new()
                .description("Success")
                .content("application/json", ContentBuilder::new().schema(Some(schema_ref(schema))).build()),
        ),
        Reply::Page(item) => op.response(
            "200",
            ResponseBuilder::new()
                .description("One page, newest first")
                .content("application/json", ContentBuilder::new().schema(Some(page_schema(item))).build()),
        ),
        Reply::Empty => op.response("204", ResponseBuilder::new().description("Done")),
    };
    if doc.path == "/api/public/products" {
        op = op.response("304", ResponseBuilder::new().description("Not modified (If-None-Match)"));
    }

    let writes = doc.method != "GET";
    if doc.body.is_some() || webhook {
        op = op
            .response("400", problem("The body is not JSON"))
            .response("413", problem("The body is over the size limit"))
            .response("415", problem("The body is not application/json"));
    }
    if spec.permission != Permission::Public || webhook || doc.path.starts_with("/api/auth/") {
        op = op.response("401", problem("Missing or invalid credentials or signature"));
    }
    if spec.permission != Permission::Public {
        op = op.response("403", problem("The role does not allow this"));
    }
    if has_id || webhook || doc.path == "/api/public/products" {
        op = op.response("404", problem("No such resource in this tenant"));
    }
    if writes {
        op = op.response("409", problem("Clashes with existing state (the field is named)"));
    }
    if writes || !doc.query.is_empty() || paged {
        op = op.response("422", problem("Invalid fields, each named in `errors`"));
    }
    if spec.limited == Limited::Yes {
        op = op.response("429", retry_after(problem("Rate limited")));
    }
    if doc.path != "/api/health" && doc.path != PATH {
        op = op.response("503", retry_after(problem("A dependency (PostgreSQL, Redis) is unavailable")));
    }
    op.build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn document_json() -> Value {
        serde_json::to_value(crate::app::openapi_document()).unwrap()
    }

    #[test]
    fn is_openapi_3_1() {
        assert_eq!(document_json()["openapi"], "3.1.0");
    }

    #[test]
    fn every_route_has_an_entry_and_every_entry_a_route() {
        let routes = crate::app::all_routes();
        let missing: Vec<String> = routes
            .specs()
            .iter()
            .filter(|spec| route_doc(spec).is_none())
            .map(|spec| format!("{} {}", spec.method, spec.path))
            .collect();
        assert!(missing.is_empty(), "routes without an OpenAPI entry in ROUTE_DOCS: {missing:?}");
        let stale: Vec<String> = ROUTE_DOCS
            .iter()
            .filter(|d| !routes.specs().iter().any(|s| s.method.as_str() == d.method && s.path == d.path))
            .map(|d| format!("{} {}", d.method, d.path))
            .collect();
        assert!(stale.is_empty(), "OpenAPI entries without a route: {stale:?}");

        let doc = document_json();
        for spec in routes.specs() {
            let operation = &doc["paths"][spec.path][spec.method.as_str().to_lowercase()];
            assert!(operation.is_object(), "{} {} is not in the document", spec.method, spec.path);
        }
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut seen = BTreeSet::new();
        for d in ROUTE_DOCS {
            assert!(seen.insert(d.operation_id), "duplicate operationId {}", d.operation_id);
        }
    }

    fn refs(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.insert(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document_json();
        let mut found = BTreeSet::new();
        refs(&doc, &mut found);
        assert!(found.len() > 20, "{found:?}");
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected ref {r}"));
            assert!(doc["components"]["schemas"][name].is_object(), "{r} does not resolve");
        }
    }

    #[test]
    fn security_follows_the_route_permission() {
        let doc = document_json();
        for spec in crate::app::all_routes().specs() {
            let operation = &doc["paths"][spec.path][spec.method.as_str().to_lowercase()];
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            assert_eq!(secured, spec.permission != Permission::Public, "{} {}", spec.method, spec.path);
            assert_eq!(operation["responses"]["403"].is_object(), spec.permission != Permission::Public);
            assert_eq!(operation["responses"]["429"].is_object(), spec.limited == Limited::Yes);
        }
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    }

    #[test]
    fn errors_are_problem_json() {
        let doc = document_json();
        let login = &doc["paths"]["/api/auth/login"]["post"]["responses"];
        for status in ["400", "401", "415", "422", "429", "503"] {
            assert_eq!(
                login[status]["content"][PROBLEM_JSON]["schema"]["$ref"], "#/components/schemas/Problem",
                "{status}"
            );
        }
        let problem = &doc["components"]["schemas"]["Problem"];
        let required: BTreeSet<&str> =
            problem["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(required, BTreeSet::from(["type", "title", "status", "detail"]));
    }

    #[test]
    fn webhooks_document_their_signature_headers() {
        let doc = document_json();
        for path in ["/api/orders", "/api/subscriptions/events"] {
            let params = doc["paths"][path]["post"]["parameters"].as_array().unwrap();
            let headers: BTreeSet<&str> = params
                .iter()
                .filter(|p| p["in"] == "header" && p["required"] == true)
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(headers, BTreeSet::from(["webhook-id", "webhook-timestamp", "webhook-signature"]), "{path}");
        }
    }

    fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} has no properties"))
            .keys()
            .cloned()
            .collect()
    }

    fn names(fields: &[&str]) -> BTreeSet<String> {
        fields.iter().map(|f| f.to_string()).collect()
    }

    /// The described bodies name exactly the fields the handlers accept.
    #[test]
    fn described_bodies_match_what_handlers_read() {
        let doc = document_json();
        for schema in ["ProductInput", "ProductChanges"] {
            assert_eq!(properties(&doc, schema), names(&crate::catalog::api::PRODUCT_FIELDS), "{schema}");
        }
        for schema in ["PriceInput", "PriceChanges"] {
            assert_eq!(properties(&doc, schema), names(&crate::catalog::api::PRICE_FIELDS), "{schema}");
        }
        for schema in ["ServerInput", "ServerChanges"] {
            assert_eq!(properties(&doc, schema), names(&crate::servers::api::FIELDS), "{schema}");
        }
        assert_eq!(properties(&doc, "OrderInput"), names(&crate::orders::ORDER_FIELDS));
        assert_eq!(properties(&doc, "BillingEventInput"), names(&crate::subscriptions::events::EVENT_FIELDS));
        assert_eq!(properties(&doc, "SuspendBody"), names(&crate::subscriptions::api::SUSPEND_FIELDS));
    }

    /// Response schemas describe what the handlers really serialise: a
    /// nullable field may be null, a required one is always present.
    #[test]
    fn page_schema_requires_items_and_a_nullable_cursor() {
        let doc = document_json();
        let list = &doc["paths"]["/api/jobs"]["get"];
        let page = &list["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(page["properties"]["items"]["items"]["$ref"], "#/components/schemas/JobView");
        assert_eq!(page["properties"]["nextCursor"]["type"], serde_json::json!(["string", "null"]));
        let params: BTreeSet<&str> =
            list["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert!(params.is_superset(&BTreeSet::from(["limit", "cursor", "status", "type", "subscriptionId"])));
    }
}
