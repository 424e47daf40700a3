//! Test harness: every test gets its own freshly migrated database (cloned
//! from a migrated template, so it takes milliseconds), its own Redis key
//! prefix, and the real routers called in-process.
//!
//! The services come from `./scripts/stack up`; `./scripts/test` exports
//! `.stack/env` before running the tests.

pub mod events;
pub mod hosting;

use std::collections::HashMap;
use std::str::FromStr;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use mpanel::config::{Env, Needs};
use mpanel::types::Named;
use mpanel::{AppState, Config};
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;
use tower::ServiceExt;
use uuid::Uuid;

/// Advisory lock that serialises template creation and cloning across
/// test processes.
const TEMPLATE_LOCK: i64 = 0x6d70_7465_6d70; // "mptemp"

pub struct TestApp {
    pub env: Env,
    pub state: AppState,
    pub router: Router,
    pub db_name: String,
    /// Set on the instance that made the database: when it ends, the sites
    /// and SFTP users its hosting accounts made go (see [`SiteCleanup`]).
    pub sites: SiteCleanup,
}

/// Removes, when dropped, what a test's hosting accounts made on the local
/// hosting server: for each account of the test's database whose site
/// carries our marker for that account, its site, marker, nginx block and
/// SFTP user (as root, as an operator would). A site of anyone else's
/// stays. Runs on a thread of its own: `Drop` cannot await.
#[derive(Default)]
pub struct SiteCleanup {
    database_url: Option<String>,
    web_root: Option<std::path::PathBuf>,
    /// The running stack's, from its env: not a path compiled into this
    /// crate, which a build reused by another clone would point elsewhere.
    nginx_sites: Option<std::path::PathBuf>,
}

impl SiteCleanup {
    pub fn of(env: &Env) -> SiteCleanup {
        SiteCleanup {
            database_url: env.get("DATABASE_URL").cloned(),
            web_root: env.get("MPANEL_TEST_WEB_ROOT").map(std::path::PathBuf::from),
            nginx_sites: env.get("MPANEL_TEST_NGINX_SITES").map(std::path::PathBuf::from),
        }
    }

    fn run(url: &str, web_root: &std::path::Path, nginx_sites: &std::path::Path) {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        let accounts: Vec<(Uuid, String)> = runtime.block_on(async {
            let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
                return Vec::new();
            };
            tokio::spawn(connection);
            // Test domains only: the mail tests share the stack's database
            // with `./scripts/dev`'s sites.
            let sql = "SELECT h.id, d.name FROM hosting_accounts h JOIN domains d ON d.id = h.domain_id
                       WHERE d.name LIKE 'mpt-%'";
            client
                .query(sql, &[])
                .await
                .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
                .unwrap_or_default()
        });
        for (account, domain) in accounts {
            let marker = web_root.join(".mpanel/sites").join(&domain);
            let ours = std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == account.simple().to_string());
            if !ours {
                continue;
            }
            let user = mpanel::provision::hosting::sftp_username(account);
            let _ = std::process::Command::new("userdel").arg(&user).output();
            let _ = std::process::Command::new("groupdel").arg(&user).output();
            let _ = std::fs::remove_dir_all(web_root.join(&domain));
            let _ = std::fs::remove_file(nginx_sites.join(format!("{domain}.conf")));
            let _ = std::fs::remove_file(&marker);
        }
    }
}

impl Drop for SiteCleanup {
    fn drop(&mut self) {
        if let (Some(url), Some(web_root), Some(nginx_sites)) =
            (self.database_url.take(), self.web_root.take(), self.nginx_sites.take())
        {
            let _ = std::thread::spawn(move || SiteCleanup::run(&url, &web_root, &nginx_sites)).join();
        }
    }
}

/// The stack's environment, or a clear panic telling how to get it.
/// A reqwest client for the tests' own calls (reqwest's TLS set-up needs
/// the process's default provider; the code under test brings its own).
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("a reqwest client")
}

pub fn http_client_builder() -> reqwest::ClientBuilder {
    mpanel::tls::install_default_provider();
    reqwest::Client::builder()
}

pub fn stack_env() -> Env {
    let env: Env = std::env::vars().collect();
    assert!(
        env.contains_key("DATABASE_URL") && env.contains_key("REDIS_URL"),
        "DATABASE_URL / REDIS_URL missing: run `./scripts/stack up && . .stack/env` (./scripts/test does this)"
    );
    env
}

