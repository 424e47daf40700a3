//! Order intake against the real Postgres, Redis and moto.

use std::collections::HashSet;

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel_tests::{TestApp, request, signed_request, spawn_app, spawn_app_with};
use serde_json::{Value, json};
use uuid::Uuid;

struct Shop {
    app: TestApp,
    tenant: Uuid,
}

impl Shop {
    async fn new() -> Shop {
        Shop::on(spawn_app().await).await
    }

    async fn on(app: TestApp) -> Shop {
        let tenant = app.create_tenant("shop").await;
        app.catalog_price(tenant, "starter", "SHARED_HOSTING", json!({"emails": 5, "diskMb": 1024}), 999).await;
        app.catalog_price(tenant, "site", "SHARED_HOSTING", json!({"emails": 0}), 399).await;
        app.catalog_price(tenant, "vps", "VPS", json!({}), 2000).await;
        Shop { app, tenant }
    }

    async fn post(&self, webhook_id: &str, body: &Value) -> mpanel_tests::TestResponse {
        self.app.request(self.app.signed_order(webhook_id, body)).await
    }
}

fn order(external: &str, domain: &str) -> Value {
    json!({
        "tenantSlug": "shop", "externalOrderId": external,
        "customer": {"email": "jo@example.org", "fullName": "Jo Doe", "phone": "+15550100"},
        "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD",
        "domain": domain, "metadata": {"campaign": "autumn"}
    })
}

const TABLES: [&str; 7] =
    ["customers", "orders", "subscriptions", "domains", "jobs", "webhook_deliveries", "audit_logs"];

async fn counts(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for table in TABLES {
        out.push(app.count(table).await);
    }
    out
}

fn id_set(ids: &[Uuid]) -> HashSet<Uuid> {
    ids.iter().copied().collect()
}

#[tokio::test]
async fn a_signed_order_creates_everything_and_dispatches_its_jobs() {
    let shop = Shop::new().await;
    let response = shop.post("msg_1", &order("mkt-1001", "Jo-Example.com")).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&response.body));
    let body = response.json();
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["orderStatus"], "PAID");
    let types: Vec<&str> =
        body["jobs"].as_array().expect("jobs").iter().map(|j| j["type"].as_str().expect("type")).collect();
    assert_eq!(types, ["PROVISION_DNS", "PROVISION_HOSTING", "PROVISION_MAIL"]);
    let job_ids: Vec<Uuid> = body["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| Uuid::parse_str(j["id"].as_str().expect("id")).expect("uuid"))
        .collect();

    let db = shop.app.db().await;
    let row = db
        .query_one(
            "SELECT o.status, o.total_amount_cents, o.currency, o.domain, o.metadata, s.status, d.name, d.status,
                    c.email, c.full_name, s.current_period_end - s.current_period_start >= interval '28 days'
             FROM orders o JOIN subscriptions s ON s.order_id = o.id JOIN domains d ON d.subscription_id = s.id
             JOIN customers c ON c.id = o.customer_id WHERE o.id = $1",
            &[&Uuid::parse_str(body["orderId"].as_str().expect("orderId")).expect("uuid")],
        )
        .await
        .expect("order row");
    assert_eq!(row.get::<_, String>(0), "PAID");
    assert_eq!(row.get::<_, i64>(1), 999);
    assert_eq!(row.get::<_, String>(2), "USD");
    assert_eq!(row.get::<_, String>(3), "jo-example.com");
    assert_eq!(row.get::<_, Value>(4), json!({"campaign": "autumn"}));
    assert_eq!(row.get::<_, String>(5), "PENDING");
    assert_eq!(row.get::<_, String>(6), "jo-example.com");
    assert_eq!(row.get::<_, String>(7), "PENDING");
    assert_eq!(row.get::<_, String>(8), "jo@example.org");
    assert_eq!(row.get::<_, String>(9), "Jo Doe");
    assert!(row.get::<_, bool>(10), "a monthly period");
    assert_eq!(shop.app.count("jobs WHERE status = 'PENDING' AND dispatched_at IS NOT NULL").await, 3);
    assert_eq!(shop.app.count("audit_logs WHERE action = 'order.created' AND actor_type = 'WEBHOOK'").await, 1);
    assert_eq!(shop.app.count("webhook_deliveries").await, 1);

    assert_eq!(id_set(&shop.app.redis_job_ids().await), id_set(&job_ids), "ids in Redis");
    assert_eq!(id_set(&shop.app.sqs_job_ids().await), id_set(&job_ids), "ids in SQS");
}

