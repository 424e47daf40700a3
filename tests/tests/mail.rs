//! Mail that works (issue #20): the shipped mail server setup
//! (`mailserver/`, run by ./scripts/stack: Dovecot, Postfix, OpenDKIM on
//! loopback) serves the mailboxes mPanel provisions. Plain SMTP and IMAP
//! from the test, as a mail client would speak them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use http::{Method, StatusCode};
use mpanel::auth::Role;
use mpanel::engine::RunOutcome;
use mpanel_tests::hosting::Hosting;
use serde_json::json;
use uuid::Uuid;

fn port(env: &mpanel::config::Env, name: &str) -> u16 {
    env[name].parse().expect("port")
}

struct Line<'a>(&'a mut BufReader<TcpStream>);

impl Line<'_> {
    fn read(&mut self) -> String {
        let mut line = String::new();
        self.0.read_line(&mut line).expect("read");
        line
    }
}

/// SMTP as a client speaks it; `Err` carries the server's refusal.
fn smtp_send(env: &mpanel::config::Env, from: &str, to: &str, message: &str) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port(env, "MPANEL_TEST_SMTP_PORT"))).expect("postfix");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut reply = || {
        let mut text = String::new();
        loop {
            let line = Line(&mut reader).read();
            text.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return text;
            }
        }
    };
    let greeting = reply();
    assert!(greeting.starts_with("220"), "{greeting}");
    let data = message.replace("\n", "\r\n").replace("\r\n.", "\r\n..");
    for (command, expected) in [
        ("EHLO client.test".to_string(), "250"),
        (format!("MAIL FROM:<{from}> SIZE={}", data.len()), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        writer.write_all(format!("{command}\r\n").as_bytes()).expect("write");
        let answer = reply();
        if !answer.starts_with(expected) {
            let _ = writer.write_all(b"QUIT\r\n");
            return Err(answer);
        }
    }
    writer.write_all(format!("{data}\r\n.\r\n").as_bytes()).expect("data");
    let answer = reply();
    let _ = writer.write_all(b"QUIT\r\n");
    if answer.starts_with("250") { Ok(()) } else { Err(answer) }
}

/// An IMAP session logged in as `user`, or the server's refusal.
struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl Imap {
    fn login(env: &mpanel::config::Env, user: &str, password: &str) -> Result<Imap, String> {
        let stream = TcpStream::connect(("127.0.0.1", port(env, "MPANEL_TEST_IMAP_PORT"))).expect("dovecot");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut imap = Imap { reader: BufReader::new(stream), writer, tag: 0 };
        let greeting = Line(&mut imap.reader).read();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        let (ok, text) = imap.command(&format!("LOGIN \"{user}\" \"{password}\""));
        if ok { Ok(imap) } else { Err(text) }
    }

    /// Sends a command; (tagged OK, everything read, literals included).
    fn command(&mut self, command: &str) -> (bool, String) {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.writer.write_all(format!("{tag} {command}\r\n").as_bytes()).expect("write");
        let mut all = String::new();
        loop {
            let line = Line(&mut self.reader).read();
            assert!(!line.is_empty(), "the server hung up: {all}");
            all.push_str(&line);
            if let Some(size) = line.trim_end().strip_suffix('}').and_then(|l| l.rsplit_once('{')).map(|(_, n)| n) {
                let mut literal = vec![0; size.parse().expect("literal size")];
                self.reader.read_exact(&mut literal).expect("literal");
                all.push_str(&String::from_utf8_lossy(&literal));
            }
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return (rest.starts_with("OK"), all);
            }
        }
    }

    /// Every message in INBOX, raw.
    fn messages(&mut self) -> Vec<String> {
        let (ok, selected) = self.command("SELECT INBOX");
        assert!(ok, "{selected}");
        if selected.contains("* 0 EXISTS") {
            return Vec::new();
        }
        let (ok, fetched) = self.command("FETCH 1:* (BODY.PEEK[])");
        assert!(ok, "{fetched}");
        fetched.split("* ").filter(|part| part.contains("FETCH (BODY[]")).map(str::to_string).collect()
    }
}

/// Waits until a message containing `needle` is in the mailbox (delivery
/// goes through Postfix's queue and LMTP).
fn wait_for(env: &mpanel::config::Env, user: &str, password: &str, needle: &str) -> String {
    for _ in 0..60 {
        let mut imap = Imap::login(env, user, password).expect("login");
        if let Some(found) = imap.messages().into_iter().find(|m| m.contains(needle)) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("no message with {needle} reached {user}");
}

fn message(from: &str, to: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\nTo: {to}\nSubject: {subject}\nMessage-ID: <{}@client.test>\nDate: Sat, 05 Dec 2026 06:00:00 +0000\n\n{body}\n",
        Uuid::new_v4().simple()
    )
}

