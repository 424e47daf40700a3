//! PROVISION_HOSTING: the site's directories and default page on its WEB
//! server, over SSH pinned to the server's registered host key.
//!
//! Every remote argument goes through `Command::arg` (escaped for the
//! remote shell); the only shell snippet is a constant that receives the
//! path as `$1`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;
use tokio_postgres::types::Type;

use super::Provisioner;
use super::{Server, assign_server, load_target};
use crate::config::SshKeySource;
use crate::jobs::{ClaimedJob, JobError};
use crate::types::DomainName;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A private directory (0700) under the temp dir: only `/tmp` is writable on Lambda.
fn private_dir(name: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Replaces `path` with `contents` (mode `mode`) atomically: written to a
/// unique temporary file, then renamed over it. Jobs connect concurrently
/// and rewrite these files each time; an ssh started by one job must never
/// read another job's half-written (truncated) file, or it finds no host
/// key and refuses the server.
fn write_atomically(path: &std::path::Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let written = options.open(&temporary).and_then(|mut file| std::io::Write::write_all(&mut file, contents));
    match written.and_then(|()| std::fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&temporary);
            Err(e)
        }
    }
}

/// The key file ssh reads: the configured file, or the Secrets Manager key
/// written, 0600, under the temp dir.
fn key_file(source: &SshKeySource) -> std::io::Result<PathBuf> {
    match source {
        SshKeySource::File(path) => Ok(path.clone()),
        SshKeySource::Inline(key) => {
            let path = private_dir("mpanel-ssh-key")?.join("id");
            let mut text = key.expose().clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            write_atomically(&path, text.as_bytes(), 0o600)?;
            Ok(path)
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
    let dir = private_dir("mpanel-ssh")?;
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

pub async fn connect(p: Provisioner<'_>, server: &Server) -> Result<Session, JobError> {
    let source = p.ssh_key.ok_or_else(|| JobError::permanent("no SSH key is configured in this process"))?;
    let key = key_file(source).map_err(|e| JobError::retryable(format!("cannot prepare the SSH key: {e}")))?;
    let (known_hosts, config) =
        ssh_files(server).map_err(|e| JobError::retryable(format!("cannot prepare SSH files: {e}")))?;
    let control = private_dir("mpanel-ssh-ctl").map_err(|e| JobError::retryable(format!("control dir: {e}")))?;
    let mut builder = SessionBuilder::default();
    builder
        .user(server.ssh_user.clone())
        .port(server.ssh_port)
        .keyfile(&key)
        .config_file(&config)
        .known_hosts_check(KnownHosts::Strict)
        .user_known_hosts_file(&known_hosts)
        .connect_timeout(CONNECT_TIMEOUT)
        .server_alive_interval(Duration::from_secs(15))
        .control_directory(&control);
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
/// blindly. Network trouble is retryable.
pub fn classify_ssh_error(message: &str) -> JobError {
    let lowered = message.to_lowercase();
    if lowered.contains("host key verification failed") || lowered.contains("remote host identification has changed") {
        JobError::permanent(format!(
            "SSH host key mismatch: the server did not present its registered host key ({message})"
        ))
    } else if lowered.contains("permission denied") {
        JobError::permanent(format!("SSH login refused: {message}"))
    } else {
        JobError::retryable(format!("SSH connection failed: {message}"))
    }
}

/// Runs a command and returns its output (a non-zero exit is not an error here).
pub(crate) async fn run(session: &Session, program: &str, args: &[&str]) -> Result<Output, JobError> {
    let output =
        session.command(program).args(args).output().await.map_err(|e| classify_ssh_error(&error_chain(&e)))?;
    Ok(output)
}

pub(crate) fn check(output: &Output, what: &str) -> Result<(), JobError> {
    if output.status.success() {
        Ok(())
    } else {
        let stderr: String = String::from_utf8_lossy(&output.stderr).chars().take(300).collect();
        Err(JobError::retryable(format!("{what} failed: {}", stderr.trim())))
    }
}

/// Writes `content` to `path` on the server (replacing it); the path is `$1`
/// of a constant script, never part of the script text.
pub(crate) async fn write_file(session: &Session, path: &str, content: &str) -> Result<(), JobError> {
    let output = pipe_to(session, "cat > \"$1\"", path, content).await?;
    check(&output, "writing a file")
}

/// Runs `sh -c script sh path` on the server with `content` on its stdin.
async fn pipe_to(session: &Session, script: &str, path: &str, content: &str) -> Result<Output, JobError> {
    let mut child = session
        .command("sh")
        .args(["-c", script, "sh", path])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .await
        .map_err(|e| classify_ssh_error(&error_chain(&e)))?;
    if let Some(mut stdin) = child.stdin().take() {
        stdin.write_all(content.as_bytes()).await.map_err(|e| JobError::retryable(format!("writing {path}: {e}")))?;
        stdin.shutdown().await.map_err(|e| JobError::retryable(format!("writing {path}: {e}")))?;
    }
    child.wait_with_output().await.map_err(|e| classify_ssh_error(&error_chain(&e)))
}

/// Whether `path` exists on the server.
pub(crate) async fn exists(session: &Session, path: &str) -> Result<bool, JobError> {
    Ok(run(session, "test", &["-e", path]).await?.status.success())
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

/// `<webRoot>/<domain>` on the server.
pub fn site_root(server: &Server, domain: &DomainName) -> String {
    format!("{}/{}", server.web_root.trim_end_matches('/'), domain.as_str())
}

/// Creates the directories and (only if absent) the default page.
pub async fn create_site(session: &Session, server: &Server, domain: &DomainName) -> Result<(), JobError> {
    let root = site_root(server, domain);
    let public = format!("{root}/public");
    let logs = format!("{root}/logs");
    let private = format!("{root}/private");
    check(&run(session, "mkdir", &["-p", "--", &public, &logs, &private]).await?, "mkdir")?;
    check(&run(session, "chmod", &["0750", "--", &private]).await?, "chmod")?;
    let index = format!("{public}/index.html");
    if run(session, "test", &["-e", &index]).await?.status.success() {
        return Ok(());
    }
    // noclobber: if another attempt wrote it meanwhile, keep that one.
    let output = pipe_to(session, "set -C; cat > \"$1\"", &index, &default_page(domain)).await?;
    if output.status.success() || run(session, "test", &["-e", &index]).await?.status.success() {
        Ok(())
    } else {
        check(&output, "writing index.html")
    }
}

pub async fn provision(p: Provisioner<'_>, job: &ClaimedJob) -> Result<(), JobError> {
    let target = load_target(p.db, job).await?;
    let server = assign_server(p.db, &target).await?;
    let session = connect(p, &server).await?;
    let created = create_site(&session, &server, &target.domain).await;
    let _ = session.close().await;
    created?;
    let client = p.db.get().await?;
    client
        .query_typed(
            "UPDATE hosting_accounts SET status = 'ACTIVE', updated_at = now()
             WHERE subscription_id = $1 AND server_id = $2 AND status = 'PENDING'",
            &[(&target.subscription_id, Type::UUID), (&server.id, Type::UUID)],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader never sees a rewrite in progress (an empty or partial
    /// known_hosts made concurrent jobs refuse the server as unknown).
    #[test]
    fn rewritten_ssh_files_are_never_seen_half_written() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        let dir = std::env::temp_dir().join(format!("mpanel-atomic-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("known_hosts");
        let contents = "[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk\n".repeat(200);
        write_atomically(&path, contents.as_bytes(), 0o600).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (path, contents, stop) = (path.clone(), contents.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    write_atomically(&path, contents.as_bytes(), 0o600).unwrap();
                }
            })
        };
        let mut torn = 0;
        for _ in 0..5_000 {
            if std::fs::read(&path).unwrap() != contents.as_bytes() {
                torn += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(torn, 0, "reads saw a half-written file");
        assert_eq!(mode, 0o600);
        assert_eq!(leftovers, 1, "temporary files left behind");
    }

    fn server(port: u16) -> Server {
        Server {
            id: uuid::Uuid::nil(),
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
    fn site_paths_and_page() {
        let d = DomainName::parse("example.com").unwrap();
        assert_eq!(site_root(&server(22), &d), "/srv/www/example.com");
        assert!(default_page(&d).contains("<h1>example.com</h1>"));
    }

    #[test]
    fn ssh_errors() {
        assert!(!classify_ssh_error("Host key verification failed.").retryable);
        assert!(classify_ssh_error("ssh: connect to host 10.0.0.1 port 22: Connection timed out").retryable);
    }
}
