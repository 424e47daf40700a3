//! The provisioning engine against the real PowerDNS, sshd, Postgres,
//! Redis and moto.

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel::engine::{RunOutcome, claim, run_job, sweep};
use mpanel_tests::hosting::{Hosting, job_of, site};
use mpanel_tests::{dig, unique_domain};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn a_hosting_order_goes_live_and_running_it_again_changes_nothing() {
    let h = Hosting::new().await;
    let domain = unique_domain();
    let (subscription, jobs) = h.order(&domain).await;
    assert_eq!(jobs.len(), 3);
    for (id, _) in &jobs {
        assert_eq!(h.run(*id).await, RunOutcome::Succeeded);
    }
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");
    assert_eq!(h.app.count(&format!("domains WHERE name = '{domain}' AND status = 'ACTIVE'")).await, 1);

    // PowerDNS serves the contract's records.
    let env = &h.app.env;
    assert_eq!(dig(env, &domain, "A"), ["127.0.0.1"]);
    assert_eq!(dig(env, &format!("www.{domain}"), "A"), ["127.0.0.1"]);
    assert_eq!(dig(env, &domain, "MX"), [format!("10 mail.{domain}.")]);
    assert_eq!(dig(env, &format!("mail.{domain}"), "A"), ["127.0.0.1"]);
    assert_eq!(dig(env, &domain, "TXT"), ["\"v=spf1 mx a ~all\""]);
    assert_eq!(dig(env, &format!("_dmarc.{domain}"), "TXT"), ["\"v=DMARC1; p=none\""]);
    assert_eq!(h.app.count("dns_records").await, 6);
    assert_eq!(h.app.count("dns_zones").await, 1);

    // The site exists on the sshd host.
    let root = site(env, &domain);
    for dir in ["public", "logs", "private"] {
        assert!(root.join(dir).is_dir(), "{dir} missing under {}", root.display());
    }
    let index = root.join("public/index.html");
    let page = std::fs::read_to_string(&index).expect("index.html");
    assert!(page.contains(&domain), "{page}");
    assert_eq!(h.app.count("hosting_accounts WHERE status = 'ACTIVE'").await, 1);

    // The mailbox as Dovecot reads it: it receives mail at once, and logs
    // in only once staff have set a password (stored only hashed).
    let db = h.app.db().await;
    let postmaster = format!("postmaster@{domain}");
    let mailbox = db
        .query_one("SELECT home, quota_rule FROM dovecot_mailboxes WHERE \"user\" = $1", &[&postmaster])
        .await
        .expect("dovecot mailbox row");
    assert_eq!(mailbox.get::<_, String>(1), "*:storage=2048M");
    let login = "SELECT password FROM dovecot_users WHERE \"user\" = $1";
    assert!(db.query_opt(login, &[&postmaster]).await.expect("query").is_none(), "a login without a password");
    h.reset_postmaster(&domain).await;
    let password: String = db.query_one(login, &[&postmaster]).await.expect("dovecot login row").get(0);
    assert!(password.starts_with("{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$"), "{password}");

    // Every executor again: nothing changes, and the customer's page survives.
    std::fs::write(&index, "customer content").expect("write page");
    let before_records = dig(env, &domain, "A");
    for (id, job_type) in &jobs {
        let job = mpanel::jobs::ClaimedJob {
            id: *id,
            tenant_id: h.tenant,
            subscription_id: Some(subscription),
            job_type: job_type.parse().expect("type"),
            payload: Value::Null,
            attempt: 2,
            max_attempts: 8,
            worker: "again".into(),
            lease: mpanel::jobs::Lease::default(),
        };
        mpanel::provision::execute(mpanel::provision::Provisioner::of(&h.app.state), &job)
            .await
            .expect("second run succeeds");
    }
    assert_eq!(std::fs::read_to_string(&index).expect("page"), "customer content");
    assert_eq!(dig(env, &domain, "A"), before_records);
    assert_eq!(h.app.count("dns_records").await, 6);
    assert_eq!(h.app.count("mail_accounts").await, 1);
    assert_eq!(h.app.count("hosting_accounts").await, 1);
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");
    // A job that is done is not run again when redelivered.
    assert_eq!(h.run(jobs[0].0).await, RunOutcome::NotClaimed);
}

