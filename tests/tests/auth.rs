//! Sessions and tokens against the real Postgres and Redis.

use base64::Engine;
use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel_tests::{TestApp, from_ip, request, spawn_app};
use serde_json::{Value, json};

async fn refresh(app: &TestApp, token: &str) -> mpanel_tests::TestResponse {
    app.request(request(Method::POST, "/api/auth/refresh", &[], Some(json!({"refreshToken": token})))).await
}

async fn me(app: &TestApp, access: &str) -> StatusCode {
    app.authed(Method::GET, "/api/auth/me", access, None).await.status
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    app.db()
        .await
        .query_one("SELECT count(*) FROM audit_logs WHERE action = $1", &[&action])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn login_me_refresh_reuse_logout() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let user = app.create_user(tenant, Role::Billing).await;

    let first = app.login(&user).await;
    assert_eq!(first["expiresIn"], 900);
    assert_eq!(first["user"]["role"], "BILLING");
    assert_eq!(first["user"]["tenantId"], tenant.to_string());
    let access1 = first["accessToken"].as_str().expect("access").to_string();
    let refresh1 = first["refreshToken"].as_str().expect("refresh").to_string();

    let profile = app.authed(Method::GET, "/api/auth/me", &access1, None).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.json()["user"]["email"], user.email);

    // Rotation: a new pair, and the old refresh token is dead.
    let second = refresh(&app, &refresh1).await;
    assert_eq!(second.status, StatusCode::OK);
    let second = second.json();
    let refresh2 = second["refreshToken"].as_str().expect("refresh").to_string();
    let access2 = second["accessToken"].as_str().expect("access").to_string();
    assert_ne!(refresh1, refresh2);
    assert_eq!(me(&app, &access2).await, StatusCode::OK);

    // Reuse of the dead token: 401, the whole family revoked, audited.
    assert_eq!(refresh(&app, &refresh1).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&app, &refresh2).await.status, StatusCode::UNAUTHORIZED, "family not revoked");
    assert_eq!(me(&app, &access2).await, StatusCode::UNAUTHORIZED, "session's access token survived");
    // Both presentations of a dead token were audited.
    assert_eq!(audit_count(&app, "auth.refresh_reuse").await, 2);

    // A new session; logout ends it.
    let third = app.login(&user).await;
    let access3 = third["accessToken"].as_str().expect("access").to_string();
    let refresh3 = third["refreshToken"].as_str().expect("refresh").to_string();
    let out = app.authed(Method::POST, "/api/auth/logout", &access3, None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(refresh(&app, &refresh3).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &access3).await, StatusCode::UNAUTHORIZED);
    assert_eq!(audit_count(&app, "auth.logout").await, 1);
    assert_eq!(audit_count(&app, "auth.login").await, 2);

    // Refresh tokens are stored only as hashes.
    let stored: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM refresh_tokens WHERE token_hash = convert_to($1, 'UTF8')", &[&refresh3])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored, 0);
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(signing_input.as_bytes());
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn forged_expired_and_misused_tokens_are_401() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let user = app.create_user(tenant, Role::Admin).await;
    let pair = app.login(&user).await;
    let genuine = pair["accessToken"].as_str().expect("access");
    let refresh_token = pair["refreshToken"].as_str().expect("refresh");
    let key = app.env["JWT_SECRET"].as_bytes().to_vec();

    // Decode the genuine claims to tamper with them one at a time.
    let payload = genuine.split('.').nth(1).expect("payload");
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("claims");
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});

    // Control: re-signing the genuine claims with the real key is accepted,
    // so every rejection below is caused by the one thing changed.
    assert_eq!(me(&app, &sign(&hs256, &claims, &key)).await, StatusCode::OK);

    let mut cases: Vec<(&str, String)> = vec![
        ("another key", sign(&hs256, &claims, b"another-secret-another-secret-another")),
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims))),
        ("refresh token as bearer", refresh_token.to_string()),
        ("garbage", "not.a.jwt".to_string()),
    ];
    let now = chrono::Utc::now().timestamp();
    for (name, field, value) in [
        ("expired", "exp", json!(now - 3600)),
        ("wrong aud", "aud", json!("someone-else")),
        ("wrong iss", "iss", json!("evil-issuer")),
        ("wrong typ", "typ", json!("refresh")),
    ] {
        let mut c = claims.clone();
        c[field] = value;
        cases.push((name, sign(&hs256, &c, &key)));
    }
    for missing in ["exp", "aud", "iss", "sub"] {
        let mut c = claims.clone();
        c.as_object_mut().expect("object").remove(missing);
        cases.push((missing, sign(&hs256, &c, &key)));
    }
    for (name, token) in cases {
        assert_eq!(me(&app, &token).await, StatusCode::UNAUTHORIZED, "{name}");
    }
    let no_scheme = app.request(request(Method::GET, "/api/auth/me", &[("authorization", genuine)], None)).await;
    assert_eq!(no_scheme.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/api/auth/me").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let user = app.create_user(tenant, Role::Admin).await;
    let attempt = |email: String, password: &str| {
        request(Method::POST, "/api/auth/login", &[], Some(json!({"email": email, "password": password})))
    };
    let wrong_password = app.request(attempt(user.email.clone(), "definitely not it")).await;
    let unknown_email = app.request(attempt("nobody@example.org".into(), "definitely not it")).await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status, wrong_password.status);
    assert_eq!(unknown_email.body, wrong_password.body);
    assert_eq!(audit_count(&app, "auth.login_failed").await, 2);
}

