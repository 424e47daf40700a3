//! PROVISION_DNS: the zone and its records in PowerDNS (HTTP API), mirrored
//! in `dns_zones` / `dns_records`. The zone is created with its rrsets in
//! one request; when it exists already (409: an earlier attempt, or the
//! mail job's DKIM record), every rrset is PATCHed with REPLACE, which
//! converges any state.

use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_postgres::types::Type;

use super::Provisioner;
use super::{Target, assign_server, load_target, mail_server_ip};
use crate::catalog::ProductType;
use crate::config::PdnsConfig;
use crate::error::AppError;
use crate::jobs::{ClaimedJob, JobError};

pub const TTL: i32 = 3600;

/// One rrset: name (fully qualified), type, contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    pub name: String,
    pub rtype: &'static str,
    pub contents: Vec<String>,
}

fn address_type(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "A" } else { "AAAA" }
}

/// The records the contract lists for a domain hosted at `web` with mail at `mail`.
pub fn records_for(domain: &crate::types::DomainName, web: Option<IpAddr>, mail: Option<IpAddr>) -> Vec<RecordSet> {
    let apex = domain.fqdn();
    let mut sets = Vec::new();
    if let Some(ip) = web {
        sets.push(RecordSet { name: apex.clone(), rtype: address_type(ip), contents: vec![ip.to_string()] });
        sets.push(RecordSet { name: format!("www.{apex}"), rtype: address_type(ip), contents: vec![ip.to_string()] });
    }
    if let Some(ip) = mail {
        sets.push(RecordSet { name: apex.clone(), rtype: "MX", contents: vec![format!("10 mail.{apex}")] });
        sets.push(RecordSet { name: format!("mail.{apex}"), rtype: address_type(ip), contents: vec![ip.to_string()] });
        sets.push(RecordSet { name: apex.clone(), rtype: "TXT", contents: vec!["\"v=spf1 mx a ~all\"".into()] });
        sets.push(RecordSet {
            name: format!("_dmarc.{apex}"),
            rtype: "TXT",
            contents: vec!["\"v=DMARC1; p=none\"".into()],
        });
    }
    sets
}

pub struct PdnsClient<'a> {
    http: &'a reqwest::Client,
    config: &'a PdnsConfig,
}

impl<'a> PdnsClient<'a> {
    pub fn new(p: Provisioner<'a>) -> Result<PdnsClient<'a>, JobError> {
        let (config, http) =
            p.pdns.zip(p.http).ok_or_else(|| JobError::permanent("PowerDNS is not configured in this process"))?;
        Ok(PdnsClient { http, config })
    }

    fn zones_url(&self) -> String {
        format!("{}/servers/{}/zones", self.config.api_url, self.config.server_id)
    }

    fn zone_url(&self, zone: &str) -> String {
        format!("{}/{}", self.zones_url(), zone)
    }

    /// 2xx (and the statuses in `also_ok`) pass; other 4xx are permanent
    /// (our request is wrong and will stay wrong); 5xx and network errors
    /// are tried again here a few times, a short random while apart (a
    /// PowerDNS on SQLite answers 500 while another writer holds its lock),
    /// before the job's own retry with its backoff of seconds.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
        also_ok: &[StatusCode],
    ) -> Result<StatusCode, JobError> {
        const TRIES: u32 = 5;
        let mut tried = 1;
        loop {
            let Some(this_try) = request.try_clone().filter(|_| tried < TRIES) else {
                return self.send_once(request, what, also_ok).await;
            };
            match self.send_once(this_try, what, also_ok).await {
                Err(e) if e.retryable => {
                    let pause = 50 * u64::from(tried) + rand::random::<u64>() % 150;
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    tried += 1;
                }
                answer => return answer,
            }
        }
    }