#[tokio::test]
async fn jobs_finishing_in_any_order_activate() {
    let h = Hosting::new().await;
    let orders = [
        ["PROVISION_HOSTING", "PROVISION_MAIL", "PROVISION_DNS"],
        ["PROVISION_DNS", "PROVISION_MAIL", "PROVISION_HOSTING"],
        ["PROVISION_DNS", "PROVISION_HOSTING", "PROVISION_MAIL"],
    ];
    for sequence in orders {
        let (subscription, jobs) = h.order(&unique_domain()).await;
        for (i, job_type) in sequence.iter().enumerate() {
            assert_eq!(h.app.subscription_status(subscription).await, "PENDING", "before {job_type} ({i})");
            assert_eq!(h.run(job_of(&jobs, job_type)).await, RunOutcome::Succeeded);
        }
        assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE", "{sequence:?}");
    }
}

#[tokio::test]
async fn an_unreachable_powerdns_means_retries_then_success() {
    let h = Hosting::new().await;
    let (subscription, jobs) = h.order(&unique_domain()).await;
    let dns = job_of(&jobs, "PROVISION_DNS");
    let down = h
        .app
        .state_with(|env| {
            env.insert("PDNS_API_URL".into(), "http://127.0.0.1:1/api/v1".into());
        })
        .await;
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        let outcome = run_job(&down, dns, "worker-a").await.expect("runs");
        assert!(matches!(outcome, RunOutcome::Retrying { .. }), "attempt {attempt}: {outcome:?}");
        let db = h.app.db().await;
        let row = db
            .query_one(
                "SELECT status, extract(epoch FROM run_after - updated_at)::float8, last_error FROM jobs WHERE id = $1",
                &[&dns],
            )
            .await
            .expect("job");
        assert_eq!(row.get::<_, String>(0), "RETRYING");
        delays.push(row.get::<_, f64>(1));
        let error: String = row.get(2);
        assert!(error.contains("PowerDNS"), "{error}");
        assert!(!error.contains(&h.app.env["PDNS_API_KEY"]), "secret in the error");
        // Not due yet: a redelivery does nothing.
        assert_eq!(run_job(&down, dns, "worker-b").await.expect("runs"), RunOutcome::NotClaimed);
        db.execute("UPDATE jobs SET run_after = now() WHERE id = $1", &[&dns]).await.expect("due now");
    }
    assert!(delays.windows(2).all(|w| w[1] >= w[0]) && delays[2] > delays[0], "delays do not grow: {delays:?}");
    // PowerDNS is back.
    for (id, _) in &jobs {
        assert_eq!(h.run(*id).await, RunOutcome::Succeeded);
    }
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");
    let detail = h
        .app
        .authed(
            Method::GET,
            &format!("/api/jobs/{dns}"),
            &h.app.token(&h.app.create_user(h.tenant, Role::Support).await).await,
            None,
        )
        .await
        .json();
    let history = detail["attemptHistory"].as_array().expect("attempts");
    assert_eq!(history.len(), 4);
    assert_eq!(history[0]["outcome"], "FAILED");
    assert_eq!(history[3]["outcome"], "SUCCEEDED");
}

