//! `GET /api/certificates` (`?domain=`), `GET /api/certificates/{id}`, and
//! `POST /api/subscriptions/{id}/certificate` (ADMIN, SUPPORT): issue the
//! site's certificate again.

use axum::http::{Method, StatusCode};
use tokio_postgres::types::Type;

use super::{CERTIFICATE_SELECT, CertificateRequested, CertificateView, Reason};
use crate::audit_log::{self, Actor, AuditEntry};
use crate::auth::Permission;
use crate::db::one_in_tenant;
use crate::error::{AppError, AppResult};
use crate::http::extract::{Caller, DomainFilter, DomainList, IdPath, Listing, domain_page};
use crate::http::pagination::Page;
use crate::http::routes::{ApiRoutes, Doc, QueryParam};

pub fn routes() -> ApiRoutes {
    ApiRoutes::new()
        .route(
            Method::GET,
            "/api/certificates",
            Permission::ReadData,
            list,
            Doc::new("listCertificates", "certificates", "Sites' TLS certificates")
                .query(&[QueryParam::Text("domain", "Only this domain's certificate")])
                .page::<CertificateView>(),
        )
        .route(
            Method::GET,
            "/api/certificates/{id}",
            Permission::ReadData,
            get,
            Doc::new("getCertificate", "certificates", "One certificate").json::<CertificateView>(200),
        )
        .route(
            Method::POST,
            "/api/subscriptions/{id}/certificate",
            Permission::ManageCertificates,
            reissue,
            Doc::new("reissueCertificate", "certificates", "Issue the site's certificate again (a job)")
                .json::<CertificateRequested>(202),
        )
}

async fn list(
    Caller(state, principal): Caller,
    listing: Listing<DomainFilter>,
) -> AppResult<axum::Json<Page<CertificateView>>> {
    let list = DomainList {
        select: CERTIFICATE_SELECT,
        tenant: "c.tenant_id",
        domain: "d.name",
        key: ("c.created_at", "c.id"),
    };
    domain_page(&state.db, principal.tenant_id, listing, list, CertificateView::from_row).await
}

async fn get(Caller(state, principal): Caller, IdPath(id): IdPath) -> AppResult<axum::Json<CertificateView>> {
    let client = state.db.get().await?;
    let by_id = format!("{CERTIFICATE_SELECT} WHERE c.id = $1 AND c.tenant_id = $2");
    Ok(axum::Json(one_in_tenant(&**client, &by_id, id, principal.tenant_id, CertificateView::from_row).await?))
}

async fn reissue(
    Caller(state, principal): Caller,
    IdPath(id): IdPath,
) -> AppResult<(StatusCode, axum::Json<CertificateRequested>)> {
    let exists = state
        .db
        .get()
        .await?
        .query_typed_opt(
            "SELECT 1 FROM subscriptions WHERE id = $1 AND tenant_id = $2",
            &[(&id, Type::UUID), (&principal.tenant_id, Type::UUID)],
        )
        .await?;
    if exists.is_none() {
        return Err(AppError::NotFound);
    }
    if state.config.acme.is_none() {
        return Err(AppError::Conflict {
            field: None,
            detail: "Certificates are turned off here (ACME_DIRECTORY_URL=none).".into(),
        });
    }
    let (tenant_id, user_id) = (principal.tenant_id, principal.user_id);
    let requested = crate::db::in_transaction(&state.db, move |tx| {
        Box::pin(async move {
            let requested =
                super::request_in(tx, tenant_id, id, Reason::Reissue).await?.ok_or_else(|| AppError::Conflict {
                    field: None,
                    detail: "Only a shared hosting subscription with a domain has a certificate.".into(),
                })?;
            if requested.created {
                audit_log::record(
                    tx,
                    &AuditEntry::new(Some(tenant_id), Actor::User(user_id), "certificate.reissue_requested")
                        .target("subscription", id)
                        .details(serde_json::json!({ "jobId": requested.job_id })),
                )
                .await?;
            }
            Ok(requested)
        })
    })
    .await?;
    if requested.created {
        state.dispatcher.dispatch(&state.db, &[requested.job_id]).await;
    }
    Ok((StatusCode::ACCEPTED, axum::Json(requested)))
}
