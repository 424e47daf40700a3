//! Configuration read from Secrets Manager (moto) by ARN.

use mpanel::config::{Needs, SshKeySource};
use mpanel::{AppState, Config};
use mpanel_tests::{host_and_port, put_secret, spawn_app, stack_env};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[tokio::test]
async fn secrets_given_as_arns_are_read_from_secrets_manager() {
    // A real database of its own, reached only through the RDS-style secret.
    let app = spawn_app().await;
    let url = host_and_port(&app.env["DATABASE_URL"]);
    let rds_secret = serde_json::json!({
        "username": "mpanel",
        "password": "mpanel",
        "host": url.0,
        "port": url.1,
        "dbname": app.db_name,
        "engine": "postgres",
    });
    let mut env = app.env.clone();
    let db_arn = put_secret(&env, &rds_secret.to_string()).await;
    let jwt = "j".repeat(40);
    let jwt_arn = put_secret(&env, &jwt).await;
    let webhook_arn = put_secret(&env, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").await;
    let key_arn =
        put_secret(&env, "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n")
            .await;
    for var in ["DATABASE_URL", "JWT_SECRET", "MARKETING_WEBHOOK_SECRET", "SSH_PRIVATE_KEY_FILE"] {
        env.remove(var);
    }
    env.insert("DATABASE_URL_ARN".into(), db_arn);
    env.insert("JWT_SECRET_ARN".into(), jwt_arn);
    env.insert("MARKETING_WEBHOOK_SECRET_ARN".into(), webhook_arn);
    env.insert("SSH_PRIVATE_KEY_ARN".into(), key_arn);

    let config = Config::load(&env, Needs::ALL).await.expect("config from ARNs");
    assert_eq!(config.jwt_secret.as_ref().expect("jwt").expose(), jwt.as_bytes());
    assert_eq!(config.webhook_secret.as_ref().expect("webhook").expose().len(), 24);
    assert!(
        matches!(config.ssh_private_key, Some(SshKeySource::Inline(ref k)) if k.expose().contains("not-a-real-key"))
    );
    assert_eq!(config.database.expose().connect.get_dbname(), Some(app.db_name.as_str()));

    // The database config from the secret really connects.
    let state = AppState::new(config).expect("state");
    mpanel::db::ping(&state.db).await.expect("database reached through the secret");
    // Secrets stay out of debug output.
    let debug = format!("{:?}", state.config);
    assert!(!debug.contains(&jwt), "JWT secret printed in Debug");
}

#[tokio::test]
async fn an_unreadable_secret_arn_names_the_variable() {
    let mut env = stack_env();
    env.insert(
        "JWT_SECRET_ARN".into(),
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:mpanel-missing-AbCdEf".into(),
    );
    env.remove("JWT_SECRET");
    let err = Config::load(&env, Needs { jwt: true, ..Needs::NONE }).await.expect_err("missing secret");
    assert_eq!(err.var, "JWT_SECRET_ARN");
    assert!(!err.to_string().contains('\n'));
}

#[tokio::test]
async fn a_secret_still_holding_the_template_placeholder_stops_the_start_naming_it() {
    let env = stack_env();
    let placeholder = put_secret(&env, "unset").await;
    // (variable given by ARN, the plain variable it replaces, what needs it)
    let cases = [
        ("MARKETING_WEBHOOK_SECRET_ARN", "MARKETING_WEBHOOK_SECRET", Needs { webhook: true, ..Needs::NONE }),
        ("JWT_SECRET_ARN", "JWT_SECRET", Needs { jwt: true, ..Needs::NONE }),
        ("PDNS_API_KEY_ARN", "PDNS_API_KEY", Needs { pdns: true, ..Needs::NONE }),
        ("SSH_PRIVATE_KEY_ARN", "SSH_PRIVATE_KEY_FILE", Needs { ssh: true, ..Needs::NONE }),
    ];
    for (arn_var, plain_var, needs) in cases {
        let mut env = env.clone();
        env.remove(plain_var);
        env.insert(arn_var.into(), placeholder.clone());
        let err = Config::load(&env, needs).await.expect_err("a placeholder is refused");
        assert_eq!(err.var, arn_var);
        assert!(err.reason.contains("placeholder"), "{arn_var}: {err}");
    }
}

#[tokio::test]
async fn database_secrets_in_the_shapes_aws_gives_them_connect() {
    let app = spawn_app().await;
    let (host, port) = host_and_port(&app.env["DATABASE_URL"]);
    let mut base = app.env.clone();
    base.remove("DATABASE_URL");

    // RDS-managed: the credentials only; where to connect comes from the template's parameters.
    let managed = put_secret(&base, &serde_json::json!({"username": "mpanel", "password": "mpanel"}).to_string()).await;
    let mut env = base.clone();
    env.insert("DATABASE_URL_ARN".into(), managed);
    let err = Config::load(&env, Needs::NONE).await.expect_err("no host anywhere");
    assert_eq!(err.var, "DATABASE_HOST");
    env.insert("DATABASE_HOST".into(), host.clone());
    env.insert("DATABASE_PORT".into(), port.to_string());
    env.insert("DATABASE_NAME".into(), app.db_name.clone());
    let state = AppState::new(Config::load(&env, Needs::NONE).await.expect("config")).expect("state");
    mpanel::db::ping(&state.db).await.expect("reached with the managed secret");

    // A whole URL stored as the secret.
    let url = put_secret(&base, &app.env["DATABASE_URL"]).await;
    let mut env = base.clone();
    env.insert("DATABASE_URL_ARN".into(), url);
    let state = AppState::new(Config::load(&env, Needs::NONE).await.expect("config")).expect("state");
    mpanel::db::ping(&state.db).await.expect("reached with the URL secret");
}

/// What the Secrets Manager stand-in holds: the values by id, the requests
/// in flight, and the most that ever were.
#[derive(Clone, Default)]
struct StandIn {
    values: Arc<std::collections::HashMap<String, String>>,
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

async fn get_secret_value(
    axum::extract::State(stand_in): axum::extract::State<StandIn>,
    body: String,
) -> ([(&'static str, &'static str); 1], String) {
    let now = stand_in.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stand_in.most.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stand_in.in_flight.fetch_sub(1, Ordering::SeqCst);
    let request: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let id = request["SecretId"].as_str().unwrap_or_default().to_string();
    let value = stand_in.values.get(&id).cloned().unwrap_or_default();
    (
        [("content-type", "application/x-amz-json-1.1")],
        serde_json::json!({"ARN": id, "Name": id, "SecretString": value, "VersionId": "v1"}).to_string(),
    )
}

/// A Secrets Manager stand-in on loopback that answers every
/// GetSecretValue after a pause and records how many were in flight at once.
async fn slow_secrets_manager(values: std::collections::HashMap<String, String>) -> (String, Arc<AtomicUsize>) {
    let stand_in = StandIn { values: Arc::new(values), ..StandIn::default() };
    let most = stand_in.most.clone();
    let router = axum::Router::new().route("/", axum::routing::post(get_secret_value)).with_state(stand_in);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, most)
}

#[tokio::test]
async fn secrets_are_fetched_at_once_not_one_after_another() {
    let arn = |name: &str| format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf");
    let values = [
        (arn("jwt"), "j".repeat(40)),
        (arn("webhook"), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string()),
        (arn("pdns"), "a-pdns-key".to_string()),
    ];
    let (endpoint, most_at_once) = slow_secrets_manager(values.iter().cloned().collect()).await;
    let mut env = stack_env();
    for var in ["JWT_SECRET", "MARKETING_WEBHOOK_SECRET", "PDNS_API_KEY"] {
        env.remove(var);
    }
    env.insert("AWS_ENDPOINT_URL".into(), endpoint);
    env.insert("JWT_SECRET_ARN".into(), values[0].0.clone());
    env.insert("MARKETING_WEBHOOK_SECRET_ARN".into(), values[1].0.clone());
    env.insert("PDNS_API_KEY_ARN".into(), values[2].0.clone());
    let needs = Needs { jwt: true, webhook: true, pdns: true, ..Needs::NONE };
    let config = Config::load(&env, needs).await.expect("config");
    assert_eq!(config.pdns.expect("pdns").api_key.expose(), "a-pdns-key");
    assert_eq!(most_at_once.load(Ordering::SeqCst), 3, "the three secrets were read at the same time");
}
