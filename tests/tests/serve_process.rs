//! The real `mpanel serve` on one machine without SQS: an order posted to it
//! over HTTP is provisioned by its built-in worker pool through Redis alone,
//! against the real PowerDNS and sshd.

use std::time::Duration;

use mpanel_tests::hosting::{Hosting, site};
use mpanel_tests::{spawn_serve, unique_domain};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn serve_without_sqs_provisions_an_order_through_redis() {
    let h = Hosting::new().await;
    let mut env = h.app.env.clone();
    env.remove("SQS_QUEUE_URL");
    let serve = spawn_serve(&env, &[]).await;
    let base = serve.base_url.clone();
    let http = mpanel_tests::http_client();

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
    let mut post = http.post(format!("{base}{}", parts.uri)).body(bytes.to_vec());
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
    let logs = serve.stop().await;
    assert!(logs.contains("mpanel serving"), "logs were captured: {logs}");
    assert!(!logs.contains("job dispatch to sqs failed"), "no SQS warning without a queue: {logs}");
}