#[tokio::test]
async fn job_plans_follow_the_product() {
    let shop = Shop::new().await;
    let mut site = order("site-1", "site-only.com");
    site["priceSlug"] = json!("site-monthly");
    site["totalAmountCents"] = json!(399);
    let body = shop.post("msg_site", &site).await.json();
    assert_eq!(body["jobs"].as_array().expect("jobs").len(), 2, "no mail without mailboxes: {body}");

    // A product with nothing to provision is active at once.
    let mut vps = order("vps-1", "vps-owner.com");
    vps["priceSlug"] = json!("vps-monthly");
    vps["totalAmountCents"] = json!(2000);
    let body = shop.post("msg_vps", &vps).await.json();
    assert_eq!(body["status"], "ACTIVE");
    assert!(body["jobs"].as_array().expect("jobs").is_empty());
    assert_eq!(shop.app.count("subscriptions WHERE status = 'ACTIVE' AND activated_at IS NOT NULL").await, 1);
    assert_eq!(shop.app.count("domains WHERE name = 'vps-owner.com' AND status = 'ACTIVE'").await, 1);
}

#[tokio::test]
async fn rejected_deliveries_write_nothing() {
    let shop = Shop::new().await;
    // Another tenant holds a domain.
    let other = shop.app.create_tenant("other").await;
    shop.app.catalog_price(other, "starter", "SHARED_HOSTING", json!({"emails": 1}), 999).await;
    let mut theirs = order("theirs-1", "taken.com");
    theirs["tenantSlug"] = json!("other");
    assert_eq!(shop.post("msg_theirs", &theirs).await.status, StatusCode::CREATED);
    let before = counts(&shop.app).await;

    let env = &shop.app.env;
    let raw = serde_json::to_vec(&order("mkt-1", "fine.com")).expect("json");
    let now = chrono::Utc::now().timestamp();
    let mut unauthorized = vec![
        ("stale", signed_request(env, "m1", now - 301, raw.clone())),
        ("future", signed_request(env, "m2", now + 301, raw.clone())),
    ];
    let mut tampered = signed_request(env, "m3", now, raw.clone());
    *tampered.body_mut() = axum::body::Body::from(serde_json::to_vec(&order("mkt-1", "other.com")).expect("json"));
    unauthorized.push(("tampered body", tampered));
    for header in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let mut r = signed_request(env, "m4", now, raw.clone());
        r.headers_mut().remove(header);
        unauthorized.push(("missing header", r));
    }
    let mut wrong_key = signed_request(env, "m5", now, raw.clone());
    let forged = mpanel::webhooks::sign("m5", now, &raw, b"some-other-secret-of-enough-bytes");
    wrong_key.headers_mut().insert("webhook-signature", forged.parse().expect("header"));
    unauthorized.push(("wrong key", wrong_key));
    for (case, req) in unauthorized {
        let r = shop.app.request(req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }

    let invalid: Vec<(&str, Value)> = vec![
        ("customer.email", json!({"customer": {"email": "nope", "fullName": "Jo"}})),
        ("customer.fullName", json!({"customer": {"email": "jo@example.org", "fullName": ""}})),
        ("customer.phone", json!({"customer": {"email": "jo@example.org", "fullName": "Jo", "phone": "call me"}})),
        ("domain", json!({"domain": "localhost"})),
        ("domain", json!({"domain": "co.uk"})),
        ("domain", json!({"domain": "www.example.com"})),
        ("domain", json!({"domain": "bad_domain.com"})),
        ("domain", json!({"domain": "x.com; rm -rf /"})),
        ("domain", json!({"domain": null})),
        ("priceSlug", json!({"priceSlug": "does-not-exist"})),
        ("priceSlug", json!({"priceSlug": "Not A Slug"})),
        ("totalAmountCents", json!({"totalAmountCents": 998})),
        ("totalAmountCents", json!({"totalAmountCents": 9.99})),
        ("currency", json!({"currency": "EUR"})),
        ("currency", json!({"currency": "usd"})),
        ("externalOrderId", json!({"externalOrderId": ""})),
        ("tenantSlug", json!({"tenantSlug": "Shop!"})),
        ("metadata", json!({"metadata": "x"})),
    ];
    for (i, (field, patch)) in invalid.into_iter().enumerate() {
        let mut body = order(&format!("bad-{i}"), "fine.com");
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        let r = shop.post(&format!("bad_{i}"), &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {}", String::from_utf8_lossy(&r.body));
        let named: Vec<String> = r.json()["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("field").to_string())
            .collect();
        assert_eq!(named, [field], "{body}");
    }

    // An inactive price is unknown to the webhook.
    shop.app
        .db()
        .await
        .execute("UPDATE prices SET is_active = false WHERE slug = 'site-monthly'", &[])
        .await
        .expect("deactivate");
    let mut inactive = order("inactive-1", "fine.com");
    inactive["priceSlug"] = json!("site-monthly");
    inactive["totalAmountCents"] = json!(399);
    assert_eq!(shop.post("inactive", &inactive).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    let mut unknown_tenant = order("unknown-1", "fine.com");
    unknown_tenant["tenantSlug"] = json!("nobody");
    assert_eq!(shop.post("unknown", &unknown_tenant).await.status, StatusCode::NOT_FOUND);

    let taken = shop.post("taken", &order("taken-1", "TAKEN.com")).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.json()["errors"][0]["field"], "domain");

    let huge = json!({"padding": "x".repeat(70 * 1024)});
    assert_eq!(shop.post("huge", &huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let malformed = shop.app.request(signed_request(env, "malformed", now, b"{not json".to_vec())).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);

    assert_eq!(counts(&shop.app).await, before, "a rejected delivery wrote rows ({TABLES:?})");
}

#[tokio::test]
async fn duplicates_replay_the_first_response() {
    let shop = Shop::new().await;
    let first = shop.post("msg_1", &order("mkt-7", "dup.com")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let before = counts(&shop.app).await;

    let again = shop.post("msg_1", &order("mkt-7", "dup.com")).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    // Same order under another webhook id (keys in another order): replay.
    let reordered: Value = serde_json::from_str(&order("mkt-7", "dup.com").to_string()).expect("json");
    let by_external = shop.post("msg_2", &reordered).await;
    assert_eq!(by_external.status, StatusCode::CREATED);
    assert_eq!(by_external.json(), first.json());

    let mut changed = order("mkt-7", "dup.com");
    changed["customer"]["fullName"] = json!("Someone Else");
    let conflict = shop.post("msg_3", &changed).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["errors"][0]["field"], "externalOrderId");

    let after = counts(&shop.app).await;
    // Only one more delivery record (msg_2); no order, job or audit row.
    assert_eq!(after[..5], before[..5]);
    assert_eq!(after[5], before[5] + 1);
    assert_eq!(after[6], before[6]);
}

#[tokio::test]
async fn fifty_concurrent_deliveries_make_one_order() {
    let shop = Shop::new().await;
    let body = order("mkt-concurrent", "concurrent.com");
    let mut tasks = Vec::new();
    for i in 0..50 {
        // Half redeliver the same message, half are new messages of the same order.
        let webhook_id = if i % 2 == 0 { "msg_same".to_string() } else { format!("msg_{i}") };
        let req = shop.app.signed_order(&webhook_id, &body);
        let router = shop.app.router.clone();
        tasks.push(tokio::spawn(async move { mpanel_tests::call(&router, req).await }));
    }
    let mut order_ids = HashSet::new();
    for task in tasks {
        let r = task.await.expect("task");
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        order_ids.insert(r.json()["orderId"].as_str().expect("orderId").to_string());
    }
    assert_eq!(order_ids.len(), 1, "{order_ids:?}");
    assert_eq!(shop.app.count("orders").await, 1);
    assert_eq!(shop.app.count("jobs").await, 3);
    assert_eq!(shop.app.count("customers").await, 1);
}

#[tokio::test]
async fn two_hundred_concurrent_orders_of_a_new_customer() {
    let shop = Shop::new().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let body = order(&format!("bulk-{i}"), &format!("bulk-{i}.com"));
        let req = shop.app.signed_order(&format!("bulk_msg_{i}"), &body);
        let router = shop.app.router.clone();
        tasks.push(tokio::spawn(async move { mpanel_tests::call(&router, req).await }));
    }
    let mut customer_ids = HashSet::new();
    for task in tasks {
        let r = task.await.expect("task");
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        customer_ids.insert(r.json()["customerId"].as_str().expect("customerId").to_string());
    }
    assert_eq!(customer_ids.len(), 1);
    assert_eq!(shop.app.count("customers").await, 1);
    assert_eq!(shop.app.count("orders").await, 200);
}

#[tokio::test]
async fn with_redis_down_the_jobs_still_reach_sqs() {
    let app = spawn_app_with(|env| {
        env.insert("REDIS_URL".into(), "redis://127.0.0.1:1/".into());
    })
    .await;
    let shop = Shop::on(app).await;
    let r = shop.post("msg_1", &order("mkt-r", "redis-down.com")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
    let job_ids: Vec<Uuid> = r.json()["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| Uuid::parse_str(j["id"].as_str().expect("id")).expect("uuid"))
        .collect();
    assert_eq!(id_set(&shop.app.sqs_job_ids().await), id_set(&job_ids));
    assert_eq!(shop.app.count("jobs WHERE dispatched_at IS NOT NULL").await, 3);
}

#[tokio::test]
async fn with_redis_and_sqs_down_a_later_sweep_dispatches() {
    let healthy = spawn_app().await;
    let broken = {
        let mut env = healthy.env.clone();
        env.insert("REDIS_URL".into(), "redis://127.0.0.1:1/".into());
        env.insert("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:1".into());
        let config = mpanel::Config::load(&env, mpanel::Needs::ALL).await.expect("config");
        let state = mpanel::AppState::new(config).expect("state");
        TestApp {
            env,
            router: mpanel::app::combined_app(state.clone()),
            state,
            db_name: healthy.db_name.clone(),
            sites: mpanel_tests::SiteCleanup::default(),
        }
    };
    let shop = Shop::on(broken).await;
    let r = shop.post("msg_1", &order("mkt-s", "sweep-me.com")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(healthy.count("jobs WHERE status = 'PENDING' AND dispatched_at IS NULL").await, 3);
    assert!(healthy.redis_job_ids().await.is_empty());

    // The services are back: one sweep sends everything.
    let cli = <mpanel::cli::Cli as clap::Parser>::try_parse_from(["mpanel", "sweep"]).expect("args");
    mpanel::cli::run(cli, &healthy.env).await.expect("sweep");
    let job_ids: Vec<Uuid> = r.json()["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| Uuid::parse_str(j["id"].as_str().expect("id")).expect("uuid"))
        .collect();
    assert_eq!(id_set(&healthy.redis_job_ids().await), id_set(&job_ids));
    assert_eq!(id_set(&healthy.sqs_job_ids().await), id_set(&job_ids));
    assert_eq!(healthy.count("jobs WHERE dispatched_at IS NULL").await, 0);

    // Freshly dispatched jobs are not sent again by the next pass.
    let report = mpanel::dispatch::sweep(&healthy.state.db, &healthy.state.dispatcher).await.expect("sweep");
    assert_eq!(report.dispatched, 0);
    // A hint older than the re-dispatch horizon is sent again.
    healthy
        .db()
        .await
        .execute("UPDATE jobs SET dispatched_at = now() - interval '61 seconds'", &[])
        .await
        .expect("age");
    let report = mpanel::dispatch::sweep(&healthy.state.db, &healthy.state.dispatcher).await.expect("sweep");
    assert_eq!(report.dispatched, 3);
}

#[tokio::test]
async fn admins_read_orders_customers_and_subscriptions_of_their_tenant() {
    let shop = Shop::new().await;
    let created = shop.post("msg_1", &order("mkt-a", "read-me.com")).await.json();
    let mut second = order("mkt-b", "read-me-too.com");
    second["customer"]["email"] = json!("sam@example.org");
    shop.post("msg_2", &second).await;
    let token = shop.app.token(&shop.app.create_user(shop.tenant, Role::ReadOnly).await).await;
    let get = |path: String| {
        let app = &shop.app;
        let token = token.clone();
        async move { app.authed(Method::GET, &path, &token, None).await }
    };

    let order_id = created["orderId"].as_str().expect("orderId");
    let detail = get(format!("/api/orders/{order_id}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    let detail = detail.json();
    assert_eq!(detail["externalOrderId"], "mkt-a");
    assert_eq!(detail["customer"]["email"], "jo@example.org");
    assert_eq!(detail["subscription"]["id"], created["subscriptionId"]);
    assert_eq!(detail["subscription"]["domain"], "read-me.com");
    assert_eq!(detail["jobs"].as_array().expect("jobs").len(), 3);

    let all = get("/api/orders".into()).await.json();
    assert_eq!(all["items"].as_array().expect("items").len(), 2);
    let customer_id = created["customerId"].as_str().expect("customerId");
    let by_customer = get(format!("/api/orders?customerId={customer_id}")).await.json();
    assert_eq!(by_customer["items"].as_array().expect("items").len(), 1);
    let refunded = get("/api/orders?status=REFUNDED".into()).await.json();
    assert!(refunded["items"].as_array().expect("items").is_empty());
    assert_eq!(get("/api/orders?status=paid".into()).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let future = get("/api/orders?from=2999-01-01T00:00:00Z".into()).await.json();
    assert!(future["items"].as_array().expect("items").is_empty());

    let customers = get("/api/customers".into()).await.json();
    assert_eq!(customers["items"].as_array().expect("items").len(), 2);
    let customer = get(format!("/api/customers/{customer_id}")).await.json();
    assert_eq!(customer["subscriptions"].as_array().expect("subs").len(), 1);
    let pending = get("/api/subscriptions?status=PENDING".into()).await.json();
    assert_eq!(pending["items"].as_array().expect("items").len(), 2);
    let sub = get(format!("/api/subscriptions/{}", created["subscriptionId"].as_str().expect("id"))).await.json();
    assert_eq!(sub["jobs"].as_array().expect("jobs").len(), 3);

    // Another tenant sees none of it.
    let other = shop.app.create_tenant("elsewhere").await;
    let other_token = shop.app.token(&shop.app.create_user(other, Role::Admin).await).await;
    for path in [
        format!("/api/orders/{order_id}"),
        format!("/api/customers/{customer_id}"),
        format!("/api/subscriptions/{}", created["subscriptionId"].as_str().expect("id")),
    ] {
        assert_eq!(
            shop.app.authed(Method::GET, &path, &other_token, None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let theirs = shop.app.authed(Method::GET, "/api/orders", &other_token, None).await.json();
    assert!(theirs["items"].as_array().expect("items").is_empty());
    // Reading needs a session.
    assert_eq!(shop.app.request(request(Method::GET, "/api/orders", &[], None)).await.status, StatusCode::UNAUTHORIZED);
}
