//! Migrations and the schema's own guarantees, on the real PostgreSQL.

use std::str::FromStr;

use mpanel::secrets::Secret;
use mpanel_tests::{database_url, empty_database, spawn_app, stack_env};
use tokio_postgres::NoTls;

const TABLES: [&str; 22] = [
    "tenant_ssh_keys",
    "tenants",
    "users",
    "refresh_tokens",
    "servers",
    "products",
    "prices",
    "customers",
    "orders",
    "subscriptions",
    "domains",
    "dns_zones",
    "dns_records",
    "hosting_accounts",
    "vps_instances",
    "mail_accounts",
    "backup_jobs",
    "jobs",
    "job_attempts",
    "audit_logs",
    "ssl_certificates",
    "webhook_deliveries",
];

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn migrate_creates_every_table_then_does_nothing() {
    let env = stack_env();
    let db = empty_database(&env).await;
    let url = database_url(&env, &db);
    let config = Secret::new(mpanel::db::DbConfig::plain(tokio_postgres::Config::from_str(&url).expect("url")));

    let first = mpanel::db::migrate(&config).await.expect("first migrate");
    assert!(!first.applied_migrations().is_empty());

    let client = connect(&url).await;
    for table in TABLES {
        let found = client
            .query_opt(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' AND table_name = $1",
                &[&table],
            )
            .await
            .expect("query");
        assert!(found.is_some(), "table {table} missing");
    }

    let second = mpanel::db::migrate(&config).await.expect("second migrate");
    assert!(second.applied_migrations().is_empty(), "second run applied something");
}

#[tokio::test]
async fn a_changed_applied_migration_is_refused() {
    let env = stack_env();
    let db = empty_database(&env).await;
    let config = Secret::new(mpanel::db::DbConfig::plain(
        tokio_postgres::Config::from_str(&database_url(&env, &db)).expect("url"),
    ));
    mpanel::db::migrate(&config).await.expect("migrate");

    let mut changed = mpanel::db::migrations();
    let first = &changed[0];
    let edited_sql = format!("{}\n-- edited after it was applied\n", first.sql().expect("sql"));
    changed[0] = refinery::Migration::unapplied(&format!("V{}__{}", first.version(), first.name()), &edited_sql)
        .expect("migration");
    let err = mpanel::db::migrate_with(&config, &changed).await.expect_err("must refuse");
    let refinery_err = err.downcast_ref::<refinery::Error>().expect("a refinery error");
    assert!(matches!(refinery_err.kind(), refinery::error::Kind::DivergentVersion(..)), "unexpected error: {err:#}");
}

#[tokio::test]
async fn concurrent_migrations_do_not_race() {
    let env = stack_env();
    let db = empty_database(&env).await;
    let config = Secret::new(mpanel::db::DbConfig::plain(
        tokio_postgres::Config::from_str(&database_url(&env, &db)).expect("url"),
    ));
    let (a, b) = tokio::join!(mpanel::db::migrate(&config), mpanel::db::migrate(&config));
    let applied = a.expect("a").applied_migrations().len() + b.expect("b").applied_migrations().len();
    assert_eq!(applied, mpanel::db::migrations().len());
}

async fn tenant(client: &tokio_postgres::Client, slug: &str) -> uuid::Uuid {
    client
        .query_one("INSERT INTO tenants (slug, name) VALUES ($1, $1) RETURNING id", &[&slug])
        .await
        .expect("tenant")
        .get(0)
}