/// A Lambda invocation context whose deadline is `secs` from now.
pub fn lambda_context(secs: u64) -> lambda_runtime::Context {
    let mut context = lambda_runtime::Context::default();
    context.deadline = chrono::Utc::now().timestamp_millis() as u64 + secs * 1000;
    context.request_id = format!("test-{}", Uuid::new_v4().simple());
    context
}

/// A test app on its own database and Redis prefix, configured with every need.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with a chance to change the env first (e.g. point
/// Redis at a dead port).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Env)) -> TestApp {
    let mut env = stack_env();
    let db_name = fresh_database(&env).await;
    env.insert("DATABASE_URL".into(), database_url(&env, &db_name));
    env.insert("REDIS_KEY_PREFIX".into(), format!("test:{}:", Uuid::new_v4().simple()));
    env.insert("SQS_QUEUE_URL".into(), fresh_queue(&env).await);
    // Certificates only where a test asks for them (`with_certificates`):
    // elsewhere a new site's extra ISSUE_CERTIFICATE job is noise.
    env.insert("ACME_DIRECTORY_URL".into(), "none".into());
    adjust(&mut env);
    let config = Config::load(&env, Needs::ALL).await.expect("test config loads");
    let state = AppState::new(config).expect("test state builds");
    let router = mpanel::app::combined_app(state.clone());
    let sites = SiteCleanup::of(&env);
    TestApp { env, state, router, db_name, sites }
}

/// Turns certificates on (the stack's Pebble) for a [`spawn_app_with`] env.
pub fn with_certificates(env: &mut Env) {
    let pebble = std::env::var("ACME_DIRECTORY_URL").expect("ACME_DIRECTORY_URL from .stack/env");
    env.insert("ACME_DIRECTORY_URL".into(), pebble);
}

/// A queue of this test's own in moto, so it reads only its own messages.
async fn fresh_queue(env: &Env) -> String {
    let aws = mpanel::config::aws_sdk_config(env).await.expect("aws config");
    let sqs = aws_sdk_sqs::Client::new(&aws);
    sqs.create_queue()
        .queue_name(format!("test-{}", Uuid::new_v4().simple()))
        .send()
        .await
        .expect("create a test queue in moto")
        .queue_url()
        .expect("queue url")
        .to_string()
}

/// A secret of this test's own in moto; its ARN.
pub async fn put_secret(env: &Env, value: &str) -> String {
    let aws = mpanel::config::aws_sdk_config(env).await.expect("aws config");
    aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name(format!("mpanel-test/{}", Uuid::new_v4()))
        .secret_string(value)
        .send()
        .await
        .expect("create a secret in moto")
        .arn()
        .expect("arn")
        .to_string()
}

/// Gives a secret in moto a new value, as a rotation does.
pub async fn rotate_secret(env: &Env, arn: &str, value: &str) {
    let aws = mpanel::config::aws_sdk_config(env).await.expect("aws config");
    aws_sdk_secretsmanager::Client::new(&aws)
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .send()
        .await
        .expect("put a secret value in moto");
}

/// Host and port of a postgres:// URL.
pub fn host_and_port(url: &str) -> (String, u16) {
    let config: tokio_postgres::Config = url.parse().expect("a postgres URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("a TCP host expected, not {other:?}"),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// `DATABASE_URL` of the stack with another database name.
pub fn database_url(env: &Env, db_name: &str) -> String {
    let base = &env["DATABASE_URL"];
    let without_db = base.rsplit_once('/').map(|(head, _)| head).unwrap_or(base);
    format!("{without_db}/{db_name}")
}

pub async fn admin_client(env: &Env) -> tokio_postgres::Client {
    let config = tokio_postgres::Config::from_str(&env["DATABASE_URL"]).expect("DATABASE_URL parses");
    let (client, connection) = config.connect(NoTls).await.expect("connect to the stack's database");
    tokio::spawn(connection);
    client
}

/// A new empty database (no migrations), for migration tests.
pub async fn empty_database(env: &Env) -> String {
    let name = format!("mpanel_test_{}", Uuid::new_v4().simple());
    let client = admin_client(env).await;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create empty database");
    name
}

async fn fresh_database(env: &Env) -> String {
    let template = template_name();
    let name = format!("mpanel_test_{}", Uuid::new_v4().simple());
    let client = admin_client(env).await;
    client.execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK]).await.expect("template lock");
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
        .await
        .expect("look up template")
        .is_some();
    if !exists {
        let building = format!("{template}_building");
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {building}")).await.expect("drop a half-built template");
        client.batch_execute(&format!("CREATE DATABASE {building}")).await.expect("create template database");
        let config = mpanel::secrets::Secret::new(mpanel::db::DbConfig::plain(
            tokio_postgres::Config::from_str(&database_url(env, &building)).expect("template url"),
        ));
        mpanel::db::migrate(&config).await.expect("migrate template");
        // Renamed only when complete, so a crashed build is never cloned.
        client
            .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))
            .await
            .expect("publish template");
    }
    client
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .await
        .expect("clone template database");
    client.execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK]).await.expect("template unlock");
    name
}

