//! HTTPS by default (issue #19): ISSUE_CERTIFICATE against the stack's
//! Pebble, DNS-01 through the local PowerDNS, installed by the shipped
//! `mpanel-site` into the local nginx (8443), renewed by the sweep. Real
//! Pebble, PowerDNS, nginx, sshd; `curl` checks what a browser would.

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel::engine::{RunOutcome, sweep};
use mpanel_tests::hosting::{Hosting, job_of};
use serde_json::{Value, json};
use uuid::Uuid;

/// Pebble's issuing root (new at every Pebble start), as a file for curl.
fn pebble_root(env: &mpanel::config::Env) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("pebble-root-{}.pem", Uuid::new_v4().simple()));
    let fetched = std::process::Command::new("curl")
        .args(["-sSf", "--cacert", &env["ACME_CA_FILE"], "-o"])
        .arg(&path)
        .arg(&env["MPANEL_TEST_ACME_ROOTS_URL"])
        .status()
        .expect("curl");
    assert!(fetched.success(), "Pebble's root could not be fetched");
    path
}

/// `curl` over HTTPS to the local nginx as `host`, trusting only `root`:
/// (exit success, body, headers).
fn https(env: &mpanel::config::Env, root: &std::path::Path, host: &str, path: &str) -> (bool, String) {
    let port = &env["MPANEL_TEST_HTTPS_PORT"];
    let output = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&output.stdout).into_owned();
    (
        output.status.success(),
        if output.status.success() { body } else { String::from_utf8_lossy(&output.stderr).into() },
    )
}

/// The serial of the certificate nginx presents for `host`.
fn served_serial(env: &mpanel::config::Env, host: &str) -> String {
    let script = format!(
        "openssl s_client -connect 127.0.0.1:{} -servername {host} </dev/null 2>/dev/null | openssl x509 -noout -serial",
        env["MPANEL_TEST_HTTPS_PORT"]
    );
    let output = std::process::Command::new("sh").args(["-c", &script]).output().expect("openssl");
    String::from_utf8_lossy(&output.stdout).trim().trim_start_matches("serial=").to_ascii_lowercase()
}

/// An ordered site, provisioned; returns (subscription, domain, certificate job).
async fn live_with_certificate_job(h: &Hosting) -> (Uuid, String, Uuid) {
    let (subscription, domain) = h.live().await;
    let jobs = h.app.jobs_of(subscription).await;
    (subscription, domain, job_of(&jobs, "ISSUE_CERTIFICATE"))
}

