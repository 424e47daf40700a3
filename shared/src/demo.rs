//! `mpanel seed-demo`: a tenant `demo` with an ADMIN, a small catalogue and
//! (when the local sshd is configured) a WEB server. Safe to run repeatedly:
//! existing rows are kept and the admin's password is reset and printed.

use base64::Engine;
use serde_json::json;
use tokio_postgres::types::Type;

use crate::audit_log::Actor;
use crate::auth::{Role, password};
use crate::config::Env;
use crate::db::DbPool;
use crate::error::{AppError, AppResult};
use crate::secrets::Secret;
use crate::types::{DisplayName, EmailAddress, Slug};
use crate::{tenants, users};

pub const DEMO_TENANT: &str = "demo";
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.mpanel.test";

pub struct Seeded {
    pub tenant_id: uuid::Uuid,
    pub tenant_slug: String,
    pub admin_email: String,
    pub admin_password: Secret<String>,
}

struct DemoPrice {
    slug: &'static str,
    name: &'static str,
    interval: &'static str,
    amount_cents: i64,
    popular: bool,
}

struct DemoProduct {
    slug: &'static str,
    name: &'static str,
    product_type: &'static str,
    description: &'static str,
    limits: serde_json::Value,
    prices: Vec<DemoPrice>,
}

fn catalogue() -> Vec<DemoProduct> {
    vec![
        DemoProduct {
            slug: "starter",
            name: "Starter",
            product_type: "SHARED_HOSTING",
            description: "One website, 10 GB disk, 5 mailboxes.",
            limits: json!({ "emails": 5, "diskMb": 10240 }),
            prices: vec![
                DemoPrice {
                    slug: "starter-monthly",
                    name: "Starter monthly",
                    interval: "MONTHLY",
                    amount_cents: 999,
                    popular: true,
                },
                DemoPrice {
                    slug: "starter-yearly",
                    name: "Starter yearly",
                    interval: "YEARLY",
                    amount_cents: 9990,
                    popular: false,
                },
            ],
        },
        DemoProduct {
            slug: "business",
            name: "Business",
            product_type: "SHARED_HOSTING",
            description: "One website, 50 GB disk, 50 mailboxes.",
            limits: json!({ "emails": 50, "diskMb": 51200 }),
            prices: vec![
                DemoPrice {
                    slug: "business-monthly",
                    name: "Business monthly",
                    interval: "MONTHLY",
                    amount_cents: 2499,
                    popular: false,
                },
                DemoPrice {
                    slug: "business-yearly",
                    name: "Business yearly",
                    interval: "YEARLY",
                    amount_cents: 24990,
                    popular: false,
                },
            ],
        },
        DemoProduct {
            slug: "site-only",
            name: "Site only",
            product_type: "SHARED_HOSTING",
            description: "One website without mail.",
            limits: json!({ "emails": 0, "diskMb": 2048 }),
            prices: vec![DemoPrice {
                slug: "site-only-monthly",
                name: "Site only monthly",
                interval: "MONTHLY",
                amount_cents: 399,
                popular: false,
            }],
        },
    ]
}

