//! Live sites (issue #18): the shipped hosting setup (`hosting/`, installed
//! by ./scripts/stack) serves each site through nginx and gives it its own
//! SFTP user; suspend and terminate reach both. Real nginx, sshd, sudo.

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel::engine::RunOutcome;
use mpanel_tests::hosting::{Hosting, site};
use mpanel_tests::unique_domain;
use serde_json::json;
use uuid::Uuid;

async fn live(h: &Hosting) -> (Uuid, String) {
    let domain = unique_domain();
    let (subscription, jobs) = h.order(&domain).await;
    for (id, _) in &jobs {
        assert_eq!(h.run(*id).await, RunOutcome::Succeeded);
    }
    assert_eq!(h.app.subscription_status(subscription).await, "ACTIVE");
    (subscription, domain)
}

/// `curl --resolve host:port:127.0.0.1 http://host:port/path`.
async fn fetch(env: &mpanel::config::Env, host: &str, path: &str) -> (StatusCode, String) {
    let port: u16 = env["MPANEL_TEST_HTTP_PORT"].parse().expect("port");
    let client = reqwest::Client::builder()
        .resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .expect("client");
    let response = client.get(format!("http://{host}:{port}{path}")).send().await.expect("nginx answers");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    (status, response.text().await.unwrap_or_default())
}

async fn act(h: &Hosting, token: &str, subscription: Uuid, action: &str) -> Uuid {
    let body = (action == "suspend").then(|| json!({"reason": "test"}));
    let answer = h.app.authed(Method::POST, &format!("/api/subscriptions/{subscription}/{action}"), token, body).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json());
    let job = Uuid::parse_str(answer.json()["jobs"][0]["id"].as_str().expect("job")).expect("uuid");
    assert_eq!(h.run(job).await, RunOutcome::Succeeded, "{action}");
    job
}

fn user_exists(name: &str) -> bool {
    std::process::Command::new("getent").args(["passwd", name]).output().expect("getent").status.success()
}

async fn username(h: &Hosting, subscription: Uuid) -> String {
    h.app
        .db()
        .await
        .query_one("SELECT username FROM hosting_accounts WHERE subscription_id = $1", &[&subscription])
        .await
        .expect("account")
        .get(0)
}

#[tokio::test]
async fn a_provisioned_site_is_served_by_name_and_unknown_hosts_get_a_neutral_404() {
    let h = Hosting::new().await;
    let (subscription, domain) = live(&h).await;
    let (status, page) = fetch(&h.app.env, &domain, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&format!("<h1>{domain}</h1>")), "{page}");
    let (status, www) = fetch(&h.app.env, &format!("www.{domain}"), "/").await;
    assert_eq!((status, www), (StatusCode::OK, page));

    let (status, body) = fetch(&h.app.env, &unique_domain(), "/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "Not found\n", "the 404 names nothing");

    // The site's own logs, and its own SFTP user (named from the account).
    let log = std::fs::read_to_string(site(&h.app.env, &domain).join("logs/access.log")).expect("access log");
    assert!(log.contains("GET / "), "{log}");
    let user = username(&h, subscription).await;
    assert!(user.starts_with('s') && user.len() == 17 && !user.contains(&domain[..6]), "{user}");
    assert!(user_exists(&user));
}

#[tokio::test]
async fn suspend_serves_the_suspended_page_and_terminate_leaves_a_404_and_no_user() {
    let h = Hosting::new().await;
    let (subscription, domain) = live(&h).await;
    std::fs::write(site(&h.app.env, &domain).join("public/hello.html"), "hello").expect("upload");
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;

    act(&h, &admin, subscription, "suspend").await;
    let (status, page) = fetch(&h.app.env, &domain, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("This site is suspended"), "{page}");
    assert_eq!(fetch(&h.app.env, &domain, "/hello.html").await.0, StatusCode::NOT_FOUND);

    act(&h, &admin, subscription, "unsuspend").await;
    assert_eq!(fetch(&h.app.env, &domain, "/hello.html").await, (StatusCode::OK, "hello".to_string()));

    let user = username(&h, subscription).await;
    act(&h, &admin, subscription, "terminate").await;
    assert_eq!(fetch(&h.app.env, &domain, "/").await.0, StatusCode::NOT_FOUND);
    assert!(!user_exists(&user), "the SFTP user {user} is still there");
}