    async fn send_once(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
        also_ok: &[StatusCode],
    ) -> Result<StatusCode, JobError> {
        let response = request
            .header("X-API-Key", self.config.api_key.expose())
            .send()
            .await
            .map_err(|e| JobError::retryable(format!("PowerDNS {what}: {}", without_url(&e))))?;
        let status = response.status();
        if status.is_success() || also_ok.contains(&status) {
            return Ok(status);
        }
        let body: String = response.text().await.unwrap_or_default().chars().take(300).collect();
        let message = format!("PowerDNS {what}: HTTP {status}: {}", body.trim());
        if status.is_client_error() { Err(JobError::permanent(message)) } else { Err(JobError::retryable(message)) }
    }

    /// Creates the zone marked as `owner`'s (PowerDNS `account`). A zone that
    /// already exists is ours to reconcile only when it carries that mark;
    /// any other is someone else's, and the job fails without touching it.
    pub async fn ensure_zone(&self, zone: &str, owner: &str) -> Result<(), JobError> {
        self.ensure_zone_with(zone, owner, &[]).await
    }

    /// `ensure_zone` holding `sets` (TTL [`TTL`]): a new zone gets them in the
    /// request that creates it, an existing one of ours by one PATCH.
    pub async fn ensure_zone_with(&self, zone: &str, owner: &str, sets: &[RecordSet]) -> Result<(), JobError> {
        let body = new_zone_body(zone, owner, &self.config.nameservers, sets);
        let created =
            self.send(self.http.post(self.zones_url()).json(&body), "create zone", &[StatusCode::CONFLICT]).await?;
        if created != StatusCode::CONFLICT {
            return Ok(());
        }
        match self.zone_account(zone).await? {
            Some(account) if account == owner => self.replace_rrsets(zone, sets).await,
            Some(account) => Err(JobError::permanent(format!(
                "PowerDNS already serves {zone} and it is not ours (account {account:?}): nothing was changed"
            ))),
            // Deleted between our create and our look: the next attempt creates it.
            None => Err(JobError::retryable(format!("PowerDNS zone {zone} vanished while being created"))),
        }
    }

    /// The zone's `account`, or `None` when PowerDNS has no such zone.
    pub async fn zone_account(&self, zone: &str) -> Result<Option<String>, JobError> {
        let response = self
            .http
            .get(format!("{}?rrsets=false", self.zone_url(zone)))
            .header("X-API-Key", self.config.api_key.expose())
            .send()
            .await
            .map_err(|e| JobError::retryable(format!("PowerDNS read zone: {}", without_url(&e))))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let zone: Value = response
                    .json()
                    .await
                    .map_err(|e| JobError::retryable(format!("PowerDNS read zone: {}", without_url(&e))))?;
                Ok(Some(zone["account"].as_str().unwrap_or_default().to_string()))
            }
            status if status.is_client_error() => {
                Err(JobError::permanent(format!("PowerDNS read zone: HTTP {status}")))
            }
            status => Err(JobError::retryable(format!("PowerDNS read zone: HTTP {status}"))),
        }
    }

    pub async fn replace_rrsets(&self, zone: &str, sets: &[RecordSet]) -> Result<(), JobError> {
        self.replace_rrsets_with_ttl(zone, sets, TTL).await
    }

    pub async fn replace_rrsets_with_ttl(&self, zone: &str, sets: &[RecordSet], ttl: i32) -> Result<(), JobError> {
        let rrsets: Vec<Value> = sets.iter().map(|s| rrset_json(s, ttl, Some("REPLACE"))).collect();
        self.patch(zone, rrsets, "update records").await
    }

    /// Removes these rrsets (by name and type); absent ones are no error.
    pub async fn delete_rrsets(&self, zone: &str, sets: &[RecordSet]) -> Result<(), JobError> {
        let rrsets: Vec<Value> =
            sets.iter().map(|s| json!({ "name": s.name, "type": s.rtype, "changetype": "DELETE" })).collect();
        self.patch(zone, rrsets, "delete records").await
    }

    async fn patch(&self, zone: &str, rrsets: Vec<Value>, what: &str) -> Result<(), JobError> {
        if rrsets.is_empty() {
            return Ok(());
        }
        self.send(self.http.patch(self.zone_url(zone)).json(&json!({ "rrsets": rrsets })), what, &[]).await?;
        Ok(())
    }

    /// Deletes the zone only when it is marked as `owner`'s; a zone that is
    /// gone counts as deleted, and anyone else's is left as it is (false).
    pub async fn delete_own_zone(&self, zone: &str, owner: &str) -> Result<bool, JobError> {
        match self.zone_account(zone).await? {
            None => Ok(true),
            Some(account) if account == owner => {
                self.send(self.http.delete(self.zone_url(zone)), "delete zone", &[StatusCode::NOT_FOUND]).await?;
                Ok(true)
            }
            Some(account) => {
                tracing::warn!(%zone, %account, "the zone is not ours: left in place");
                Ok(false)
            }
        }
    }
}

