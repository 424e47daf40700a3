//! The OpenAPI 3.1 document served at `GET /api/openapi.json`.
//!
//! Operations come from the route declarations themselves
//! (`app::all_routes`): each route carries its [`Doc`] (summary, query
//! parameters, request and response types, webhook and ETag facts), and its
//! permission and rate limit decide the security requirement and the
//! 401/403/429 answers. Request and response schemas are derived (`ToSchema`)
//! from the very structs the handlers read and serialise, and are collected
//! from the routes that name them.

use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, KnownFormat, Ref, RefOr, Required, ResponseBuilder, Schema};

use crate::auth::Permission;
use crate::error::PROBLEM_JSON;
use crate::http::routes::{Doc, Limited, QueryParam, Reply, RouteSpec};

pub const PATH: &str = "/api/openapi.json";

/// The document as served: `openapi::build` over every route, written to
/// `shared/openapi.json` by `UPDATE_OPENAPI=1 cargo test -p mpanel openapi`.
/// A test fails when it no longer matches the route declarations.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The document's text as it is stored: pretty JSON, one trailing newline.
pub fn render(document: &utoipa::openapi::OpenApi) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(document)? + "\n")
}

/// This document: any OpenAPI object, described loosely on purpose.
pub struct OpenApiDocument;

impl utoipa::PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().into()
    }
}

impl utoipa::ToSchema for OpenApiDocument {}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mPanel API",
        description = "Billing and provisioning for web hosting: the marketing site's order and billing \
                       webhooks, the public catalogue, and the staff admin API (JWT bearer).",
        license(name = "MIT", identifier = "MIT")
    ),
    // The rest are collected from the routes that name them.
    components(schemas(crate::error::Problem, crate::error::FieldError))
)]
struct ApiDoc;

/// The document for a route table (the app passes every route it serves).
pub fn build(routes: &[RouteSpec]) -> utoipa::openapi::OpenApi {
    let mut api = ApiDoc::openapi();
    let mut schemas = Vec::new();
    for spec in routes {
        let doc = &spec.doc;
        for named in doc.body.iter().chain(reply_schema(&doc.reply)) {
            (named.collect)(&mut schemas);
        }
        let method = match spec.method.as_str() {
            "POST" => HttpMethod::Post,
            "PATCH" => HttpMethod::Patch,
            "PUT" => HttpMethod::Put,
            "DELETE" => HttpMethod::Delete,
            _ => HttpMethod::Get,
        };
        api.paths.add_path_operation(spec.path, vec![method], operation(spec));
    }
    if let Some(components) = api.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.schemas.extend(schemas);
    }
    api
}

fn reply_schema(reply: &Reply) -> Option<&crate::http::routes::SchemaOf> {
    match reply {
        Reply::Json(_, named) | Reply::Page(named) => Some(named),
        Reply::Empty => None,
    }
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

/// One operation: its parameters, body, success answer and the problems it may answer.
fn operation(spec: &RouteSpec) -> Operation {
    let doc = &spec.doc;
    let op = OperationBuilder::new()
        .operation_id(Some(doc.operation_id))
        .tag(doc.tag)
        .summary((!doc.summary.is_empty()).then_some(doc.summary));
    let op = parameters(op, spec);
    let op = match &doc.body {
        Some(body) => op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", ContentBuilder::new().schema(Some(schema_ref(&body.name))).build())
                .build(),
        )),
        None => op,
    };
    problems(success(op, doc), spec).build()
}

fn has_id(spec: &RouteSpec) -> bool {
    spec.path.contains("{id}")
}

