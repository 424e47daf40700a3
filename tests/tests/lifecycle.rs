//! Suspend, unsuspend, terminate and billing events, on the real PowerDNS,
//! sshd and database.

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel::engine::{RunOutcome, sweep};
use mpanel_tests::hosting::{Hosting, site};
use mpanel_tests::{dig, request, unique_domain};
use serde_json::{Value, json};
use uuid::Uuid;

/// A live site: ordered, provisioned, ACTIVE.
fn job_ids(body: &Value) -> Vec<Uuid> {
    body["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| Uuid::parse_str(j["id"].as_str().expect("id")).expect("uuid"))
        .collect()
}

async fn act(
    h: &Hosting,
    token: &str,
    subscription: Uuid,
    action: &str,
    body: Option<Value>,
) -> mpanel_tests::TestResponse {
    h.app.authed(Method::POST, &format!("/api/subscriptions/{subscription}/{action}"), token, body).await
}

async fn run_all(h: &Hosting, ids: &[Uuid]) {
    for id in ids {
        assert_eq!(h.run(*id).await, RunOutcome::Succeeded, "job {id}");
    }
}

#[tokio::test]
async fn suspend_then_unsuspend_restores_the_site_byte_for_byte() {
    let h = Hosting::new().await;
    let (subscription, domain) = h.live().await;
    // A mailbox in use (a new one has no password, so no login to disable).
    h.reset_postmaster(&domain).await;
    let token = h.app.token(&h.app.create_user(h.tenant, Role::Support).await).await;
    let public = site(&h.app.env, &domain).join("public");
    let original: Vec<u8> = b"<h1>Jo's bakery</h1>\n\x00\xff binary-safe".to_vec();
    std::fs::write(public.join("index.html"), &original).expect("customer page");
    std::fs::write(public.join("menu.txt"), "bread").expect("another file");

    assert_eq!(
        act(&h, &token, subscription, "suspend", Some(json!({}))).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let first = act(&h, &token, subscription, "suspend", Some(json!({"reason": "abuse report #42"}))).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&first.body));
    let first = first.json();
    // Still ACTIVE until the job has done its work.
    assert_eq!(first["subscription"]["status"], "ACTIVE");
    let again = act(&h, &token, subscription, "suspend", Some(json!({"reason": "abuse report #42"}))).await.json();
    assert_eq!(job_ids(&again), job_ids(&first), "a second request while in flight made new jobs");
    run_all(&h, &job_ids(&first)).await;

    assert_eq!(h.app.subscription_status(subscription).await, "SUSPENDED");
    let served = std::fs::read_to_string(public.join("index.html")).expect("suspended page");
    assert!(served.contains("suspended"), "{served}");
    assert!(!public.join("menu.txt").exists(), "the original is still served");
    let held_name: String = h
        .app
        .db()
        .await
        .query_one("SELECT held_name FROM hosting_accounts WHERE subscription_id = $1", &[&subscription])
        .await
        .expect("account")
        .get(0);
    let held = std::path::PathBuf::from(&h.app.env["MPANEL_TEST_WEB_ROOT"]).join(".mpanel/held").join(held_name);
    assert_eq!(std::fs::read(held.join("index.html")).expect("held original"), original);
    assert_eq!(
        h.app.count(&format!("dovecot_users WHERE \"user\" = 'postmaster@{domain}'")).await,
        0,
        "mailbox still enabled"
    );
    assert_eq!(dig(&h.app.env, &domain, "A"), ["127.0.0.1"], "DNS is left alone");
    let reason: String = h
        .app
        .db()
        .await
        .query_one("SELECT suspended_reason FROM subscriptions WHERE id = $1", &[&subscription])
        .await
        .expect("row")
        .get(0);
    assert_eq!(reason, "abuse report #42");

    let back = act(&h, &token, subscription, "unsuspend", None).await;
    assert_eq!(back.status, StatusCode::ACCEPTED);
    run_all(&h, &job_ids(&back.json())).await;
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");
    assert_eq!(std::fs::read(public.join("index.html")).expect("restored"), original);
    assert_eq!(std::fs::read_to_string(public.join("menu.txt")).expect("restored"), "bread");
    assert!(!held.exists());
    assert_eq!(h.app.count(&format!("dovecot_users WHERE \"user\" = 'postmaster@{domain}'")).await, 1);
    let actions: Vec<String> = h
        .app
        .db()
        .await
        .query(
            "SELECT action FROM audit_logs WHERE target_id = $1 AND action LIKE 'subscription.%' ORDER BY created_at, id",
            &[&subscription],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions,
        [
            "subscription.activated",
            "subscription.suspend_requested",
            "subscription.suspended",
            "subscription.unsuspend_requested",
            "subscription.unsuspended"
        ]
    );
}

