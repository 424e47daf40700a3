//! SUSPEND_SERVICE, UNSUSPEND_SERVICE and TERMINATE_SERVICE on the real
//! servers. Each is safe to repeat after a crash at any step.
//!
//! - Suspend: `<site>/public` moves to `<site>/.suspended-public` (kept
//!   intact) and a new `public/` serves a "suspended" page; mailboxes are
//!   disabled; DNS is left alone.
//! - Unsuspend: the held `public/` moves back, byte for byte.
//! - Terminate: the PowerDNS zone is deleted (404 = done), the site is
//!   archived to `<webRoot>/.terminated/<domain>-<date>.tar.gz` and removed,
//!   mailboxes are deleted. The subscription's status and the domain's
//!   release happen when the job succeeds (see `subscriptions`).

use openssh::Session;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::Provisioner;
use super::hosting::{check, connect, exists, run, site_root, write_file};
use super::{Server, Target, load_server, load_target};
use crate::db::DbPool;
use crate::jobs::{ClaimedJob, JobError};
use crate::types::DomainName;

const HELD: &str = ".suspended-public";

/// The server the subscription's site is on, if it ever got one.
async fn site_server(db: &DbPool, subscription_id: Uuid) -> Result<Option<Server>, JobError> {
    let client = db.get().await?;
    let row = client
        .query_typed_opt(
            "SELECT server_id FROM hosting_accounts WHERE subscription_id = $1 AND status <> 'TERMINATED'
             ORDER BY created_at DESC LIMIT 1",
            &[(&subscription_id, Type::UUID)],
        )
        .await?;
    drop(client);
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(load_server(db, row.try_get(0)?).await?)),
    }
}

pub fn suspended_page(domain: &DomainName) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{d} is suspended</title></head>\n\
         <body><h1>This site is suspended</h1><p>{d} is temporarily unavailable. \
         Please contact your hosting provider.</p></body>\n</html>\n",
        d = domain.as_str()
    )
}

async fn set_rows(
    db: &DbPool,
    target: &Target,
    mail_status: Option<&str>,
    hosting: (&str, &str),
) -> Result<(), JobError> {
    let client = db.get().await?;
    if let Some(status) = mail_status {
        client
            .query_typed(
                "UPDATE mail_accounts SET status = $2, updated_at = now() WHERE subscription_id = $1",
                &[(&target.subscription_id, Type::UUID), (&status, Type::TEXT)],
            )
            .await?;
    }
    client
        .query_typed(
            "UPDATE hosting_accounts SET status = $3, updated_at = now() WHERE subscription_id = $1 AND status = $2",
            &[(&target.subscription_id, Type::UUID), (&hosting.0, Type::TEXT), (&hosting.1, Type::TEXT)],
        )
        .await?;
    Ok(())
}

/// Runs `work` over one SSH session to the server holding the subscription's
/// site, if it ever got one; the session is closed whatever `work` returns.
async fn on_site_server(
    p: Provisioner<'_>,
    target: &Target,
    work: impl AsyncFnOnce(&Session, &Server) -> Result<(), JobError>,
) -> Result<(), JobError> {
    let Some(server) = site_server(p.db, target.subscription_id).await? else {
        return Ok(());
    };
    let session = connect(p, &server).await?;
    let result = work(&session, &server).await;
    let _ = session.close().await;
    result
}

pub async fn suspend(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let target = load_target(p.db, job).await?;
    on_site_server(p, &target, async |session, server| {
        let root = site_root(server, &target.domain);
        let public = format!("{root}/public");
        let held = format!("{root}/{HELD}");
        if !exists(session, &held).await? && exists(session, &public).await? {
            check(&run(session, "mv", &["--", &public, &held]).await?, "holding the site")?;
        }
        check(&run(session, "mkdir", &["-p", "--", &public]).await?, "mkdir")?;
        write_file(session, &format!("{public}/index.html"), &suspended_page(&target.domain)).await
    })
    .await?;
    set_rows(p.db, &target, Some("DISABLED"), ("ACTIVE", "SUSPENDED")).await
}