pub async fn seed(db: &DbPool, env: &Env) -> AppResult<Seeded> {
    let admin_password = match env.get("MPANEL_DEMO_PASSWORD") {
        Some(p) => p.clone(),
        None => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 15]>()),
    };
    password::check_rules("MPANEL_DEMO_PASSWORD", &admin_password).map_err(|e| AppError::Validation(vec![e]))?;
    let password_hash = password::hash(Secret::new(admin_password.clone())).await?;

    let client = db.get().await?;
    let slug = Slug::parse(DEMO_TENANT).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    let tenant = match tenants::find_by_slug(&**client, DEMO_TENANT).await? {
        Some(t) => t,
        None => {
            let name = DisplayName::parse("Demo Hosting").map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
            tenants::create(&**client, &slug, &name, Actor::System).await?
        }
    };

    let email = EmailAddress::parse(DEMO_ADMIN_EMAIL).map_err(|e| AppError::internal(anyhow::anyhow!(e)))?;
    match users::find_by_email(&**client, &email).await? {
        Some(user) => users::set_password_hash(&**client, user.id, &password_hash, Actor::System).await?,
        None => {
            users::create(
                &**client,
                &users::NewUser {
                    tenant_id: tenant.id,
                    email,
                    role: Role::Admin,
                    display_name: DisplayName::parse("Demo Admin").ok(),
                    password_hash,
                },
                Actor::System,
            )
            .await?;
        }
    }

    for product in catalogue() {
        client
            .query_typed(
                "INSERT INTO products (tenant_id, name, slug, type, description, limits)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id, lower(slug)) DO NOTHING",
                &[
                    (&tenant.id, Type::UUID),
                    (&product.name, Type::TEXT),
                    (&product.slug, Type::TEXT),
                    (&product.product_type, Type::TEXT),
                    (&product.description, Type::TEXT),
                    (&product.limits, Type::JSONB),
                ],
            )
            .await?;
        for price in &product.prices {
            client
                .query_typed(
                    "INSERT INTO prices (tenant_id, product_id, name, slug, interval, amount_cents, currency, is_popular)
                     SELECT $1, p.id, $3, $4, $5, $6, 'USD', $7
                     FROM products p WHERE p.tenant_id = $1 AND lower(p.slug) = lower($2)
                     ON CONFLICT (tenant_id, lower(slug)) DO NOTHING",
                    &[
                        (&tenant.id, Type::UUID),
                        (&product.slug, Type::TEXT),
                        (&price.name, Type::TEXT),
                        (&price.slug, Type::TEXT),
                        (&price.interval, Type::TEXT),
                        (&price.amount_cents, Type::INT8),
                        (&price.popular, Type::BOOL),
                    ],
                )
                .await?;
        }
    }

    // The local sshd from ./scripts/stack, when its variables are present.
    if let (Some(host), Some(port), Some(user), Some(host_key), Some(web_root)) = (
        env.get("MPANEL_TEST_SSH_HOST"),
        env.get("MPANEL_TEST_SSH_PORT").and_then(|p| p.parse::<i32>().ok()),
        env.get("MPANEL_TEST_SSH_USER"),
        env.get("MPANEL_TEST_SSH_HOST_KEY"),
        env.get("MPANEL_TEST_WEB_ROOT"),
    ) {
        client
            .query_typed(
                "INSERT INTO servers (tenant_id, name, role, ip_address, ssh_host, ssh_port, ssh_user, host_key, web_root)
                 VALUES ($1, 'local-web-1', 'WEB', '127.0.0.1', $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id, lower(name)) DO UPDATE
                 SET ssh_host = EXCLUDED.ssh_host, ssh_port = EXCLUDED.ssh_port, ssh_user = EXCLUDED.ssh_user,
                     host_key = EXCLUDED.host_key, web_root = EXCLUDED.web_root, updated_at = now()",
                &[
                    (&tenant.id, Type::UUID),
                    (host, Type::TEXT),
                    (&port, Type::INT4),
                    (user, Type::TEXT),
                    (host_key, Type::TEXT),
                    (web_root, Type::TEXT),
                ],
            )
            .await?;
    }

    Ok(Seeded {
        tenant_id: tenant.id,
        tenant_slug: tenant.slug,
        admin_email: DEMO_ADMIN_EMAIL.to_string(),
        admin_password: Secret::new(admin_password),
    })
}

/// On the local stack, installs the demo tenant's own SSH key for the local
/// sshd's hosting user (an operator does this by hand on a real server), so
/// the demo's orders provision. Nothing happens elsewhere.
pub async fn authorize_local_key(state: &crate::state::AppState, env: &Env, tenant_id: uuid::Uuid) -> AppResult<()> {
    let (Some(file), Some(keys)) = (env.get("MPANEL_TEST_SSH_AUTHORIZED_KEYS"), state.tenant_keys.as_deref()) else {
        return Ok(());
    };
    let public = keys.public_key(&state.db, tenant_id).await?;
    let present = std::fs::read_to_string(file).map_err(AppError::internal)?;
    if !present.lines().any(|line| line == public) {
        let mut out = std::fs::OpenOptions::new().append(true).open(file).map_err(AppError::internal)?;
        std::io::Write::write_all(&mut out, format!("{public}\n").as_bytes()).map_err(AppError::internal)?;
    }
    Ok(())
}