#[tokio::test]
async fn a_wrong_host_key_fails_without_running_anything_and_can_be_retried() {
    // A well-formed key that is not the server's: the worker's own public key.
    let wrong =
        std::fs::read_to_string(format!("{}.pub", mpanel_tests::stack_env()["SSH_PRIVATE_KEY_FILE"])).expect("pub key");
    let wrong: String = wrong.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let h = Hosting::with_key(Some(&wrong)).await;
    let domain = unique_domain();
    let (subscription, jobs) = h.order(&domain).await;
    let hosting = job_of(&jobs, "PROVISION_HOSTING");
    assert_eq!(h.run(hosting).await, RunOutcome::Dead, "a host-key mismatch is not retried");
    let error: String =
        h.app.db().await.query_one("SELECT last_error FROM jobs WHERE id = $1", &[&hosting]).await.expect("job").get(0);
    assert!(error.to_lowercase().contains("host key"), "{error}");
    assert!(!site(&h.app.env, &domain).exists(), "a remote command ran");
    assert_eq!(h.app.subscription_status(subscription).await, "PROVISIONING_FAILED");
    assert_eq!(h.app.count("audit_logs WHERE action = 'job.dead'").await, 1);

    // An admin fixes the key and retries.
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let fixed = h
        .app
        .authed(
            Method::PATCH,
            &format!("/api/servers/{}", h.server),
            &admin,
            Some(json!({"hostKey": h.app.env["MPANEL_TEST_SSH_HOST_KEY"]})),
        )
        .await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", String::from_utf8_lossy(&fixed.body));
    let not_dead = job_of(&jobs, "PROVISION_DNS");
    let refused = h.app.authed(Method::POST, &format!("/api/jobs/{not_dead}/retry"), &admin, None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let retried = h.app.authed(Method::POST, &format!("/api/jobs/{hosting}/retry"), &admin, None).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED);
    assert_eq!(retried.json()["status"], "PENDING");
    assert_eq!(h.app.subscription_status(subscription).await, "PENDING");
    for (id, _) in &jobs {
        assert_eq!(h.run(*id).await, RunOutcome::Succeeded);
    }
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");
    assert!(site(&h.app.env, &domain).join("public/index.html").exists());
}

#[tokio::test]
async fn expired_leases_are_rescued_and_live_ones_are_not() {
    let h = Hosting::new().await;
    let (subscription, jobs) = h.order(&unique_domain()).await;
    let (lost, alive) = (job_of(&jobs, "PROVISION_DNS"), job_of(&jobs, "PROVISION_MAIL"));
    // Two workers claim, then "die" (never report back).
    assert!(claim(&h.app.state, lost, "worker-killed").await.expect("claim").is_some());
    assert!(claim(&h.app.state, alive, "worker-slow").await.expect("claim").is_some());
    assert!(claim(&h.app.state, lost, "worker-dup").await.expect("claim").is_none(), "claimed twice");
    let db = h.app.db().await;
    db.execute("UPDATE jobs SET locked_until = now() - interval '1 second' WHERE id = $1", &[&lost])
        .await
        .expect("expire");
    db.execute("UPDATE jobs SET locked_until = now() + interval '1 second' WHERE id = $1", &[&alive])
        .await
        .expect("almost expire");
    let report = sweep(&h.app.state).await.expect("sweep");
    assert_eq!((report.rescued, report.dead), (1, 0));
    assert_eq!(h.app.job_status(lost).await, "RETRYING");
    assert_eq!(h.app.job_status(alive).await, "RUNNING", "a live lease was taken away");
    let outcome: String = db
        .query_one("SELECT outcome FROM job_attempts WHERE job_id = $1 AND attempt = 1", &[&lost])
        .await
        .expect("attempt")
        .get(0);
    assert_eq!(outcome, "LEASE_EXPIRED");
    // The rescued job completes once.
    assert_eq!(h.run(lost).await, RunOutcome::Succeeded);
    let attempts: Vec<(i32, Option<String>)> = db
        .query("SELECT attempt, outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt", &[&lost])
        .await
        .expect("attempts")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(attempts, [(1, Some("LEASE_EXPIRED".into())), (2, Some("SUCCEEDED".into()))]);
    assert_eq!(h.app.subscription_status(subscription).await, "PENDING");
    // A job whose last lease expires with no attempts left is DEAD.
    db.execute(
        "UPDATE jobs SET locked_until = now() - interval '1 second', max_attempts = attempts WHERE id = $1",
        &[&alive],
    )
    .await
    .expect("exhaust");
    let report = sweep(&h.app.state).await.expect("sweep");
    assert_eq!(report.dead, 1);
    assert_eq!(h.app.job_status(alive).await, "DEAD");
    assert_eq!(h.app.subscription_status(subscription).await, "PROVISIONING_FAILED");
}