/// The template's name changes whenever any migration changes.
fn template_name() -> String {
    let mut hasher = Sha256::new();
    for m in mpanel::db::migrations() {
        hasher.update(m.name().as_bytes());
        hasher.update(m.sql().unwrap_or_default().as_bytes());
    }
    format!("mpanel_tpl_{}", &hex::encode(hasher.finalize())[..16])
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    /// Calls the in-process router.
    pub async fn request(&self, request: Request<Body>) -> TestResponse {
        call(&self.router, request).await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Request::builder().uri(path).body(Body::empty()).expect("request builds")).await
    }

    pub async fn db(&self) -> mpanel::db::PooledClient {
        self.state.db.get().await.expect("pooled connection")
    }
}

/// Calls any router in-process.
pub async fn call(router: &Router, request: Request<Body>) -> TestResponse {
    let response = router.clone().oneshot(request).await.expect("router is infallible");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body reads").to_bytes().to_vec();
    TestResponse { status: parts.status, headers: parts.headers, body }
}

pub fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Option<serde_json::Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    match body {
        Some(json) => builder
            .header("content-type", "application/json")
            .body(Body::from(json.to_string()))
            .expect("request builds"),
        None => builder.body(Body::empty()).expect("request builds"),
    }
}

/// Environment map helper for tests that build config by hand.
pub fn env_from(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>()
}

/// A staff user created for a test, with the password it was created with.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub password: String,
    pub role: mpanel::auth::Role,
}

impl TestApp {
    /// This app's state with a changed environment (e.g. a dependency's URL
    /// pointing at a dead port), on the same database and Redis prefix.
    pub async fn state_with(&self, adjust: impl FnOnce(&mut Env)) -> AppState {
        let mut env = self.env.clone();
        adjust(&mut env);
        AppState::new(Config::load(&env, Needs::ALL).await.expect("config")).expect("state")
    }

    /// A second app instance on the same database and Redis prefix, like a
    /// second Lambda container or `mpanel serve` process.
    pub async fn another_instance(&self) -> TestApp {
        let config = Config::load(&self.env, Needs::ALL).await.expect("config");
        let state = AppState::new(config).expect("state");
        TestApp {
            env: self.env.clone(),
            router: mpanel::app::combined_app(state.clone()),
            state,
            db_name: self.db_name.clone(),
            sites: SiteCleanup::default(),
        }
    }

    pub async fn create_tenant(&self, slug: &str) -> Uuid {
        let client = self.db().await;
        let tenant = mpanel::tenants::create(
            &**client,
            &mpanel::types::Slug::parse(slug).expect("slug"),
            &mpanel::types::DisplayName::parse(slug).expect("name"),
            mpanel::audit_log::Actor::System,
        )
        .await
        .expect("tenant");
        tenant.id
    }

    pub async fn create_user(&self, tenant_id: Uuid, role: mpanel::auth::Role) -> TestUser {
        let email = format!("{}-{}@example.org", role.as_str().to_lowercase(), Uuid::new_v4().simple());
        let password = format!("pass phrase {}", Uuid::new_v4().simple());
        let hash = mpanel::auth::password::hash(mpanel::secrets::Secret::new(password.clone())).await.expect("hash");
        let client = self.db().await;
        let user = mpanel::users::create(
            &**client,
            &mpanel::users::NewUser {
                tenant_id,
                email: mpanel::types::EmailAddress::parse(&email).expect("email"),
                role,
                display_name: None,
                password_hash: hash,
            },
            mpanel::audit_log::Actor::System,
        )
        .await
        .expect("user");
        TestUser { id: user.id, tenant_id, email, password, role }
    }