pub async fn unsuspend(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let target = load_target(p.db, job).await?;
    on_site_server(p, &target, async |session, server| {
        let root = site_root(server, &target.domain);
        let public = format!("{root}/public");
        let held = format!("{root}/{HELD}");
        // Only when a held copy exists: otherwise this already ran.
        if exists(session, &held).await? {
            check(&run(session, "rm", &["-rf", "--", &public]).await?, "removing the suspended page")?;
            check(&run(session, "mv", &["--", &held, &public]).await?, "restoring the site")?;
        }
        Ok(())
    })
    .await?;
    set_rows(p.db, &target, Some("ACTIVE"), ("SUSPENDED", "ACTIVE")).await
}

/// `<domain>-<YYYY-MM-DD>.tar.gz`, fixed when the termination was requested
/// so every retry uses the same name.
pub fn archive_name(domain: &DomainName, date: chrono::NaiveDate) -> String {
    format!("{}-{}.tar.gz", domain.as_str(), date.format("%Y-%m-%d"))
}

fn valid_archive_name(name: &str, domain: &DomainName) -> bool {
    name.strip_prefix(domain.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix(".tar.gz"))
        .is_some_and(|date| chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok())
}

pub async fn terminate(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let target = load_target(p.db, job).await?;

    let pdns = super::dns::PdnsClient::new(p)?;
    let requested = job.payload.get("archiveName").and_then(|v| v.as_str()).unwrap_or_default();
    let archive_file = if valid_archive_name(requested, &target.domain) {
        requested.to_string()
    } else {
        archive_name(&target.domain, chrono::Utc::now().date_naive())
    };
    on_site_server(p, &target, async |session, server| {
        let web_root = server.web_root.trim_end_matches('/').to_string();
        let site = site_root(server, &target.domain);
        let archive_dir = format!("{web_root}/.terminated");
        let archive = format!("{archive_dir}/{archive_file}");
        let partial = format!("{archive}.partial");
        if exists(session, &site).await? {
            check(&run(session, "mkdir", &["-p", "--", &archive_dir]).await?, "mkdir")?;
            // Archive once: a retry after the removal started must not
            // replace a complete archive with a partial one.
            if !exists(session, &archive).await? {
                let tar =
                    run(session, "tar", &["-czf", &partial, "-C", &web_root, "--", target.domain.as_str()]).await?;
                check(&tar, "archiving the site")?;
                check(&run(session, "mv", &["--", &partial, &archive]).await?, "archiving the site")?;
            }
            check(&run(session, "rm", &["-rf", "--", &site]).await?, "removing the site")?;
        }
        Ok(())
    })
    .await?;

    let client = p.db.get().await?;
    client
        .query_typed("DELETE FROM mail_accounts WHERE subscription_id = $1", &[(&target.subscription_id, Type::UUID)])
        .await?;
    client
        .query_typed(
            "UPDATE hosting_accounts SET status = 'TERMINATED', updated_at = now() WHERE subscription_id = $1",
            &[(&target.subscription_id, Type::UUID)],
        )
        .await?;

    // DNS last: a job that dies before this point leaves the site's name
    // resolving, never a live subscription without DNS. Only our own zone goes.
    pdns.delete_own_zone(&target.domain.fqdn(), &super::dns::zone_owner(&target)).await?;
    client
        .query_typed(
            "DELETE FROM dns_records WHERE zone_id IN (SELECT id FROM dns_zones WHERE domain_id = $1)",
            &[(&target.domain_id, Type::UUID)],
        )
        .await?;
    client
        .query_typed(
            "UPDATE dns_zones SET status = 'DELETED', updated_at = now() WHERE domain_id = $1 AND status = 'ACTIVE'",
            &[(&target.domain_id, Type::UUID)],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names() {
        let d = DomainName::parse("example.com").unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let name = archive_name(&d, date);
        assert_eq!(name, "example.com-2026-11-25.tar.gz");
        assert!(valid_archive_name(&name, &d));
        assert!(!valid_archive_name("../../etc/passwd", &d));
        assert!(!valid_archive_name("example.com-2026-11-25.tar.gz; rm -rf /", &d));
        assert!(!valid_archive_name("other.com-2026-11-25.tar.gz", &d));
    }
}
