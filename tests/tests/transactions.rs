//! The transaction helper commits on Ok and leaves nothing behind on Err.

use mpanel::AppError;
use mpanel::db::in_transaction;
use mpanel_tests::spawn_app;
use tokio_postgres::types::Type;

async fn tenant_count(app: &mpanel_tests::TestApp) -> i64 {
    app.db().await.query_one("SELECT count(*) FROM tenants", &[]).await.expect("count").get(0)
}

#[tokio::test]
async fn commits_on_ok() {
    let app = spawn_app().await;
    in_transaction(&app.state.db, |tx| {
        Box::pin(async move {
            tx.query_typed("INSERT INTO tenants (slug, name) VALUES ($1, 'A')", &[(&"a", Type::TEXT)]).await?;
            Ok(())
        })
    })
    .await
    .expect("committed");
    assert_eq!(tenant_count(&app).await, 1);
}

#[tokio::test]
async fn rolls_back_every_write_on_err() {
    let app = spawn_app().await;
    let result: Result<(), AppError> = in_transaction(&app.state.db, |tx| {
        Box::pin(async move {
            tx.query_typed("INSERT INTO tenants (slug, name) VALUES ($1, 'A')", &[(&"a", Type::TEXT)]).await?;
            tx.query_typed("INSERT INTO tenants (slug, name) VALUES ($1, 'B')", &[(&"b", Type::TEXT)]).await?;
            Err(AppError::validation("name", "changed my mind"))
        })
    })
    .await;
    assert!(matches!(result, Err(AppError::Validation(_))));
    assert_eq!(tenant_count(&app).await, 0, "a failed transaction left rows behind");

    // A database error part-way (a unique clash) also rolls back the earlier insert.
    let clash: Result<(), AppError> = in_transaction(&app.state.db, |tx| {
        Box::pin(async move {
            tx.query_typed("INSERT INTO tenants (slug, name) VALUES ($1, 'C')", &[(&"c", Type::TEXT)]).await?;
            tx.query_typed("INSERT INTO tenants (slug, name) VALUES ($1, 'C again')", &[(&"c", Type::TEXT)]).await?;
            Ok(())
        })
    })
    .await;
    let err = clash.expect_err("unique clash");
    assert_eq!(err.status(), http::StatusCode::CONFLICT);
    assert_eq!(err.to_problem().errors[0].field, "slug");
    assert_eq!(tenant_count(&app).await, 0);
}
