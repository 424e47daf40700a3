//! The real `mpanel serve` on one machine without SQS: an order posted to it
//! over HTTP is provisioned by its built-in worker pool through Redis alone,
//! against the real PowerDNS and sshd.

use std::process::Stdio;
use std::time::Duration;

use mpanel_tests::hosting::{Hosting, site};
use mpanel_tests::{mpanel_binary, unique_domain};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn serve_without_sqs_provisions_an_order_through_redis() {
    let h = Hosting::new().await;
    let mut env = h.app.env.clone();
    env.remove("SQS_QUEUE_URL");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let addr = format!("127.0.0.1:{port}");
    let mut serve = tokio::process::Command::new(mpanel_binary())
        .args(["serve", "--addr", &addr])
        .env_clear()
        .envs(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mpanel serve starts");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("http://{addr}/api/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "mpanel serve without SQS_QUEUE_URL did not start");

    let domain = unique_domain();
    let body = serde_json::to_vec(&json!({
        "tenantSlug": "host", "externalOrderId": format!("ext-{domain}"),
        "customer": {"email": "owner@example.org", "fullName": "Site Owner"},
        "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD", "domain": domain,
    }))
    .expect("json");
    let request = mpanel_tests::signed_request(&env, "msg-serve", chrono::Utc::now().timestamp(), body);
    let (parts, body) = request.into_parts();
    let bytes = http_body_util::BodyExt::collect(body).await.expect("body").to_bytes();
    let mut post = http.post(format!("http://{addr}{}", parts.uri)).body(bytes.to_vec());
    for (name, value) in &parts.headers {
        post = post.header(name.as_str(), value.as_bytes());
    }
    let response = post.send().await.expect("order posted");
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let created: serde_json::Value = response.json().await.expect("json");
    let subscription = Uuid::parse_str(created["subscriptionId"].as_str().expect("id")).expect("uuid");

    let mut status = String::new();
    for _ in 0..300 {
        status = h.app.subscription_status(subscription).await;
        if status == "ACTIVE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "ACTIVE", "the built-in pool provisioned the order from Redis alone");
    assert!(site(&env, &domain).join("public/index.html").exists(), "web space created over SSH");
    let undispatched: i64 = h
        .app
        .db()
        .await
        .query_one("SELECT count(*) FROM jobs WHERE subscription_id = $1 AND dispatched_at IS NULL", &[&subscription])
        .await
        .expect("count")
        .get(0);
    assert_eq!(undispatched, 0, "the Redis dispatch alone counts as dispatched");

    let _ = serve.start_kill();
    let output = serve.wait_with_output().await.expect("exit");
    let logs = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(logs.contains("mpanel serving"), "logs were captured: {logs}");
    assert!(!logs.contains("job dispatch to sqs failed"), "no SQS warning without a queue: {logs}");
}
