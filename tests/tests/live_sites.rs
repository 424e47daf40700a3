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
