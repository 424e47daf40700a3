//! A tenant with a shared-hosting plan and the local sshd as its WEB server.

use std::path::PathBuf;

use http::StatusCode;
use mpanel::engine::{RunOutcome, run_job};
use serde_json::json;
use uuid::Uuid;

use crate::{TestApp, spawn_app_with};

/// The local PowerDNS keeps zones in SQLite, which answers concurrent
/// writers with 500 ("database is locked"). The tests of one binary run in
/// parallel, so job runs through this helper take turns: the product retries
/// such a 500, but a test that asserts one exact outcome cannot.
static JOB_RUNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Hosting {
    pub app: TestApp,
    pub tenant: Uuid,
    pub server: Uuid,
    /// The tenant's slug, which orders name.
    pub slug: String,
    /// Held by tests on the stack's shared database until their cleanup
    /// (which removes every test site it finds there) has run.
    _shared_database: Option<tokio::sync::OwnedMutexGuard<()>>,
}

static SHARED_DATABASE_TURN: std::sync::LazyLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
    std::sync::LazyLock::new(Default::default);

/// The stack's mail server reads the stack's own database (it cannot
/// follow each test's): mail tests run there, migrated once per binary.
static STACK_DATABASE_MIGRATED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Fast retries so backoff tests do not wait long.
pub async fn app() -> TestApp {
    spawn_app_with(|env| {
        env.insert("JOB_RETRY_BASE_MS".into(), "1000".into());
        env.insert("RATE_LIMIT_MAX".into(), "100000".into());
    })
    .await
}

impl Hosting {
    pub async fn new() -> Hosting {
        Hosting::with_key(None).await
    }

    pub async fn with_key(host_key: Option<&str>) -> Hosting {
        Hosting::set_up(app().await, host_key).await
    }

    /// With certificates from the stack's Pebble.
    pub async fn with_certificates() -> Hosting {
        let app = spawn_app_with(|env| {
            env.insert("JOB_RETRY_BASE_MS".into(), "1000".into());
            env.insert("RATE_LIMIT_MAX".into(), "100000".into());
            crate::with_certificates(env);
        })
        .await;
        Hosting::set_up(app, None).await
    }

    async fn set_up(app: TestApp, host_key: Option<&str>) -> Hosting {
        let tenant = app.create_tenant("host").await;
        app.catalog_price(tenant, "starter", "SHARED_HOSTING", json!({"emails": 5, "diskMb": 2048}), 999).await;
        let server = app.local_web_server(tenant, host_key).await;
        Hosting::on(app, tenant, server)
    }

    /// A hosting tenant on an app of the test's own making.
    pub fn on(app: TestApp, tenant: Uuid, server: Uuid) -> Hosting {
        Hosting { app, tenant, server, slug: "host".into(), _shared_database: None }
    }

