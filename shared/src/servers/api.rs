//! `/api/servers`: register, read, change and disable hosting servers.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_postgres::types::Type;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit_log::{self, Actor, AuditEntry};
use crate::auth::Permission;
use crate::auth::principal::Principal;
use crate::error::{AppError, AppResult};
use crate::http::body::{Field, Problems};
use crate::http::extract::{Caller, IdPath, Json, Listing, NoFilters};
use crate::http::pagination::{Page, tenant_page};
use crate::http::routes::{ApiRoutes, Doc};
use crate::state::AppState;
use crate::types::DisplayName;

use super::{
    COLUMNS, ServerRole, ServerStatus, ServerView, SshIdentity, load, parse_host_key, parse_ip, parse_port,
    parse_ssh_host, parse_ssh_user, parse_web_root,
};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/servers",
            Permission::ReadServers,
            list,
            Doc::new("listServers", "servers", "Hosting servers").page::<ServerView>(),
        )
        .route(
            Method::POST,
            "/api/servers",
            Permission::WriteServers,
            create,
            Doc::new("createServer", "servers", "Register a hosting server (its SSH host key is pinned)")
                .body::<ServerInput>()
                .json::<ServerView>(201),
        )
        .route(
            Method::GET,
            "/api/servers/{id}",
            Permission::ReadServers,
            get,
            Doc::new("getServer", "servers", "One server").json::<ServerView>(200),
        )
        .route(
            Method::PATCH,
            "/api/servers/{id}",
            Permission::WriteServers,
            patch,
            Doc::new("patchServer", "servers", "Change the fields sent")
                .body::<ServerChanges>()
                .json::<ServerView>(200),
        )
        .route(
            Method::DELETE,
            "/api/servers/{id}",
            Permission::WriteServers,
            disable,
            Doc::new("disableServer", "servers", "Disable a server (no new accounts)"),
        )
}

async fn list(
    Caller(state, principal): Caller,
    Listing { page, problems, .. }: Listing<NoFilters>,
) -> AppResult<axum::Json<Page<ServerView>>> {
    problems.finish()?;
    let filtered = format!("SELECT {COLUMNS} FROM servers s WHERE s.tenant_id = $1");
    tenant_page(&state.db, principal.tenant_id, &filtered, ("s.created_at", "s.id"), &[], &page, ServerView::from_row)
        .await
}

async fn get(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<axum::Json<ServerView>> {
    let client = state.db.get().await?;
    Ok(axum::Json(load(&**client, principal.tenant_id, id).await?))
}

/// A server to register. Its sites are created under `webRoot` by the
/// `ssh_user`, who must be allowed the mPanel commands through sudo.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ServerInput {
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    name: Field<String>,
    #[schema(value_type = ServerRole)]
    role: Field<ServerRole>,
    #[schema(value_type = String)]
    ip_address: Field<String>,
    #[schema(value_type = String)]
    ssh_host: Field<String>,
    /// Defaults to 22.
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 65535)]
    ssh_port: Field<i64>,
    #[schema(value_type = String)]
    ssh_user: Field<String>,
    /// The server's public host key (`ssh-ed25519 AAAA...`), pinned in known_hosts.
    #[schema(value_type = String)]
    host_key: Field<String>,
    /// Absolute path under which sites are created.
    #[schema(value_type = String)]
    web_root: Field<String>,
    /// Defaults to ACTIVE.
    #[serde(default)]
    #[schema(value_type = Option<ServerStatus>)]
    status: Field<ServerStatus>,
}

/// The fields sent change.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ServerChanges {
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 200)]
    name: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<ServerRole>)]
    role: Field<ServerRole>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    ip_address: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    ssh_host: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 65535)]
    ssh_port: Field<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    ssh_user: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    host_key: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    web_root: Field<String>,
    #[serde(default)]
    #[schema(value_type = Option<ServerStatus>)]
    status: Field<ServerStatus>,
    /// Only `TENANT`: moves a server registered with the platform key to
    /// the tenant's own key (install `GET /api/ssh-key` on it first).
    #[serde(default)]
    #[schema(value_type = Option<SshIdentity>)]
    ssh_identity: Field<SshIdentity>,
}

impl From<ServerInput> for ServerChanges {
    /// A registration is a change to every field: the required ones were not
    /// marked `default`, so a missing one reads as null and is reported.
    fn from(input: ServerInput) -> ServerChanges {
        let ServerInput { name, role, ip_address, ssh_host, ssh_port, ssh_user, host_key, web_root, status } = input;
        let ssh_identity = Field::Absent;
        ServerChanges { name, role, ip_address, ssh_host, ssh_port, ssh_user, host_key, web_root, status, ssh_identity }
    }
}

type TextParser = fn(&str) -> Result<String, String>;

