//! The operator CLI, run in-process with each test's own database.

use clap::Parser;
use mpanel::cli::{Cli, run};
use mpanel_tests::spawn_app;

async fn mpanel(env: &mpanel::config::Env, args: &[&str]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("mpanel").chain(args.iter().copied()))?;
    run(cli, env).await
}

#[tokio::test]
async fn create_tenant_and_user() {
    let app = spawn_app().await;
    let mut env = app.env.clone();
    mpanel(&env, &["create-tenant", "--slug", "acme", "--name", "Acme Hosting"]).await.expect("tenant");

    let dup = mpanel(&env, &["create-tenant", "--slug", "acme", "--name", "Again"]).await;
    assert!(format!("{:#}", dup.expect_err("duplicate slug")).contains("slug"));
    let bad = mpanel(&env, &["create-tenant", "--slug", "Not A Slug", "--name", "x"]).await;
    assert!(format!("{:#}", bad.expect_err("bad slug")).contains("--slug"));

    env.insert("MPANEL_PASSWORD".into(), "a long and unusual passphrase".into());
    mpanel(&env, &["create-user", "--tenant", "acme", "--email", "Ops@Acme.example", "--role", "ADMIN"])
        .await
        .expect("user");

    let client = app.db().await;
    let row = client.query_one("SELECT email, role, password_hash FROM users", &[]).await.expect("user row");
    assert_eq!(row.get::<_, String>(0), "ops@acme.example");
    assert_eq!(row.get::<_, String>(1), "ADMIN");
    let hash: String = row.get(2);
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    let audited: i64 = client
        .query_one("SELECT count(*) FROM audit_logs WHERE action IN ('tenant.created', 'user.created')", &[])
        .await
        .expect("audit")
        .get(0);
    assert_eq!(audited, 2);

    let unknown_role =
        mpanel(&env, &["create-user", "--tenant", "acme", "--email", "b@acme.example", "--role", "admin"]).await;
    assert!(format!("{:#}", unknown_role.expect_err("lower-case role")).contains("--role"));
    let unknown_tenant =
        mpanel(&env, &["create-user", "--tenant", "nope", "--email", "c@acme.example", "--role", "ADMIN"]).await;
    assert!(format!("{:#}", unknown_tenant.expect_err("unknown tenant")).contains("--tenant"));
    env.insert("MPANEL_PASSWORD".into(), "short".into());
    let weak = mpanel(&env, &["create-user", "--tenant", "acme", "--email", "d@acme.example", "--role", "ADMIN"]).await;
    assert!(format!("{:#}", weak.expect_err("weak password")).contains("password"));
    let users: i64 = client.query_one("SELECT count(*) FROM users", &[]).await.expect("count").get(0);
    assert_eq!(users, 1, "failed commands wrote nothing");
}

#[tokio::test]
async fn seed_demo_is_repeatable_and_resets_the_admin_password() {
    let app = spawn_app().await;
    let mut env = app.env.clone();
    env.insert("MPANEL_DEMO_PASSWORD".into(), "first demo passphrase".into());
    mpanel(&env, &["seed-demo"]).await.expect("first seed");
    env.insert("MPANEL_DEMO_PASSWORD".into(), "second demo passphrase".into());
    mpanel(&env, &["seed-demo"]).await.expect("second seed");

    let client = app.db().await;
    let counts: (i64, i64, i64, i64) = {
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM users),
                        (SELECT count(*) FROM products), (SELECT count(*) FROM prices)",
                &[],
            )
            .await
            .expect("counts");
        (row.get(0), row.get(1), row.get(2), row.get(3))
    };
    assert_eq!(counts.0, 1);
    assert_eq!(counts.1, 1);
    assert!(counts.2 >= 2 && counts.3 >= 3, "{counts:?}");
    let servers: i64 =
        client.query_one("SELECT count(*) FROM servers WHERE role = 'WEB'", &[]).await.expect("servers").get(0);
    assert_eq!(servers, 1, "the local sshd is registered as a WEB server");

    let hash: String = client.query_one("SELECT password_hash FROM users", &[]).await.expect("hash").get(0);
    let secret = |s: &str| mpanel::secrets::Secret::new(s.to_string());
    assert!(
        mpanel::auth::password::verify(secret("second demo passphrase"), Some(hash.clone())).await.expect("verify")
    );
    assert!(!mpanel::auth::password::verify(secret("first demo passphrase"), Some(hash)).await.expect("verify"));
}

