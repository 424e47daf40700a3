//! Each tenant's ACME account: made on first use with the contact email
//! from the tenant's settings (`contactEmail`), its credentials (the account
//! key) sealed with the tenant's data key, one per tenant and ACME server.

use instant_acme::{Account, AccountBuilder, AccountCredentials, NewAccount};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::config::AcmeConfig;
use crate::db::DbPool;
use crate::error::AppError;
use crate::sealing;

/// Why talking to the ACME server failed, sorted for the job engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeError {
    /// Worth another attempt soon (network trouble, the server's own
    /// trouble, a nonce refused more often than the client retries).
    pub retryable: bool,
    /// The account is unknown to the server (e.g. a test server restarted).
    pub account_unknown: bool,
    pub message: String,
}

impl AcmeError {
    pub fn from_acme(what: &str, error: instant_acme::Error) -> AcmeError {
        match error {
            instant_acme::Error::Api(problem) => {
                let kind = problem.r#type.as_deref().unwrap_or("").rsplit(':').next().unwrap_or("").to_string();
                let detail = problem.detail.as_deref().unwrap_or("").chars().take(500).collect::<String>();
                // Rate limits and refused validations would only be refused
                // again at once: the sweep retries them, hours apart.
                let retryable =
                    matches!(kind.as_str(), "badNonce" | "serverInternal") || problem.status.is_some_and(|s| s >= 500);
                AcmeError {
                    retryable,
                    account_unknown: kind == "accountDoesNotExist",
                    message: format!("ACME {what}: {kind}: {detail}"),
                }
            }
            instant_acme::Error::Timeout(_) => AcmeError {
                retryable: true,
                account_unknown: false,
                message: format!("ACME {what}: the server did not finish in time"),
            },
            other => {
                let retryable = !matches!(
                    other,
                    instant_acme::Error::Unsupported(_)
                        | instant_acme::Error::KeyRejected
                        | instant_acme::Error::Crypto
                );
                AcmeError { retryable, account_unknown: false, message: format!("ACME {what}: {other}") }
            }
        }
    }

    pub fn permanent(message: impl Into<String>) -> AcmeError {
        AcmeError { retryable: false, account_unknown: false, message: message.into() }
    }
}

/// An HTTP client for the ACME server: with `ACME_CA_FILE`, that CA alone
/// (a test server's); otherwise the web's roots.
fn builder(config: &AcmeConfig) -> Result<AccountBuilder, AcmeError> {
    let roots = match &config.ca_file {
        Some(path) => crate::tls::roots_of(&[], std::slice::from_ref(path)),
        None => Ok(crate::tls::web_roots()),
    };
    let tls = roots.and_then(crate::tls::client_config_trusting).map_err(AcmeError::permanent)?;
    let client = crate::outbound::client(tls, std::time::Duration::from_secs(10), None)
        .map_err(|e| AcmeError::permanent(format!("ACME client: {e}")))?;
    Ok(Account::builder_with_http(crate::outbound::for_acme(client)))
}

fn sealing_context(tenant_id: Uuid, directory_url: &str) -> Vec<u8> {
    format!("acme-account:{tenant_id}:{directory_url}").into_bytes()
}

/// The tenant's account on the configured server, made (and stored) the
/// first time. `fresh` forgets a stored account the server no longer knows.
pub async fn account(
    db: &DbPool,
    config: &AcmeConfig,
    tenant_id: Uuid,
    data_key: &[u8; 32],
    fresh: bool,
) -> Result<Account, AcmeError> {
    let internal = |e: AppError| AcmeError { retryable: true, account_unknown: false, message: e.to_string() };
    let context = sealing_context(tenant_id, &config.directory_url);
    let client = db.get().await.map_err(|e| internal(e.into()))?;
    if fresh {
        client
            .execute_typed(
                "DELETE FROM acme_accounts WHERE tenant_id = $1 AND directory_url = $2",
                &[(&tenant_id, Type::UUID), (&config.directory_url, Type::TEXT)],
            )
            .await
            .map_err(|e| internal(e.into()))?;
    }
    let stored = client
        .query_typed_opt(
            "SELECT credentials_sealed FROM acme_accounts WHERE tenant_id = $1 AND directory_url = $2",
            &[(&tenant_id, Type::UUID), (&config.directory_url, Type::TEXT)],
        )
        .await
        .map_err(|e| internal(e.into()))?;
    if let Some(row) = stored {
        let sealed: Vec<u8> = row.try_get(0).map_err(|e| internal(e.into()))?;
        let text = sealing::open(data_key, &context, &sealed).map_err(internal)?;
        let credentials: AccountCredentials = serde_json::from_slice(&text)
            .map_err(|e| AcmeError::permanent(format!("the stored ACME account is unreadable: {e}")))?;
        return builder(config)?
            .from_credentials(credentials)
            .await
            .map_err(|e| AcmeError::from_acme("loading the account", e));
    }
    let contact: Option<String> = client
        .query_typed_one("SELECT settings->>'contactEmail' FROM tenants WHERE id = $1", &[(&tenant_id, Type::UUID)])
        .await
        .map_err(|e| internal(e.into()))?
        .try_get(0)
        .map_err(|e| internal(e.into()))?;
    let contact = contact.filter(|c| email_address::EmailAddress::is_valid(c)).map(|c| format!("mailto:{c}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder(config)?
        .create(
            &NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false },
            config.directory_url.clone(),
            None,
        )
        .await
        .map_err(|e| AcmeError::from_acme("creating the account", e))?;
    let text = serde_json::to_vec(&credentials).map_err(|e| internal(AppError::internal(e)))?;
    let sealed = sealing::seal(data_key, &context, &text).map_err(internal)?;
    // A racing job's account may have been stored first: both are valid.
    client
        .execute_typed(
            "INSERT INTO acme_accounts (tenant_id, directory_url, contact, credentials_sealed) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[
                (&tenant_id, Type::UUID),
                (&config.directory_url, Type::TEXT),
                (&contact, Type::TEXT),
                (&sealed, Type::BYTEA),
            ],
        )
        .await
        .map_err(|e| internal(e.into()))?;
    Ok(account)
}