/// One rrset as the PowerDNS API takes it; a zone's creation carries no
/// `changetype`.
pub fn rrset_json(set: &RecordSet, ttl: i32, changetype: Option<&str>) -> Value {
    let mut rrset = json!({
        "name": set.name, "type": set.rtype, "ttl": ttl,
        "records": set.contents.iter().map(|c| json!({"content": c, "disabled": false})).collect::<Vec<_>>(),
    });
    if let Some(change) = changetype {
        rrset["changetype"] = json!(change);
    }
    rrset
}

/// The body of `POST .../zones`: the zone marked as `owner`'s, with its
/// nameservers and `sets`.
pub fn new_zone_body(zone: &str, owner: &str, nameservers: &[String], sets: &[RecordSet]) -> Value {
    let rrsets: Vec<Value> = sets.iter().map(|s| rrset_json(s, TTL, None)).collect();
    json!({ "name": zone, "kind": "Native", "nameservers": nameservers, "account": owner, "rrsets": rrsets })
}

/// reqwest errors print the URL; keep only the cause.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_string(),
    }
}

/// The PowerDNS `account` that marks a zone as this domain's, created by mPanel.
pub fn zone_owner(target: &Target) -> String {
    format!("mpanel:{}:{}", target.tenant_id, target.domain_id)
}

pub async fn provision(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let target = load_target(p.db, job).await?;
    let (web, mail) = match target.product_type {
        ProductType::SharedHosting => {
            let server = assign_server(p.db, &target).await?;
            let mail_ip = mail_server_ip(p.db, target.tenant_id).await.map_err(JobError::from)?;
            (Some(server.ip_address), Some(mail_ip.unwrap_or(server.ip_address)))
        }
        ProductType::Email => {
            let mail_ip = mail_server_ip(p.db, target.tenant_id)
                .await
                .map_err(JobError::from)?
                .ok_or_else(|| JobError::retryable("the tenant has no active MAIL server"))?;
            (None, Some(mail_ip))
        }
        _ => (None, None),
    };
    let sets = records_for(&target.domain, web, mail);
    let pdns = PdnsClient::new(p)?;
    let zone = target.domain.fqdn();
    pdns.ensure_zone_with(&zone, &zone_owner(&target), &sets).await?;
    mirror(p, &target, &zone, &sets).await.map_err(JobError::from)
}

