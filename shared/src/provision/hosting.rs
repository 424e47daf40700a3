//! PROVISION_HOSTING: the site on its WEB server (directories, default
//! page, SFTP login, nginx server block), over SSH pinned to the server's
//! registered host key.
//!
//! Every change on the server is made by the one privileged command the
//! hosting setup ships (`hosting/bin/mpanel-site`), run through
//! `sudo -n`; every argument goes through `Command::arg` (escaped for the
//! remote shell), and the command checks each one again itself.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::Provisioner;
use super::{Server, SshIdentity, assign_server, load_target};
use crate::jobs::{ClaimedJob, JobError};
use crate::ssh_identity::{platform_key_file, private_dir, write_atomically};
use crate::types::DomainName;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The key a job uses for `server`: its tenant's own, or the platform key
/// for a server still registered with it (see the README's migration).
async fn key_for(p: Provisioner<'_>, server: &Server) -> Result<PathBuf, JobError> {
    match server.identity {
        SshIdentity::Tenant => {
            let keys = p.tenant_keys.ok_or_else(|| {
                JobError::permanent("no tenant SSH key store is configured (SSH_KEY_DIR or Secrets Manager)")
            })?;
            Ok(keys.key_file(p.db, server.tenant_id).await?)
        }
        SshIdentity::Platform => {
            let source = p
                .ssh_key
                .ok_or_else(|| JobError::permanent("the server uses the platform key, which is not configured"))?;
            platform_key_file(source).map_err(|e| JobError::retryable(format!("cannot prepare the SSH key: {e}")))
        }
    }
}

/// The known_hosts line pinning `server`'s host key (`[host]:port` form for
/// non-standard ports, as ssh looks it up).
pub fn known_hosts_line(server: &Server) -> String {
    let host = if server.ssh_port == 22 {
        server.ssh_host.clone()
    } else {
        format!("[{}]:{}", server.ssh_host, server.ssh_port)
    };
    format!("{host} {}\n", server.host_key.trim())
}

/// Writes the per-server known_hosts file and an ssh config that allows
/// nothing else: no global known hosts, no agent, no passwords.
fn ssh_files(server: &Server) -> std::io::Result<(PathBuf, PathBuf)> {
    let dir = private_dir()?;
    let known_hosts = dir.join(format!("known_hosts-{}", server.id));
    write_atomically(&known_hosts, known_hosts_line(server).as_bytes(), 0o600)?;
    let config = dir.join("config");
    write_atomically(
        &config,
        b"Host *\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  UpdateHostKeys no\n  \
          PasswordAuthentication no\n  KbdInteractiveAuthentication no\n  ForwardAgent no\n  IdentitiesOnly yes\n  \
          BatchMode yes\n",
        0o600,
    )?;
    Ok((known_hosts, config))
}