async fn certificate_of(h: &Hosting, token: &str, domain: &str) -> Value {
    let answer = h.app.authed(Method::GET, &format!("/api/certificates?domain={domain}"), token, None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json());
    let items = answer.json()["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    items[0].clone()
}

fn hex_serial(serial: &Value) -> String {
    serial.as_str().expect("serial").replace(':', "").to_ascii_lowercase()
}

#[tokio::test]
async fn a_new_site_gets_a_certificate_served_over_https_and_http_redirects() {
    let h = Hosting::with_certificates().await;
    let (subscription, domain, job) = live_with_certificate_job(&h).await;
    assert_eq!(h.run_acme(job).await, RunOutcome::Succeeded, "{}", h.app.job_status(job).await);

    let reader = h.app.token(&h.app.create_user(h.tenant, Role::ReadOnly).await).await;
    let certificate = certificate_of(&h, &reader, &domain).await;
    assert_eq!(certificate["status"], "ISSUED");
    let names: Vec<&str> = certificate["names"].as_array().expect("names").iter().filter_map(Value::as_str).collect();
    for name in [domain.clone(), format!("www.{domain}"), format!("mail.{domain}")] {
        assert!(names.contains(&name.as_str()), "{name} missing from {names:?}");
    }
    assert!(certificate["issuer"].as_str().is_some_and(|i| i.to_ascii_lowercase().contains("pebble")), "{certificate}");
    assert!(certificate["notBefore"].is_string() && certificate["notAfter"].is_string());
    assert_eq!(certificate["lastError"], Value::Null);
    let id = certificate["id"].as_str().expect("id");
    let one = h.app.authed(Method::GET, &format!("/api/certificates/{id}"), &reader, None).await;
    assert_eq!((one.status, one.json()["id"].clone()), (StatusCode::OK, json!(id)));
    let detail = h.app.authed(Method::GET, &format!("/api/subscriptions/{subscription}"), &reader, None).await;
    assert_eq!(detail.json()["certificate"]["id"], json!(id), "the subscription names its certificate");

    // Only the key's sealed form is in Postgres.
    let row = h
        .app
        .db()
        .await
        .query_one("SELECT private_key_sealed, certificate_pem FROM ssl_certificates WHERE id = $1::text::uuid", &[&id])
        .await
        .expect("row");
    let sealed: Vec<u8> = row.get(0);
    assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));

    let root = pebble_root(&h.app.env);
    let (ok, page) = https(&h.app.env, &root, &domain, "/");
    assert!(ok && page.contains(&format!("<h1>{domain}</h1>")), "{page}");
    let (ok, page) = https(&h.app.env, &root, &format!("www.{domain}"), "/");
    assert!(ok && page.contains(&format!("<h1>{domain}</h1>")), "{page}");
    assert_eq!(served_serial(&h.app.env, &domain), hex_serial(&certificate["serial"]));

    // Plain HTTP now only redirects.
    let port: u16 = h.app.env["MPANEL_TEST_HTTP_PORT"].parse().expect("port");
    let client = mpanel_tests::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&domain, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .expect("client");
    let answer = client.get(format!("http://{domain}:{port}/a?b=c")).send().await.expect("nginx");
    assert_eq!(answer.status().as_u16(), 301);
    let https_port = &h.app.env["MPANEL_TEST_HTTPS_PORT"];
    assert_eq!(answer.headers()["location"], format!("https://{domain}:{https_port}/a?b=c").as_str());

    // Suspend keeps the certificate: the suspended page over HTTPS.
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    for action in ["suspend", "unsuspend"] {
        let body = (action == "suspend").then(|| json!({"reason": "test"}));
        let answer =
            h.app.authed(Method::POST, &format!("/api/subscriptions/{subscription}/{action}"), &admin, body).await;
        let job = Uuid::parse_str(answer.json()["jobs"][0]["id"].as_str().expect("job")).expect("uuid");
        assert_eq!(h.run(job).await, RunOutcome::Succeeded);
        let (ok, page) = https(&h.app.env, &root, &domain, "/");
        assert!(ok, "{action}: {page}");
        assert_eq!(page.contains("This site is suspended"), action == "suspend", "{page}");
    }

    // Terminate removes key and certificate files with the site.
    let certs = std::path::Path::new(&h.app.env["MPANEL_TEST_WEB_ROOT"]).join(".mpanel/certs").join(&domain);
    assert!(certs.join("privkey.pem").exists());
    let answer =
        h.app.authed(Method::POST, &format!("/api/subscriptions/{subscription}/terminate"), &admin, None).await;
    let job = Uuid::parse_str(answer.json()["jobs"][0]["id"].as_str().expect("job")).expect("uuid");
    assert_eq!(h.run(job).await, RunOutcome::Succeeded);
    assert!(!certs.exists(), "the certificate files outlived the site");
    let (ok, _) = https(&h.app.env, &root, &domain, "/");
    assert!(!ok, "HTTPS still answers for a terminated site");
    let gone = h.app.authed(Method::GET, &format!("/api/certificates/{id}"), &reader, None).await;
    assert_eq!(gone.json()["status"], "DELETED");
    let _ = std::fs::remove_file(root);
}