#[tokio::test]
async fn the_sqs_handler_reports_exactly_the_failed_messages() {
    let h = Hosting::new().await;
    let (subscription, jobs) = h.order(&unique_domain()).await;
    let ids: Vec<Uuid> = jobs.iter().map(|(id, _)| *id).collect();
    let record = |id: &str, body: &str| {
        json!({"messageId": id, "receiptHandle": "h", "body": body, "attributes": {}, "messageAttributes": {},
               "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"})
    };
    let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(json!({"Records": [
        record("good", &json!({"jobIds": ids}).to_string()),
        record("garbage", "{not json"),
        record("unknown-job", &json!({"jobIds": [Uuid::new_v4()]}).to_string()),
        record("redelivered", &json!({"jobIds": [ids[0]]}).to_string()),
    ]}))
    .expect("event");
    let response = mpanel::lambda::handle_jobs_batch(
        &h.app.state,
        lambda_runtime::LambdaEvent::new(event, mpanel_tests::lambda_context(900)),
    )
    .await
    .expect("handler");
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["garbage"]);
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");
    assert_eq!(h.app.count("job_attempts").await, 3, "a redelivered job ran twice");
}

#[tokio::test]
async fn servers_and_mail_accounts_api() {
    let h = Hosting::new().await;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let valid = json!({
        "name": "web-2", "role": "WEB", "ipAddress": "192.0.2.20", "sshHost": "web2.internal", "sshPort": 22,
        "sshUser": "deploy", "hostKey": h.app.env["MPANEL_TEST_SSH_HOST_KEY"], "webRoot": "/srv/www"
    });
    let created = h.app.authed(Method::POST, "/api/servers", &admin, Some(valid.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    for (field, value) in [
        ("hostKey", json!("ssh-ed25519 bm90IGEga2V5")),
        ("hostKey", json!("not a key")),
        ("ipAddress", json!("999.1.1.1")),
        ("sshHost", json!("-oProxyCommand=touch /tmp/pwned")),
        ("sshPort", json!(70000)),
        ("sshUser", json!("root; rm -rf /")),
        ("webRoot", json!("/srv/../etc")),
        ("role", json!("FTP")),
    ] {
        let mut body = valid.clone();
        body[field] = value;
        body["name"] = json!(format!("bad-{field}"));
        let r = h.app.authed(Method::POST, "/api/servers", &admin, Some(body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(r.json()["errors"][0]["field"], field);
    }
    let listed = h.app.authed(Method::GET, "/api/servers", &admin, None).await.json();
    assert_eq!(listed["items"].as_array().expect("items").len(), 2);

    let domain = unique_domain();
    let (_, jobs) = h.order(&domain).await;
    for (id, _) in &jobs {
        h.run(*id).await;
    }
    let accounts = h.app.authed(Method::GET, &format!("/api/mail-accounts?domain={domain}"), &admin, None).await.json();
    let account = &accounts["items"][0];
    assert_eq!(account["address"], format!("postmaster@{domain}"));
    assert!(account.get("passwordHash").is_none());
    let id = account["id"].as_str().expect("id");
    let reset = h.app.authed(Method::POST, &format!("/api/mail-accounts/{id}/reset-password"), &admin, None).await;
    assert_eq!(reset.status, StatusCode::OK);
    let new_password = reset.json()["password"].as_str().expect("password").to_string();
    let stored: String = h
        .app
        .db()
        .await
        .query_one("SELECT password_hash FROM mail_accounts WHERE id = $1::text::uuid", &[&id])
        .await
        .expect("hash")
        .get(0);
    assert!(!stored.contains(&new_password));
    let secret = mpanel::secrets::Secret::new(new_password);
    assert!(mpanel::auth::password::verify(secret, Some(stored)).await.expect("verify"));
    // SUPPORT may read servers but not reset passwords.
    let support = h.app.token(&h.app.create_user(h.tenant, Role::Support).await).await;
    assert_eq!(
        h.app.authed(Method::POST, &format!("/api/mail-accounts/{id}/reset-password"), &support, None).await.status,
        StatusCode::FORBIDDEN
    );
}

/// The Lambda worker starts a job only while the job's whole budget fits
/// before the invocation's deadline; messages it did not start go back to
/// SQS (batch item failures) untouched.
#[tokio::test]
async fn the_lambda_worker_hands_back_what_it_has_no_time_for() {
    let h = Hosting::new().await;
    // A PowerDNS stand-in that takes 3 s over every request.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let slow = listener.local_addr().expect("addr");
    let stand_in = axum::Router::new().fallback(|| async {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        "slow"
    });
    let server = tokio::spawn(async move { axum::serve(listener, stand_in).await });
    // Each job may take 1.6 s (80% of a 2 s lease); starting one needs 6.6 s left.
    let state = h
        .app
        .state_with(|env| {
            env.insert("PDNS_API_URL".into(), format!("http://{slow}/api/v1"));
            env.insert("JOB_LEASE_SECS".into(), "2".into());
        })
        .await;
    assert_eq!(mpanel::engine::job_budget(&state), std::time::Duration::from_millis(6600));
    let mut dns_jobs = Vec::new();
    for _ in 0..3 {
        let (_, jobs) = h.order(&unique_domain()).await;
        dns_jobs.push(job_of(&jobs, "PROVISION_DNS"));
    }
    let record = |id: &str, job: Uuid| {
        json!({"messageId": id, "receiptHandle": "h", "body": json!({"jobIds": [job]}).to_string(), "attributes": {},
               "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
               "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"})
    };
    let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(json!({"Records": [
        record("first", dns_jobs[0]), record("second", dns_jobs[1]), record("third", dns_jobs[2]),
    ]}))
    .expect("event");
    let started = std::time::Instant::now();
    let response = mpanel::lambda::handle_jobs_batch(
        &state,
        lambda_runtime::LambdaEvent::new(event, mpanel_tests::lambda_context(8)),
    )
    .await
    .expect("handler");
    server.abort();
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "ran past the deadline: {:?}", started.elapsed());
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["second", "third"]);
    let db = h.app.db().await;
    let status = |row: tokio_postgres::Row| (row.get::<_, String>(0), row.get::<_, i32>(1));
    let first = db.query_one("SELECT status, attempts FROM jobs WHERE id = $1", &[&dns_jobs[0]]).await.expect("job");
    assert_eq!(status(first), ("RETRYING".to_string(), 1), "the first job ran into its own time limit");
    for job in &dns_jobs[1..] {
        let row = db.query_one("SELECT status, attempts FROM jobs WHERE id = $1", &[job]).await.expect("job");
        assert_eq!(status(row), ("PENDING".to_string(), 0), "a job was started without time for it");
    }
}

#[tokio::test]
async fn jobs_on_one_server_share_one_ssh_master_and_a_dead_one_is_replaced() {
    let h = Hosting::new().await;
    let masters = &h.app.state.ssh_masters;
    // Two sites, each a hosting job and a mail job (DKIM key) on the server.
    h.live().await;
    h.live().await;
    assert_eq!(masters.opened(), 1, "each job made its own SSH connection");

    // The master dies behind the process's back (as in a frozen Lambda
    // container or an sshd restart): the next job connects again once.
    let sockets = masters.control_sockets().await;
    assert_eq!(sockets.len(), 1);
    for socket in &sockets {
        let exited = std::process::Command::new("ssh")
            .arg("-S")
            .arg(socket)
            .args(["-O", "exit", "none"])
            .output()
            .expect("ssh -O exit");
        assert!(exited.status.success(), "{}", String::from_utf8_lossy(&exited.stderr));
    }
    let (subscription, domain) = h.live().await;
    assert_eq!(masters.opened(), 2);
    assert!(site(&h.app.env, &domain).join("public/index.html").exists());
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");

    masters.close().await;
    assert!(masters.control_sockets().await.is_empty());
    for socket in &sockets {
        assert!(!socket.exists(), "{} outlived close", socket.display());
    }
}