/// Path, query and header parameters.
fn parameters(mut op: OperationBuilder, spec: &RouteSpec) -> OperationBuilder {
    let doc = &spec.doc;
    if has_id(spec) {
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
    if matches!(doc.reply, Reply::Page(_)) {
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
    if doc.signed_webhook {
        op = op
            .parameter(header_parameter("webhook-id", "Unique message id (the idempotency key)", true))
            .parameter(header_parameter("webhook-timestamp", "Unix seconds; at most 5 minutes off", true))
            .parameter(header_parameter("webhook-signature", "`v1,<base64 HMAC-SHA256>` (Standard Webhooks)", true));
    }
    if doc.etag {
        op = op.parameter(header_parameter("If-None-Match", "The ETag of a listing already held", false));
    }
    if spec.permission != Permission::Public {
        op = op
            .parameter(header_parameter("X-Tenant", "SUPER_ADMIN only: the slug of the tenant to act in", false))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
    }
    op
}

/// The success answer (and 304 for an ETag route).
fn success(op: OperationBuilder, doc: &Doc) -> OperationBuilder {
    let op = match &doc.reply {
        Reply::Json(status, schema) => op.response(
            status.to_string(),
            ResponseBuilder::new()
                .description("Success")
                .content("application/json", ContentBuilder::new().schema(Some(schema_ref(&schema.name))).build()),
        ),
        Reply::Page(item) => op.response(
            "200",
            ResponseBuilder::new()
                .description("One page, newest first")
                .content("application/json", ContentBuilder::new().schema(Some(page_schema(&item.name))).build()),
        ),
        Reply::Empty => op.response("204", ResponseBuilder::new().description("Done")),
    };
    if doc.etag { op.response("304", ResponseBuilder::new().description("Not modified (If-None-Match)")) } else { op }
}

/// The problem+json answers the route can give.
fn problems(mut op: OperationBuilder, spec: &RouteSpec) -> OperationBuilder {
    let doc = &spec.doc;
    let secured = spec.permission != Permission::Public;
    let paged = matches!(doc.reply, Reply::Page(_));
    let writes = spec.method != http::Method::GET;
    let names_a_resource = doc.query.iter().any(|q| matches!(q, QueryParam::RequiredText(..)));
    if doc.body.is_some() || doc.signed_webhook {
        op = op
            .response("400", problem("The body is not JSON"))
            .response("413", problem("The body is over the size limit"))
            .response("415", problem("The body is not application/json"));
    }
    if secured || doc.signed_webhook || doc.checks_credentials {
        op = op.response("401", problem("Missing or invalid credentials or signature"));
    }
    if secured {
        op = op.response("403", problem("The role does not allow this"));
    }
    if has_id(spec) || doc.signed_webhook || names_a_resource {
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
    if !doc.self_contained {
        op = op.response("503", retry_after(problem("A dependency (PostgreSQL, Redis) is unavailable")));
    }
    op
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn document_json() -> Value {
        serde_json::to_value(crate::app::openapi_document()).unwrap()
    }

    /// The served document is the one the declarations build; with
    /// UPDATE_OPENAPI=1 this rewrites it instead.
    #[test]
    fn the_served_document_matches_the_routes() {
        let built = render(crate::app::openapi_document()).unwrap();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"), &built).unwrap();
            return;
        }
        assert!(
            built == DOCUMENT,
            "shared/openapi.json is not what the routes declare; run UPDATE_OPENAPI=1 cargo test -p mpanel openapi"
        );
    }

    #[test]
    fn is_openapi_3_1() {
        assert_eq!(document_json()["openapi"], "3.1.0");
    }

    /// A route is declared with its description; one left vague fails here.
    #[test]
    fn every_route_is_described() {
        let routes = crate::app::all_routes();
        let doc = document_json();
        let mut ids = BTreeSet::new();
        for spec in routes.specs() {
            let route = format!("{} {}", spec.method, spec.path);
            let operation = &doc["paths"][spec.path][spec.method.as_str().to_lowercase()];
            assert!(operation.is_object(), "{route} is not in the document");
            assert!(!spec.doc.summary.trim().is_empty(), "{route} has no summary");
            assert!(ids.insert(spec.doc.operation_id), "{route}: duplicate operationId {}", spec.doc.operation_id);
            let answers = operation["responses"].as_object().expect("responses");
            assert!(answers.keys().any(|status| status.starts_with('2')), "{route} has no success answer");
            // What a route reads must be described: a body-reading method without one is a gap.
            if matches!(spec.method, http::Method::PATCH) {
                assert!(spec.doc.body.is_some(), "{route} reads a body it does not describe");
            }
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

    /// Request bodies are the handlers' own structs: unknown fields are refused.
    #[test]
    fn request_bodies_refuse_unknown_fields() {
        let doc = document_json();
        let mut bodies = 0;
        for spec in crate::app::all_routes().specs() {
            if let Some(body) = &spec.doc.body {
                bodies += 1;
                let schema = &doc["components"]["schemas"][&body.name];
                assert_eq!(schema["additionalProperties"], false, "{}", body.name);
            }
        }
        assert!(bodies >= 10, "{bodies}");
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
