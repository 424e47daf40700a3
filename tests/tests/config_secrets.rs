//! Configuration read from Secrets Manager (moto) by ARN.

use mpanel::config::{Needs, SshKeySource, aws_sdk_config};
use mpanel::{AppState, Config};
use mpanel_tests::{spawn_app, stack_env};
use uuid::Uuid;

async fn put_secret(env: &mpanel::config::Env, value: &str) -> String {
    let aws = aws_sdk_config(env).await.expect("aws config");
    let client = aws_sdk_secretsmanager::Client::new(&aws);
    let out = client
        .create_secret()
        .name(format!("mpanel-test/{}", Uuid::new_v4()))
        .secret_string(value)
        .send()
        .await
        .expect("create secret in moto");
    out.arn().expect("arn").to_string()
}

#[tokio::test]
async fn secrets_given_as_arns_are_read_from_secrets_manager() {
    // A real database of its own, reached only through the RDS-style secret.
    let app = spawn_app().await;
    let url = tokio_postgres::Config::from_str_url(&app.env["DATABASE_URL"]);
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
    assert_eq!(config.database.expose().get_dbname(), Some(app.db_name.as_str()));

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

/// Host and port of a postgres URL, without pulling in a URL parser.
trait HostPort {
    fn from_str_url(url: &str) -> (String, u16);
}

impl HostPort for tokio_postgres::Config {
    fn from_str_url(url: &str) -> (String, u16) {
        let cfg: tokio_postgres::Config = url.parse().expect("url");
        let host = match &cfg.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[allow(unreachable_patterns)]
            _ => panic!("tcp host expected"),
        };
        (host, cfg.get_ports().first().copied().unwrap_or(5432))
    }
}
