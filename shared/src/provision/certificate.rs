//! ISSUE_CERTIFICATE: one certificate for `D` and `www.D` (plus `mail.D`
//! when the plan has mail) through ACME DNS-01, answered by TXT records
//! that mPanel writes in its own PowerDNS zone (one rrset per name holding
//! every value, removed afterwards), stored with its key sealed, then
//! installed on the site's server by `mpanel-site install-cert`.
//!
//! Safe to repeat: a retry of the job that already stored a certificate only
//! installs it again. Before any order is placed the domain must be served
//! by our nameservers; if it is not, the job fails at once (the sweep asks
//! again hours later, a bounded number of times).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use instant_acme::{AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order, OrderStatus, RetryPolicy};
use serde_json::Value;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::dns::{PdnsClient, RecordSet};
use super::hosting::{Site, SiteScript, load_account, over_ssh, site_script};
use super::{Provisioner, Target, load_target};
use crate::catalog::ProductType;
use crate::certificates::acme::{self, AcmeError};
use crate::config::{AcmeConfig, PdnsConfig};
use crate::db::DbPool;
use crate::jobs::{ClaimedJob, JobError};
use crate::sealing;
use crate::types::DomainName;

/// How long the challenge records may take to be served, and the ACME
/// server to validate and to issue.
const PROPAGATION_WAIT: Duration = Duration::from_secs(30);
const ACME_WAIT: Duration = Duration::from_secs(60);
const CHALLENGE_TTL: i32 = 60;

pub async fn issue(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let target = load_target(p.db, job).await?;
    if target.product_type != ProductType::SharedHosting {
        return Err(JobError::permanent("only shared hosting sites get certificates"));
    }
    if !wanted(p.db, target.subscription_id).await? {
        tracing::info!(subscription_id = %target.subscription_id, "certificate no longer wanted: the site is being terminated or gone");
        return Ok(());
    }
    let acme =
        p.acme.ok_or_else(|| JobError::permanent("certificates are turned off here (ACME_DIRECTORY_URL=none)"))?;
    let keys = p.tenant_keys.ok_or_else(|| {
        JobError::permanent("no tenant key store (SSH_KEY_DIR or Secrets Manager) to keep the certificate's key")
    })?;
    let names = names_for(&target);
    let certificate_id = prepare(p.db, &target, &names).await?;
    let data_key = keys.data_key(target.tenant_id).await?;
    let stored = match load_issued_by(p.db, certificate_id, job.id, &data_key).await? {
        Some(stored) => stored,
        None => {
            job.lease.check()?;
            match obtain(p, acme, &target, &names, &data_key, job).await {
                Ok(issued) => store(p.db, certificate_id, job.id, issued, &data_key).await?,
                Err(error) => {
                    record_failure(p.db, certificate_id, &error, job).await?;
                    return Err(error);
                }
            }
        }
    };
    job.lease.check()?;
    if let Err(error) = install(p, &target, &stored).await {
        note_error(p.db, certificate_id, &format!("installing: {}", error.message)).await?;
        return Err(error);
    }
    p.db.get()
        .await?
        .execute_typed(
            "UPDATE ssl_certificates SET installed_at = now(), last_error = NULL, updated_at = now() WHERE id = $1",
            &[(&certificate_id, Type::UUID)],
        )
        .await?;
    Ok(())
}

/// The names one certificate covers.
pub fn names_for(target: &Target) -> Vec<String> {
    let domain = target.domain.as_str();
    let mut names = vec![domain.to_string(), format!("www.{domain}")];
    if target.limits.get("emails").and_then(Value::as_i64).unwrap_or(0) > 0 {
        names.push(format!("mail.{domain}"));
    }
    names
}