#[tokio::test]
async fn terminate_removes_everything_archives_the_site_and_frees_the_domain() {
    let h = Hosting::new().await;
    let (subscription, domain) = h.live().await;
    let support = h.app.token(&h.app.create_user(h.tenant, Role::Support).await).await;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    assert_eq!(act(&h, &support, subscription, "terminate", None).await.status, StatusCode::FORBIDDEN);
    let accepted = act(&h, &admin, subscription, "terminate", None).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let ids = job_ids(&accepted.json());
    // A worker that did all the work and died before recording it: the
    // effects happen once more on the real run, and it still succeeds.
    let crashed = h.claimed(ids[0], 1).await;
    mpanel::provision::execute(mpanel::provision::Provisioner::of(&h.app.state), &crashed).await.expect("first pass");
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE", "status changes only when the job succeeds");
    run_all(&h, &ids).await;

    assert_eq!(h.app.subscription_status(subscription).await, "TERMINATED");
    let answer = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &h.app.env["PDNS_DNS_PORT"], "+norecurse", &domain, "A"])
        .output()
        .expect("dig");
    let answer = String::from_utf8_lossy(&answer.stdout);
    assert!(answer.contains("status: REFUSED") || answer.contains("status: NXDOMAIN"), "{answer}");
    assert!(!site(&h.app.env, &domain).exists(), "site directory still there");
    let archive = std::path::PathBuf::from(&h.app.env["MPANEL_TEST_WEB_ROOT"]).join(".terminated").join(format!(
        "{domain}-{}-{}.tar.gz",
        chrono::Utc::now().date_naive().format("%Y-%m-%d"),
        ids[0].simple()
    ));
    let recorded: Option<String> = h
        .app
        .db()
        .await
        .query_one("SELECT archive_path FROM hosting_accounts WHERE subscription_id = $1", &[&subscription])
        .await
        .expect("account")
        .get(0);
    assert_eq!(recorded.as_deref(), archive.to_str(), "the archive is recorded");
    let listing = std::process::Command::new("tar").args(["-tzf"]).arg(&archive).output().expect("tar");
    assert!(listing.status.success(), "archive {} unreadable", archive.display());
    assert!(String::from_utf8_lossy(&listing.stdout).contains(&format!("{domain}/public/index.html")));
    assert_eq!(h.app.count("mail_accounts").await, 0);
    assert_eq!(h.app.count("domains WHERE status = 'RELEASED' AND released_at IS NOT NULL").await, 1);

    // The domain can be ordered again, and provisions from scratch.
    let body = json!({
        "tenantSlug": "host", "externalOrderId": format!("again-{domain}"),
        "customer": {"email": "new-owner@example.org", "fullName": "New Owner"},
        "priceSlug": "starter-monthly", "totalAmountCents": 999, "currency": "USD", "domain": domain,
    });
    let reorder = h.app.request(h.app.signed_order(&format!("again-{domain}"), &body)).await;
    assert_eq!(reorder.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reorder.body));
    run_all(&h, &job_ids(&reorder.json())).await;
    assert_eq!(dig(&h.app.env, &domain, "A"), ["127.0.0.1"]);
}