#[tokio::test]
async fn migrate_reports_up_to_date() {
    let app = spawn_app().await;
    // The test database is a migrated clone: nothing to apply, and no error.
    mpanel(&app.env, &["migrate"]).await.expect("migrate");
}

/// Runs a rendered HTTP event through the function it belongs to.
async fn invoke(app: &mpanel_tests::TestApp, function: mpanel::Function, rendered: &str) -> serde_json::Value {
    use tower::{Service, ServiceExt};
    let request: lambda_http::request::LambdaRequest = serde_json::from_str(rendered).expect("an API Gateway event");
    let mut adapter = lambda_http::Adapter::from(mpanel::app::function_app(function, app.state.clone()));
    let response = adapter
        .ready()
        .await
        .expect("ready")
        .call(lambda_runtime::LambdaEvent::new(request, lambda_runtime::Context::default()))
        .await
        .expect("invoked");
    serde_json::to_value(&response).expect("json")
}

fn sample(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events").join(path))
        .expect("sample event")
}

#[tokio::test]
async fn event_render_fills_tokens_and_signatures_that_the_functions_accept() {
    let app = spawn_app().await;
    let tenant = app.create_tenant("acme").await;
    app.catalog_price(tenant, "starter", "SHARED_HOSTING", serde_json::json!({"emails": 1}), 999).await;
    let admin = app.create_user(tenant, mpanel::auth::Role::Admin).await;

    // A token minted for the tenant's ADMIN: the admin function lets it list users.
    let rendered =
        mpanel::cli::render_event(&app.env, &sample("admin/users-list.200.json"), "acme", &[]).await.expect("renders");
    assert!(!rendered.contains("{{"), "{rendered}");
    assert_eq!(invoke(&app, mpanel::Function::Admin, &rendered).await["statusCode"], 200);
    let issued: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM audit_logs WHERE action = 'auth.session_issued' AND target_id = $1",
            &[&admin.id],
        )
        .await
        .expect("audit")
        .get(0);
    assert_eq!(issued, 1, "the CLI's session is audited");

    // A signed order webhook the orders function takes.
    let rendered =
        mpanel::cli::render_event(&app.env, &sample("orders/webhook.201.json"), "acme", &[]).await.expect("renders");
    assert_eq!(invoke(&app, mpanel::Function::Orders, &rendered).await["statusCode"], 201);

    // Login needs what only the caller knows: named, then taken from --set.
    let login = sample("auth/login.200.json");
    let missing = mpanel::cli::render_event(&app.env, &login, "acme", &[]).await.expect_err("needs --set");
    let message = format!("{missing:#}");
    assert!(message.contains("email:BILLING") && message.contains("password:BILLING"), "{message}");
    let billing = app.create_user(tenant, mpanel::auth::Role::Billing).await;
    let set = [format!("email:BILLING={}", billing.email), format!("password:BILLING={}", billing.password)];
    let rendered = mpanel::cli::render_event(&app.env, &login, "acme", &set).await.expect("renders");
    assert_eq!(invoke(&app, mpanel::Function::Auth, &rendered).await["statusCode"], 200);

    // No SUPPORT user in the tenant: said so, nothing rendered.
    let refused = mpanel::cli::render_event(&app.env, &sample("admin/suspend-invalid.422.json"), "acme", &[])
        .await
        .expect_err("no SUPPORT user");
    assert!(format!("{refused:#}").contains("no active SUPPORT user"), "{refused:#}");
    // Through the command line too: a non-zero exit with one line.
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/auth/login.200.json");
    let via_cli = mpanel(&app.env, &["event", "render", file.to_str().expect("utf-8"), "--tenant", "acme"]).await;
    assert!(format!("{:#}", via_cli.expect_err("missing values")).contains("--set"));
}
