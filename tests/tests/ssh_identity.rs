//! One SSH identity per tenant (issue #17 point 8): jobs reach a tenant's
//! servers with that tenant's key only, kept in SSH_KEY_DIR or Secrets
//! Manager; errors name what failed without ssh's own words; servers still
//! on the platform key cannot be re-aimed. Real sshd, moto and Postgres.

use std::os::unix::fs::PermissionsExt;

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel::engine::{RunOutcome, run_job};
use mpanel_tests::hosting::{Hosting, app, job_of, site};
use mpanel_tests::unique_domain;
use serde_json::json;
use uuid::Uuid;

/// Registers the local sshd for `tenant` without installing its key.
async fn server_without_key(h: &Hosting, tenant: Uuid, identity: &str) -> Uuid {
    let env = &h.app.env;
    let port: i32 = env["MPANEL_TEST_SSH_PORT"].parse().expect("port");
    h.app
        .db()
        .await
        .query_one(
            "INSERT INTO servers (tenant_id, name, role, ip_address, ssh_host, ssh_port, ssh_user, host_key, web_root, ssh_identity)
             VALUES ($1, $2, 'WEB', '127.0.0.1', $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &tenant,
                &format!("web-{}", Uuid::new_v4().simple()),
                &env["MPANEL_TEST_SSH_HOST"],
                &port,
                &env["MPANEL_TEST_SSH_USER"],
                &env["MPANEL_TEST_SSH_HOST_KEY"],
                &env["MPANEL_TEST_WEB_ROOT"],
                &identity,
            ],
        )
        .await
        .expect("server")
        .get(0)
}

async fn order_for(h: &Hosting, slug: &str, domain: &str) -> Vec<(Uuid, String)> {
    let body = json!({
        "tenantSlug": slug, "externalOrderId": format!("ext-{domain}"),
        "customer": {"email": "owner@example.org", "fullName": "Site Owner"},
        "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD", "domain": domain,
    });
    let response = h.app.request(h.app.signed_order(&format!("msg-{domain}"), &body)).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&response.body));
    let subscription = Uuid::parse_str(response.json()["subscriptionId"].as_str().expect("id")).expect("uuid");
    h.app.jobs_of(subscription).await
}

#[tokio::test]
async fn a_tenants_jobs_use_only_its_own_key_and_errors_hide_ssh_output() {
    // Tenant `host` has its key installed; tenant `other` registers the same
    // host without installing its key. The platform key is authorised there
    // too, and must not be used.
    let h = Hosting::new().await;
    let other = h.app.create_tenant("other").await;
    h.app.catalog_price(other, "starter", "SHARED_HOSTING", json!({"emails": 0}), 999).await;
    server_without_key(&h, other, "TENANT").await;

    let domain = unique_domain();
    let jobs = order_for(&h, "other", &domain).await;
    let hosting = job_of(&jobs, "PROVISION_HOSTING");
    assert_eq!(h.run(hosting).await, RunOutcome::Dead, "reached the server with a key that is not the tenant's");
    let error: String =
        h.app.db().await.query_one("SELECT last_error FROM jobs WHERE id = $1", &[&hosting]).await.expect("job").get(0);
    assert!(error.contains("SSH login refused") && error.contains("/api/ssh-key"), "{error}");
    assert!(!error.contains("Permission denied") && !error.contains("publickey"), "raw ssh output: {error}");
    assert!(!site(&h.app.env, &domain).exists());

    // Once its key is installed, the same job runs.
    h.app.authorize_tenant_key(other).await;
    let admin = h.app.token(&h.app.create_user(other, Role::Admin).await).await;
    let retried = h.app.authed(Method::POST, &format!("/api/jobs/{hosting}/retry"), &admin, None).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.json());
    assert_eq!(h.run(hosting).await, RunOutcome::Succeeded);
    assert!(site(&h.app.env, &domain).join("public/index.html").exists());
}