async fn act(h: &Hosting, subscription: Uuid, action: &str) {
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let body = (action == "suspend").then(|| json!({"reason": "test"}));
    let answer = h.app.authed(Method::POST, &format!("/api/subscriptions/{subscription}/{action}"), &admin, body).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json());
    let job = Uuid::parse_str(answer.json()["jobs"][0]["id"].as_str().expect("job")).expect("uuid");
    assert_eq!(h.run(job).await, RunOutcome::Succeeded, "{action}");
}

#[tokio::test]
async fn postmaster_logs_in_receives_mail_and_suspend_terminate_reach_the_mail_server() {
    let h = Hosting::with_mail().await;
    let (subscription, domain) = h.live().await;
    let env = &h.app.env;
    let postmaster = format!("postmaster@{domain}");

    // A new mailbox has no password (none was made, nor hashed, for nobody
    // to see): nothing logs in, yet it receives mail.
    let unset: i64 = h
        .app
        .count(&format!(
            "mail_accounts WHERE local_part = 'postmaster' AND domain_name = '{domain}' AND password_hash IS NULL"
        ))
        .await;
    assert_eq!(unset, 1, "the new postmaster mailbox has a password hash");
    for guess in ["", "x", "{ARGON2ID}"] {
        assert!(Imap::login(env, &postmaster, guess).is_err(), "a mailbox without a password logged in with {guess:?}");
    }
    let hello = message("friend@example.org", &postmaster, "hello", "first message");
    smtp_send(env, "friend@example.org", &postmaster, &hello).expect("Postfix accepts mail for the domain");

    let password = h.reset_postmaster(&domain).await;
    assert!(Imap::login(env, &postmaster, "not the password").is_err(), "a wrong password logged in");
    Imap::login(env, &postmaster, &password).expect("the password from the API logs in");
    let received = wait_for(env, &postmaster, &password, "first message");
    assert!(received.contains("Subject: hello"), "{received}");

    // Suspended: no logins, and new mail is deferred (the sender retries).
    act(&h, subscription, "suspend").await;
    assert!(Imap::login(env, &postmaster, &password).is_err(), "a suspended mailbox logged in");
    let deferred = smtp_send(env, "friend@example.org", &postmaster, &message("f@example.org", &postmaster, "s", "x"));
    assert!(deferred.as_ref().is_err_and(|e| e.starts_with("450")), "{deferred:?}");

    act(&h, subscription, "unsuspend").await;
    let mut imap = Imap::login(env, &postmaster, &password).expect("the login is back");
    assert!(imap.messages().iter().any(|m| m.contains("first message")), "the mail is back");

    // Terminated: the mailbox is gone, on the server too.
    act(&h, subscription, "terminate").await;
    assert!(Imap::login(env, &postmaster, &password).is_err());
    let refused = smtp_send(env, "friend@example.org", &postmaster, &message("f@example.org", &postmaster, "t", "x"));
    assert!(refused.as_ref().is_err_and(|e| e.starts_with('5')), "{refused:?}");
    assert!(!std::path::Path::new("/var/vmail").join(&domain).exists(), "the maildir outlived the subscription");
}

