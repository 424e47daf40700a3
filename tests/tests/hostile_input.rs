//! Hostile strings in every field that can reach SSH, PowerDNS, SQL or the
//! logs: each is refused with a 4xx or stored and returned verbatim, and
//! nothing ever reaches a remote shell (no stray file appears on the host).

use std::path::Path;

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel::engine::RunOutcome;
use mpanel_tests::hosting::Hosting;
use mpanel_tests::unique_domain;
use serde_json::{Value, json};

/// Every hostile string creates `marker` if it is ever run by a shell.
fn corpus(marker: &str) -> Vec<String> {
    vec![
        format!("x; touch {marker}"),
        format!("$(touch {marker})"),
        format!("`touch {marker}`"),
        format!("x | touch {marker}"),
        format!("x && touch {marker}"),
        format!("x\ntouch {marker}"),
        format!("x\r\ntouch {marker}"),
        format!("'; touch {marker}; echo '"),
        "../../../../etc/passwd".into(),
        "x\u{0}y".into(),
        "x".repeat(10_000),
        "ex\u{202e}moc.elpmaxe".into(),
        "раypal.com".into(), // Cyrillic "р" and "а"
        "${IFS}".into(),
        "%0d%0aSet-Cookie: x=y".into(),
    ]
}

fn assert_no_marker(marker: &str, web_root: &str) {
    assert!(!Path::new(marker).exists(), "{marker} was created: a string reached a shell");
    let stray = std::fs::read_dir(web_root)
        .expect("web root")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|name| name.contains("pwned") || name.contains(';') || name.contains('$') || name.contains('`'));
    assert!(stray.is_none(), "stray entry in the web root: {stray:?}");
}

/// 4xx, or 2xx with the value stored exactly as sent.
fn refused_or_verbatim(status: StatusCode, stored: Option<&Value>, sent: &str, what: &str) {
    assert!(status.as_u16() < 500, "{what}: {status} for {sent:?}");
    if status.is_success() {
        assert_eq!(stored.and_then(Value::as_str), Some(sent.trim()), "{what} altered");
    }
}

#[tokio::test]
async fn hostile_strings_never_reach_a_shell() {
    let h = Hosting::new().await;
    let marker = format!("/tmp/mpanel-pwned-{}", uuid::Uuid::new_v4().simple());
    let web_root = h.app.env["MPANEL_TEST_WEB_ROOT"].clone();
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let base_order = |external: &str, domain: &str| {
        json!({
            "tenantSlug": "host", "externalOrderId": external,
            "customer": {"email": "owner@example.org", "fullName": "Owner"},
            "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD", "domain": domain,
        })
    };

    for (i, hostile) in corpus(&marker).iter().enumerate() {
        // Fields that must be refused outright.
        let refused_fields = [
            ("domain", "/domain"),
            ("customer.email", "/customer/email"),
            ("priceSlug", "/priceSlug"),
            ("tenantSlug", "/tenantSlug"),
        ];
        for (field, pointer) in refused_fields {
            let mut body = base_order(&format!("ext-{i}-{field}"), &unique_domain());
            *body.pointer_mut(pointer).expect("field exists") = json!(hostile);
            let r = h.app.request(h.app.signed_order(&format!("msg-{i}-{field}"), &body)).await;
            if hostile == "раypal.com" && field == "domain" {
                // IDNA turns it into ASCII punycode: accepted, but only ASCII goes further.
                assert_eq!(r.status, StatusCode::CREATED);
                let stored: String = h
                    .app
                    .db()
                    .await
                    .query_one("SELECT domain FROM orders WHERE external_order_id = $1", &[&format!("ext-{i}-{field}")])
                    .await
                    .expect("order")
                    .get(0);
                assert!(stored.is_ascii() && stored.starts_with("xn--"), "{stored}");
                continue;
            }
            assert!(r.status.is_client_error(), "{field} = {hostile:?} → {}", r.status);
        }

        // Free text is stored verbatim (or refused when it has control characters).
        let mut body = base_order(&format!("ext-{i}-free"), &unique_domain());
        // A customer of its own: a known customer keeps its first name.
        body["customer"]["email"] = json!(format!("owner{i}@example.org"));
        body["customer"]["fullName"] = json!(hostile);
        body["metadata"] = json!({"note": hostile});
        let r = h.app.request(h.app.signed_order(&format!("msg-{i}-free"), &body)).await;
        assert!(r.status.as_u16() < 500, "{hostile:?} → {}", r.status);
        if r.status == StatusCode::CREATED {
            let order_id = r.json()["orderId"].as_str().expect("order").to_string();
            let detail = h.app.authed(Method::GET, &format!("/api/orders/{order_id}"), &admin, None).await.json();
            assert_eq!(detail["metadata"]["note"], json!(hostile), "metadata altered");
            refused_or_verbatim(StatusCode::CREATED, Some(&detail["customer"]["fullName"]), hostile, "fullName");
            // Provision it: names and metadata must never reach the server's shell.
            let subscription =
                uuid::Uuid::parse_str(detail["subscription"]["id"].as_str().expect("sub")).expect("uuid");
            for (job, _) in h.app.jobs_of(subscription).await {
                assert_eq!(h.run(job).await, RunOutcome::Succeeded);
            }
        }

        // Catalogue and servers.
        let product = h
            .app
            .authed(
                Method::POST,
                "/api/products",
                &admin,
                Some(json!({"name": hostile, "slug": format!("p-{i}"), "type": "DNS", "description": hostile})),
            )
            .await;
        refused_or_verbatim(
            product.status,
            product.status.is_success().then(|| product.json()).as_ref().map(|p| &p["name"]),
            hostile,
            "product name",
        );
        let slug = h
            .app
            .authed(Method::POST, "/api/products", &admin, Some(json!({"name": "n", "slug": hostile, "type": "DNS"})))
            .await;
        assert!(slug.status.is_client_error(), "slug {hostile:?}");
        for field in ["sshHost", "sshUser", "webRoot", "hostKey", "ipAddress"] {
            let mut server = json!({
                "name": format!("s-{i}-{field}"), "role": "WEB", "ipAddress": "192.0.2.9", "sshHost": "web9.internal",
                "sshUser": "deploy", "hostKey": h.app.env["MPANEL_TEST_SSH_HOST_KEY"], "webRoot": "/srv/www",
            });
            server[field] = json!(hostile);
            let r = h.app.authed(Method::POST, "/api/servers", &admin, Some(server)).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "server {field} = {hostile:?}");
        }
        let user = h
            .app
            .authed(
                Method::POST,
                "/api/users",
                &admin,
                Some(json!({"email": hostile, "password": "a perfectly fine passphrase", "role": "SUPPORT"})),
            )
            .await;
        assert!(user.status.is_client_error(), "user email {hostile:?}");
    }
    assert_no_marker(&marker, &web_root);
}
