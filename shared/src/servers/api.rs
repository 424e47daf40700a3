//! `/api/servers`: register, read, change and disable hosting servers.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::audit_log::{self, Actor, AuditEntry};
use crate::auth::Permission;
use crate::auth::principal::Principal;
use crate::error::{AppError, AppResult};
use crate::http::extract::{IdPath, Json, Query};
use crate::http::fields::Fields;
use crate::http::pagination::{Page, PageParams, PageRequest, Position};
use crate::http::routes::ApiRoutes;
use crate::state::AppState;
use crate::types::DisplayName;

use super::{
    COLUMNS, ServerView, load, parse_host_key, parse_ip, parse_port, parse_role, parse_ssh_host, parse_ssh_user,
    parse_web_root,
};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(Method::GET, "/api/servers", Permission::ReadServers, list)
        .route(Method::POST, "/api/servers", Permission::WriteServers, create)
        .route(Method::GET, "/api/servers/{id}", Permission::ReadServers, get)
        .route(Method::PATCH, "/api/servers/{id}", Permission::WriteServers, patch)
        .route(Method::DELETE, "/api/servers/{id}", Permission::WriteServers, disable)
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(params): Query<PageParams>,
) -> AppResult<axum::Json<Page<ServerView>>> {
    let page = PageRequest::parse(&params).map_err(AppError::Validation)?;
    let client = state.db.get().await?;
    let rows = client
        .query_typed(
            &format!(
                "SELECT {COLUMNS} FROM servers s WHERE s.tenant_id = $1 AND (s.created_at, s.id) < ($2, $3)
                 ORDER BY s.created_at DESC, s.id DESC LIMIT $4"
            ),
            &[
                (&principal.tenant_id, Type::UUID),
                (&page.after.created_at, Type::TIMESTAMPTZ),
                (&page.after.id, Type::UUID),
                (&page.fetch(), Type::INT8),
            ],
        )
        .await?;
    let servers = rows.iter().map(ServerView::from_row).collect::<AppResult<Vec<_>>>()?;
    Ok(axum::Json(Page::from_rows(servers, &page, |s| Position { created_at: s.created_at, id: s.id })))
}

async fn get(
    State(state): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
) -> AppResult<axum::Json<ServerView>> {
    let client = state.db.get().await?;
    Ok(axum::Json(load(&**client, principal.tenant_id, id).await?))
}

pub(crate) const FIELDS: [&str; 9] =
    ["name", "role", "ipAddress", "sshHost", "sshPort", "sshUser", "hostKey", "webRoot", "status"];

type TextParser = fn(&str) -> Result<String, String>;