/// Runs `work` over the server's SSH master, which this process keeps
/// across jobs ([`crate::ssh_masters`]). When the work fails and the master
/// turns out dead (a frozen Lambda container, a restarted sshd), the master
/// is dropped; work that met a reused master is tried once more over a new
/// one (every remote step is safe to repeat).
pub async fn over_ssh<T, F, Fut>(p: Provisioner<'_>, server: &Server, work: F) -> Result<T, JobError>
where
    F: Fn(std::sync::Arc<Session>) -> Fut,
    Fut: std::future::Future<Output = Result<T, JobError>>,
{
    let key = key_for(p, server).await?;
    let fingerprint = format!(
        "{}@{}:{} {} {}",
        server.ssh_user,
        server.ssh_host,
        server.ssh_port,
        server.host_key.trim(),
        key.display()
    );
    let mut tries = 0;
    loop {
        tries += 1;
        let lease = p.ssh_masters.lease(server.id, &fingerprint, || connect_with(server, &key)).await?;
        let failed = match work(lease.session.clone()).await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        if lease.session.check().await.is_ok() {
            return Err(failed);
        }
        p.ssh_masters.forget(&lease).await;
        if lease.fresh || tries > 1 {
            return Err(failed);
        }
        tracing::info!(server_id = %server.id, "the kept SSH master was dead; connecting again");
    }
}

/// A new master connection to `server` (see [`over_ssh`], which keeps it).
pub async fn connect(p: Provisioner<'_>, server: &Server) -> Result<Session, JobError> {
    let key = key_for(p, server).await?;
    connect_with(server, &key).await
}

async fn connect_with(server: &Server, key: &std::path::Path) -> Result<Session, JobError> {
    let (known_hosts, config) =
        ssh_files(server).map_err(|e| JobError::retryable(format!("cannot prepare SSH files: {e}")))?;
    let control = private_dir().map_err(|e| JobError::retryable(format!("control dir: {e}")))?;
    let mut builder = SessionBuilder::default();
    builder
        .user(server.ssh_user.clone())
        .port(server.ssh_port)
        .keyfile(key)
        .config_file(&config)
        .known_hosts_check(KnownHosts::Strict)
        .user_known_hosts_file(&known_hosts)
        .connect_timeout(CONNECT_TIMEOUT)
        .server_alive_interval(Duration::from_secs(15))
        .control_persist(ControlPersist::IdleFor(crate::ssh_masters::PERSIST))
        .control_directory(control);
    builder.connect(&server.ssh_host).await.map_err(|e| classify_ssh_error(&error_chain(&e)))
}

/// openssh puts ssh's own words (e.g. "Host key verification failed.") in
/// the error's source: keep the whole chain.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A host-key mismatch is permanent (and possibly an attack): never retried
/// blindly. Network trouble is retryable. The job's error (shown to tenant
/// staff) says only which of these it was; ssh's own words go to the log,
/// so a server entry cannot be used to probe other hosts.
pub fn classify_ssh_error(message: &str) -> JobError {
    let lowered = message.to_lowercase();
    tracing::warn!(ssh_error = %message, "SSH failed");
    if lowered.contains("host key verification failed") || lowered.contains("remote host identification has changed") {
        JobError::permanent("SSH host key mismatch: the server did not present its registered host key")
    } else if lowered.contains("permission denied") {
        JobError::permanent("SSH login refused: install this tenant's key (GET /api/ssh-key) for the server's SSH user")
    } else {
        JobError::retryable("SSH connection failed: the server could not be reached")
    }
}

/// Where the hosting setup installs its one privileged command.
pub const SITE_COMMAND: &str = "/usr/local/sbin/mpanel-site";

/// What `mpanel-site` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SiteScript {
    Create,
    Suspend,
    Unsuspend,
    Terminate,
    Password,
    AddKey,
    InstallCertificate,
}

impl SiteScript {
    fn verb(self) -> &'static str {
        match self {
            SiteScript::Create => "create",
            SiteScript::Suspend => "suspend",
            SiteScript::Unsuspend => "unsuspend",
            SiteScript::Terminate => "terminate",
            SiteScript::Password => "passwd",
            SiteScript::AddKey => "add-key",
            SiteScript::InstallCertificate => "install-cert",
        }
    }

    fn what(self) -> &'static str {
        match self {
            SiteScript::Create => "creating the site",
            SiteScript::Suspend => "suspending the site",
            SiteScript::Unsuspend => "restoring the site",
            SiteScript::Terminate => "archiving and removing the site",
            SiteScript::Password => "setting the SFTP password",
            SiteScript::AddKey => "adding an SFTP key",
            SiteScript::InstallCertificate => "installing the certificate",
        }
    }
}

/// The SFTP login of a hosting account: derived from the account id, never
/// from the domain text (`mpanel-site` derives the same).
pub fn sftp_username(account_id: Uuid) -> String {
    format!("s{}", &account_id.simple().to_string()[..16])
}

/// The site a hosting account owns on its server.
pub(crate) struct Site<'a> {
    pub server: &'a Server,
    pub domain: &'a DomainName,
    pub account_id: Uuid,
}