/// Not terminated, and no termination under way.
async fn wanted(db: &DbPool, subscription_id: Uuid) -> Result<bool, JobError> {
    let row = db
        .get()
        .await?
        .query_typed_one(
            "SELECT s.status <> 'TERMINATED' AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.subscription_id = s.id
                 AND j.type = 'TERMINATE_SERVICE' AND j.status IN ('PENDING', 'RUNNING', 'RETRYING'))
             FROM subscriptions s WHERE s.id = $1",
            &[(&subscription_id, Type::UUID)],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The domain's certificate row (made PENDING the first time; an issued one
/// is RENEWING while this job runs).
async fn prepare(db: &DbPool, target: &Target, names: &[String]) -> Result<Uuid, JobError> {
    let row = db
        .get()
        .await?
        .query_typed_one(
            "INSERT INTO ssl_certificates (tenant_id, domain_id, subscription_id, names, status)
             VALUES ($1, $2, $3, $4, 'PENDING')
             ON CONFLICT (domain_id) WHERE status <> 'DELETED' DO UPDATE
                SET names = EXCLUDED.names, subscription_id = EXCLUDED.subscription_id,
                    status = CASE WHEN ssl_certificates.status = 'ISSUED' THEN 'RENEWING' ELSE ssl_certificates.status END,
                    updated_at = now()
             RETURNING id",
            &[
                (&target.tenant_id, Type::UUID),
                (&target.domain_id, Type::UUID),
                (&target.subscription_id, Type::UUID),
                (&names, Type::TEXT_ARRAY),
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// A certificate and its key, in PEM.
pub struct Issued {
    pub key_pem: String,
    pub chain_pem: String,
}

fn key_context(certificate_id: Uuid) -> Vec<u8> {
    format!("certificate-key:{certificate_id}").into_bytes()
}

/// What an earlier attempt of this same job stored: only installing is left.
async fn load_issued_by(
    db: &DbPool,
    certificate_id: Uuid,
    job_id: Uuid,
    data_key: &[u8; 32],
) -> Result<Option<Issued>, JobError> {
    let row = db
        .get()
        .await?
        .query_typed_opt(
            "SELECT private_key_sealed, certificate_pem FROM ssl_certificates
             WHERE id = $1 AND issued_by_job = $2 AND private_key_sealed IS NOT NULL",
            &[(&certificate_id, Type::UUID), (&job_id, Type::UUID)],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let sealed: Vec<u8> = row.try_get(0)?;
    let key = sealing::open(data_key, &key_context(certificate_id), &sealed)?;
    let key_pem = String::from_utf8(key).map_err(|_| JobError::permanent("the stored key is not PEM"))?;
    Ok(Some(Issued { key_pem, chain_pem: row.try_get(1)? }))
}

/// What the leaf certificate says about itself.
#[derive(Debug, PartialEq, Eq)]
pub struct LeafFacts {
    pub serial: String,
    pub issuer: String,
    pub names: Vec<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

pub fn leaf_facts(chain_pem: &str) -> Result<LeafFacts, String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).map_err(|e| format!("no PEM certificate: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("unreadable certificate: {e}"))?;
    let time = |t: x509_parser::time::ASN1Time| {
        DateTime::<Utc>::from_timestamp(t.timestamp(), 0).ok_or_else(|| "a validity date out of range".to_string())
    };
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(name) => Some(name.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let issuer = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| cert.issuer().to_string());
    Ok(LeafFacts {
        serial: cert.raw_serial_as_string(),
        issuer,
        names,
        not_before: time(cert.validity().not_before)?,
        not_after: time(cert.validity().not_after)?,
    })
}

async fn store(
    db: &DbPool,
    certificate_id: Uuid,
    job_id: Uuid,
    issued: Issued,
    data_key: &[u8; 32],
) -> Result<Issued, JobError> {
    let facts =
        leaf_facts(&issued.chain_pem).map_err(|e| JobError::retryable(format!("the issued certificate: {e}")))?;
    let sealed = sealing::seal(data_key, &key_context(certificate_id), issued.key_pem.as_bytes())?;
    let renew_at = crate::certificates::renewal_time(facts.not_before, facts.not_after);
    db.get()
        .await?
        .execute_typed(
            "UPDATE ssl_certificates SET status = 'ISSUED', certificate_pem = $2, private_key_sealed = $3,
                    serial = $4, issuer = $5, names = $6, not_before = $7, not_after = $8, renew_at = $9,
                    issued_by_job = $10, failures = 0, next_attempt_at = NULL, last_error = NULL,
                    alarm_raised_at = NULL, updated_at = now()
             WHERE id = $1",
            &[
                (&certificate_id, Type::UUID),
                (&issued.chain_pem, Type::TEXT),
                (&sealed, Type::BYTEA),
                (&facts.serial, Type::TEXT),
                (&facts.issuer, Type::TEXT),
                (&facts.names, Type::TEXT_ARRAY),
                (&facts.not_before, Type::TIMESTAMPTZ),
                (&facts.not_after, Type::TIMESTAMPTZ),
                (&renew_at, Type::TIMESTAMPTZ),
                (&job_id, Type::UUID),
            ],
        )
        .await?;
    tracing::info!(%certificate_id, serial = %facts.serial, not_after = %facts.not_after, "certificate issued");
    Ok(issued)
}

/// A failed issuance: the last attempt of a job (or a permanent error)
/// counts one failure and sets when the sweep tries again; a certificate
/// still valid stays in use (RENEWING), otherwise the row is FAILED.
async fn record_failure(db: &DbPool, certificate_id: Uuid, error: &JobError, job: &ClaimedJob) -> Result<(), JobError> {
    let client = db.get().await?;
    if error.retryable && job.attempt < job.max_attempts {
        drop(client);
        return note_error(db, certificate_id, &error.message).await;
    }
    let failures: i32 = client
        .query_typed_one("SELECT failures + 1 FROM ssl_certificates WHERE id = $1", &[(&certificate_id, Type::UUID)])
        .await?
        .try_get(0)?;
    let next_attempt_at = Utc::now() + crate::certificates::retry_delay(failures);
    client
        .execute_typed(
            "UPDATE ssl_certificates SET failures = $2, next_attempt_at = $3, last_error = $4, updated_at = now(),
                    status = CASE WHEN status IN ('ISSUED', 'RENEWING') AND not_after > now() THEN 'RENEWING'
                                  ELSE 'FAILED' END
             WHERE id = $1",
            &[
                (&certificate_id, Type::UUID),
                (&failures, Type::INT4),
                (&next_attempt_at, Type::TIMESTAMPTZ),
                (&error.message, Type::TEXT),
            ],
        )
        .await?;
    Ok(())
}

async fn note_error(db: &DbPool, certificate_id: Uuid, message: &str) -> Result<(), JobError> {
    db.get()
        .await?
        .execute_typed(
            "UPDATE ssl_certificates SET last_error = $2, updated_at = now() WHERE id = $1",
            &[(&certificate_id, Type::UUID), (&message, Type::TEXT)],
        )
        .await?;
    Ok(())
}

fn job_error(error: AcmeError) -> JobError {
    JobError { retryable: error.retryable, message: error.message }
}

/// Delegation check, account, order, DNS-01 through PowerDNS, finalize.
async fn obtain(
    p: Provisioner<'_>,
    config: &AcmeConfig,
    target: &Target,
    names: &[String],
    data_key: &[u8; 32],
    job: &ClaimedJob,
) -> Result<Issued, JobError> {
    let pdns_config = p.pdns.ok_or_else(|| JobError::permanent("PowerDNS is not configured in this process"))?;
    check_delegation(config, pdns_config, &target.domain).await?;
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let account = acme::account(p.db, config, target.tenant_id, data_key, false).await.map_err(job_error)?;
    let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
        Ok(order) => order,
        Err(e) => {
            let error = AcmeError::from_acme("placing the order", e);
            if !error.account_unknown {
                return Err(job_error(error));
            }
            // The server forgot the account (a test server restarted): a new one.
            let account = acme::account(p.db, config, target.tenant_id, data_key, true).await.map_err(job_error)?;
            account
                .new_order(&NewOrder::new(&identifiers))
                .await
                .map_err(|e| job_error(AcmeError::from_acme("placing the order", e)))?
        }
    };
    let records = challenge_records(&mut order).await?;
    let pdns = PdnsClient::new(p)?;
    let zone = target.domain.fqdn();
    let sets: Vec<RecordSet> = records
        .iter()
        .map(|(name, values)| RecordSet {
            name: name.clone(),
            rtype: "TXT",
            contents: values.iter().map(|v| format!("\"{v}\"")).collect(),
        })
        .collect();
    if !sets.is_empty() {
        job.lease.check()?;
        pdns.replace_rrsets_with_ttl(&zone, &sets, CHALLENGE_TTL).await?;
    }
    let result = answer_and_finalize(config, pdns_config, &mut order, &records).await;
    // Single-use values: removed whatever happened.
    if !sets.is_empty()
        && let Err(e) = pdns.delete_rrsets(&zone, &sets).await
    {
        tracing::warn!(zone = %zone, error = %e.message, "could not remove the ACME challenge records");
    }
    result
}

/// `_acme-challenge.<name>.` → every value it must hold (already valid
/// authorizations need none).
async fn challenge_records(order: &mut Order) -> Result<BTreeMap<String, Vec<String>>, JobError> {
    let mut records: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let mut authorization = result.map_err(|e| job_error(AcmeError::from_acme("reading an authorization", e)))?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(JobError::permanent(format!(
                    "ACME: the authorization for {} is {other:?}",
                    authorization.identifier()
                )));
            }
        }
        let challenge = authorization
            .challenge(ChallengeType::Dns01)
            .ok_or_else(|| JobError::permanent("ACME: the server offers no dns-01 challenge"))?;
        let name = format!("_acme-challenge.{}.", challenge.identifier());
        records.entry(name).or_default().push(challenge.key_authorization().dns_value());
    }
    Ok(records)
}

async fn answer_and_finalize(
    config: &AcmeConfig,
    pdns: &PdnsConfig,
    order: &mut Order,
    records: &BTreeMap<String, Vec<String>>,
) -> Result<Issued, JobError> {
    wait_until_served(config, pdns, records).await?;
    {
        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let mut authorization =
                result.map_err(|e| job_error(AcmeError::from_acme("reading an authorization", e)))?;
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Dns01)
                .ok_or_else(|| JobError::permanent("ACME: the server offers no dns-01 challenge"))?;
            challenge.set_ready().await.map_err(|e| job_error(AcmeError::from_acme("answering the challenge", e)))?;
        }
    }
    let waiting = RetryPolicy::new().timeout(ACME_WAIT);
    let status =
        order.poll_ready(&waiting).await.map_err(|e| job_error(AcmeError::from_acme("waiting for validation", e)))?;
    if status != OrderStatus::Ready {
        let why = validation_problem(order).await;
        return Err(JobError::permanent(format!("ACME: validation failed ({status:?}): {why}")));
    }
    let key_pem = order.finalize().await.map_err(|e| job_error(AcmeError::from_acme("finalizing", e)))?;
    let chain_pem = order
        .poll_certificate(&waiting)
        .await
        .map_err(|e| job_error(AcmeError::from_acme("fetching the certificate", e)))?;
    Ok(Issued { key_pem, chain_pem })
}