#[tokio::test]
async fn illegal_transitions_are_409_and_change_nothing() {
    let h = Hosting::new().await;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let (pending, _) = h.order(&unique_domain()).await;
    let (active, _) = h.live().await;
    let before = (h.app.count("jobs").await, h.app.count("audit_logs").await);
    for (subscription, action, from) in [
        (pending, "suspend", "PENDING"),
        (pending, "unsuspend", "PENDING"),
        (pending, "terminate", "PENDING"),
        (active, "unsuspend", "ACTIVE"),
    ] {
        let body = (action == "suspend").then(|| json!({"reason": "x"}));
        let r = act(&h, &admin, subscription, action, body).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{action} from {from}");
        let detail = r.json()["detail"].as_str().expect("detail").to_string();
        assert!(detail.contains(from), "{detail}");
    }
    assert_eq!((h.app.count("jobs").await, h.app.count("audit_logs").await), before, "a refused request wrote rows");
    assert_eq!(h.app.subscription_status(pending).await, "PENDING");
    assert_eq!(h.app.subscription_status(active).await, "ACTIVE");

    // Once suspended: suspend again is refused; terminated: everything is.
    let s = act(&h, &admin, active, "suspend", Some(json!({"reason": "r"}))).await.json();
    run_all(&h, &job_ids(&s)).await;
    assert_eq!(act(&h, &admin, active, "suspend", Some(json!({"reason": "r"}))).await.status, StatusCode::CONFLICT);
    let t = act(&h, &admin, active, "terminate", None).await.json();
    run_all(&h, &job_ids(&t)).await;
    for action in ["suspend", "unsuspend", "terminate"] {
        let body = (action == "suspend").then(|| json!({"reason": "x"}));
        assert_eq!(
            act(&h, &admin, active, action, body).await.status,
            StatusCode::CONFLICT,
            "{action} when TERMINATED"
        );
    }
    // Another tenant's subscription is not found.
    let other = h.app.create_tenant("other").await;
    let outsider = h.app.token(&h.app.create_user(other, Role::Admin).await).await;
    assert_eq!(act(&h, &outsider, pending, "terminate", None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn payment_failed_suspends_after_grace_and_renewed_reactivates() {
    let h = Hosting::new().await;
    let (subscription, domain) = h.live().await;
    h.without_grace().await;
    let end_before: chrono::DateTime<chrono::Utc> = h
        .app
        .db()
        .await
        .query_one("SELECT current_period_end FROM subscriptions WHERE id = $1", &[&subscription])
        .await
        .expect("row")
        .get(0);

    let failed = json!({"tenantSlug": "host", "type": "payment_failed", "externalOrderId": format!("ext-{domain}")});
    let r = h.app.request(h.billing_event("evt_1", failed.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let replay = h.app.request(h.billing_event("evt_1", failed)).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, r.body);

    // The next sweep suspends (grace 0) and the job runs.
    let report = sweep(&h.app.state).await.expect("sweep");
    assert_eq!(report.suspended, 1);
    assert_eq!(sweep(&h.app.state).await.expect("sweep").suspended, 0, "suspended twice");
    let jobs = h.app.jobs_of(subscription).await;
    let suspend_job = jobs.iter().find(|(_, t)| t == "SUSPEND_SERVICE").expect("suspend job").0;
    assert_eq!(h.run(suspend_job).await, RunOutcome::Succeeded);
    assert_eq!(h.app.subscription_status(subscription).await, "SUSPENDED");

    let renewed = json!({"tenantSlug": "host", "type": "renewed", "subscriptionId": subscription});
    let r = h.app.request(h.billing_event("evt_2", renewed)).await;
    assert_eq!(r.status, StatusCode::OK);
    let ids = job_ids(&r.json());
    assert_eq!(ids.len(), 1, "renewal of a non-payment suspension unsuspends");
    run_all(&h, &ids).await;
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");
    let row = h
        .app
        .db()
        .await
        .query_one("SELECT current_period_end, payment_failed_at FROM subscriptions WHERE id = $1", &[&subscription])
        .await
        .expect("row");
    let end_after: chrono::DateTime<chrono::Utc> = row.get(0);
    assert!(end_after > end_before + chrono::Duration::days(27), "{end_before} → {end_after}");
    assert!(row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(1).is_none());
    assert_eq!(sweep(&h.app.state).await.expect("sweep").suspended, 0);

    // A staff suspension is not lifted by a renewal.
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let s = act(&h, &admin, subscription, "suspend", Some(json!({"reason": "abuse"}))).await.json();
    run_all(&h, &job_ids(&s)).await;
    let r = h
        .app
        .request(
            h.billing_event("evt_3", json!({"tenantSlug": "host", "type": "renewed", "subscriptionId": subscription})),
        )
        .await;
    assert!(job_ids(&r.json()).is_empty());
    assert_eq!(h.app.subscription_status(subscription).await, "SUSPENDED");
}

#[tokio::test]
async fn cancelled_terminates_at_period_end_and_events_are_validated() {
    let h = Hosting::new().await;
    let (subscription, _) = h.live().await;
    let cancel = json!({"tenantSlug": "host", "type": "cancelled", "subscriptionId": subscription});
    assert_eq!(h.app.request(h.billing_event("evt_c", cancel)).await.status, StatusCode::OK);
    assert_eq!(sweep(&h.app.state).await.expect("sweep").terminated, 0, "terminated before the period ended");
    h.app
        .db()
        .await
        .execute(
            "UPDATE subscriptions SET current_period_end = now() - interval '1 minute' WHERE id = $1",
            &[&subscription],
        )
        .await
        .expect("period over");
    assert_eq!(sweep(&h.app.state).await.expect("sweep").terminated, 1);
    let terminate =
        h.app.jobs_of(subscription).await.into_iter().find(|(_, t)| t == "TERMINATE_SERVICE").expect("job").0;
    assert_eq!(h.run(terminate).await, RunOutcome::Succeeded);
    assert_eq!(h.app.subscription_status(subscription).await, "TERMINATED");

    // Bad events: 401 unsigned, 422 fields, 404 unknown subscription, 409 terminated.
    let unsigned =
        h.app.request(request(Method::POST, "/api/subscriptions/events", &[], Some(json!({"type": "renewed"})))).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    let bad = h.app.request(h.billing_event("evt_bad", json!({"tenantSlug": "host", "type": "refunded"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = bad.json();
    let fields: Vec<&str> =
        body["errors"].as_array().expect("errors").iter().map(|e| e["field"].as_str().expect("field")).collect();
    assert_eq!(fields, ["type", "subscriptionId"]);
    let unknown = json!({"tenantSlug": "host", "type": "renewed", "subscriptionId": Uuid::new_v4()});
    assert_eq!(h.app.request(h.billing_event("evt_unknown", unknown)).await.status, StatusCode::NOT_FOUND);
    let late = json!({"tenantSlug": "host", "type": "renewed", "subscriptionId": subscription});
    assert_eq!(h.app.request(h.billing_event("evt_late", late)).await.status, StatusCode::CONFLICT);
}