/// Runs one site script with `stdin` as its input. Exit 3 (the site is not
/// ours) is permanent; anything else that fails is worth retrying. Staff
/// see what failed and the exit status; the remote stderr goes to the log.
pub(crate) async fn site_script(
    session: &Session,
    site: &Site<'_>,
    script: SiteScript,
    extra: &[&str],
    stdin: &str,
) -> Result<Output, JobError> {
    let account = site.account_id.simple().to_string();
    let web_root = site.server.web_root.trim_end_matches('/');
    let mut args = vec!["-n", SITE_COMMAND, script.verb(), account.as_str(), site.domain.as_str()];
    args.extend_from_slice(extra);
    let output = pipe_to(session, &args, stdin).await?;
    match output.status.code() {
        Some(0) => Ok(output),
        Some(3) => Err(JobError::permanent(format!(
            "{} on server {}: {}/{} exists and is not ours (no marker of this hosting account); nothing was changed",
            script.what(),
            site.server.id,
            web_root,
            site.domain.as_str()
        ))),
        Some(2) => {
            log_stderr(site.server, script.what(), &output);
            Err(JobError::permanent(format!(
                "{}: the server's mpanel-site refused the arguments (is the hosting setup installed and current?)",
                script.what()
            )))
        }
        code => {
            log_stderr(site.server, script.what(), &output);
            Err(match code {
                Some(75) => JobError::retryable(format!(
                    "{}: an earlier attempt is still working on the site, or its archive did not verify; \
                     nothing was removed",
                    script.what()
                )),
                _ => exited(script.what(), &output),
            })
        }
    }
}

fn exited(what: &str, output: &Output) -> JobError {
    match output.status.code() {
        Some(code) => JobError::retryable(format!("{what} failed: the remote command exited {code}")),
        None => JobError::retryable(format!("{what} failed: the remote command was killed")),
    }
}

fn log_stderr(server: &Server, what: &str, output: &Output) {
    let stderr: String = String::from_utf8_lossy(&output.stderr).chars().take(2000).collect();
    tracing::warn!(server_id = %server.id, what, status = ?output.status.code(), stderr = %stderr.trim(), "remote command failed");
}

/// Runs `sudo <args>` on the server with `content` on its stdin.
async fn pipe_to(session: &Session, args: &[&str], content: &str) -> Result<Output, JobError> {
    let mut child = session
        .command("sudo")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .await
        .map_err(|e| classify_ssh_error(&error_chain(&e)))?;
    if let Some(mut stdin) = child.stdin().take() {
        // A script that does not read its input closes it early: not an error.
        let _ = stdin.write_all(content.as_bytes()).await;
        let _ = stdin.shutdown().await;
    }
    child.wait_with_output().await.map_err(|e| classify_ssh_error(&error_chain(&e)))
}

/// The default page; the domain is LDH-only but escaped anyway.
pub fn default_page(domain: &DomainName) -> String {
    let name: String = domain
        .as_str()
        .chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{name}</title></head>\n\
         <body><h1>{name}</h1><p>This site is hosted by mPanel and is ready for its content.</p></body>\n</html>\n"
    )
}

/// The hosting account a subscription's site belongs to.
pub(crate) struct Account {
    pub id: Uuid,
    pub server: Server,
    /// Created before sites carried our marker: the first job marks it.
    pub site_unmarked: bool,
    pub held_name: Option<String>,
}

/// The subscription's live hosting account, if it ever got one.
pub(crate) async fn load_account(p: Provisioner<'_>, subscription_id: Uuid) -> Result<Option<Account>, JobError> {
    let Some(row) = account_row(p, subscription_id).await? else { return Ok(None) };
    let server = super::load_server(p.db, row.server_id).await?;
    Ok(Some(row.on(server)))
}

/// The account's own columns; its server is loaded (or known) separately.
struct AccountRow {
    id: Uuid,
    server_id: Uuid,
    site_unmarked: bool,
    held_name: Option<String>,
}

impl AccountRow {
    fn on(self, server: Server) -> Account {
        Account { id: self.id, server, site_unmarked: self.site_unmarked, held_name: self.held_name }
    }
}

async fn account_row(p: Provisioner<'_>, subscription_id: Uuid) -> Result<Option<AccountRow>, JobError> {
    let client = p.db.get().await?;
    let row = client
        .query_typed_opt(
            "SELECT id, server_id, site_unmarked, held_name FROM hosting_accounts
             WHERE subscription_id = $1 AND status <> 'TERMINATED'",
            &[(&subscription_id, Type::UUID)],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(AccountRow {
        id: row.try_get(0)?,
        server_id: row.try_get(1)?,
        site_unmarked: row.try_get(2)?,
        held_name: row.try_get(3)?,
    }))
}