/// What the ACME server said about the challenge it refused.
async fn validation_problem(order: &mut Order) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        let Ok(state) = authorization.refresh().await else { continue };
        for challenge in &state.challenges {
            if let Some(problem) = &challenge.error {
                return format!(
                    "{}: {}",
                    problem.r#type.as_deref().unwrap_or("error"),
                    problem.detail.as_deref().unwrap_or("").chars().take(300).collect::<String>()
                );
            }
        }
    }
    "the server gave no reason".to_string()
}

fn resolver_at(servers: &[SocketAddr]) -> Result<TokioResolver, JobError> {
    let name_servers = servers
        .iter()
        .map(|server| {
            let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
            udp.port = server.port();
            tcp.port = server.port();
            NameServerConfig::new(server.ip(), true, vec![udp, tcp])
        })
        .collect();
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(name_servers),
        TokioRuntimeProvider::default(),
    );
    fresh_answers(builder.options_mut());
    builder.build().map_err(|e| JobError::retryable(format!("DNS resolver: {e}")))
}

/// The configured resolver (`DNS_RESOLVER`), else the system's.
fn resolver(config: &AcmeConfig) -> Result<TokioResolver, JobError> {
    match config.resolver {
        Some(server) => resolver_at(&[server]),
        None => {
            let mut builder =
                TokioResolver::builder_tokio().map_err(|e| JobError::retryable(format!("DNS resolver: {e}")))?;
            fresh_answers(builder.options_mut());
            builder.build().map_err(|e| JobError::retryable(format!("DNS resolver: {e}")))
        }
    }
}

