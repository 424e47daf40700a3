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
    let (subscription, domain) = h.live().await;
    // nginx takes a reload a moment after it is signalled.
    let mut waited = 0;
    while fetch(&h.app.env, &domain, "/").await.0 == StatusCode::NOT_FOUND {
        assert!(waited < 100, "{domain} is not served 10 s after its job succeeded");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    (subscription, domain)
}

/// `curl --resolve host:port:127.0.0.1 http://host:port/path`.
async fn fetch(env: &mpanel::config::Env, host: &str, path: &str) -> (StatusCode, String) {
    let port: u16 = env["MPANEL_TEST_HTTP_PORT"].parse().expect("port");
    let client = mpanel_tests::http_client_builder()
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

/// Runs `mpanel-site` as mPanel does: the hosting user through `sudo -n`.
fn site_command(env: &mpanel::config::Env, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("runuser")
        .args(["-u", &env["MPANEL_TEST_SSH_USER"], "--", "sudo", "-n", mpanel::provision::hosting::SITE_COMMAND])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runuser");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("mpanel-site ran")
}

#[tokio::test]
async fn the_privileged_command_refuses_hostile_arguments_and_other_accounts_sites() {
    let h = Hosting::new().await;
    let (subscription, domain) = live(&h).await;
    let env = &h.app.env;
    let web_root = std::path::PathBuf::from(&env["MPANEL_TEST_WEB_ROOT"]);
    let before: Vec<String> = std::fs::read_dir(&web_root)
        .expect("web root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let account = Uuid::new_v4().simple().to_string();
    let marker = format!("/tmp/mpanel-pwned-{}", Uuid::new_v4().simple());
    let hostile = [
        "../../../../etc".to_string(),
        format!("x; touch {marker}"),
        format!("$(touch {marker}).com"),
        "x\ntouch.com".into(),
        "..".into(),
        ".mpanel".into(),
        "a..b.com".into(),
        "-rf.com".into(),
        "EXAMPLE.COM".into(),
        "x".repeat(300),
        "/etc/passwd".into(),
        "192.168.0.1".into(),
    ];
    for bad in &hostile {
        for verb in ["create", "suspend", "terminate", "passwd", "add-key"] {
            let out = site_command(env, &[verb, &account, bad, "x"], "");
            assert_eq!(out.status.code(), Some(2), "{verb} {bad:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    // Hostile names beside a real domain, and another account's site.
    let real_account = h.account_of(subscription).await;
    let owner = real_account.simple().to_string();
    for held in ["../../../etc", "x", &format!("{owner}-../x"), "/tmp/x"] {
        assert_eq!(site_command(env, &["suspend", &owner, &domain, held], "").status.code(), Some(2), "{held}");
    }
    let archive = format!("../{domain}-2026-01-01-{owner}.tar.gz");
    assert_eq!(site_command(env, &["terminate", &owner, &domain, &archive, "1"], "").status.code(), Some(2));
    for verb in ["create", "passwd", "add-key"] {
        assert_eq!(
            site_command(env, &[verb, &account, &domain], "").status.code(),
            Some(3),
            "{verb} as another account"
        );
    }
    let stranger_suspend = site_command(env, &["suspend", &account, &domain, &format!("{account}-{account}")], "");
    assert_eq!(stranger_suspend.status.code(), Some(3));
    let stranger_terminate =
        site_command(env, &["terminate", &account, &domain, &format!("{domain}-2026-01-01-{account}.tar.gz"), "1"], "");
    assert_eq!(String::from_utf8_lossy(&stranger_terminate.stdout).trim(), "not-ours");
    assert_eq!(fetch(env, &domain, "/").await.0, StatusCode::OK, "another account's calls touched the site");

    // The sudo rule allows that command and nothing else.
    let shell = std::process::Command::new("runuser")
        .args(["-u", &env["MPANEL_TEST_SSH_USER"], "--", "sudo", "-n", "/bin/sh", "-c", "id"])
        .output()
        .expect("runuser");
    assert!(!shell.status.success(), "the hosting user can run a shell as root");

    assert!(!std::path::Path::new(&marker).exists(), "a hostile argument reached a shell");
    let after: Vec<String> = std::fs::read_dir(&web_root)
        .expect("web root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !before.contains(name) && !name.starts_with("mpt-"))
        .collect();
    assert!(after.is_empty(), "new entries in the web root: {after:?}");
}

#[tokio::test]
async fn a_public_key_added_through_the_api_logs_in_over_sftp() {
    let h = Hosting::new().await;
    let (_, domain) = live(&h).await;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let accounts = h.app.authed(Method::GET, &format!("/api/hosting-accounts?domain={domain}"), &admin, None).await;
    let account = accounts.json()["items"][0].clone();
    let (id, user) = (account["id"].as_str().expect("id"), account["username"].as_str().expect("user"));

    let dir = std::env::temp_dir().join(format!("mpanel-sftp-key-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("id");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let path = format!("/api/hosting-accounts/{id}/ssh-keys");
    let bad = h.app.authed(Method::POST, &path, &admin, Some(json!({"publicKey": "ssh-ed25519 not-a-key"}))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let added = h.app.authed(Method::POST, &path, &admin, Some(json!({"publicKey": public.trim()}))).await;
    assert_eq!(added.status, StatusCode::ACCEPTED, "{}", added.json());
    let job = Uuid::parse_str(added.json()["jobId"].as_str().expect("job")).expect("uuid");
    assert_eq!(h.run(job).await, RunOutcome::Succeeded);

    let batch = dir.join("batch");
    std::fs::write(&batch, "ls public\n").expect("batch");
    let listed = std::process::Command::new("sftp")
        .args(["-P", &h.app.env["MPANEL_TEST_SSH_PORT"], "-i"])
        .arg(&key)
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .args(["-o", "IdentitiesOnly=yes", "-b"])
        .arg(&batch)
        .arg(format!("{user}@127.0.0.1"))
        .output()
        .expect("sftp");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("index.html"));
}