/// `sftp` as the site's user with `password`, running `commands`; whether
/// the login and every command succeeded.
fn sftp(env: &mpanel::config::Env, user: &str, password: &str, commands: &str) -> bool {
    let batch = std::env::temp_dir().join(format!("mpanel-sftp-{}", Uuid::new_v4().simple()));
    std::fs::write(&batch, commands).expect("batch file");
    let output = std::process::Command::new("sshpass")
        .env("SSHPASS", password)
        .args(["-e", "sftp", "-P", &env["MPANEL_TEST_SSH_PORT"]])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        // -b implies BatchMode, which would never send the password.
        .args(["-o", "BatchMode=no", "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password", "-b"])
        .arg(&batch)
        .arg(format!("{user}@127.0.0.1"))
        .output()
        .expect("sshpass and sftp are installed by ./scripts/stack");
    let _ = std::fs::remove_file(&batch);
    output.status.success()
}

#[tokio::test]
async fn the_sftp_password_from_the_api_uploads_files_the_site_serves_until_suspended() {
    let h = Hosting::new().await;
    let (subscription, domain) = live(&h).await;
    let support = h.app.token(&h.app.create_user(h.tenant, Role::Support).await).await;
    let accounts = h.app.authed(Method::GET, &format!("/api/hosting-accounts?domain={domain}"), &support, None).await;
    assert_eq!(accounts.status, StatusCode::OK, "{}", accounts.json());
    let account = accounts.json()["items"][0].clone();
    assert_eq!(account["domain"], domain.as_str());
    let id = account["id"].as_str().expect("id").to_string();

    let reset = h.app.authed(Method::POST, &format!("/api/hosting-accounts/{id}/reset-password"), &support, None).await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.json());
    let reset = reset.json();
    let (user, password) = (reset["username"].as_str().expect("user"), reset["password"].as_str().expect("pw"));
    assert_eq!(user, account["username"].as_str().expect("username"));
    assert_eq!(reset["sftpPort"].as_i64().map(|p| p.to_string()), Some(h.app.env["MPANEL_TEST_SSH_PORT"].clone()));
    let job = Uuid::parse_str(reset["jobId"].as_str().expect("job")).expect("uuid");
    assert_eq!(h.run(job).await, RunOutcome::Succeeded);
    assert!(!sftp(&h.app.env, user, "a wrong password!", "ls\n"), "a wrong password logged in");

    let upload = std::env::temp_dir().join(format!("hello-{}.html", Uuid::new_v4().simple()));
    std::fs::write(&upload, "<p>uploaded over sftp</p>\n").expect("file");
    let put = format!("put {} public/hello.html\n", upload.display());
    assert!(sftp(&h.app.env, user, password, &put), "the password from the API did not log in");
    let _ = std::fs::remove_file(&upload);
    let served = fetch(&h.app.env, &domain, "/hello.html").await;
    assert_eq!(served, (StatusCode::OK, "<p>uploaded over sftp</p>\n".to_string()));
    let uploaded = std::fs::metadata(site(&h.app.env, &domain).join("public/hello.html")).expect("uploaded file");
    let owner = std::process::Command::new("stat")
        .args(["-c", "%U"])
        .arg(site(&h.app.env, &domain).join("public/hello.html"))
        .output()
        .expect("stat");
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), user, "uploads belong to the site's user");
    assert!(uploaded.len() > 0);
    // Chrooted to the site: nothing above it is reachable.
    assert!(!sftp(&h.app.env, user, password, "get /etc/passwd /dev/null\n"), "escaped the chroot");

    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    act(&h, &admin, subscription, "suspend").await;
    assert!(!sftp(&h.app.env, user, password, "ls\n"), "a suspended site's login still works");
    act(&h, &admin, subscription, "unsuspend").await;
    assert!(sftp(&h.app.env, user, password, "ls\n"), "the login did not come back");
    assert_eq!(fetch(&h.app.env, &domain, "/hello.html").await.0, StatusCode::OK);

    act(&h, &admin, subscription, "terminate").await;
    assert!(!user_exists(user));
    assert!(!sftp(&h.app.env, user, password, "ls\n"));
}
