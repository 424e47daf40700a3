//! Zones in PowerDNS are ours only when marked so (`account`): an existing
//! zone of anyone else is neither adopted nor deleted, and terminate removes
//! our own zone last.

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel::engine::RunOutcome;
use mpanel_tests::hosting::{Hosting, job_of, site};
use mpanel_tests::{dig, unique_domain};
use serde_json::{Value, json};
use uuid::Uuid;

/// The stack's PowerDNS API, as an operator (not mPanel) would use it.
struct Pdns {
    http: reqwest::Client,
    zones: String,
    key: String,
}

impl Pdns {
    fn of(env: &mpanel::config::Env) -> Pdns {
        Pdns {
            http: mpanel_tests::http_client(),
            zones: format!("{}/servers/{}/zones", env["PDNS_API_URL"], env["PDNS_SERVER_ID"]),
            key: env["PDNS_API_KEY"].clone(),
        }
    }

    async fn create(&self, domain: &str, account: &str, a_record: &str) {
        let zone = format!("{domain}.");
        let body = json!({
            "name": zone, "kind": "Native", "nameservers": ["ns1.operator.test."], "account": account,
            "rrsets": [{"name": zone, "type": "A", "ttl": 60, "records": [{"content": a_record, "disabled": false}]}],
        });
        let response =
            self.http.post(&self.zones).header("X-API-Key", &self.key).json(&body).send().await.expect("PowerDNS");
        assert_eq!(response.status(), StatusCode::CREATED, "{}", response.text().await.unwrap_or_default());
    }

    async fn zone(&self, domain: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}/{domain}.", self.zones))
            .header("X-API-Key", &self.key)
            .send()
            .await
            .expect("PowerDNS");
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        Some(response.json().await.expect("zone json"))
    }

    async fn set_account(&self, domain: &str, account: &str) {
        let response = self
            .http
            .put(format!("{}/{domain}.", self.zones))
            .header("X-API-Key", &self.key)
            .json(&json!({"account": account}))
            .send()
            .await
            .expect("PowerDNS");
        assert!(response.status().is_success(), "{}", response.status());
    }

    async fn delete(&self, domain: &str) {
        let _ = self.http.delete(format!("{}/{domain}.", self.zones)).header("X-API-Key", &self.key).send().await;
    }
}

#[tokio::test]
async fn an_existing_zone_that_is_not_ours_fails_the_job_and_keeps_its_records() {
    let h = Hosting::new().await;
    let pdns = Pdns::of(&h.app.env);
    let domain = unique_domain();
    pdns.create(&domain, "operator", "192.0.2.77").await;

    let (subscription, jobs) = h.order(&domain).await;
    let dns_job = job_of(&jobs, "PROVISION_DNS");
    assert_eq!(h.run(dns_job).await, RunOutcome::Dead, "a zone of someone else's is a permanent failure");
    let error: String =
        h.app.db().await.query_one("SELECT last_error FROM jobs WHERE id = $1", &[&dns_job]).await.expect("job").get(0);
    assert!(error.contains("not ours") && error.contains("nothing was changed"), "{error}");
    assert_eq!(dig(&h.app.env, &domain, "A"), ["192.0.2.77"], "the operator's records stand");
    assert_eq!(pdns.zone(&domain).await.expect("zone")["account"], "operator");
    assert_eq!(h.app.count("dns_zones").await, 0, "nothing mirrored as ours");
    assert_ne!(h.app.subscription_status(subscription).await, "ACTIVE");
    pdns.delete(&domain).await;
}

#[tokio::test]
async fn our_zone_carries_our_mark_and_terminate_leaves_a_zone_that_is_not_ours() {
    let h = Hosting::new().await;
    let pdns = Pdns::of(&h.app.env);

    // Provisioned by us: marked mpanel:<tenant>:<domain row>, and a rerun reconciles it.
    let domain = unique_domain();
    let (subscription, jobs) = h.order(&domain).await;
    for (id, _) in &jobs {
        assert_eq!(h.run(*id).await, RunOutcome::Succeeded);
    }
    let domain_id: Uuid =
        h.app.db().await.query_one("SELECT id FROM domains WHERE name = $1", &[&domain]).await.expect("domain").get(0);
    let mark = format!("mpanel:{}:{domain_id}", h.tenant);
    assert_eq!(pdns.zone(&domain).await.expect("zone")["account"], mark.as_str());

    // Someone takes the zone over before the termination: it is left alone.
    pdns.set_account(&domain, "operator").await;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let accepted =
        h.app.authed(Method::POST, &format!("/api/subscriptions/{subscription}/terminate"), &admin, None).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.json());
    let terminate: Uuid = Uuid::parse_str(accepted.json()["jobs"][0]["id"].as_str().expect("job id")).expect("uuid");
    assert_eq!(h.run(terminate).await, RunOutcome::Succeeded);
    assert!(!site(&h.app.env, &domain).exists(), "the site went");
    assert_eq!(pdns.zone(&domain).await.expect("the zone stays")["account"], "operator");
    assert_eq!(dig(&h.app.env, &domain, "A"), ["127.0.0.1"]);
    pdns.delete(&domain).await;
}