#[tokio::test]
async fn mailboxes_and_aliases_through_the_api_within_the_plan_and_its_quota() {
    let h = Hosting::with_mail().await;
    let (subscription, domain) = h.live().await;
    let env = &h.app.env;
    let admin = h.app.token(&h.app.create_user(h.tenant, Role::Admin).await).await;
    let create = |local: &str| json!({ "subscriptionId": subscription, "localPart": local });

    let bad = h.app.authed(Method::POST, "/api/mail-accounts", &admin, Some(create("-bad-"))).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["errors"][0]["field"], "localPart", "{}", bad.json());
    let support = h.app.token(&h.app.create_user(h.tenant, Role::Support).await).await;
    let refused = h.app.authed(Method::POST, "/api/mail-accounts", &support, Some(create("info"))).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let created = h.app.authed(Method::POST, "/api/mail-accounts", &admin, Some(create("info"))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.json());
    let info = created.json();
    assert_eq!(info["address"], format!("info@{domain}"));
    let info_password = info["password"].as_str().expect("password").to_string();
    Imap::login(env, &format!("info@{domain}"), &info_password).expect("the new mailbox logs in");
    let again = h.app.authed(Method::POST, "/api/mail-accounts", &admin, Some(create("info"))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);

    // The plan has 3 mailboxes: postmaster, info, sales; a fourth is refused.
    let sales = h.app.authed(Method::POST, "/api/mail-accounts", &admin, Some(create("sales"))).await;
    assert_eq!(sales.status, StatusCode::CREATED);
    let fourth = h.app.authed(Method::POST, "/api/mail-accounts", &admin, Some(create("extra"))).await;
    assert_eq!(fourth.status, StatusCode::CONFLICT, "{}", fourth.json());

    // An alias forwards to the mailbox.
    let alias =
        json!({ "subscriptionId": subscription, "localPart": "hello", "destinations": [format!("info@{domain}")] });
    let made = h.app.authed(Method::POST, "/api/mail-aliases", &admin, Some(alias)).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.json());
    let listed = h.app.authed(Method::GET, &format!("/api/mail-aliases?domain={domain}"), &support, None).await;
    assert_eq!(listed.json()["items"].as_array().map(Vec::len), Some(1));
    let to_alias = format!("hello@{domain}");
    smtp_send(
        env,
        "friend@example.org",
        &to_alias,
        &message("friend@example.org", &to_alias, "via alias", "forwarded"),
    )
    .expect("the alias accepts mail");
    wait_for(env, &format!("info@{domain}"), &info_password, "forwarded");

    // The quota (1 MB here) is enforced: a larger message is refused.
    let big = message("friend@example.org", &format!("info@{domain}"), "big", &"x".repeat(1_500_000));
    let over = smtp_send(env, "friend@example.org", &format!("info@{domain}"), &big);
    assert!(
        over.as_ref().is_err_and(|e| e.starts_with("552")),
        "{:?}",
        over.map_err(|e| e.chars().take(200).collect::<String>())
    );

    // Deleting: no more login; audited.
    let id = info["id"].as_str().expect("id");
    let deleted = h.app.authed(Method::DELETE, &format!("/api/mail-accounts/{id}"), &admin, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(Imap::login(env, &format!("info@{domain}"), &info_password).is_err());
    let alias_id = made.json()["id"].as_str().expect("alias id").to_string();
    let gone = h.app.authed(Method::DELETE, &format!("/api/mail-aliases/{alias_id}"), &admin, None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let audited: Vec<String> = h
        .app
        .db()
        .await
        .query(
            "SELECT action FROM audit_logs WHERE tenant_id = $1 AND action LIKE 'mail_%' ORDER BY created_at",
            &[&h.tenant],
        )
        .await
        .expect("audit")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for action in ["mail_account.created", "mail_alias.created", "mail_account.deleted", "mail_alias.deleted"] {
        assert!(audited.iter().any(|a| a == action), "{action} missing from {audited:?}");
    }
}

#[tokio::test]
async fn mail_from_the_domain_is_dkim_signed_with_the_published_key() {
    let h = Hosting::with_mail().await;
    let (_subscription, domain) = h.live().await;
    let env = &h.app.env;
    let postmaster = format!("postmaster@{domain}");
    let password = h.reset_postmaster(&domain).await;

    // The public half is in DNS (PowerDNS), the private half nowhere in Postgres.
    let record = std::process::Command::new("dig")
        .args(["+short", "-p", &env["PDNS_DNS_PORT"], "@127.0.0.1", "TXT", &format!("mpanel._domainkey.{domain}")])
        .output()
        .expect("dig");
    let record = String::from_utf8_lossy(&record.stdout).to_string();
    assert!(record.contains("v=DKIM1") && record.contains("p="), "{record}");

    let sender = format!("owner@{domain}");
    smtp_send(env, &sender, &postmaster, &message(&sender, &postmaster, "signed", "dkim body")).expect("sent");
    let received = wait_for(env, &postmaster, &password, "dkim body");
    assert!(received.contains("DKIM-Signature:"), "{received}");
    // The raw message, as the literal after "BODY[] {n}".
    let raw = received.split_once("}\r\n").map(|(_, rest)| rest).expect("literal");
    let raw = raw.rsplit_once(")\r\n").map(|(message, _)| message).unwrap_or(raw);
    let file = std::env::temp_dir().join(format!("dkim-{}.eml", Uuid::new_v4().simple()));
    std::fs::write(&file, raw).expect("message file");
    let verify = "import sys, dkim, dns.resolver\n\
        r = dns.resolver.Resolver(configure=False); r.nameservers = ['127.0.0.1']; r.port = int(sys.argv[2])\n\
        def lookup(name, timeout=5):\n    try:\n        answer = r.resolve(name.decode().rstrip('.'), 'TXT')\n    except Exception:\n        return b''\n    return b''.join(b''.join(rd.strings) for rd in answer)\n\
        sys.exit(0 if dkim.verify(open(sys.argv[1], 'rb').read(), dnsfunc=lookup) else 1)\n";
    let python = std::path::Path::new(&env["MPANEL_VENV"]).join("bin/python");
    let checked = std::process::Command::new(python)
        .args(["-c", verify])
        .arg(&file)
        .arg(&env["PDNS_DNS_PORT"])
        .status()
        .expect("dkimpy in the stack's venv");
    let _ = std::fs::remove_file(&file);
    assert!(checked.success(), "the DKIM signature does not verify against the published key");
}