    /// Logs in and returns the token pair body.
    pub async fn login(&self, user: &TestUser) -> serde_json::Value {
        let response = self
            .request(request(
                Method::POST,
                "/api/auth/login",
                &[],
                Some(serde_json::json!({"email": user.email, "password": user.password})),
            ))
            .await;
        assert_eq!(response.status, StatusCode::OK, "login: {}", String::from_utf8_lossy(&response.body));
        response.json()
    }

    /// Logs in and returns the access token.
    pub async fn token(&self, user: &TestUser) -> String {
        self.login(user).await["accessToken"].as_str().expect("accessToken").to_string()
    }

    /// A request with a bearer token (and JSON body if given).
    pub async fn authed(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> TestResponse {
        let auth = format!("Bearer {token}");
        self.request(request(method, path, &[("authorization", auth.as_str())], body)).await
    }
}

/// Adds the TCP peer address a local server would see, for per-IP limits.
pub fn from_ip(mut request: Request<Body>, ip: [u8; 4]) -> Request<Body> {
    request.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((ip, 40_000))));
    request
}

impl TestApp {
    /// Job ids the dispatcher pushed to this test's Redis list.
    pub async fn redis_job_ids(&self) -> Vec<Uuid> {
        let client = redis::Client::open(self.env["REDIS_URL"].as_str()).expect("redis url");
        let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.state.dispatcher.redis_queue_key())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .expect("lrange");
        ids.iter().map(|id| Uuid::parse_str(id).expect("uuid")).collect()
    }

    /// Job ids in every message waiting in this test's SQS queue (consumed).
    pub async fn sqs_job_ids(&self) -> Vec<Uuid> {
        let aws = mpanel::config::aws_sdk_config(&stack_env()).await.expect("aws config");
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let mut ids = Vec::new();
        loop {
            let out = sqs
                .receive_message()
                .queue_url(&self.env["SQS_QUEUE_URL"])
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = out.messages();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let body: mpanel::dispatch::JobsMessage =
                    serde_json::from_str(m.body().expect("body")).expect("jobs message");
                ids.extend(body.job_ids);
                sqs.delete_message()
                    .queue_url(&self.env["SQS_QUEUE_URL"])
                    .receipt_handle(m.receipt_handle().expect("handle"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
        ids
    }

    /// A webhook request signed with the stack's marketing secret.
    pub fn signed_order(&self, webhook_id: &str, body: &serde_json::Value) -> Request<Body> {
        let raw = serde_json::to_vec(body).expect("json");
        signed_request(&self.env, webhook_id, chrono::Utc::now().timestamp(), raw)
    }

    /// Creates an active product with one active price, returns the price id.
    pub async fn catalog_price(
        &self,
        tenant_id: Uuid,
        slug: &str,
        product_type: &str,
        limits: serde_json::Value,
        amount: i64,
    ) -> Uuid {
        let client = self.db().await;
        let product: Uuid = client
            .query_one(
                "INSERT INTO products (tenant_id, name, slug, type, limits) VALUES ($1, $2, $2, $3, $4) RETURNING id",
                &[&tenant_id, &slug, &product_type, &limits],
            )
            .await
            .expect("product")
            .get(0);
        client
            .query_one(
                "INSERT INTO prices (tenant_id, product_id, name, slug, interval, amount_cents, currency)
                 VALUES ($1, $2, $3, $3, 'MONTHLY', $4, 'USD') RETURNING id",
                &[&tenant_id, &product, &format!("{slug}-monthly"), &amount],
            )
            .await
            .expect("price")
            .get(0)
    }

    /// How many rows a table has (tests assert nothing was written).
    pub async fn count(&self, table: &str) -> i64 {
        self.db().await.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0)
    }
}

/// A Standard Webhooks request with the given id and timestamp.
pub fn signed_request(env: &Env, webhook_id: &str, timestamp: i64, raw: Vec<u8>) -> Request<Body> {
    let key = mpanel::config::parse_webhook_secret(&env["MARKETING_WEBHOOK_SECRET"]).expect("webhook secret");
    let signature = mpanel::webhooks::sign(webhook_id, timestamp, &raw, &key);
    Request::builder()
        .method(Method::POST)
        .uri("/api/orders")
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(Body::from(raw))
        .expect("request builds")
}

/// The `mpanel` binary `cargo test --workspace` builds beside the test binaries.
pub fn mpanel_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let binary = dir.join("mpanel");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (./scripts/test does)",
        binary.display()
    );
    binary
}

/// A running `mpanel serve` (killed on drop) and where it answers.
pub struct Serve {
    pub process: tokio::process::Child,
    pub base_url: String,
    /// stdout and stderr (a file: a pipe nobody reads would block its logging).
    pub log: std::path::PathBuf,
}

