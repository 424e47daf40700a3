//! The `migrate` function behind the stack's `Custom::Migrations` resource,
//! with a local listener standing in for CloudFormation's response URL.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::put;
use lambda_runtime::LambdaEvent;
use mpanel_tests::{admin_client, database_url, empty_database, lambda_context, stack_env};
use serde_json::Value;
use tokio::sync::Mutex;

type Answers = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// A stand-in for the presigned S3 URL CloudFormation waits on.
async fn response_url() -> (String, Answers) {
    let answers: Answers = Arc::default();
    let router = Router::new()
        .route(
            "/cfn-response",
            put(|State(answers): State<Answers>, headers: HeaderMap, body: Bytes| async move {
                let value = serde_json::from_slice(&body).expect("the answer is JSON");
                answers.lock().await.push((headers, value));
            }),
        )
        .with_state(answers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/cfn-response", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, answers)
}

fn event(kind: &str, url: &str) -> LambdaEvent<aws_lambda_events::cloudformation::CloudFormationCustomResourceRequest> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../events/migrate/{kind}.SUCCESS.json"));
    let raw = std::fs::read_to_string(path).expect("event");
    let text = raw.replace("{{responseUrl}}", url).replace("{{requestId}}", &format!("req-{kind}"));
    LambdaEvent::new(serde_json::from_str(&text).expect("a custom resource event"), lambda_context(300))
}

async fn migrated(env: &mpanel::config::Env, db: &str) -> i64 {
    let mut env = env.clone();
    env.insert("DATABASE_URL".into(), database_url(&env, db));
    let config = tokio_postgres::Config::from_str(&env["DATABASE_URL"]).expect("url");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client.query_one("SELECT count(*) FROM refinery_schema_history", &[]).await.map(|r| r.get(0)).unwrap_or(-1)
}

use std::str::FromStr;

#[tokio::test]
async fn create_and_update_migrate_delete_keeps_the_schema_and_cloudformation_hears_each() {
    let (url, answers) = response_url().await;
    let http = mpanel_tests::http_client();
    let mut env = stack_env();
    let db = empty_database(&env).await;
    env.insert("DATABASE_URL".into(), database_url(&env, &db));

    let created = mpanel::lambda::handle_migrations(&env, &http, event("create", &url)).await.expect("create");
    let total = migrated(&env, &db).await;
    assert!(total >= 4, "migrations were not applied: {total}");
    let updated = mpanel::lambda::handle_migrations(&env, &http, event("update", &url)).await.expect("update");
    let deleted = mpanel::lambda::handle_migrations(&env, &http, event("delete", &url)).await.expect("delete");
    assert_eq!(migrated(&env, &db).await, total, "a delete touched the schema");
    for outcome in [created, updated, deleted] {
        assert_eq!(serde_json::to_value(&outcome).expect("json")["Status"], "SUCCESS");
    }

    let answers = answers.lock().await;
    assert_eq!(answers.len(), 3);
    for ((headers, answer), kind) in answers.iter().zip(["create", "update", "delete"]) {
        assert_eq!(answer["Status"], "SUCCESS", "{kind}: {answer}");
        assert_eq!(answer["RequestId"], format!("req-{kind}"));
        assert_eq!(answer["LogicalResourceId"], "Migrations");
        assert_eq!(answer["PhysicalResourceId"], mpanel::lambda::MIGRATIONS_RESOURCE_ID, "{kind}: a new id replaces");
        assert!(answer["StackId"].as_str().is_some_and(|s| s.starts_with("arn:aws:cloudformation:")));
        // The presigned URL is signed without a content type.
        assert!(headers.get("content-type").is_none(), "{kind}: {headers:?}");
    }
    let applied = answers[0].1["Data"]["Applied"].as_str().expect("applied");
    assert!(applied.contains("V1__") && applied.split(',').count() as i64 == total, "{applied}");
    assert_eq!(answers[1].1["Data"]["Applied"], "", "the update had nothing left to apply");
    drop(answers);
    // Best effort: ./scripts/test drops leftover test databases.
    let _ = admin_client(&stack_env()).await.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)")).await;
}

#[tokio::test]
async fn a_failed_migration_answers_failed_with_the_reason() {
    let (url, answers) = response_url().await;
    let http = mpanel_tests::http_client();
    let mut env = stack_env();
    env.insert("DATABASE_URL".into(), database_url(&env, "mpanel_no_such_database"));
    let outcome = mpanel::lambda::handle_migrations(&env, &http, event("update", &url)).await.expect("answered");
    assert_eq!(serde_json::to_value(&outcome).expect("json")["Status"], "FAILED");
    // A configuration error is answered too, not left for CloudFormation to time out on.
    env.remove("DATABASE_URL");
    mpanel::lambda::handle_migrations(&env, &http, event("create", &url)).await.expect("answered");

    let answers = answers.lock().await;
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].1["Status"], "FAILED");
    let reason = answers[0].1["Reason"].as_str().expect("reason");
    assert!(reason.contains("mpanel_no_such_database"), "{reason}");
    assert_eq!(answers[1].1["Status"], "FAILED");
    assert!(answers[1].1["Reason"].as_str().is_some_and(|r| r.contains("DATABASE_URL")), "{}", answers[1].1);
}

#[tokio::test]
async fn an_unreachable_response_url_fails_the_invocation() {
    let http = mpanel_tests::http_client();
    let mut env = stack_env();
    env.remove("DATABASE_URL");
    let result = mpanel::lambda::handle_migrations(&env, &http, event("delete", "http://127.0.0.1:1/cfn")).await;
    assert!(result.is_err());
}
