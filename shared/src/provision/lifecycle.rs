//! SUSPEND_SERVICE, UNSUSPEND_SERVICE and TERMINATE_SERVICE on the real
//! servers. Each is safe to repeat after a crash at any step, and touches a
//! site only when its marker names this hosting account (`mpanel-site`).
//!
//! - Suspend: `<site>/public` moves to `<webRoot>/.mpanel/held/<account>-<job>`
//!   (recorded in `hosting_accounts.held_name` first) and a new `public/`
//!   serves a "suspended" page; mailboxes are disabled; DNS is left alone.
//! - Unsuspend: exactly the recorded held copy moves back; the suspended
//!   page goes only if it is still ours, anything else is kept aside.
//! - Terminate: a site directory that is not ours is left alone; ours is
//!   archived to
//!   `<webRoot>/.terminated/<domain>-<date>-<job>.tar.gz`, verified, then
//!   removed; mailboxes are deleted; our PowerDNS zone goes last. The
//!   subscription's status and the domain's release happen when the job
//!   succeeds (see `subscriptions`).
//!
//! A subscription without a domain (VPS, ADDON) has nothing remote yet:
//! its lifecycle jobs succeed without remote effects.

use tokio_postgres::types::Type;
use uuid::Uuid;

use super::Provisioner;
use super::hosting::{Account, Site, SiteScript, load_account, over_ssh, site_script};
use super::{Target, find_target};
use crate::db::DbPool;
use crate::jobs::{ClaimedJob, JobError};
use crate::types::DomainName;

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

/// Runs one site script over SSH to the account's server; the session is
/// closed whatever happens.
async fn on_site(
    p: Provisioner<'_>,
    job: &ClaimedJob,
    account: &Account,
    domain: &DomainName,
    script: SiteScript,
    extra: &[&str],
    stdin: &str,
) -> Result<std::process::Output, JobError> {
    job.lease.check()?;
    let site = &Site { server: &account.server, domain, account_id: account.id };
    over_ssh(p, &account.server, |session| async move {
        job.lease.check()?;
        site_script(&session, site, script, extra, stdin).await
    })
    .await
}

/// A recorded held name, checked before it goes to the server (where
/// `mpanel-site` checks it again): `<account>-<job>` under `.mpanel/held/`,
/// or `.legacy` for a site suspended before markers existed (held in the
/// site as `.suspended-public`).
fn checked_held_name(name: &str) -> Result<&str, JobError> {
    if name == LEGACY_HELD || valid_held_name(name) {
        Ok(name)
    } else {
        Err(JobError::permanent(format!("recorded held name {name:?} is invalid")))
    }
}

const LEGACY_HELD: &str = ".legacy";