/// Creates the directories and (only if absent) the default page, after
/// marking the site as this account's; an existing directory that is not
/// ours fails permanently.
async fn create_site(session: &Session, account: &Account, domain: &DomainName) -> Result<(), JobError> {
    let site = Site { server: &account.server, domain, account_id: account.id };
    let mode: &[&str] = if account.site_unmarked { &["adopt"] } else { &[] };
    site_script(session, &site, SiteScript::Create, mode, &default_page(domain)).await.map(drop)
}

pub async fn provision(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let target = load_target(p.db, job).await?;
    let server = assign_server(p.db, &target).await?;
    let row = account_row(p, target.subscription_id)
        .await?
        .ok_or_else(|| JobError::retryable("the hosting account was not recorded"))?;
    if row.server_id != server.id {
        return Err(JobError::retryable("the hosting account moved to another server"));
    }
    let account = row.on(server);
    job.lease.check()?;
    let (account, domain) = (&account, &target.domain);
    over_ssh(p, &account.server, |session| async move { create_site(&session, account, domain).await }).await?;
    let client = p.db.get().await?;
    client
        .query_typed(
            "UPDATE hosting_accounts SET status = CASE WHEN status = 'PENDING' THEN 'ACTIVE' ELSE status END,
                    site_unmarked = false, username = $2, updated_at = now()
             WHERE id = $1",
            &[(&account.id, Type::UUID), (&sftp_username(account.id), Type::TEXT)],
        )
        .await?;
    Ok(())
}

/// UPDATE_SFTP_LOGIN: a new password (its SHA-512 crypt hash, made by the
/// API, which showed the password once) or an added public key, for the
/// login of the hosting account named in the payload.
pub async fn update_login(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let account_id = job
        .payload
        .get("hostingAccountId")
        .and_then(|v| v.as_str())
        .and_then(|v| Uuid::parse_str(v).ok())
        .ok_or_else(|| JobError::permanent("the job names no hosting account"))?;
    let target = load_target(p.db, job).await?;
    let account = load_account(p, target.subscription_id)
        .await?
        .filter(|a| a.id == account_id)
        .ok_or_else(|| JobError::permanent("the hosting account is gone"))?;
    let (script, input) = match (job.payload.get("passwordHash"), job.payload.get("publicKey")) {
        (Some(hash), None) => (SiteScript::Password, hash.as_str()),
        (None, Some(key)) => (SiteScript::AddKey, key.as_str()),
        _ => (SiteScript::Password, None),
    };
    let input = input.ok_or_else(|| JobError::permanent("the job carries neither a password hash nor a key"))?;
    job.lease.check()?;
    let site = &Site { server: &account.server, domain: &target.domain, account_id: account.id };
    let input = &format!("{input}\n");
    over_ssh(p, &account.server, |session| async move { site_script(&session, site, script, &[], input).await })
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(port: u16) -> Server {
        Server {
            id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            identity: SshIdentity::Tenant,
            ip_address: "192.0.2.1".parse().unwrap(),
            ssh_host: "web1.example.net".into(),
            ssh_port: port,
            ssh_user: "deploy".into(),
            host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk".into(),
            web_root: "/srv/www/".into(),
        }
    }

    #[test]
    fn known_hosts_lines() {
        assert_eq!(known_hosts_line(&server(22)), "web1.example.net ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk\n");
        assert_eq!(
            known_hosts_line(&server(2222)),
            "[web1.example.net]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk\n"
        );
    }

    #[test]
    fn the_default_page_names_the_site() {
        let d = DomainName::parse("example.com").unwrap();
        assert!(default_page(&d).contains("<h1>example.com</h1>"));
    }

    #[test]
    fn ssh_errors() {
        assert!(!classify_ssh_error("Host key verification failed.").retryable);
        assert!(classify_ssh_error("ssh: connect to host 10.0.0.1 port 22: Connection timed out").retryable);
    }
}