/// Validated column values of the fields sent.
fn read(body: ServerChanges) -> AppResult<Vec<(&'static str, Value)>> {
    let mut p = Problems::new();
    let mut values: Vec<(&'static str, Value)> = Vec::new();
    let text_fields: [(&str, &'static str, Field<String>, TextParser); 6] = [
        ("name", "name", body.name, |s| DisplayName::parse(s).map(|n| n.as_str().to_string())),
        ("ipAddress", "ip_address", body.ip_address, parse_ip),
        ("sshHost", "ssh_host", body.ssh_host, parse_ssh_host),
        ("sshUser", "ssh_user", body.ssh_user, parse_ssh_user),
        ("hostKey", "host_key", body.host_key, parse_host_key),
        ("webRoot", "web_root", body.web_root, parse_web_root),
    ];
    for (field, column, value, parse) in text_fields {
        if let Some(v) = p.change(field, value, |raw| parse(&raw)) {
            values.push((column, json!(v)));
        }
    }
    if let Some(role) = p.change("role", body.role, Ok) {
        values.push(("role", json!(role)));
    }
    if let Some(port) = p.change("sshPort", body.ssh_port, parse_port) {
        values.push(("ssh_port", json!(port)));
    }
    if let Some(status) = p.change("status", body.status, Ok) {
        values.push(("status", json!(status)));
    }
    let to_tenant = |identity: SshIdentity| match identity {
        SshIdentity::Tenant => Ok(identity),
        SshIdentity::Platform => Err("can only be TENANT: no server moves to the platform key".to_string()),
    };
    if let Some(identity) = p.change("sshIdentity", body.ssh_identity, to_tenant) {
        values.push(("ssh_identity", json!(identity)));
    }
    p.finish()?;
    Ok(values)
}

async fn create(
    Caller(state, principal): Caller,
    Json(body): Json<ServerInput>,
) -> AppResult<(StatusCode, axum::Json<ServerView>)> {
    let values = read(body.into())?;
    let tenant_id = principal.tenant_id;
    let actor = Actor::User(principal.user_id);
    let server = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let get = |c: &str| values.iter().find(|(k, _)| *k == c).map(|(_, v)| v.clone()).unwrap_or(Value::Null);
            let row = tx
                .query_typed_one(
                    "INSERT INTO servers (tenant_id, name, role, ip_address, ssh_host, ssh_port, ssh_user, host_key, web_root, status)
                     SELECT $1, v->>'name', v->>'role', (v->>'ip_address')::inet, v->>'ssh_host',
                            COALESCE((v->>'ssh_port')::int, 22), v->>'ssh_user', v->>'host_key', v->>'web_root',
                            COALESCE(v->>'status', 'ACTIVE')
                     FROM (SELECT $2::jsonb AS v) AS input RETURNING id",
                    &[
                        (&tenant_id, Type::UUID),
                        (
                            &json!({
                                "name": get("name"), "role": get("role"), "ip_address": get("ip_address"),
                                "ssh_host": get("ssh_host"), "ssh_port": get("ssh_port"), "ssh_user": get("ssh_user"),
                                "host_key": get("host_key"), "web_root": get("web_root"), "status": get("status"),
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
            let before = load(tx, tenant_id, id).await?;
            // The platform key is trusted by servers of every tenant: a
            // server still on it cannot be aimed at another host or login.
            let aims = [("ip_address", "ipAddress"), ("ssh_host", "sshHost"), ("ssh_port", "sshPort"), ("ssh_user", "sshUser")];
            let moving_to_tenant = values.iter().any(|(k, _)| *k == "ssh_identity");
            if before.ssh_identity == SshIdentity::Platform && !moving_to_tenant
                && let Some((_, field)) = aims.iter().find(|(column, _)| values.iter().any(|(k, _)| k == column))
            {
                return Err(AppError::Conflict {
                    field: Some((*field).into()),
                    detail: "This server still uses the platform SSH key: move it to the tenant's key \
                             (sshIdentity TENANT) before changing its address or login."
                        .into(),
                });
            }
            let input: serde_json::Map<String, Value> = values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            tx.query_typed(
                "UPDATE servers SET
                    name = COALESCE($3->>'name', name), role = COALESCE($3->>'role', role),
                    ip_address = COALESCE(($3->>'ip_address')::inet, ip_address), ssh_host = COALESCE($3->>'ssh_host', ssh_host),
                    ssh_port = COALESCE(($3->>'ssh_port')::int, ssh_port), ssh_user = COALESCE($3->>'ssh_user', ssh_user),
                    host_key = COALESCE($3->>'host_key', host_key), web_root = COALESCE($3->>'web_root', web_root),
                    status = COALESCE($3->>'status', status),
                    ssh_identity = COALESCE($3->>'ssh_identity', ssh_identity), updated_at = now()
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
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
    Json(body): Json<ServerChanges>,
) -> AppResult<axum::Json<ServerView>> {
    let values = read(body)?;
    Ok(axum::Json(update(&state, &principal, id, values, "server.updated").await?))
}

/// Soft delete: a disabled server gets no new accounts; existing sites stay.
async fn disable(State(state): State<AppState>, principal: Principal, IdPath(id): IdPath) -> AppResult<StatusCode> {
    update(&state, &principal, id, vec![("status", json!("DISABLED"))], "server.disabled").await?;
    Ok(StatusCode::NO_CONTENT)
}