#[tokio::test]
async fn the_sweep_renews_a_certificate_near_expiry_and_nginx_serves_the_new_one() {
    let h = Hosting::with_certificates().await;
    let (subscription, domain, job) = live_with_certificate_job(&h).await;
    assert_eq!(h.run_acme(job).await, RunOutcome::Succeeded);
    let reader = h.app.token(&h.app.create_user(h.tenant, Role::ReadOnly).await).await;
    let first = certificate_of(&h, &reader, &domain).await;

    // Nothing is due yet: the sweep leaves it alone.
    sweep(&h.app.state).await.expect("sweep");
    assert_eq!(h.app.jobs_of(subscription).await.iter().filter(|(_, t)| t == "ISSUE_CERTIFICATE").count(), 1);

    // Two thirds of its lifetime gone, by its dates.
    h.app
        .db()
        .await
        .execute(
            "UPDATE ssl_certificates SET not_before = now() - interval '20 days', not_after = now() + interval '5 days'
             WHERE subscription_id = $1",
            &[&subscription],
        )
        .await
        .expect("expiry near");
    let report = sweep(&h.app.state).await.expect("sweep");
    assert_eq!(report.certificates, 1, "{report:?}");
    let renewal = h.app.jobs_of(subscription).await.into_iter().filter(|(_, t)| t == "ISSUE_CERTIFICATE").nth(1);
    let (renewal, _) = renewal.expect("a renewal job");
    assert_eq!(certificate_of(&h, &reader, &domain).await["status"], "RENEWING");
    assert_eq!(h.run_acme(renewal).await, RunOutcome::Succeeded, "{}", h.app.job_status(renewal).await);

    let second = certificate_of(&h, &reader, &domain).await;
    assert_eq!(second["id"], first["id"], "renewed in place");
    assert_eq!(second["status"], "ISSUED");
    assert_ne!(second["serial"], first["serial"]);
    assert_eq!(served_serial(&h.app.env, &domain), hex_serial(&second["serial"]), "nginx serves the new one");
    let report = sweep(&h.app.state).await.expect("sweep");
    assert_eq!(report.certificates, 0, "{report:?}");
}

#[tokio::test]
async fn a_domain_not_delegated_to_us_fails_clearly_once_and_waits_hours() {
    let h = Hosting::with_certificates().await;
    let (subscription, domain, job) = live_with_certificate_job(&h).await;
    // The world's DNS says someone else serves the domain.
    let env = &h.app.env;
    let changed = mpanel_tests::http_client()
        .patch(format!("{}/servers/{}/zones/{domain}.", env["PDNS_API_URL"], env["PDNS_SERVER_ID"]))
        .header("X-API-Key", &env["PDNS_API_KEY"])
        .json(&json!({ "rrsets": [{ "name": format!("{domain}."), "type": "NS", "ttl": 3600, "changetype": "REPLACE",
            "records": [{ "content": "ns1.elsewhere.example.", "disabled": false }] }] }))
        .send()
        .await
        .expect("PowerDNS");
    assert!(changed.status().is_success(), "{}", changed.status());

    assert_eq!(h.run(job).await, RunOutcome::Dead, "one attempt, not one a minute");
    let attempts: i32 =
        h.app.db().await.query_one("SELECT attempts FROM jobs WHERE id = $1", &[&job]).await.expect("job").get(0);
    assert_eq!(attempts, 1);
    let reader = h.app.token(&h.app.create_user(h.tenant, Role::ReadOnly).await).await;
    let certificate = certificate_of(&h, &reader, &domain).await;
    assert_eq!(certificate["status"], "FAILED");
    let error = certificate["lastError"].as_str().expect("lastError");
    assert!(error.contains("is not served by our nameservers") && error.contains("ns1.elsewhere.example."), "{error}");
    let next: chrono::DateTime<chrono::Utc> =
        certificate["nextAttemptAt"].as_str().expect("next attempt").parse().expect("time");
    assert!(next > chrono::Utc::now() + chrono::Duration::minutes(50), "{next}");

    // The sweep does not ask again before then.
    let report = sweep(&h.app.state).await.expect("sweep");
    assert_eq!(report.certificates, 0);
    assert_eq!(h.app.jobs_of(subscription).await.iter().filter(|(_, t)| t == "ISSUE_CERTIFICATE").count(), 1);
}

