//! TLS to Postgres and Redis against the stack's own CA (`STACK_CA_FILE`):
//! `verify-full` connects, and a wrong CA, a wrong host name and a server
//! without TLS are each refused with an error that says so.

use mpanel::config::{Env, Needs};
use mpanel::{AppState, Config};
use mpanel_tests::spawn_app;
use uuid::Uuid;

/// `MPANEL_TEST_DATABASE_TLS_URL` pointed at this test's database.
fn tls_url(env: &Env, db_name: &str) -> String {
    env["MPANEL_TEST_DATABASE_TLS_URL"].replacen("/mpanel?", &format!("/{db_name}?"), 1)
}

async fn migrate_error(env: &Env) -> String {
    let config = Config::load(env, Needs::NONE).await.expect("config loads");
    let err = mpanel::db::migrate(&config.database).await.expect_err("the connection is refused");
    format!("{err:#}")
}

#[tokio::test]
async fn postgres_verify_full_to_the_stack_ca_connects_over_tls() {
    let app = spawn_app().await;
    let mut env = app.env.clone();
    env.insert("DATABASE_URL".into(), tls_url(&app.env, &app.db_name));
    let config = Config::load(&env, Needs::NONE).await.expect("config");
    assert_eq!(config.database.expose().tls.mode, mpanel::tls::SslMode::VerifyFull);
    let state = AppState::new(config).expect("state");
    let client = state.db.get().await.expect("a TLS connection");
    let ssl: bool = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the session is encrypted");
}

#[tokio::test]
async fn postgres_refuses_a_wrong_ca_and_a_wrong_host_name() {
    let app = spawn_app().await;
    let url = tls_url(&app.env, &app.db_name);

    // No stack CA among the roots: the webpki roots and the RDS bundle do not know it.
    let mut env = app.env.clone();
    env.remove("TLS_CA_FILE");
    let without_ca = url.split("&sslrootcert=").next().expect("url").to_string();
    env.insert("DATABASE_URL".into(), without_ca);
    let err = migrate_error(&env).await;
    assert!(err.contains("certificate") && err.contains("UnknownIssuer"), "{err}");

    // The right CA, a name the certificate does not carry (reached at 127.0.0.1).
    let wrong_name =
        url.replacen("@localhost:", "@wrong-name.invalid:", 1).replacen("sslmode=", "hostaddr=127.0.0.1&sslmode=", 1);
    env.insert("DATABASE_URL".into(), wrong_name.clone());
    let err = migrate_error(&env).await;
    assert!(err.contains("certificate not valid for name"), "{err}");
    // verify-ca checks the chain only: the same connection is taken.
    env.insert("DATABASE_URL".into(), wrong_name.replacen("sslmode=verify-full", "sslmode=verify-ca", 1));
    let config = Config::load(&env, Needs::NONE).await.expect("config");
    mpanel::db::migrate(&config.database).await.expect("verify-ca ignores the name");
}

#[tokio::test]
async fn sslmode_require_refuses_a_server_without_tls() {
    // A server that answers Postgres' SSLRequest with 'N', as one without TLS does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 8];
            if socket.read_exact(&mut request).await.is_ok() {
                let _ = socket.write_all(b"N").await;
            }
        }
    });
    let mut env = mpanel_tests::stack_env();
    env.insert("DATABASE_URL".into(), format!("postgres://mpanel:mpanel@127.0.0.1:{port}/mpanel?sslmode=require"));
    let err = migrate_error(&env).await;
    assert!(err.to_lowercase().contains("tls"), "{err}");
}

#[tokio::test]
async fn sslmode_defaults_to_verify_full_off_loopback_and_bad_values_name_the_variable() {
    let mut env = mpanel_tests::stack_env();
    env.insert("DATABASE_URL".into(), "postgres://app:pw@db.internal.example:5432/mpanel".into());
    let config = Config::load(&env, Needs::NONE).await.expect("config");
    assert_eq!(config.database.expose().tls.mode, mpanel::tls::SslMode::VerifyFull);

    env.insert("DATABASE_URL".into(), "postgres://app:pw@db.internal.example/mpanel?sslmode=prefer".into());
    let err = Config::load(&env, Needs::NONE).await.expect_err("prefer may fall back to plaintext");
    assert_eq!(err.var, "DATABASE_URL");

    env.insert("DATABASE_URL".into(), "postgres://app:pw@db.internal.example/mpanel".into());
    env.insert("DATABASE_SSLMODE".into(), "sometimes".into());
    let err = Config::load(&env, Needs::NONE).await.expect_err("bad DATABASE_SSLMODE");
    assert_eq!(err.var, "DATABASE_SSLMODE");
}

async fn redis_state(env: &Env) -> anyhow::Result<()> {
    let config = Config::load(env, Needs::NONE).await?;
    let state = AppState::new(config)?;
    state.kv.ping().await.map_err(|e| anyhow::anyhow!("{e:?}"))
}

#[tokio::test]
async fn redis_over_tls_with_the_stack_ca_and_an_acl_user() {
    let app = spawn_app().await;
    let mut env = app.env.clone();
    env.insert("REDIS_URL".into(), app.env["MPANEL_TEST_REDIS_TLS_URL"].clone());
    redis_state(&env).await.expect("rediss:// with TLS_CA_FILE = the stack CA");

    // An ACL user of this test's own, in the URL.
    let user = format!("mpt-{}", Uuid::new_v4().simple());
    let password = Uuid::new_v4().simple().to_string();
    let plain = redis::Client::open(app.env["REDIS_URL"].as_str()).expect("client");
    let mut admin = plain.get_multiplexed_async_connection().await.expect("plain redis");
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", &user, "on", &format!(">{password}"), "~*", "+@all"][..])
        .query_async(&mut admin)
        .await
        .expect("create the ACL user");
    let tls = app.env["MPANEL_TEST_REDIS_TLS_URL"].replacen("rediss://", &format!("rediss://{user}:{password}@"), 1);
    env.insert("REDIS_URL".into(), tls.clone());
    let with_user = redis_state(&env).await;
    env.insert("REDIS_URL".into(), tls.replacen(&password, "wrong-password", 1));
    let wrong_password = redis_state(&env).await;
    let _: () = redis::cmd("ACL").arg(&["DELUSER", &user][..]).query_async(&mut admin).await.expect("delete the user");
    with_user.expect("the ACL user signs in over TLS");
    assert!(wrong_password.is_err(), "a wrong password is refused");
}

#[tokio::test]
async fn redis_refuses_a_server_certificate_from_an_unknown_ca() {
    let mut env = mpanel_tests::stack_env();
    env.remove("TLS_CA_FILE");
    env.insert("REDIS_URL".into(), env["MPANEL_TEST_REDIS_TLS_URL"].clone());
    let err = redis_state(&env).await.expect_err("the stack CA is not trusted");
    let text = format!("{err:#}");
    assert!(text.contains("certificate") || text.contains("Unavailable"), "{text}");
}