/// Records what PowerDNS now holds, replacing any earlier mirror.
async fn mirror(p: Provisioner<'_>, target: &Target, zone: &str, sets: &[RecordSet]) -> Result<(), AppError> {
    let target = target.clone();
    let zone = zone.to_string();
    let sets = sets.to_vec();
    crate::db::in_transaction(p.db, move |tx| {
        Box::pin(async move {
            let existing = tx
                .query_typed_opt(
                    "SELECT id FROM dns_zones WHERE domain_id = $1 AND status = 'ACTIVE' FOR UPDATE",
                    &[(&target.domain_id, Type::UUID)],
                )
                .await?;
            let zone_id: uuid::Uuid = match existing {
                Some(row) => row.try_get(0)?,
                None => tx
                    .query_typed_one(
                        "INSERT INTO dns_zones (tenant_id, domain_id, name, kind) VALUES ($1, $2, $3, 'Native') RETURNING id",
                        &[(&target.tenant_id, Type::UUID), (&target.domain_id, Type::UUID), (&zone, Type::TEXT)],
                    )
                    .await?
                    .try_get(0)?,
            };
            tx.query_typed("DELETE FROM dns_records WHERE zone_id = $1", &[(&zone_id, Type::UUID)]).await?;
            // Every record in one statement, as arrays unnested.
            let (mut names, mut types, mut contents) = (Vec::new(), Vec::new(), Vec::new());
            for set in &sets {
                for content in &set.contents {
                    names.push(set.name.as_str());
                    types.push(set.rtype);
                    contents.push(content.as_str());
                }
            }
            tx.query_typed(
                "INSERT INTO dns_records (tenant_id, zone_id, name, type, content, ttl)
                 SELECT $1, $2, r.name, r.type, r.content, $6 FROM unnest($3::text[], $4::text[], $5::text[]) AS r(name, type, content)",
                &[
                    (&target.tenant_id, Type::UUID),
                    (&zone_id, Type::UUID),
                    (&names, Type::TEXT_ARRAY),
                    (&types, Type::TEXT_ARRAY),
                    (&contents, Type::TEXT_ARRAY),
                    (&TTL, Type::INT4),
                ],
            )
            .await?;
            tx.query_typed("UPDATE dns_zones SET updated_at = now() WHERE id = $1", &[(&zone_id, Type::UUID)]).await?;
            Ok(())
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DomainName;

    #[test]
    fn contract_records() {
        let d = DomainName::parse("example.com").unwrap();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let sets = records_for(&d, Some(ip), Some(ip));
        let flat: Vec<(String, &str, String)> =
            sets.iter().flat_map(|s| s.contents.iter().map(|c| (s.name.clone(), s.rtype, c.clone()))).collect();
        let expected = [
            ("example.com.", "A", "192.0.2.10"),
            ("www.example.com.", "A", "192.0.2.10"),
            ("example.com.", "MX", "10 mail.example.com."),
            ("mail.example.com.", "A", "192.0.2.10"),
            ("example.com.", "TXT", "\"v=spf1 mx a ~all\""),
            ("_dmarc.example.com.", "TXT", "\"v=DMARC1; p=none\""),
        ];
        let expected: Vec<(String, &str, String)> =
            expected.iter().map(|(n, t, c)| (n.to_string(), *t, c.to_string())).collect();
        assert_eq!(flat, expected);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(records_for(&d, Some(v6), None)[0].rtype, "AAAA");
        assert!(records_for(&d, None, None).is_empty());
    }

    #[test]
    fn a_new_zone_is_created_with_its_rrsets_in_one_body() {
        let d = DomainName::parse("example.com").unwrap();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let sets = records_for(&d, Some(ip), Some(ip));
        let body = new_zone_body("example.com.", "mpanel:t:d", &["ns1.example.net.".into()], &sets);
        assert_eq!(body["account"], "mpanel:t:d");
        assert_eq!(body["nameservers"], json!(["ns1.example.net."]));
        let rrsets = body["rrsets"].as_array().unwrap();
        assert_eq!(rrsets.len(), sets.len());
        assert_eq!(
            rrsets[2],
            json!({"name": "example.com.", "type": "MX", "ttl": TTL,
            "records": [{"content": "10 mail.example.com.", "disabled": false}]})
        );
        assert!(rrsets.iter().all(|r| r.get("changetype").is_none()), "creation takes no changetype");
        let patch = rrset_json(&sets[0], 60, Some("REPLACE"));
        assert_eq!(patch["changetype"], "REPLACE");
        assert_eq!(patch["ttl"], 60);
    }
}