fn valid_held_name(name: &str) -> bool {
    name.split_once('-').is_some_and(|(a, b)| {
        [a, b]
            .iter()
            .all(|part| part.len() == 32 && part.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
    })
}

/// The held name for this account, recorded before anything moves so a
/// retry (or unsuspend) finds exactly what was held.
async fn record_held_name(db: &DbPool, account: &Account, job: &ClaimedJob) -> Result<String, JobError> {
    if let Some(name) = &account.held_name {
        return Ok(name.clone());
    }
    let name = format!("{}-{}", account.id.simple(), job.id.simple());
    let client = db.get().await?;
    let row = client
        .query_typed_one(
            "UPDATE hosting_accounts SET held_name = COALESCE(held_name, $2), updated_at = now() WHERE id = $1
             RETURNING held_name",
            &[(&account.id, Type::UUID), (&name, Type::TEXT)],
        )
        .await?;
    Ok(row.try_get(0)?)
}

pub async fn suspend(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let Some(target) = find_target(p.db, job).await? else { return Ok(()) };
    if let Some(account) = load_account(p, target.subscription_id).await? {
        let held = record_held_name(p.db, &account, job).await?;
        let page = suspended_page(&target.domain);
        on_site(p, job, &account, &target.domain, SiteScript::Suspend, &[checked_held_name(&held)?], &page).await?;
    }
    set_rows(p.db, &target, Some("DISABLED"), ("ACTIVE", "SUSPENDED")).await
}

pub async fn unsuspend(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let Some(target) = find_target(p.db, job).await? else { return Ok(()) };
    if let Some(account) = load_account(p, target.subscription_id).await?
        && let Some(name) = &account.held_name
    {
        let held = checked_held_name(name)?;
        let aside = format!("{}-{}-during-suspension", account.id.simple(), job.id.simple());
        let page = suspended_page(&target.domain);
        on_site(p, job, &account, &target.domain, SiteScript::Unsuspend, &[held, &aside], &page).await?;
        let client = p.db.get().await?;
        client
            .query_typed(
                "UPDATE hosting_accounts SET held_name = NULL, updated_at = now() WHERE id = $1",
                &[(&account.id, Type::UUID)],
            )
            .await?;
    }
    set_rows(p.db, &target, Some("ACTIVE"), ("SUSPENDED", "ACTIVE")).await
}

/// `<domain>-<YYYY-MM-DD>.tar.gz`, fixed when the termination was requested
/// so every retry uses the same date.
pub fn archive_name(domain: &DomainName, date: chrono::NaiveDate) -> String {
    format!("{}-{}.tar.gz", domain.as_str(), date.format("%Y-%m-%d"))
}

fn requested_date(name: &str, domain: &DomainName) -> Option<chrono::NaiveDate> {
    name.strip_prefix(domain.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix(".tar.gz"))
        .and_then(|date| chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok())
}

/// This job's archive: `<domain>-<date>-<job id>.tar.gz`, so no other
/// termination's archive is ever taken for this one's.
pub fn job_archive_name(domain: &DomainName, requested: &str, job_id: Uuid) -> String {
    let date = requested_date(requested, domain).unwrap_or_else(|| chrono::Utc::now().date_naive());
    format!("{}-{}-{}.tar.gz", domain.as_str(), date.format("%Y-%m-%d"), job_id.simple())
}

pub async fn terminate(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let Some(target) = find_target(p.db, job).await? else { return Ok(()) };
    let pdns = super::dns::PdnsClient::new(p)?;
    let requested = job.payload.get("archiveName").and_then(|v| v.as_str()).unwrap_or_default();
    let archive_file = job_archive_name(&target.domain, requested, job.id);

    if let Some(account) = load_account(p, target.subscription_id).await? {
        let attempt = job.attempt.to_string();
        let output =
            on_site(p, job, &account, &target.domain, SiteScript::Terminate, &[&archive_file, &attempt], "").await?;
        let said = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if said == "not-ours" {
            tracing::warn!(subscription_id = %target.subscription_id, domain = target.domain.as_str(),
                "the site directory is not ours: terminate left it alone");
        }
        let archive = (said.starts_with('/')).then_some(said);
        let client = p.db.get().await?;
        client
            .query_typed(
                "UPDATE hosting_accounts SET status = 'TERMINATED', archive_path = COALESCE($2, archive_path),
                        updated_at = now() WHERE id = $1",
                &[(&account.id, Type::UUID), (&archive, Type::TEXT)],
            )
            .await?;
    }

    // The domain's mail and DKIM key on its mail server (only ours: a key
    // without our marker is left), when the subscription had mail.
    let client = p.db.get().await?;
    let had_mail = client
        .query_typed_opt(
            "SELECT 1 FROM mail_accounts WHERE subscription_id = $1 UNION ALL SELECT 1 FROM mail_aliases WHERE subscription_id = $1",
            &[(&target.subscription_id, Type::UUID)],
        )
        .await?
        .is_some();
    if had_mail && let Some(server) = super::mail::mail_host(p, &target, false).await? {
        job.lease.check()?;
        let (on, args) = (&server, &["remove-domain", target.domain.as_str()]);
        let removed =
            over_ssh(p, &server, |session| async move { super::mail::mail_command(&session, on, args).await }).await;
        match removed {
            Ok(_) => {}
            Err(e) if !e.retryable => tracing::warn!(domain = target.domain.as_str(), error = %e.message,
                "the domain's mail on its server is not ours: left as it is"),
            Err(e) => return Err(e),
        }
    }
    for table in ["mail_accounts", "mail_aliases"] {
        client
            .query_typed(
                &format!("DELETE FROM {table} WHERE subscription_id = $1"),
                &[(&target.subscription_id, Type::UUID)],
            )
            .await?;
    }

    // DNS last: a job that dies before this point leaves the site's name
    // resolving, never a live subscription without DNS. Only our own zone goes.
    job.lease.check()?;
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
        let requested = archive_name(&d, date);
        assert_eq!(requested, "example.com-2026-11-25.tar.gz");
        let job = Uuid::from_u128(0xabc);
        assert_eq!(job_archive_name(&d, &requested, job), format!("example.com-2026-11-25-{}.tar.gz", job.simple()));
        for hostile in ["../../etc/passwd", "example.com-2026-11-25.tar.gz; rm -rf /", "other.com-2026-11-25.tar.gz"] {
            let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
            assert_eq!(job_archive_name(&d, hostile, job), format!("example.com-{today}-{}.tar.gz", job.simple()));
        }
    }

    #[test]
    fn held_names() {
        let (a, b) = (Uuid::from_u128(0xabcdef).simple().to_string(), Uuid::from_u128(2).simple().to_string());
        assert!(valid_held_name(&format!("{a}-{b}")));
        assert!(!valid_held_name("../x-y"));
        assert!(!valid_held_name(&format!("{a}-{b}/..")));
        assert!(!valid_held_name(&format!("{}-{b}", a.to_uppercase())));
    }
}