/// No cache: each look must see what is served now.
fn fresh_answers(options: &mut hickory_resolver::config::ResolverOpts) {
    options.cache_size = 0;
    options.timeout = Duration::from_secs(3);
    options.attempts = 2;
}

fn normalized(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

/// The domain's NS records must all be our nameservers, or no ACME server
/// could see our challenge records; asked before any order is placed.
async fn check_delegation(config: &AcmeConfig, pdns: &PdnsConfig, domain: &DomainName) -> Result<(), JobError> {
    let ours: Vec<String> = pdns.nameservers.iter().map(|n| normalized(n)).collect();
    let answer = resolver(config)?.lookup(domain.fqdn(), RecordType::NS).await;
    let found: Vec<String> = match answer {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::NS(ns) => Some(normalized(&ns.0.to_ascii())),
                _ => None,
            })
            .collect(),
        Err(e) => {
            let text = e.to_string();
            if text.contains("timed out") || text.contains("timeout") {
                return Err(JobError::retryable(format!("DNS: asking who serves {domain} timed out")));
            }
            Vec::new()
        }
    };
    if found.is_empty() || found.iter().any(|name| !ours.contains(name)) {
        let listed = if found.is_empty() { "none".to_string() } else { found.join(", ") };
        return Err(JobError::permanent(format!(
            "{domain} is not served by our nameservers ({}): its NS records are {listed}. \
             Point the domain's delegation at ours; the certificate is then issued by the next try or a re-issue.",
            ours.join(", ")
        )));
    }
    Ok(())
}