#[tokio::test]
async fn disabled_users_and_tenants_cannot_log_in() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let user = app.create_user(tenant, Role::Admin).await;
    let access = app.token(&user).await;
    let client = app.db().await;
    client.execute("UPDATE tenants SET status = 'DISABLED' WHERE id = $1", &[&tenant]).await.expect("disable tenant");
    let body = json!({"email": user.email, "password": user.password});
    let refused = app.request(request(Method::POST, "/api/auth/login", &[], Some(body.clone()))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(me(&app, &access).await, StatusCode::UNAUTHORIZED, "tokens of a disabled tenant still work");

    client.execute("UPDATE tenants SET status = 'ACTIVE' WHERE id = $1", &[&tenant]).await.expect("enable tenant");
    client.execute("UPDATE users SET status = 'DISABLED' WHERE id = $1", &[&user.id]).await.expect("disable user");
    let refused = app.request(request(Method::POST, "/api/auth/login", &[], Some(body))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

fn failed_login(email: &str, ip: [u8; 4]) -> http::Request<axum::body::Body> {
    from_ip(
        request(Method::POST, "/api/auth/login", &[], Some(json!({"email": email, "password": "wrong password!"}))),
        ip,
    )
}

fn login_from(email: &str, password: &str, ip: [u8; 4]) -> http::Request<axum::body::Body> {
    from_ip(request(Method::POST, "/api/auth/login", &[], Some(json!({"email": email, "password": password}))), ip)
}

#[tokio::test]
async fn eleventh_failed_login_per_account_and_client_is_429_across_instances_and_others_still_sign_in() {
    let app = spawn_app().await;
    let other = app.another_instance().await;
    let tenant = app.create_tenant("acme").await;
    let user = app.create_user(tenant, Role::Admin).await;
    // Ten failures from one client, alternating between two app instances.
    for i in 0..10u8 {
        let instance = if i % 2 == 0 { &app } else { &other };
        let response = instance.request(failed_login(&user.email, [10, 0, 0, 1])).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "attempt {}", i + 1);
    }
    let eleventh = other.request(failed_login(&user.email, [10, 0, 0, 1])).await;
    assert_eq!(eleventh.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = eleventh.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!(retry_after > 0 && retry_after <= 900, "{retry_after}");
    assert_eq!(eleventh.header("content-type"), Some("application/problem+json"));
    // That client waits even with the right password...
    let right = app.request(login_from(&user.email, &user.password, [10, 0, 0, 1])).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    // ...but it cannot lock the owner out: another client signs in.
    let owner = app.request(login_from(&user.email, &user.password, [10, 0, 2, 2])).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", String::from_utf8_lossy(&owner.body));
}

#[tokio::test]
async fn the_account_ceiling_stops_guesses_spread_over_many_clients() {
    let app = mpanel_tests::spawn_app_with(|env| {
        env.insert("LOGIN_ACCOUNT_FAILURE_CEILING".into(), "20".into());
    })
    .await;
    let tenant = app.create_tenant("acme").await;
    let user = app.create_user(tenant, Role::Admin).await;
    for i in 0..20u8 {
        let response = app.request(failed_login(&user.email, [10, 1, 0, i])).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "attempt {}", i + 1);
    }
    let next = app.request(failed_login(&user.email, [10, 1, 1, 1])).await;
    assert_eq!(next.status, StatusCode::TOO_MANY_REQUESTS);
    let right = app.request(login_from(&user.email, &user.password, [10, 1, 2, 2])).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS, "the account is locked for the window");
}

#[tokio::test]
async fn parallel_guesses_are_counted_before_the_password_is_checked() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let user = app.create_user(tenant, Role::Admin).await;
    let guesses = (0..100).map(|_| app.request(failed_login(&user.email, [10, 3, 0, 1])));
    let answers = futures::future::join_all(guesses).await;
    let verified = answers.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
    let limited = answers.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!(verified + limited, 100);
    assert!(verified <= 10, "{verified} guesses reached password verification");
    assert_eq!(audit_count(&app, "auth.login_failed").await, verified as i64);
}

#[tokio::test]
async fn eleventh_failed_login_per_ip_is_429() {
    let app = spawn_app().await;
    let other = app.another_instance().await;
    for i in 0..10 {
        let instance = if i % 2 == 0 { &app } else { &other };
        let response = instance.request(failed_login(&format!("user{i}@example.org"), [192, 0, 2, 7])).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "attempt {}", i + 1);
    }
    let eleventh = app.request(failed_login("someone-else@example.org", [192, 0, 2, 7])).await;
    assert_eq!(eleventh.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is not affected.
    let elsewhere = app.request(failed_login("someone-else@example.org", [192, 0, 2, 8])).await;
    assert_eq!(elsewhere.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn general_rate_limit_per_client() {
    let app = mpanel_tests::spawn_app_with(|env| {
        env.insert("RATE_LIMIT_MAX".into(), "3".into());
    })
    .await;
    let tenant = app.create_tenant("acme").await;
    let user = app.create_user(tenant, Role::ReadOnly).await;
    let token = app.token(&user).await; // one anonymous request from "unknown"
    for _ in 0..3 {
        assert_eq!(me(&app, &token).await, StatusCode::OK);
    }
    let limited = app.authed(Method::GET, "/api/auth/me", &token, None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    // Health checks are never limited.
    for _ in 0..5 {
        assert_eq!(app.get("/api/health").await.status, StatusCode::OK);
    }
    // Another user has their own allowance.
    let other = app.create_user(tenant, Role::ReadOnly).await;
    let other_token = app
        .request(from_ip(
            request(
                Method::POST,
                "/api/auth/login",
                &[],
                Some(json!({"email": other.email, "password": other.password})),
            ),
            [198, 51, 100, 1],
        ))
        .await
        .json()["accessToken"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(me(&app, &other_token).await, StatusCode::OK);
}
