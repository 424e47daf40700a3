//! The audit log's writer: who did what to which object, from where.
//! Every floor that changes state records here; staff read it through
//! `audit::api`.

use serde_json::Value;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::error::AppResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(Uuid),
    /// The operator CLI or a background process.
    System,
    /// A signed webhook from the marketing / billing site.
    Webhook,
    Anonymous,
}

impl Actor {
    fn kind(self) -> &'static str {
        match self {
            Actor::User(_) => "USER",
            Actor::System => "SYSTEM",
            Actor::Webhook => "WEBHOOK",
            Actor::Anonymous => "ANONYMOUS",
        }
    }

    fn user_id(self) -> Option<Uuid> {
        match self {
            Actor::User(id) => Some(id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    /// Dotted lower-case verb, e.g. `tenant.created`, `auth.login_failed`.
    pub action: &'static str,
    pub target_type: Option<&'static str>,
    pub target_id: Option<Uuid>,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    pub details: Value,
}

impl AuditEntry {
    pub fn new(tenant_id: Option<Uuid>, actor: Actor, action: &'static str) -> Self {
        Self {
            tenant_id,
            actor,
            action,
            target_type: None,
            target_id: None,
            ip: None,
            user_agent: None,
            details: Value::Object(Default::default()),
        }
    }

    pub fn target(mut self, target_type: &'static str, id: Uuid) -> Self {
        self.target_type = Some(target_type);
        self.target_id = Some(id);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

pub async fn record(client: &impl GenericClient, entry: &AuditEntry) -> AppResult<()> {
    let user_agent = entry.user_agent.as_deref().map(|ua| ua.chars().take(1000).collect::<String>());
    client
        .query_typed(
            "INSERT INTO audit_logs (tenant_id, actor_type, actor_user_id, action, target_type, target_id, ip, user_agent, details)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                (&entry.tenant_id, Type::UUID),
                (&entry.actor.kind(), Type::TEXT),
                (&entry.actor.user_id(), Type::UUID),
                (&entry.action, Type::TEXT),
                (&entry.target_type, Type::TEXT),
                (&entry.target_id, Type::UUID),
                (&entry.ip, Type::INET),
                (&user_agent, Type::TEXT),
                (&entry.details, Type::JSONB),
            ],
        )
        .await?;
    Ok(())
}