#[tokio::test]
async fn get_ssh_key_shows_the_tenants_public_key_made_once_and_kept_private() {
    let app = app().await;
    let tenant = app.create_tenant("keys").await;
    let admin = app.token(&app.create_user(tenant, Role::Admin).await).await;
    let support = app.token(&app.create_user(tenant, Role::Support).await).await;

    let first = app.authed(Method::GET, "/api/ssh-key", &admin, None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", String::from_utf8_lossy(&first.body));
    let public = first.json()["publicKey"].as_str().expect("publicKey").to_string();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    let again = app.authed(Method::GET, "/api/ssh-key", &admin, None).await.json();
    assert_eq!(again["publicKey"], public.as_str(), "the key changed");
    assert_eq!(app.authed(Method::GET, "/api/ssh-key", &support, None).await.status, StatusCode::FORBIDDEN);

    let other = app.create_tenant("keys-two").await;
    let other_admin = app.token(&app.create_user(other, Role::Admin).await).await;
    let theirs = app.authed(Method::GET, "/api/ssh-key", &other_admin, None).await.json();
    assert_ne!(theirs["publicKey"], public.as_str(), "two tenants share a key");

    let file = std::path::Path::new(&app.env["SSH_KEY_DIR"]).join(tenant.to_string());
    let mode = std::fs::metadata(&file).expect("private key file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::read_to_string(&file).expect("key").starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    let stored: Vec<String> = app
        .db()
        .await
        .query("SELECT public_key FROM tenant_ssh_keys", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(stored.iter().all(|k| !k.contains("PRIVATE")), "{stored:?}");
}

#[tokio::test]
async fn without_a_key_directory_the_key_lives_in_secrets_manager() {
    let h = Hosting::new().await;
    let prefix = format!("mpanel/test-{}/tenant-ssh/", Uuid::new_v4().simple());
    let state = h
        .app
        .state_with(|env| {
            env.remove("SSH_KEY_DIR");
            env.insert("SSH_KEY_SECRET_PREFIX".into(), prefix.clone());
        })
        .await;
    let tenant = h.app.create_tenant("sm").await;
    h.app.catalog_price(tenant, "starter", "SHARED_HOSTING", json!({"emails": 0}), 999).await;
    let keys = state.tenant_keys.as_deref().expect("Secrets Manager store");
    let public = keys.public_key(&state.db, tenant).await.expect("made in Secrets Manager");

    let aws = mpanel::config::aws_sdk_config(&h.app.env).await.expect("aws");
    let secret = aws_sdk_secretsmanager::Client::new(&aws)
        .get_secret_value()
        .secret_id(format!("{prefix}{tenant}"))
        .send()
        .await
        .expect("the secret exists in moto");
    assert!(secret.secret_string().unwrap_or_default().contains("OPENSSH PRIVATE KEY"));
    assert!(!std::path::Path::new(&h.app.env["SSH_KEY_DIR"]).join(tenant.to_string()).exists());

    // A job run by that process logs in with it.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&h.app.env["MPANEL_TEST_SSH_AUTHORIZED_KEYS"])
        .expect("authorized_keys");
    std::io::Write::write_all(&mut file, format!("{public}\n").as_bytes()).expect("install");
    server_without_key(&h, tenant, "TENANT").await;
    let domain = unique_domain();
    let jobs = order_for(&h, "sm", &domain).await;
    let hosting = job_of(&jobs, "PROVISION_HOSTING");
    assert_eq!(run_job(&state, hosting, "sm-worker").await.expect("runs"), RunOutcome::Succeeded);
    assert!(site(&h.app.env, &domain).join("public/index.html").exists());
}

#[tokio::test]
async fn a_server_on_the_platform_key_works_until_moved_and_cannot_be_re_aimed() {
    let h = Hosting::new().await;
    let legacy = h.app.create_tenant("legacy").await;
    h.app.catalog_price(legacy, "starter", "SHARED_HOSTING", json!({"emails": 0}), 999).await;
    let server = server_without_key(&h, legacy, "PLATFORM").await;
    let domain = unique_domain();
    let jobs = order_for(&h, "legacy", &domain).await;
    assert_eq!(h.run(job_of(&jobs, "PROVISION_HOSTING")).await, RunOutcome::Succeeded, "the platform key works");

    let admin = h.app.token(&h.app.create_user(legacy, Role::Admin).await).await;
    let path = format!("/api/servers/{server}");
    let shown = h.app.authed(Method::GET, &path, &admin, None).await.json();
    assert_eq!(shown["sshIdentity"], "PLATFORM");
    let aimed = h.app.authed(Method::PATCH, &path, &admin, Some(json!({"sshHost": "10.0.0.9"}))).await;
    assert_eq!(aimed.status, StatusCode::CONFLICT, "{}", aimed.json());
    assert_eq!(aimed.json()["errors"][0]["field"], "sshHost", "{}", aimed.json());
    let back = h.app.authed(Method::PATCH, &path, &admin, Some(json!({"sshIdentity": "PLATFORM"}))).await;
    assert_eq!(back.status, StatusCode::UNPROCESSABLE_ENTITY);

    let moved = h.app.authed(Method::PATCH, &path, &admin, Some(json!({"sshIdentity": "TENANT"}))).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.json());
    assert_eq!(moved.json()["sshIdentity"], "TENANT");
    // Its tenant's key is not installed yet: the platform key is no longer used.
    let admin_ops = h.app.token(&h.app.create_user(legacy, Role::Admin).await).await;
    let sub = h.app.db().await.query_one("SELECT subscription_id FROM jobs WHERE id = $1", &[&jobs[0].0]).await;
    let subscription: Uuid = sub.expect("job").get(0);
    for (id, job_type) in &jobs {
        if job_type != "PROVISION_HOSTING" {
            h.run(*id).await;
        }
    }
    let suspend = h
        .app
        .authed(
            Method::POST,
            &format!("/api/subscriptions/{subscription}/suspend"),
            &admin_ops,
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(suspend.status, StatusCode::ACCEPTED, "{}", suspend.json());
    let job = Uuid::parse_str(suspend.json()["jobs"][0]["id"].as_str().expect("id")).expect("uuid");
    assert_eq!(h.run(job).await, RunOutcome::Dead);
}