    /// On the stack's database, which the stack's Dovecot and Postfix read:
    /// a tenant of its own (unique slug), a plan with 3 mailboxes of 1 MB.
    pub async fn with_mail() -> Hosting {
        let turn = SHARED_DATABASE_TURN.clone().lock_owned().await;
        let stack_database = std::env::var("DATABASE_URL").expect("DATABASE_URL from .stack/env");
        let app = spawn_app_with(|env| {
            env.insert("JOB_RETRY_BASE_MS".into(), "1000".into());
            env.insert("RATE_LIMIT_MAX".into(), "100000".into());
            env.insert("DATABASE_URL".into(), stack_database);
        })
        .await;
        STACK_DATABASE_MIGRATED
            .get_or_init(|| async {
                mpanel::db::migrate(&app.state.config.database).await.expect("migrate the stack's database");
            })
            .await;
        let slug = format!("mail-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let tenant = app.create_tenant(&slug).await;
        let limits = json!({"emails": 3, "diskMb": 2048, "mailboxQuotaMb": 1});
        app.catalog_price(tenant, "starter", "SHARED_HOSTING", limits, 999).await;
        let server = app.local_web_server(tenant, None).await;
        Hosting { app, tenant, server, slug, _shared_database: Some(turn) }
    }

    /// Places a signed order; returns (subscription id, jobs by type).
    pub async fn order(&self, domain: &str) -> (Uuid, Vec<(Uuid, String)>) {
        let body = json!({
            "tenantSlug": self.slug, "externalOrderId": format!("ext-{domain}"),
            "customer": {"email": "owner@example.org", "fullName": "Site Owner"},
            "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD", "domain": domain,
        });
        let response = self.app.request(self.app.signed_order(&format!("msg-{domain}"), &body)).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&response.body));
        let subscription = Uuid::parse_str(response.json()["subscriptionId"].as_str().expect("id")).expect("uuid");
        (subscription, self.app.jobs_of(subscription).await)
    }

    /// A live site: a fresh domain ordered, every job run, ACTIVE.
    pub async fn live(&self) -> (Uuid, String) {
        let domain = crate::unique_domain();
        let (subscription, jobs) = self.order(&domain).await;
        for (id, _) in &jobs {
            assert_eq!(self.run(*id).await, RunOutcome::Succeeded);
        }
        assert_eq!(self.app.subscription_status(subscription).await, "ACTIVE");
        (subscription, domain)
    }

    /// Sets a new password for postmaster@`domain` through the API (a new
    /// mailbox has none) and returns it.
    pub async fn reset_postmaster(&self, domain: &str) -> String {
        let admin = self.app.token(&self.app.create_user(self.tenant, mpanel::auth::Role::Admin).await).await;
        let accounts =
            self.app.authed(http::Method::GET, &format!("/api/mail-accounts?domain={domain}"), &admin, None).await;
        let id = accounts.json()["items"][0]["id"].as_str().expect("postmaster").to_string();
        let reset =
            self.app.authed(http::Method::POST, &format!("/api/mail-accounts/{id}/reset-password"), &admin, None).await;
        assert_eq!(reset.status, StatusCode::OK, "{}", reset.json());
        reset.json()["password"].as_str().expect("password").to_string()
    }

    /// The id of the subscription's hosting account.
    pub async fn account_of(&self, subscription: Uuid) -> Uuid {
        self.app
            .db()
            .await
            .query_one("SELECT id FROM hosting_accounts WHERE subscription_id = $1", &[&subscription])
            .await
            .expect("hosting account")
            .get(0)
    }

    /// The job as a worker holds it (attempt `attempt`), to run its
    /// executor directly.
    pub async fn claimed(&self, job: Uuid, attempt: i32) -> mpanel::jobs::ClaimedJob {
        let row = self
            .app
            .db()
            .await
            .query_one("SELECT tenant_id, subscription_id, type, payload FROM jobs WHERE id = $1", &[&job])
            .await
            .expect("job");
        mpanel::jobs::ClaimedJob {
            id: job,
            tenant_id: row.get(0),
            subscription_id: row.get(1),
            job_type: row.get::<_, String>(2).parse().expect("type"),
            payload: row.get(3),
            attempt,
            max_attempts: 8,
            worker: "direct".into(),
            lease: mpanel::jobs::Lease::default(),
        }
    }

    /// No grace after a failed payment: the next sweep suspends.
    pub async fn without_grace(&self) {
        self.app
            .db()
            .await
            .execute("UPDATE tenants SET settings = '{\"paymentGraceDays\": 0}' WHERE id = $1", &[&self.tenant])
            .await
            .expect("grace 0");
    }

    /// A billing event signed like the billing site signs it.
    pub fn billing_event(&self, webhook_id: &str, body: serde_json::Value) -> http::Request<axum::body::Body> {
        let raw = serde_json::to_vec(&body).expect("json");
        let mut req = crate::signed_request(&self.app.env, webhook_id, chrono::Utc::now().timestamp(), raw);
        *req.uri_mut() = "/api/subscriptions/events".parse().expect("uri");
        req
    }

    /// Runs a certificate job to its end. Pebble refuses 5% of nonces on
    /// purpose (`badNonce`), which the job answers by trying again later;
    /// such a retry is made due and run at once (a few times at most), so
    /// a test sees what the job finally does. Any other retry is returned.
    pub async fn run_acme(&self, job: Uuid) -> RunOutcome {
        for _ in 0..4 {
            let outcome = self.run(job).await;
            if !matches!(outcome, RunOutcome::Retrying { .. }) {
                return outcome;
            }
            let db = self.app.db().await;
            let error: Option<String> =
                db.query_one("SELECT last_error FROM jobs WHERE id = $1", &[&job]).await.expect("job").get(0);
            if !error.is_some_and(|e| e.contains("badNonce")) {
                return outcome;
            }
            db.execute("UPDATE jobs SET run_after = now() WHERE id = $1", &[&job]).await.expect("due now");
        }
        self.run(job).await
    }

    pub async fn run(&self, job: Uuid) -> RunOutcome {
        let _turn = JOB_RUNS.lock().await;
        run_job(&self.app.state, job, "test-worker").await.expect("job runs")
    }
}

pub fn site(env: &mpanel::config::Env, domain: &str) -> PathBuf {
    PathBuf::from(&env["MPANEL_TEST_WEB_ROOT"]).join(domain)
}

pub fn job_of(jobs: &[(Uuid, String)], job_type: &str) -> Uuid {
    jobs.iter().find(|(_, t)| t == job_type).map(|(id, _)| *id).expect("job of type")
}