#[tokio::test]
async fn staff_reissue_needs_admin_or_support_and_reuses_a_job_in_flight() {
    let h = Hosting::with_certificates().await;
    let (subscription, _domain, job) = live_with_certificate_job(&h).await;
    let path = format!("/api/subscriptions/{subscription}/certificate");
    for role in [Role::ReadOnly, Role::Billing] {
        let token = h.app.token(&h.app.create_user(h.tenant, role).await).await;
        assert_eq!(h.app.authed(Method::POST, &path, &token, None).await.status, StatusCode::FORBIDDEN, "{role}");
    }
    let support = h.app.token(&h.app.create_user(h.tenant, Role::Support).await).await;
    let answer = h.app.authed(Method::POST, &path, &support, None).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json());
    assert_eq!(answer.json()["jobId"], json!(job.to_string()), "the job in flight is the answer");
    assert_eq!(answer.json()["created"], json!(false));

    assert_eq!(h.run_acme(job).await, RunOutcome::Succeeded);
    let answer = h.app.authed(Method::POST, &path, &support, None).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.json()["created"], json!(true));
    let again = Uuid::parse_str(answer.json()["jobId"].as_str().expect("job")).expect("uuid");
    assert_ne!(again, job);
    assert_eq!(h.run_acme(again).await, RunOutcome::Succeeded, "{}", h.app.job_status(again).await);
}

#[tokio::test]
async fn a_renewal_still_failing_a_week_before_expiry_raises_one_alarm_and_tries_are_bounded() {
    let h = Hosting::with_certificates().await;
    let (subscription, _domain, job) = live_with_certificate_job(&h).await;
    assert_eq!(h.run_acme(job).await, RunOutcome::Succeeded);
    let certificate_jobs = |jobs: Vec<(Uuid, String)>| jobs.iter().filter(|(_, t)| t == "ISSUE_CERTIFICATE").count();
    let set = |sql: &'static str| {
        let app = &h.app;
        async move { app.db().await.execute(sql, &[&subscription]).await.expect("update") }
    };

    // Renewal has failed once and is not due again yet; expiry is 3 days off.
    set("UPDATE ssl_certificates SET status = 'RENEWING', failures = 1, last_error = 'ACME: rateLimited: slow down',
            not_before = now() - interval '60 days', not_after = now() + interval '3 days',
            next_attempt_at = now() + interval '1 hour' WHERE subscription_id = $1")
    .await;
    let report = sweep(&h.app.state).await.expect("sweep");
    assert_eq!((report.certificate_alarms, report.certificates), (1, 0), "{report:?}");
    let alarms: i64 = h
        .app
        .db()
        .await
        .query_one("SELECT count(*) FROM audit_logs WHERE action = 'certificate.renewal_failing'", &[])
        .await
        .expect("audit")
        .get(0);
    assert_eq!(alarms, 1);
    assert_eq!(sweep(&h.app.state).await.expect("sweep").certificate_alarms, 0, "the alarm is raised once");

    // Due again, but the bound of tries (ACME_MAX_FAILURES, 5) is reached: no new job.
    set("UPDATE ssl_certificates SET failures = 5, next_attempt_at = now() - interval '1 minute'
         WHERE subscription_id = $1")
    .await;
    assert_eq!(sweep(&h.app.state).await.expect("sweep").certificates, 0);
    assert_eq!(certificate_jobs(h.app.jobs_of(subscription).await), 1);
    // One try left: the sweep asks.
    set("UPDATE ssl_certificates SET failures = 4 WHERE subscription_id = $1").await;
    assert_eq!(sweep(&h.app.state).await.expect("sweep").certificates, 1);
    assert_eq!(certificate_jobs(h.app.jobs_of(subscription).await), 2);
}
