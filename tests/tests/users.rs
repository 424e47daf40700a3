//! `/api/users`, `/api/tenants` and `/api/audit-logs` behaviour.

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel_tests::spawn_app;
use serde_json::json;

fn new_user(email: &str, role: &str) -> serde_json::Value {
    json!({"email": email, "password": "a perfectly fine passphrase", "role": role, "displayName": "New Person"})
}

#[tokio::test]
async fn admins_manage_users_within_their_ceiling() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let admin = app.create_user(tenant, Role::Admin).await;
    let token = app.token(&admin).await;

    let created = app.authed(Method::POST, "/api/users", &token, Some(new_user("New@Acme.example", "SUPPORT"))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    let created = created.json();
    assert_eq!(created["email"], "new@acme.example");
    assert_eq!(created["role"], "SUPPORT");
    assert!(created.get("passwordHash").is_none() && !created.to_string().contains("argon2"));
    let id = created["id"].as_str().expect("id").to_string();

    let above =
        app.authed(Method::POST, "/api/users", &token, Some(new_user("boss@acme.example", "SUPER_ADMIN"))).await;
    assert_eq!(above.status, StatusCode::FORBIDDEN);

    let duplicate = app.authed(Method::POST, "/api/users", &token, Some(new_user("NEW@acme.example", "SUPPORT"))).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.json()["errors"][0]["field"], "email");

    let invalid = app
        .authed(
            Method::POST,
            "/api/users",
            &token,
            Some(json!({"email": "not-an-email", "password": "short", "role": "admin"})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<String> = invalid.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_string())
        .collect();
    assert_eq!(fields, ["email", "role", "password"]);

    let promote =
        app.authed(Method::PATCH, &format!("/api/users/{id}"), &token, Some(json!({"role": "SUPER_ADMIN"}))).await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);
    let renamed = app
        .authed(
            Method::PATCH,
            &format!("/api/users/{id}"),
            &token,
            Some(json!({"displayName": "Renamed", "role": "BILLING"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.json()["role"], "BILLING");
    assert_eq!(renamed.json()["displayName"], "Renamed");

    // An ADMIN cannot touch a SUPER_ADMIN of the same tenant.
    let boss = app.create_user(tenant, Role::SuperAdmin).await;
    let touch =
        app.authed(Method::PATCH, &format!("/api/users/{}", boss.id), &token, Some(json!({"displayName": "x"}))).await;
    assert_eq!(touch.status, StatusCode::FORBIDDEN);

    // Nobody disables themself.
    let me = format!("/api/users/{}", admin.id);
    assert_eq!(
        app.authed(Method::PATCH, &me, &token, Some(json!({"status": "DISABLED"}))).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.authed(Method::DELETE, &me, &token, None).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    let listed = app.authed(Method::GET, "/api/users?limit=2", &token, None).await.json();
    assert_eq!(listed["items"].as_array().expect("items").len(), 2);
    let cursor = listed["nextCursor"].as_str().expect("more users").to_string();
    let rest = app.authed(Method::GET, &format!("/api/users?limit=2&cursor={cursor}"), &token, None).await.json();
    assert_eq!(rest["items"].as_array().expect("items").len(), 1);
    assert!(rest["nextCursor"].is_null());
    assert_eq!(
        app.authed(Method::GET, "/api/users?limit=500", &token, None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn disabling_or_changing_a_password_ends_sessions() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let admin_token = app.token(&app.create_user(tenant, Role::Admin).await).await;
    let target = app.create_user(tenant, Role::Support).await;

    let session = app.login(&target).await;
    let access = session["accessToken"].as_str().expect("access").to_string();
    let changed = app
        .authed(
            Method::PATCH,
            &format!("/api/users/{}", target.id),
            &admin_token,
            Some(json!({"password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(app.authed(Method::GET, "/api/auth/me", &access, None).await.status, StatusCode::UNAUTHORIZED);
    let refreshed = app
        .request(mpanel_tests::request(
            Method::POST,
            "/api/auth/refresh",
            &[],
            Some(json!({"refreshToken": session["refreshToken"]})),
        ))
        .await;
    assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED);

    let mut with_new = target.clone();
    with_new.password = "a brand new passphrase".into();
    let access = app.token(&with_new).await;
    let disabled = app.authed(Method::DELETE, &format!("/api/users/{}", target.id), &admin_token, None).await;
    assert_eq!(disabled.status, StatusCode::NO_CONTENT);
    assert_eq!(app.authed(Method::GET, "/api/auth/me", &access, None).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn super_admins_create_tenants() {
    let app = spawn_app().await;
    let home = app.create_tenant("home").await;
    let token = app.token(&app.create_user(home, Role::SuperAdmin).await).await;
    let created =
        app.authed(Method::POST, "/api/tenants", &token, Some(json!({"slug": "new-host", "name": "New Host"}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["slug"], "new-host");
    let again =
        app.authed(Method::POST, "/api/tenants", &token, Some(json!({"slug": "new-host", "name": "Again"}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["errors"][0]["field"], "slug");
    let bad = app.authed(Method::POST, "/api/tenants", &token, Some(json!({"slug": "Bad Slug", "name": ""}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["errors"].as_array().expect("errors").len(), 2);
    let listed = app.authed(Method::GET, "/api/tenants", &token, None).await.json();
    assert_eq!(listed["items"].as_array().expect("items").len(), 2);
}

#[tokio::test]
async fn audit_log_lists_newest_first_with_filters() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    let admin = app.create_user(tenant, Role::Admin).await;
    let token = app.token(&admin).await;
    app.authed(Method::POST, "/api/users", &token, Some(new_user("one@acme.example", "SUPPORT"))).await;

    let all = app.authed(Method::GET, "/api/audit-logs", &token, None).await;
    assert_eq!(all.status, StatusCode::OK);
    let items = all.json()["items"].as_array().expect("items").clone();
    let actions: Vec<&str> = items.iter().map(|i| i["action"].as_str().expect("action")).collect();
    // Newest first: the API-created user, the login, then the setup rows.
    assert_eq!(&actions[..2], ["user.created", "auth.login"], "{actions:?}");
    let times: Vec<&str> = items.iter().map(|i| i["createdAt"].as_str().expect("time")).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert_eq!(items[0]["actorUserId"], admin.id.to_string());

    let logins = app.authed(Method::GET, "/api/audit-logs?action=auth.login", &token, None).await.json();
    assert_eq!(logins["items"].as_array().expect("items").len(), 1);
    let future = app.authed(Method::GET, "/api/audit-logs?from=2999-01-01T00:00:00Z", &token, None).await.json();
    assert!(future["items"].as_array().expect("items").is_empty());
    let bad = app.authed(Method::GET, "/api/audit-logs?from=yesterday", &token, None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["errors"][0]["field"], "from");

    // Another tenant's admin sees none of it.
    let other = app.create_tenant("other").await;
    let other_token = app.token(&app.create_user(other, Role::Admin).await).await;
    let theirs = app.authed(Method::GET, "/api/audit-logs", &other_token, None).await.json();
    assert!(theirs["items"].as_array().expect("items").iter().all(|i| i["tenantId"] == other.to_string()), "{theirs}");
}
