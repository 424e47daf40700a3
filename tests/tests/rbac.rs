//! Every route of every function, called by each of the five roles and by
//! an anonymous caller, answers exactly as the permission table says. The
//! route list comes from the code, so a new route joins this test by itself.

use http::{Method, StatusCode};
use mpanel::app::all_routes;
use mpanel::auth::{Permission, Role};
use mpanel::types::Named;
use mpanel_tests::{request, spawn_app_with};
use serde_json::json;

/// Routes anyone may call. Adding a public route means adding it here too.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("GET", "/api/ready"),
    ("GET", "/api/openapi.json"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("GET", "/api/public/products"),
    ("POST", "/api/orders"),
    ("POST", "/api/subscriptions/events"),
];

fn concrete(path: &str) -> String {
    path.replace("{id}", &uuid::Uuid::new_v4().to_string())
}

#[tokio::test]
async fn every_route_answers_each_role_as_the_table_says() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_MAX".into(), "100000".into());
    })
    .await;
    let tenant = app.create_tenant("acme").await;
    let mut users = Vec::new();
    for &role in Role::all() {
        users.push(app.create_user(tenant, role).await);
    }

    let routes = all_routes();
    assert!(routes.specs().len() > 10, "route list looks empty");
    for spec in routes.specs() {
        let key = (spec.method.as_str(), spec.path);
        if spec.permission == Permission::Public {
            assert!(PUBLIC.contains(&key), "{key:?} is public but not in the public list");
            continue;
        }
        assert!(!PUBLIC.contains(&key), "{key:?} is listed public but requires {:?}", spec.permission);
        let body = matches!(spec.method, Method::POST | Method::PATCH | Method::PUT).then(|| json!({}));

        let anonymous = app.request(request(spec.method.clone(), &concrete(spec.path), &[], body.clone())).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "anonymous {key:?}");
        assert_eq!(anonymous.header("content-type"), Some("application/problem+json"));

        for user in &users {
            let role = user.role;
            // A fresh session per call: some routes (logout) end the session.
            let token = app.token(user).await;
            let response = app.authed(spec.method.clone(), &concrete(spec.path), &token, body.clone()).await;
            if spec.permission.allows(role) {
                assert!(
                    response.status != StatusCode::UNAUTHORIZED && response.status != StatusCode::FORBIDDEN,
                    "{role} should reach {key:?}, got {}: {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                );
                assert!(response.status.as_u16() < 500, "{role} {key:?}: {}", response.status);
            } else {
                assert_eq!(response.status, StatusCode::FORBIDDEN, "{role} {key:?}");
            }
        }
    }
}

#[tokio::test]
async fn tenants_are_isolated_and_only_super_admins_cross() {
    let app = spawn_app_with(|env| {
        env.insert("RATE_LIMIT_MAX".into(), "100000".into());
    })
    .await;
    let a = app.create_tenant("a").await;
    let b = app.create_tenant("b").await;
    let a_admin = app.token(&app.create_user(a, Role::Admin).await).await;
    let a_super = app.token(&app.create_user(a, Role::SuperAdmin).await).await;
    let b_user = app.create_user(b, Role::Support).await;
    let path = format!("/api/users/{}", b_user.id);

    // Another tenant's id is simply not found.
    assert_eq!(app.authed(Method::GET, &path, &a_admin, None).await.status, StatusCode::NOT_FOUND);
    let patch = app.authed(Method::PATCH, &path, &a_admin, Some(json!({"displayName": "hijacked"}))).await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    assert_eq!(app.authed(Method::DELETE, &path, &a_admin, None).await.status, StatusCode::NOT_FOUND);
    let listed = app.authed(Method::GET, "/api/users", &a_admin, None).await.json();
    assert!(listed["items"].as_array().expect("items").iter().all(|u| u["tenantId"] == a.to_string()), "{listed}");
    // The super admin without X-Tenant also stays in their own tenant.
    assert_eq!(app.authed(Method::GET, &path, &a_super, None).await.status, StatusCode::NOT_FOUND);

    let with_tenant = |token: &str, slug: &str| {
        let auth = format!("Bearer {token}");
        request(Method::GET, &path, &[("authorization", auth.as_str()), ("x-tenant", slug)], None)
    };
    let crossed = app.request(with_tenant(&a_super, "b")).await;
    assert_eq!(crossed.status, StatusCode::OK);
    assert_eq!(crossed.json()["email"], b_user.email);
    // Not honoured for anyone else.
    assert_eq!(app.request(with_tenant(&a_admin, "b")).await.status, StatusCode::FORBIDDEN);
    // Unknown tenant: 404.
    assert_eq!(app.request(with_tenant(&a_super, "nope")).await.status, StatusCode::NOT_FOUND);
}
