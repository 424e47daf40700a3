//! Executors: what each job type does to the outside world. Every step is
//! check-then-act and safe to repeat.

pub mod api;
pub mod certificate;
pub mod dns;
pub mod hosting;
pub mod lifecycle;
pub mod mail;

use std::net::IpAddr;

use serde_json::Value;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::catalog::ProductType;
use crate::config::{AcmeConfig, PdnsConfig, SshKeySource};
use crate::db::DbPool;
use crate::error::AppResult;
use crate::jobs::JobType;
use crate::jobs::{ClaimedJob, JobError};
pub use crate::servers::SshIdentity;
use crate::state::AppState;
use crate::types::DomainName;

/// What the executors use: the database, PowerDNS and the SSH key.
#[derive(Clone, Copy)]
pub struct Provisioner<'a> {
    pub db: &'a DbPool,
    /// For PowerDNS; built once per process, it pools connections.
    pub http: Option<&'a reqwest::Client>,
    pub pdns: Option<&'a PdnsConfig>,
    /// The platform key, for servers not yet moved to their tenant's key.
    pub ssh_key: Option<&'a SshKeySource>,
    /// Each tenant's own SSH identity (and data key).
    pub tenant_keys: Option<&'a crate::ssh_identity::TenantKeys>,
    pub acme: Option<&'a AcmeConfig>,
    /// The SSH masters this process keeps, one per server.
    pub ssh_masters: &'a crate::ssh_masters::SshMasters,
}