/// Where PowerDNS answers: `PDNS_DNS_ADDRS`, else the nameservers' addresses.
async fn authoritative_servers(config: &AcmeConfig, pdns: &PdnsConfig) -> Result<Vec<SocketAddr>, JobError> {
    if !config.pdns_dns_addrs.is_empty() {
        return Ok(config.pdns_dns_addrs.clone());
    }
    let resolver = resolver(config)?;
    let mut servers = Vec::new();
    for name in &pdns.nameservers {
        if let Ok(ips) = resolver.lookup_ip(name.as_str()).await {
            servers.extend(ips.iter().map(|ip| SocketAddr::new(ip, 53)));
        }
    }
    if servers.is_empty() {
        return Err(JobError::retryable("DNS: none of our nameservers' addresses could be found"));
    }
    Ok(servers)
}

/// Every challenge value is served by every one of our nameservers.
async fn wait_until_served(
    config: &AcmeConfig,
    pdns: &PdnsConfig,
    records: &BTreeMap<String, Vec<String>>,
) -> Result<(), JobError> {
    let servers = authoritative_servers(config, pdns).await?;
    let deadline = tokio::time::Instant::now() + PROPAGATION_WAIT;
    'servers: for server in servers {
        let resolver = resolver_at(&[server])?;
        loop {
            let mut all_served = true;
            for (name, values) in records {
                let served: Vec<String> = match resolver.lookup(name.as_str(), RecordType::TXT).await {
                    Ok(lookup) => lookup
                        .answers()
                        .iter()
                        .filter_map(|record| match &record.data {
                            RData::TXT(txt) => Some(
                                txt.txt_data.iter().map(|part| String::from_utf8_lossy(part).into_owned()).collect(),
                            ),
                            _ => None,
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                };
                all_served &= values.iter().all(|v| served.contains(v));
            }
            if all_served {
                continue 'servers;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(JobError::retryable(format!(
                    "DNS: the challenge records were not served by {server} within {} s",
                    PROPAGATION_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

async fn install(p: Provisioner<'_>, target: &Target, issued: &Issued) -> Result<(), JobError> {
    let account = load_account(p, target.subscription_id)
        .await?
        .ok_or_else(|| JobError::retryable("the site has no hosting account yet"))?;
    let site = &Site { server: &account.server, domain: &target.domain, account_id: account.id };
    let input = &format!("{}\n{}", issued.key_pem.trim_end(), issued.chain_pem);
    over_ssh(p, &account.server, |session| async move {
        site_script(&session, site, SiteScript::InstallCertificate, &[], input).await
    })
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_www_and_mail_only_with_mail() {
        let mut target = Target {
            tenant_id: Uuid::nil(),
            subscription_id: Uuid::nil(),
            domain_id: Uuid::nil(),
            domain: DomainName::parse("example.com").unwrap(),
            product_type: ProductType::SharedHosting,
            limits: serde_json::json!({ "emails": 0 }),
        };
        assert_eq!(names_for(&target), ["example.com", "www.example.com"]);
        target.limits = serde_json::json!({ "emails": 5 });
        assert_eq!(names_for(&target), ["example.com", "www.example.com", "mail.example.com"]);
    }

    #[test]
    fn nameserver_names_compare_without_case_or_final_dot() {
        assert_eq!(normalized("NS1.mpanel.test"), normalized("ns1.mpanel.test."));
    }
}
