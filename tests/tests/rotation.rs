//! A database password rotated in Secrets Manager while `mpanel serve`
//! runs: new connections are refused with the old one (28P01), the pool
//! reads the secret again, and requests keep working: a pooled connection
//! of an ended session is replaced at its first statement, so none fails.

use mpanel_tests::{Serve, admin_client, host_and_port, put_secret, rotate_secret, spawn_app, spawn_serve};
use uuid::Uuid;

/// `/api/ready` of a running `mpanel serve`: 200 before `rotate`, then the
/// statuses of five calls after it; and everything the process logged.
async fn readiness_across(serve: Serve, rotate: impl std::future::Future<Output = ()>) -> (Vec<u16>, String) {
    let http = mpanel_tests::http_client();
    let ready = || async { http.get(format!("{}/api/ready", serve.base_url)).send().await.expect("answer").status() };
    assert_eq!(ready().await, 200);
    rotate.await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(ready().await.as_u16());
    }
    (statuses, serve.stop().await)
}

#[tokio::test]
async fn a_rotated_database_password_is_read_again_without_a_restart() {
    let app = spawn_app().await;
    let admin = admin_client(&app.env).await;
    // A login role of this test's own with mpanel's rights (as a dedicated
    // application role would have them).
    let role = format!("mpt_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'first-password' IN ROLE mpanel"))
        .await
        .expect("create the role");

    let credentials = |password: &str| serde_json::json!({"username": role, "password": password}).to_string();
    let arn = put_secret(&app.env, &credentials("first-password")).await;
    let (_, port) = host_and_port(&app.env["DATABASE_URL"]);
    let mut env = app.env.clone();
    env.remove("DATABASE_URL");
    env.insert("DATABASE_URL_ARN".into(), arn.clone());
    env.insert("DATABASE_HOST".into(), "127.0.0.1".into());
    env.insert("DATABASE_PORT".into(), port.to_string());
    env.insert("DATABASE_NAME".into(), app.db_name.clone());

    let serve = spawn_serve(&env, &["--no-worker"]).await;
    // The rotation: the role's new password, the secret's new value, and
    // every open session of the role gone, so the next one must sign in.
    let (statuses, logs) = readiness_across(serve, async {
        admin.batch_execute(&format!("ALTER ROLE {role} PASSWORD 'second-password'")).await.expect("rotate");
        rotate_secret(&app.env, &arn, &credentials("second-password")).await;
        admin
            .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", &[&role])
            .await
            .expect("end the role's sessions");
    })
    .await;
    let _ = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", &[&role]).await;
    let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).await;

    // A pooled connection of the ended sessions fails its first statement;
    // the probe then takes a fresh one, which signs in with the new password.
    assert_eq!(statuses, [200; 5], "{statuses:?}\n{logs}");
    assert!(logs.contains("password was rotated"), "the pool read the secret again:\n{logs}");
}

#[tokio::test]
async fn a_changed_redis_password_is_read_again_without_a_restart() {
    let app = spawn_app().await;
    let plain = redis::Client::open(app.env["REDIS_URL"].as_str()).expect("client");
    let mut admin = plain.get_multiplexed_async_connection().await.expect("redis");
    let user = format!("mpt-{}", Uuid::new_v4().simple());
    let acl = |args: Vec<String>| {
        let mut cmd = redis::cmd("ACL");
        cmd.arg(args);
        cmd
    };
    let _: () =
        acl(vec!["SETUSER".into(), user.clone(), "on".into(), ">first-password".into(), "~*".into(), "+@all".into()])
            .query_async(&mut admin)
            .await
            .expect("create the ACL user");

    let redis_url =
        |password: &str| app.env["REDIS_URL"].replacen("redis://", &format!("redis://{user}:{password}@"), 1);
    let arn = put_secret(&app.env, &redis_url("first-password")).await;
    let mut env = app.env.clone();
    env.remove("REDIS_URL");
    env.insert("REDIS_URL_ARN".into(), arn.clone());

    let serve = spawn_serve(&env, &["--no-worker"]).await;
    // The rotation: a new password, the secret's new value, and the user's
    // connections dropped so the next one must sign in again.
    let (statuses, logs) = readiness_across(serve, async {
        let _: () = acl(vec!["SETUSER".into(), user.clone(), "resetpass".into(), ">second-password".into()])
            .query_async(&mut admin)
            .await
            .expect("rotate");
        rotate_secret(&app.env, &arn, &redis_url("second-password")).await;
        let _: i64 =
            redis::cmd("CLIENT").arg(&["KILL", "USER", user.as_str()][..]).query_async(&mut admin).await.expect("kill");
    })
    .await;
    let _: redis::RedisResult<i64> = acl(vec!["DELUSER".into(), user.clone()]).query_async(&mut admin).await;

    assert!(statuses.iter().filter(|s| **s == 503).count() <= 1, "{statuses:?}\n{logs}");
    assert_eq!(statuses[2..], [200, 200, 200], "{statuses:?}");
    assert!(logs.contains("reconnected with the secret read again"), "redis credentials read again:\n{logs}");
}