fn sqlstate(err: &tokio_postgres::Error) -> String {
    err.code().map(|c| c.code().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn people_typed_identifiers_are_unique_case_insensitively() {
    let app = spawn_app().await;
    let client = app.db().await;
    let a = tenant(&client, "acme").await;

    let err = client
        .execute("INSERT INTO tenants (slug, name) VALUES ('ACME', 'x')", &[])
        .await
        .expect_err("upper-case slug is rejected");
    assert_eq!(sqlstate(&err), "23514", "slugs are stored lower-case only");

    client
        .execute(
            "INSERT INTO users (tenant_id, email, password_hash, role) VALUES ($1, 'Jo@Example.org', 'x', 'ADMIN')",
            &[&a],
        )
        .await
        .expect("user");
    let err = client
        .execute(
            "INSERT INTO users (tenant_id, email, password_hash, role) VALUES ($1, 'jo@example.ORG', 'x', 'ADMIN')",
            &[&a],
        )
        .await
        .expect_err("same email in another case");
    let app_err = mpanel::AppError::from(err);
    assert_eq!(app_err.status(), http::StatusCode::CONFLICT);
    assert_eq!(app_err.to_problem().errors[0].field, "email");
}

#[tokio::test]
async fn statuses_and_roles_are_constrained() {
    let app = spawn_app().await;
    let client = app.db().await;
    let a = tenant(&client, "acme").await;
    let err = client
        .execute("INSERT INTO users (tenant_id, email, password_hash, role) VALUES ($1, 'a@b.co', 'x', 'admin')", &[&a])
        .await
        .expect_err("lower-case role");
    assert_eq!(sqlstate(&err), "23514");
    let err = client
        .execute("INSERT INTO jobs (tenant_id, type, status) VALUES ($1, 'PROVISION_DNS', 'DONE')", &[&a])
        .await
        .expect_err("unknown job status");
    assert_eq!(sqlstate(&err), "23514");
    let err = client
        .execute("INSERT INTO jobs (tenant_id, type, status) VALUES ($1, 'PROVISION_DNS', 'RUNNING')", &[&a])
        .await
        .expect_err("RUNNING without a lease");
    assert_eq!(sqlstate(&err), "23514");
}

/// Builds tenant → product → price → customer → order → subscription → domain rows.
async fn domain_holder(
    client: &tokio_postgres::Client,
    tenant_id: uuid::Uuid,
    external: &str,
    domain: &str,
) -> Result<uuid::Uuid, tokio_postgres::Error> {
    let sql = "
        WITH p AS (
            INSERT INTO products (tenant_id, name, slug, type) VALUES ($1, 'P', 'p-' || $2, 'SHARED_HOSTING') RETURNING id
        ), pr AS (
            INSERT INTO prices (tenant_id, product_id, name, slug, interval, amount_cents, currency)
            SELECT $1, p.id, 'M', 'm-' || $2, 'MONTHLY', 999, 'USD' FROM p RETURNING id, product_id
        ), c AS (
            INSERT INTO customers (tenant_id, email, full_name) VALUES ($1, $2 || '@example.org', 'C') RETURNING id
        ), o AS (
            INSERT INTO orders (tenant_id, customer_id, price_id, external_order_id, total_amount_cents, currency, request_hash)
            SELECT $1, c.id, pr.id, $2, 999, 'USD', '\\x00' FROM c, pr RETURNING id, customer_id, price_id
        ), s AS (
            INSERT INTO subscriptions (tenant_id, customer_id, order_id, product_id, price_id)
            SELECT $1, o.customer_id, o.id, pr.product_id, pr.id FROM o, pr RETURNING id
        )
        INSERT INTO domains (tenant_id, subscription_id, name) SELECT $1, s.id, $3 FROM s RETURNING id";
    Ok(client.query_one(sql, &[&tenant_id, &external, &domain]).await?.get(0))
}

#[tokio::test]
async fn a_domain_has_one_live_holder_across_tenants() {
    let app = spawn_app().await;
    let client = app.db().await;
    let a = tenant(&client, "acme").await;
    let b = tenant(&client, "bravo").await;
    let held = domain_holder(&client, a, "o1", "jo-example.com").await.expect("first holder");

    let err = domain_holder(&client, b, "o2", "jo-example.com").await.expect_err("second live holder");
    let app_err = mpanel::AppError::from(err);
    assert_eq!(app_err.status(), http::StatusCode::CONFLICT);
    assert_eq!(app_err.to_problem().errors[0].field, "domain");

    client.execute("UPDATE domains SET status = 'RELEASED' WHERE id = $1", &[&held]).await.expect("release");
    domain_holder(&client, b, "o3", "jo-example.com").await.expect("released domain can be ordered again");
}

#[tokio::test]
async fn rows_cannot_point_across_tenants() {
    let app = spawn_app().await;
    let client = app.db().await;
    let a = tenant(&client, "acme").await;
    let b = tenant(&client, "bravo").await;
    let product: uuid::Uuid = client
        .query_one(
            "INSERT INTO products (tenant_id, name, slug, type) VALUES ($1, 'P', 'p', 'DNS') RETURNING id",
            &[&a],
        )
        .await
        .expect("product")
        .get(0);
    let err = client
        .execute(
            "INSERT INTO prices (tenant_id, product_id, name, slug, interval, amount_cents, currency)
             VALUES ($1, $2, 'x', 'x', 'MONTHLY', 1, 'USD')",
            &[&b, &product],
        )
        .await
        .expect_err("price of tenant B on tenant A's product");
    assert_eq!(sqlstate(&err), "23503");
}

/// The planner, forbidden sequential scans, must find an index for the hot
/// queries: the job claim, the lease rescue, and the list filters.
#[tokio::test]
async fn hot_queries_have_indexes() {
    let app = spawn_app().await;
    let client = app.db().await;
    client.batch_execute("SET enable_seqscan = off").await.expect("set");
    let queries = [
        (
            "jobs_claim_idx",
            "SELECT id FROM jobs WHERE status IN ('PENDING','RETRYING') AND run_after <= now() ORDER BY run_after LIMIT 10",
        ),
        ("jobs_lease_idx", "SELECT id FROM jobs WHERE status = 'RUNNING' AND locked_until < now()"),
        (
            "jobs_tenant_status_idx",
            "SELECT id FROM jobs WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND status = 'DEAD' ORDER BY created_at DESC, id DESC LIMIT 50",
        ),
        (
            "jobs_tenant_type_idx",
            "SELECT id FROM jobs WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND type = 'PROVISION_DNS' ORDER BY created_at DESC, id DESC LIMIT 50",
        ),
        (
            "orders_tenant_status_idx",
            "SELECT id FROM orders WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND status = 'PAID' ORDER BY created_at DESC, id DESC LIMIT 50",
        ),
        (
            "orders_tenant_customer_idx",
            "SELECT id FROM orders WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND customer_id = '00000000-0000-0000-0000-000000000001' ORDER BY created_at DESC, id DESC LIMIT 50",
        ),
        (
            "subscriptions_tenant_status_idx",
            "SELECT id FROM subscriptions WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND status = 'ACTIVE' ORDER BY created_at DESC, id DESC LIMIT 50",
        ),
        (
            "audit_logs_tenant_action_idx",
            "SELECT id FROM audit_logs WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND action = 'auth.login' ORDER BY created_at DESC, id DESC LIMIT 50",
        ),
        (
            "mail_accounts_tenant_domain_idx",
            "SELECT id FROM mail_accounts WHERE tenant_id = '00000000-0000-0000-0000-000000000001' AND domain_name = 'x.com' ORDER BY created_at DESC, id DESC LIMIT 50",
        ),
    ];
    for (index, sql) in queries {
        let plan: Vec<String> =
            client.query(&format!("EXPLAIN {sql}"), &[]).await.expect("explain").iter().map(|r| r.get(0)).collect();
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{index} not used by {sql}:\n{plan}");
    }
}
