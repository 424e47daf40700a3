//! Destructive paths touch only what is ours, and never lose anything
//! (issue #17): site markers, the held copy of a suspended site, archives
//! that are verified before a site goes, jobs that re-check before they act,
//! domainless lifecycles, retry rules and leases. Real sshd, PowerDNS and
//! Postgres throughout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Datelike;

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel::engine::{RunOutcome, sweep};
use mpanel_tests::hosting::{Hosting, job_of, site};
use mpanel_tests::{TestResponse, unique_domain};
use serde_json::{Value, json};
use uuid::Uuid;

async fn act(h: &Hosting, token: &str, subscription: Uuid, action: &str, body: Option<Value>) -> TestResponse {
    h.app.authed(Method::POST, &format!("/api/subscriptions/{subscription}/{action}"), token, body).await
}

fn first_job(response: &TestResponse) -> Uuid {
    let body = response.json();
    Uuid::parse_str(body["jobs"][0]["id"].as_str().expect("job id")).expect("uuid")
}

fn web_root(h: &Hosting) -> PathBuf {
    PathBuf::from(&h.app.env["MPANEL_TEST_WEB_ROOT"])
}

async fn last_error(h: &Hosting, job: Uuid) -> String {
    let row = h.app.db().await.query_one("SELECT last_error FROM jobs WHERE id = $1", &[&job]).await.expect("job");
    row.get::<_, Option<String>>(0).unwrap_or_default()
}

fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).expect("prefix").display().to_string();
                out.push((name, std::fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_site_directory_that_is_not_ours_is_neither_adopted_nor_removed() {
    let h = Hosting::new().await;
    let domain = unique_domain();
    let theirs = site(&h.app.env, &domain);
    std::fs::create_dir_all(theirs.join("public")).expect("someone else's site");
    std::fs::write(theirs.join("public/index.html"), "the operator's page").expect("page");
    let before = tree(&theirs);

    let (subscription, jobs) = h.order(&domain).await;
    let hosting = job_of(&jobs, "PROVISION_HOSTING");
    assert_eq!(h.run(hosting).await, RunOutcome::Dead, "an existing directory is a permanent failure");
    let error = last_error(&h, hosting).await;
    assert!(error.contains("not ours") && error.contains("nothing was changed"), "{error}");
    assert_eq!(tree(&theirs), before, "adopted or changed");
    assert!(!web_root(&h).join(".mpanel/sites").join(&domain).exists(), "marked as ours");

    // Terminating the failed subscription leaves the directory as it is.
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    for (id, job_type) in &jobs {
        if job_type != "PROVISION_HOSTING" {
            h.run(*id).await;
        }
    }
    let accepted = act(&h, &admin, subscription, "terminate", None).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.json());
    assert_eq!(h.run(first_job(&accepted)).await, RunOutcome::Succeeded);
    assert_eq!(h.app.subscription_status(subscription).await, "TERMINATED");
    assert_eq!(tree(&theirs), before, "removed or archived what is not ours");
    std::fs::remove_dir_all(&theirs).expect("clean up");
}

#[tokio::test]
async fn suspend_ignores_a_customer_made_held_directory_and_unsuspend_deletes_nothing_it_did_not_write() {
    let h = Hosting::new().await;
    let (subscription, domain) = h.live().await;
    let support = h.app.token(&h.app.create_user(h.tenant, Role::Support).await).await;
    let root = site(&h.app.env, &domain);
    std::fs::write(root.join("public/index.html"), "live page").expect("customer page");
    // The name the old suspend trusted, made by the customer beforehand.
    std::fs::create_dir_all(root.join(".suspended-public")).expect("decoy");
    std::fs::write(root.join(".suspended-public/index.html"), "decoy").expect("decoy page");
    let live_before = tree(&root.join("public"));

    let suspended = act(&h, &support, subscription, "suspend", Some(json!({"reason": "abuse"}))).await;
    assert_eq!(h.run(first_job(&suspended)).await, RunOutcome::Succeeded);
    let served = std::fs::read_to_string(root.join("public/index.html")).expect("page");
    assert!(served.contains("suspended"), "the live page is still served: {served}");
    // Something appears in the suspended public/ meanwhile: it is not ours to delete.
    std::fs::write(root.join("public/upload.txt"), "uploaded while suspended").expect("upload");

    let back = act(&h, &support, subscription, "unsuspend", None).await;
    assert_eq!(h.run(first_job(&back)).await, RunOutcome::Succeeded);
    assert_eq!(tree(&root.join("public")), live_before, "the live site came back exactly");
    assert_eq!(std::fs::read_to_string(root.join(".suspended-public/index.html")).expect("decoy"), "decoy");
    let account = h.account_of(subscription).await;
    let aside: Vec<PathBuf> = std::fs::read_dir(web_root(&h).join(".mpanel/held"))
        .expect("held dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&account.simple().to_string())))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].to_string_lossy().ends_with("-during-suspension"));
    assert_eq!(std::fs::read_to_string(aside[0].join("upload.txt")).expect("kept"), "uploaded while suspended");
    assert!(!aside[0].join("index.html").exists(), "our suspended page should have gone");
}

/// Incompressible content that takes gzip seconds, so a job can be cut off
/// in the middle of archiving.
fn big_site(root: &Path) {
    let mut data = vec![0u8; 160 * 1024 * 1024];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(root.join("public/big.bin"), data).expect("big file");
}

#[tokio::test]
async fn terminate_cut_off_while_archiving_keeps_the_site_until_its_own_verified_archive_exists() {
    let h = Hosting::new().await;
    let (subscription, domain) = h.live().await;
    let root = site(&h.app.env, &domain);
    big_site(&root);
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    // An archive of an earlier termination of the same domain, same day: never taken for this one.
    let terminated = web_root(&h).join(".terminated");
    std::fs::create_dir_all(&terminated).expect("dir");
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let earlier = terminated.join(format!("{domain}-{today}.tar.gz"));
    std::fs::write(&earlier, "not an archive").expect("earlier");

    let accepted = act(&h, &admin, subscription, "terminate", None).await;
    let job = first_job(&accepted);
    let partial = terminated.join(format!("{domain}-{today}-{}.tar.gz.1.partial", job.simple()));
    let archive = terminated.join(format!("{domain}-{today}-{}.tar.gz", job.simple()));

    // Attempt 1 is cut off once tar has started writing.
    let state = h.app.state.clone();
    let first = h.claimed(job, 1).await;
    let task = tokio::spawn(async move {
        let _ = mpanel::provision::execute(mpanel::provision::Provisioner::of(&state), &first).await;
    });
    let mut waited = 0;
    while !partial.exists() {
        assert!(waited < 300, "tar never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    task.abort();
    let _ = task.await;
    assert!(root.join("public/big.bin").exists() && root.join("public/index.html").exists(), "site touched");
    assert!(!archive.exists(), "promoted before verification");

    // The next attempt does not overlap the cut-off tar still running remotely.
    let outcome = h.run(job).await;
    assert!(matches!(outcome, RunOutcome::Retrying { .. }), "{outcome:?}");
    assert!(last_error(&h, job).await.contains("still working"), "{}", last_error(&h, job).await);
    assert!(root.join("public/big.bin").exists(), "the site went while the archive was unfinished");

    // Once the remote work is over, a later attempt completes.
    let mut outcome = outcome;
    for _ in 0..60 {
        if outcome == RunOutcome::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        h.app.db().await.execute("UPDATE jobs SET run_after = now() WHERE id = $1", &[&job]).await.expect("due");
        outcome = h.run(job).await;
    }
    assert_eq!(outcome, RunOutcome::Succeeded);
    assert!(!root.exists(), "the site is removed after its archive");
    let listing = std::process::Command::new("tar").arg("-tzf").arg(&archive).output().expect("tar");
    assert!(listing.status.success(), "archive unreadable");
    assert!(String::from_utf8_lossy(&listing.stdout).contains(&format!("{domain}/public/big.bin")));
    assert_eq!(std::fs::read(&earlier).expect("earlier archive"), b"not an archive", "another archive was touched");
    let leftovers: Vec<_> = std::fs::read_dir(&terminated)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.contains(&job.simple().to_string()) && n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_file(&archive);
    let _ = std::fs::remove_file(&earlier);
}

#[tokio::test]
async fn a_job_whose_lease_was_lost_stops_before_its_remote_step() {
    let h = Hosting::new().await;
    let (subscription, domain) = h.live().await;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let job = first_job(&act(&h, &admin, subscription, "terminate", None).await);
    let stale = h.claimed(job, 1).await;
    stale.lease.mark_lost();
    let result = mpanel::provision::execute(mpanel::provision::Provisioner::of(&h.app.state), &stale).await;
    let error = result.expect_err("a lost lease must stop the job");
    assert!(error.retryable && error.message.contains("lease was lost"), "{error:?}");
    assert!(site(&h.app.env, &domain).join("public/index.html").exists(), "the site was touched");
}

#[tokio::test]
async fn the_heartbeat_keeps_a_long_job_from_being_rescued_and_run_twice() {
    let app = mpanel_tests::spawn_app_with(|env| {
        env.insert("JOB_LEASE_SECS".into(), "2".into());
        env.insert("JOB_TIME_LIMIT_SECS".into(), "120".into());
        env.insert("RATE_LIMIT_MAX".into(), "100000".into());
    })
    .await;
    let tenant = app.create_tenant("host").await;
    app.catalog_price(tenant, "starter", "SHARED_HOSTING", json!({"emails": 5, "diskMb": 2048}), 999).await;
    let server = app.local_web_server(tenant, None).await;
    let h = Hosting::on(app, tenant, server);
    let (subscription, domain) = h.live().await;
    big_site(&site(&h.app.env, &domain));
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let job = first_job(&act(&h, &admin, subscription, "terminate", None).await);

    // A scheduler rescues expired leases every 300 ms while the job archives.
    let state = h.app.state.clone();
    let rescuer = tokio::spawn(async move {
        let mut rescued = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            rescued += mpanel::engine::rescue_expired(&state).await.expect("rescue").0;
            if rescued > 0 {
                return rescued;
            }
        }
    });
    let outcome = h.run(job).await;
    rescuer.abort();
    let rescued = rescuer.await.unwrap_or(0);
    assert_eq!(outcome, RunOutcome::Succeeded);
    assert_eq!(rescued, 0, "the running job was rescued");
    let attempts: i64 = h.app.count(&format!("job_attempts WHERE job_id = '{job}'")).await;
    assert_eq!(attempts, 1);
}

/// A failed payment with no grace: the sweep queues a suspension; its job.
async fn suspension_for_non_payment(h: &Hosting, subscription: Uuid) -> Uuid {
    h.without_grace().await;
    let failed = json!({"tenantSlug": "host", "type": "payment_failed", "subscriptionId": subscription});
    assert_eq!(h.app.request(h.billing_event("evt_fail", failed)).await.status, StatusCode::OK);
    assert_eq!(sweep(&h.app.state).await.expect("sweep").suspended, 1);
    job_of(&h.app.jobs_of(subscription).await, "SUSPEND_SERVICE")
}

#[tokio::test]
async fn a_renewal_after_the_suspension_was_queued_turns_the_job_into_a_no_op() {
    let h = Hosting::new().await;
    let (subscription, domain) = h.live().await;
    let suspend = suspension_for_non_payment(&h, subscription).await;

    let renewed = json!({"tenantSlug": "host", "type": "renewed", "subscriptionId": subscription});
    let answer = h.app.request(h.billing_event("evt_paid", renewed)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "ACTIVE");
    assert_eq!(h.run(suspend).await, RunOutcome::Succeeded);
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");
    let page = std::fs::read_to_string(site(&h.app.env, &domain).join("public/index.html")).expect("page");
    assert!(!page.contains("suspended"), "the paid site was suspended anyway");
    assert_eq!(h.app.count(&format!("audit_logs WHERE action = 'job.skipped' AND target_id = '{suspend}'")).await, 1);
}

#[tokio::test]
async fn billing_events_apply_in_the_order_they_happened_and_concurrent_renewals_each_count() {
    let h = Hosting::new().await;
    let (subscription, _) = h.live().await;
    let db = h.app.db().await;
    let period_end = |row: tokio_postgres::Row| row.get::<_, chrono::DateTime<chrono::Utc>>(0);
    let start = period_end(
        db.query_one("SELECT current_period_end FROM subscriptions WHERE id = $1", &[&subscription])
            .await
            .expect("row"),
    );

    // Renewed at 12:00 is applied; a payment failure from 11:00 arrives late and changes nothing.
    let renewed = json!({"tenantSlug": "host", "type": "renewed", "subscriptionId": subscription,
                         "occurredAt": "2026-12-01T12:00:00Z"});
    assert_eq!(h.app.request(h.billing_event("evt_r", renewed)).await.json()["ignored"], false);
    let late = json!({"tenantSlug": "host", "type": "payment_failed", "subscriptionId": subscription,
                      "occurredAt": "2026-12-01T11:00:00Z"});
    let answer = h.app.request(h.billing_event("evt_late", late)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["ignored"], true);
    let failed_at: Option<chrono::DateTime<chrono::Utc>> = db
        .query_one("SELECT payment_failed_at FROM subscriptions WHERE id = $1", &[&subscription])
        .await
        .expect("row")
        .get(0);
    assert!(failed_at.is_none(), "a late payment_failed was applied");
    assert_eq!(h.app.count("audit_logs WHERE action = 'subscription.billing_event_ignored'").await, 1);

    // Eight renewals at once extend the period eight times more (one was above).
    let requests = (0..8).map(|i| {
        let body = json!({"tenantSlug": "host", "type": "renewed", "subscriptionId": subscription});
        h.app.request(h.billing_event(&format!("evt_c{i}"), body))
    });
    for answer in futures::future::join_all(requests).await {
        assert_eq!(answer.status, StatusCode::OK, "{}", String::from_utf8_lossy(&answer.body));
    }
    let end = period_end(
        db.query_one("SELECT current_period_end FROM subscriptions WHERE id = $1", &[&subscription])
            .await
            .expect("row"),
    );
    let months = (end.date_naive().year() - start.date_naive().year()) * 12 + end.date_naive().month() as i32
        - start.date_naive().month() as i32;
    assert_eq!(months, 9, "{start} → {end}");
}

/// A VPS subscription: no domain, nothing remote yet.
async fn vps(h: &Hosting) -> Uuid {
    h.app.catalog_price(h.tenant, "vps", "VPS", json!({}), 2000).await;
    let body = json!({
        "tenantSlug": "host", "externalOrderId": format!("vps-{}", Uuid::new_v4().simple()),
        "customer": {"email": "vps@example.org", "fullName": "V P S"},
        "priceSlug": "vps-monthly", "totalAmountCents": 2000, "currency": "USD",
    });
    let response = h.app.request(h.app.signed_order(&format!("vps-{}", Uuid::new_v4()), &body)).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&response.body));
    let subscription = Uuid::parse_str(response.json()["subscriptionId"].as_str().expect("id")).expect("uuid");
    for (id, _) in h.app.jobs_of(subscription).await {
        h.run(id).await;
    }
    h.app
        .db()
        .await
        .execute("UPDATE subscriptions SET status = 'ACTIVE' WHERE id = $1 AND status = 'PENDING'", &[&subscription])
        .await
        .expect("active");
    subscription
}

#[tokio::test]
async fn subscriptions_without_a_domain_suspend_and_terminate() {
    let h = Hosting::new().await;
    let subscription = vps(&h).await;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    for (action, status) in [("suspend", "SUSPENDED"), ("unsuspend", "ACTIVE"), ("terminate", "TERMINATED")] {
        let body = (action == "suspend").then(|| json!({"reason": "test"}));
        let accepted = act(&h, &admin, subscription, action, body).await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{action}: {}", accepted.json());
        assert_eq!(h.run(first_job(&accepted)).await, RunOutcome::Succeeded, "{action}");
        assert_eq!(h.app.subscription_status(subscription).await, status);
    }
}

#[tokio::test]
async fn the_sweep_never_asks_again_after_a_dead_lifecycle_job() {
    let h = Hosting::new().await;
    let (subscription, _) = h.live().await;
    let suspend = suspension_for_non_payment(&h, subscription).await;
    // The server now presents another host key: a permanent failure.
    h.app
        .db()
        .await
        .execute(
            "UPDATE servers SET host_key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl' WHERE id = $1",
            &[&h.server],
        )
        .await
        .expect("key");
    assert_eq!(h.run(suspend).await, RunOutcome::Dead);

    for _ in 0..3 {
        assert_eq!(sweep(&h.app.state).await.expect("sweep").suspended, 0, "asked again after a DEAD job");
    }
    assert_eq!(h.app.jobs_of(subscription).await.iter().filter(|(_, t)| t == "SUSPEND_SERVICE").count(), 1);
    assert_eq!(
        h.app
            .count(&format!("audit_logs WHERE action = 'subscription.action_failed' AND target_id = '{subscription}'"))
            .await,
        1
    );
    let reader = h.app.token(&h.app.create_user(h.tenant, Role::ReadOnly).await).await;
    let shown = h.app.authed(Method::GET, &format!("/api/subscriptions/{subscription}"), &reader, None).await.json();
    assert_eq!(shown["deadJobId"], suspend.to_string(), "{shown}");
}

#[tokio::test]
async fn retrying_a_dead_lifecycle_job_needs_its_permission_and_nothing_else_in_flight() {
    let h = Hosting::new().await;
    let (subscription, _) = h.live().await;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let support = h.app.token(&h.app.create_user(h.tenant, Role::Support).await).await;
    let right_key = h.app.env["MPANEL_TEST_SSH_HOST_KEY"].clone();
    let set_key = async |key: &str| {
        h.app
            .db()
            .await
            .execute("UPDATE servers SET host_key = $2 WHERE id = $1", &[&h.server, &key])
            .await
            .expect("key");
    };
    set_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl").await;
    let terminate = first_job(&act(&h, &admin, subscription, "terminate", None).await);
    assert_eq!(h.run(terminate).await, RunOutcome::Dead);
    set_key(&right_key).await;

    let path = format!("/api/jobs/{terminate}/retry");
    let retry = async |token: &str| h.app.authed(Method::POST, &path, token, None).await;
    let refused = retry(&support).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "SUPPORT revived a terminate: {}", refused.json());

    // A suspension in flight: the terminate may not run beside it.
    let suspend = act(&h, &support, subscription, "suspend", Some(json!({"reason": "x"}))).await;
    assert_eq!(suspend.status, StatusCode::ACCEPTED);
    let clash = retry(&admin).await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.json());
    assert!(clash.json()["detail"].as_str().unwrap_or_default().contains("SUSPEND_SERVICE"), "{}", clash.json());
    assert_eq!(h.app.job_status(terminate).await, "DEAD");

    assert_eq!(h.run(first_job(&suspend)).await, RunOutcome::Succeeded);
    let allowed = retry(&admin).await;
    assert_eq!(allowed.status, StatusCode::ACCEPTED, "{}", allowed.json());
    assert_eq!(h.run(terminate).await, RunOutcome::Succeeded);
    assert_eq!(h.app.subscription_status(subscription).await, "TERMINATED");
}

#[tokio::test]
async fn a_lifecycle_action_is_refused_while_provisioning_is_in_flight() {
    let h = Hosting::new().await;
    let domain = unique_domain();
    let (subscription, jobs) = h.order(&domain).await;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let refused = act(&h, &admin, subscription, "terminate", None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.json());
    assert!(refused.json()["detail"].as_str().unwrap_or_default().contains("PROVISION_"), "{}", refused.json());
    assert_eq!(h.app.jobs_of(subscription).await.len(), jobs.len(), "a job was created");
    for (id, _) in &jobs {
        assert_eq!(h.run(*id).await, RunOutcome::Succeeded);
    }
    assert_eq!(act(&h, &admin, subscription, "terminate", None).await.status, StatusCode::ACCEPTED);
}