impl<'a> Provisioner<'a> {
    pub fn of(state: &'a AppState) -> Provisioner<'a> {
        Provisioner {
            db: &state.db,
            http: state.http.as_ref(),
            pdns: state.config.pdns.as_ref(),
            ssh_key: state.config.ssh_private_key.as_ref(),
            tenant_keys: state.tenant_keys.as_deref(),
            acme: state.config.acme.as_ref(),
            ssh_masters: &state.ssh_masters,
        }
    }
}

pub async fn execute(provisioner: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let p = provisioner;
    // Each on the heap: the executors' futures nest deeply, and every
    // function binary's main future would otherwise hold all of them inline.
    match job.job_type {
        JobType::ProvisionDns => Box::pin(dns::provision(p, job)).await,
        JobType::ProvisionHosting => Box::pin(hosting::provision(p, job)).await,
        JobType::ProvisionMail => Box::pin(mail::provision(p, job)).await,
        JobType::SuspendService => Box::pin(lifecycle::suspend(p, job)).await,
        JobType::UnsuspendService => Box::pin(lifecycle::unsuspend(p, job)).await,
        JobType::TerminateService => Box::pin(lifecycle::terminate(p, job)).await,
        JobType::UpdateSftpLogin => Box::pin(hosting::update_login(p, job)).await,
        JobType::IssueCertificate => Box::pin(certificate::issue(p, job)).await,
    }
}

/// What a provisioning job works on, loaded fresh for every attempt.
#[derive(Debug, Clone)]
pub struct Target {
    pub tenant_id: Uuid,
    pub subscription_id: Uuid,
    pub domain_id: Uuid,
    /// Re-validated: only a parsed domain reaches PowerDNS or SSH.
    pub domain: DomainName,
    pub product_type: ProductType,
    pub limits: Value,
}

pub async fn load_target(db: &DbPool, job: &ClaimedJob) -> Result<Target, JobError> {
    find_target(db, job).await?.ok_or_else(|| JobError::permanent("the subscription has no live domain"))
}

/// The job's target, or `None` when the subscription has no live domain
/// (VPS, ADDON).
pub async fn find_target(db: &DbPool, job: &ClaimedJob) -> Result<Option<Target>, JobError> {
    let subscription_id = job.subscription_id.ok_or_else(|| JobError::permanent("the job has no subscription"))?;
    let client = db.get().await?;
    let row = client
        .query_typed_opt(
            "SELECT d.id, d.name, p.type, p.limits FROM subscriptions s
             JOIN products p ON p.id = s.product_id
             JOIN domains d ON d.subscription_id = s.id AND d.status <> 'RELEASED'
             WHERE s.id = $1 AND s.tenant_id = $2",
            &[(&subscription_id, Type::UUID), (&job.tenant_id, Type::UUID)],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let name: String = row.try_get(1)?;
    Ok(Some(Target {
        tenant_id: job.tenant_id,
        subscription_id,
        domain_id: row.try_get(0)?,
        domain: DomainName::stored(&name).map_err(|e| JobError::permanent(format!("stored domain {name:?} {e}")))?,
        product_type: row.try_get(2)?,
        limits: row.try_get(3)?,
    }))
}

/// A hosting server as the executors need it.
#[derive(Debug, Clone)]
pub struct Server {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub identity: SshIdentity,
    pub ip_address: IpAddr,
    pub ssh_host: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    pub host_key: String,
    pub web_root: String,
}

/// The WEB server of a subscription: the one its hosting account is on, or
/// (first time) the tenant's active WEB server with the fewest accounts,
/// recorded as a PENDING hosting account under a lock on the subscription,
/// so the DNS and hosting jobs agree whichever runs first.
pub async fn assign_server(db: &DbPool, target: &Target) -> Result<Server, JobError> {
    let target = target.clone();
    let server_id = crate::db::in_transaction(db, move |tx| {
        Box::pin(async move {
            tx.query_typed(
                "SELECT 1 FROM subscriptions WHERE id = $1 FOR UPDATE",
                &[(&target.subscription_id, Type::UUID)],
            )
            .await?;
            if let Some(row) = tx
                .query_typed_opt(
                    "SELECT server_id FROM hosting_accounts WHERE subscription_id = $1 AND status <> 'TERMINATED'",
                    &[(&target.subscription_id, Type::UUID)],
                )
                .await?
            {
                return Ok(Some(row.try_get::<_, Uuid>(0)?));
            }
            let Some(row) = tx
                .query_typed_opt(
                    "SELECT s.id FROM servers s
                     LEFT JOIN hosting_accounts h ON h.server_id = s.id AND h.status <> 'TERMINATED'
                     WHERE s.tenant_id = $1 AND s.role = 'WEB' AND s.status = 'ACTIVE'
                     GROUP BY s.id ORDER BY count(h.id), s.created_at, s.id LIMIT 1",
                    &[(&target.tenant_id, Type::UUID)],
                )
                .await?
            else {
                return Ok(None);
            };
            let server_id: Uuid = row.try_get(0)?;
            let quota = target.limits.get("diskMb").and_then(Value::as_i64).map(|n| n as i32);
            tx.query_typed(
                "INSERT INTO hosting_accounts (tenant_id, subscription_id, server_id, domain_id, document_root, disk_quota_mb, status)
                 SELECT $1, $2, $3, $4, s.web_root || '/' || $5 || '/public', $6, 'PENDING' FROM servers s WHERE s.id = $3",
                &[
                    (&target.tenant_id, Type::UUID),
                    (&target.subscription_id, Type::UUID),
                    (&server_id, Type::UUID),
                    (&target.domain_id, Type::UUID),
                    (&target.domain.as_str(), Type::TEXT),
                    (&quota, Type::INT4),
                ],
            )
            .await?;
            Ok(Some(server_id))
        })
    })
    .await?
    // An operator can add a server; until then this is worth retrying.
    .ok_or_else(|| JobError::retryable("the tenant has no active WEB server"))?;
    load_server(db, server_id).await
}

pub async fn load_server(db: &DbPool, id: Uuid) -> Result<Server, JobError> {
    let client = db.get().await?;
    let row = client
        .query_typed_one(
            "SELECT id, host(ip_address), ssh_host, ssh_port, ssh_user, host_key, web_root, tenant_id, ssh_identity
             FROM servers WHERE id = $1",
            &[(&id, Type::UUID)],
        )
        .await?;
    let ip: String = row.try_get(1)?;
    let port: i32 = row.try_get(3)?;
    Ok(Server {
        id: row.try_get(0)?,
        ip_address: ip.parse().map_err(|_| JobError::permanent(format!("server address {ip:?} is invalid")))?,
        ssh_host: row.try_get(2)?,
        ssh_port: u16::try_from(port).map_err(|_| JobError::permanent("server port is invalid"))?,
        ssh_user: row.try_get(4)?,
        host_key: row.try_get(5)?,
        web_root: row.try_get(6)?,
        tenant_id: row.try_get(7)?,
        identity: row.try_get(8)?,
    })
}

/// The tenant's mail server address for `mail.<domain>`: a MAIL server if
/// there is one, else the site's own server.
pub async fn mail_server_ip(db: &DbPool, tenant_id: Uuid) -> AppResult<Option<IpAddr>> {
    let client = db.get().await?;
    let row = client
        .query_typed_opt(
            "SELECT host(ip_address) FROM servers WHERE tenant_id = $1 AND role = 'MAIL' AND status = 'ACTIVE'
             ORDER BY created_at, id LIMIT 1",
            &[(&tenant_id, Type::UUID)],
        )
        .await?;
    Ok(row.map(|r| r.try_get::<_, String>(0)).transpose()?.and_then(|ip| ip.parse().ok()))
}