/// Validated column values from a body; `required` for POST.
fn read(body: &Value, required: bool) -> AppResult<Vec<(&'static str, Value)>> {
    let mut f = Fields::new(body)?;
    let mut values: Vec<(&'static str, Value)> = Vec::new();
    let text_fields: [(&str, &'static str, TextParser); 7] = [
        ("name", "name", |s| DisplayName::parse(s).map(|n| n.as_str().to_string())),
        ("role", "role", parse_role),
        ("ipAddress", "ip_address", parse_ip),
        ("sshHost", "ssh_host", parse_ssh_host),
        ("sshUser", "ssh_user", parse_ssh_user),
        ("hostKey", "host_key", parse_host_key),
        ("webRoot", "web_root", parse_web_root),
    ];
    for (field, column, parse) in text_fields {
        if (required || f.has(field))
            && let Some(v) = f.string(field).and_then(|raw| f.parse(field, Some(raw), parse))
        {
            values.push((column, json!(v)));
        }
    }
    if f.has("sshPort") || required {
        let port = if f.has("sshPort") { f.int("sshPort") } else { Some(22) };
        if let Some(p) = port.and_then(|n| f.check("sshPort", parse_port(n))) {
            values.push(("ssh_port", json!(p)));
        }
    }
    if f.has("status")
        && let Some(s) = f.string("status").and_then(|raw| {
            f.parse("status", Some(raw), |s| match s {
                "ACTIVE" | "DISABLED" => Ok(s.to_string()),
                _ => Err("must be ACTIVE or DISABLED".into()),
            })
        })
    {
        values.push(("status", json!(s)));
    }
    f.finish(&FIELDS)?;
    Ok(values)
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<Value>,
) -> AppResult<(StatusCode, axum::Json<ServerView>)> {
    let values = read(&body, true)?;
    let tenant_id = principal.tenant_id;
    let actor = Actor::User(principal.user_id);
    let server = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let get = |c: &str| values.iter().find(|(k, _)| *k == c).map(|(_, v)| v.clone()).unwrap_or(Value::Null);
            let row = tx
                .query_typed_one(
                    "INSERT INTO servers (tenant_id, name, role, ip_address, ssh_host, ssh_port, ssh_user, host_key, web_root)
                     SELECT $1, v->>'name', v->>'role', (v->>'ip_address')::inet, v->>'ssh_host', (v->>'ssh_port')::int,
                            v->>'ssh_user', v->>'host_key', v->>'web_root'
                     FROM (SELECT $2::jsonb AS v) AS input RETURNING id",
                    &[
                        (&tenant_id, Type::UUID),
                        (
                            &json!({
                                "name": get("name"), "role": get("role"), "ip_address": get("ip_address"),
                                "ssh_host": get("ssh_host"), "ssh_port": get("ssh_port"), "ssh_user": get("ssh_user"),
                                "host_key": get("host_key"), "web_root": get("web_root"),
                            }),
                            Type::JSONB,
                        ),
                    ],
                )
                .await?;
            let id: Uuid = row.try_get(0)?;
            let server = load(tx, tenant_id, id).await?;
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, "server.created")
                    .target("server", id)
                    .details(json!({ "name": server.name, "role": server.role, "sshHost": server.ssh_host })),
            )
            .await?;
            Ok(server)
        })
    })
    .await?;
    Ok((StatusCode::CREATED, axum::Json(server)))
}

async fn update(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    values: Vec<(&'static str, Value)>,
    action: &'static str,
) -> AppResult<ServerView> {
    let tenant_id = principal.tenant_id;
    let actor = Actor::User(principal.user_id);
    crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            load(tx, tenant_id, id).await?;
            let input: serde_json::Map<String, Value> = values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            tx.query_typed(
                "UPDATE servers SET
                    name = COALESCE($3->>'name', name), role = COALESCE($3->>'role', role),
                    ip_address = COALESCE(($3->>'ip_address')::inet, ip_address), ssh_host = COALESCE($3->>'ssh_host', ssh_host),
                    ssh_port = COALESCE(($3->>'ssh_port')::int, ssh_port), ssh_user = COALESCE($3->>'ssh_user', ssh_user),
                    host_key = COALESCE($3->>'host_key', host_key), web_root = COALESCE($3->>'web_root', web_root),
                    status = COALESCE($3->>'status', status), updated_at = now()
                 WHERE id = $1 AND tenant_id = $2",
                &[(&id, Type::UUID), (&tenant_id, Type::UUID), (&Value::Object(input.clone()), Type::JSONB)],
            )
            .await?;
            audit_log::record(
                tx,
                &AuditEntry::new(Some(tenant_id), actor, action).target("server", id).details(Value::Object(input)),
            )
            .await?;
            load(tx, tenant_id, id).await
        })
    })
    .await
}

async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    IdPath(id): IdPath,
    Json(body): Json<Value>,
) -> AppResult<axum::Json<ServerView>> {
    let values = read(&body, false)?;
    Ok(axum::Json(update(&state, &principal, id, values, "server.updated").await?))
}

/// Soft delete: a disabled server gets no new accounts; existing sites stay.
async fn disable(State(state): State<AppState>, principal: Principal, IdPath(id): IdPath) -> AppResult<StatusCode> {
    update(&state, &principal, id, vec![("status", json!("DISABLED"))], "server.disabled").await?;
    Ok(StatusCode::NO_CONTENT)
}