impl Serve {
    /// Stops the process and returns everything it logged.
    pub async fn stop(mut self) -> String {
        let _ = self.process.start_kill();
        let _ = self.process.wait().await;
        let logs = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        logs
    }
}

/// The real `mpanel serve` on a free loopback port with exactly `env`, once
/// its health check answers.
pub async fn spawn_serve(env: &Env, extra_args: &[&str]) -> Serve {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("mpanel-serve-{}.log", Uuid::new_v4().simple()));
    let file = std::fs::File::create(&log).expect("log file");
    let process = tokio::process::Command::new(mpanel_binary())
        .args(["serve", "--addr", &addr])
        .args(extra_args)
        .env_clear()
        .envs(env)
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .expect("mpanel serve starts");
    let base_url = format!("http://{addr}");
    let http = http_client();
    for _ in 0..200 {
        if http.get(format!("{base_url}/api/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Serve { process, base_url, log };
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("mpanel serve did not answer its health check on {addr}");
}

/// A registrable test domain, unique across tests and runs (the local
/// PowerDNS and sshd are shared by every test).
pub fn unique_domain() -> String {
    format!("mpt-{}.com", &Uuid::new_v4().simple().to_string()[..12])
}

impl TestApp {
    /// Installs the tenant's own SSH key (made on first use) for the local
    /// sshd's hosting user, as an operator would on a real server.
    pub async fn authorize_tenant_key(&self, tenant_id: Uuid) {
        let keys = self.state.tenant_keys.as_deref().expect("SSH_KEY_DIR is set by ./scripts/stack");
        let public = keys.public_key(&self.state.db, tenant_id).await.expect("tenant key");
        // One short append per line: concurrent tests never interleave.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.env["MPANEL_TEST_SSH_AUTHORIZED_KEYS"])
            .expect("authorized_keys");
        std::io::Write::write_all(&mut file, format!("{public}\n").as_bytes()).expect("append key");
    }

    /// Registers the local sshd (from `./scripts/stack`) as a WEB server of
    /// the tenant, reached with the tenant's key; `host_key` overrides its
    /// pinned key.
    pub async fn local_web_server(&self, tenant_id: Uuid, host_key: Option<&str>) -> Uuid {
        self.authorize_tenant_key(tenant_id).await;
        let env = &self.env;
        let key = host_key.unwrap_or(&env["MPANEL_TEST_SSH_HOST_KEY"]).to_string();
        let port: i32 = env["MPANEL_TEST_SSH_PORT"].parse().expect("port");
        self.db()
            .await
            .query_one(
                "INSERT INTO servers (tenant_id, name, role, ip_address, ssh_host, ssh_port, ssh_user, host_key, web_root)
                 VALUES ($1, $2, 'WEB', '127.0.0.1', $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &tenant_id,
                    &format!("web-{}", Uuid::new_v4().simple()),
                    &env["MPANEL_TEST_SSH_HOST"],
                    &port,
                    &env["MPANEL_TEST_SSH_USER"],
                    &key,
                    &env["MPANEL_TEST_WEB_ROOT"],
                ],
            )
            .await
            .expect("server")
            .get(0)
    }

    /// Ids and types of a subscription's jobs, oldest first.
    pub async fn jobs_of(&self, subscription_id: Uuid) -> Vec<(Uuid, String)> {
        self.db()
            .await
            .query("SELECT id, type FROM jobs WHERE subscription_id = $1 ORDER BY created_at, id", &[&subscription_id])
            .await
            .expect("jobs")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    pub async fn job_status(&self, job_id: Uuid) -> String {
        self.db().await.query_one("SELECT status FROM jobs WHERE id = $1", &[&job_id]).await.expect("job").get(0)
    }

    pub async fn subscription_status(&self, subscription_id: Uuid) -> String {
        self.db()
            .await
            .query_one("SELECT status FROM subscriptions WHERE id = $1", &[&subscription_id])
            .await
            .expect("subscription")
            .get(0)
    }
}

/// `dig` against the local PowerDNS (DNS on 127.0.0.1, `PDNS_DNS_PORT`).
pub fn dig(env: &Env, name: &str, rtype: &str) -> Vec<String> {
    let output = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &env["PDNS_DNS_PORT"], "+short", "+norecurse", name, rtype])
        .output()
        .expect("dig (dnsutils, installed by ./scripts/stack)");
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect()
}
