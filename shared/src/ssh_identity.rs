//! SSH identities and the files ssh reads.
//!
//! One SSH identity per tenant: an Ed25519 key pair mPanel makes the first
//! time the tenant needs it. The public half is in `tenant_ssh_keys` (shown
//! by `GET /api/ssh-key`, installed by the operator on the tenant's
//! servers); the private half is a Secrets Manager secret
//! `<SSH_KEY_SECRET_PREFIX><tenant id>`, or, with `SSH_KEY_DIR`, the file
//! `<dir>/<tenant id>` (0600). Jobs for a tenant's servers use only it, so a
//! tenant's staff can never aim a key at a host another tenant authorised.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use base64::Engine;
use ssh_key::{LineEnding, PrivateKey};
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::config::{SshKeySource, TenantKeyStore};
use crate::db::DbPool;
use crate::error::{AppError, AppResult};

/// Where the private keys live, plus the files this process wrote for ssh.
pub struct TenantKeys {
    store: TenantKeyStore,
    aws: Option<aws_config::SdkConfig>,
    /// Made on first use: most functions never touch a tenant's key.
    secrets: OnceLock<aws_sdk_secretsmanager::Client>,
    /// Key files written from Secrets Manager, by tenant (once per process).
    written: Mutex<HashMap<Uuid, PathBuf>>,
    /// Each tenant's data key, read once per process.
    data_keys: Mutex<HashMap<Uuid, [u8; 32]>>,
}

impl TenantKeys {
    pub fn new(store: TenantKeyStore, aws: Option<&aws_config::SdkConfig>) -> TenantKeys {
        TenantKeys {
            store,
            aws: aws.cloned(),
            secrets: OnceLock::new(),
            written: Mutex::new(HashMap::new()),
            data_keys: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant's public key line, made (with its private half) on first use.
    pub async fn public_key(&self, db: &DbPool, tenant_id: Uuid) -> AppResult<String> {
        let client = db.get().await?;
        let existing = client
            .query_typed_opt("SELECT public_key FROM tenant_ssh_keys WHERE tenant_id = $1", &[(&tenant_id, Type::UUID)])
            .await?;
        if let Some(row) = existing {
            return Ok(row.try_get(0)?);
        }
        // The private half is stored first; a racing or earlier attempt's key wins.
        let private = self.store_new_or_existing(tenant_id).await?;
        let public = private.public_key().to_openssh().map_err(AppError::internal)?;
        let row = client
            .query_typed_one(
                "INSERT INTO tenant_ssh_keys (tenant_id, public_key) VALUES ($1, $2)
                 ON CONFLICT (tenant_id) DO UPDATE SET public_key = tenant_ssh_keys.public_key
                 RETURNING public_key",
                &[(&tenant_id, Type::UUID), (&public, Type::TEXT)],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The path of the tenant's private key file for ssh, checked to be a
    /// regular 0600 file of this process's user.
    /// The key is made first if the tenant has none yet; once it exists
    /// (the file, or this process's copy of the secret), no query is made.
    pub async fn key_file(&self, db: &DbPool, tenant_id: Uuid) -> AppResult<PathBuf> {
        match &self.store {
            TenantKeyStore::Dir(dir) => {
                let path = dir.join(tenant_id.to_string());
                if check_key_file(&path).is_err() {
                    self.public_key(db, tenant_id).await?;
                    check_key_file(&path)?;
                }
                Ok(path)
            }
            TenantKeyStore::SecretsManager { .. } => {
                if let Some(path) = self.written.lock().map_err(|_| fail("key cache poisoned"))?.get(&tenant_id)
                    && check_key_file(path).is_ok()
                {
                    return Ok(path.clone());
                }
                self.public_key(db, tenant_id).await?;
                let name = tenant_id.to_string();
                let text = self.read_secret(&name).await?.ok_or_else(|| {
                    fail(format!("the tenant's SSH key secret is missing ({})", self.secret_name(&name)))
                })?;
                let path = private_file(&format!("tenant-{tenant_id}"), text.as_bytes())
                    .map_err(|e| fail(format!("cannot write the tenant's SSH key: {e}")))?;
                self.written.lock().map_err(|_| fail("key cache poisoned"))?.insert(tenant_id, path.clone());
                Ok(path)
            }
        }
    }

    fn secret_name(&self, name: &str) -> String {
        match &self.store {
            TenantKeyStore::SecretsManager { prefix } => format!("{prefix}{name}"),
            TenantKeyStore::Dir(_) => String::new(),
        }
    }

    async fn store_new_or_existing(&self, tenant_id: Uuid) -> AppResult<PrivateKey> {
        let fresh = new_key()?;
        let text = fresh.to_openssh(LineEnding::LF).map_err(AppError::internal)?;
        let description = "mPanel: the tenant's SSH identity for its hosting servers";
        let stored = self.put_if_absent(&tenant_id.to_string(), text.as_str(), description).await?;
        if stored.as_str() == text.as_str() { Ok(fresh) } else { parse(&stored) }
    }

    /// The tenant's data key: 32 random bytes made on first use and kept
    /// beside its SSH key (`data-<tenant id>`), never in Postgres. It seals
    /// what must be kept but not in clear there (certificate keys, ACME
    /// account keys); one secret per tenant, not one per certificate.
    pub async fn data_key(&self, tenant_id: Uuid) -> AppResult<[u8; 32]> {
        if let Some(key) = self.data_keys.lock().map_err(|_| fail("key cache poisoned"))?.get(&tenant_id) {
            return Ok(*key);
        }
        let fresh = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let description = "mPanel: the tenant's data key (seals certificate and ACME account keys)";
        let stored = self.put_if_absent(&format!("data-{tenant_id}"), &fresh, description).await?;
        let key: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(stored.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| fail("the tenant's data key is not 32 bytes of base64"))?;
        self.data_keys.lock().map_err(|_| fail("key cache poisoned"))?.insert(tenant_id, key);
        Ok(key)
    }

    /// Stores `text` as `name` unless something is already stored there;
    /// returns what is stored (a racing or earlier writer's value wins).
    async fn put_if_absent(&self, name: &str, text: &str, description: &str) -> AppResult<String> {
        match &self.store {
            TenantKeyStore::Dir(dir) => {
                let path = dir.join(name);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true).mode(0o600);
                match options.open(&path) {
                    Ok(mut file) => {
                        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(AppError::internal)?;
                        file.sync_all().map_err(AppError::internal)?;
                        Ok(text.to_string())
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        check_key_file(&path)?;
                        std::fs::read_to_string(&path).map_err(AppError::internal)
                    }
                    Err(e) => Err(fail(format!("cannot write {}: {e}", path.display()))),
                }
            }
            TenantKeyStore::SecretsManager { .. } => {
                let client = self.client()?;
                let created = client
                    .create_secret()
                    .name(self.secret_name(name))
                    .description(description)
                    .secret_string(text)
                    .send()
                    .await;
                match created {
                    Ok(_) => Ok(text.to_string()),
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_exists_exception()) => self
                        .read_secret(name)
                        .await?
                        .ok_or_else(|| fail(format!("the secret {} exists but holds nothing", self.secret_name(name)))),
                    Err(e) => Err(fail(format!(
                        "creating the secret {}: {}",
                        self.secret_name(name),
                        aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                    ))),
                }
            }
        }
    }

    async fn read_secret(&self, name: &str) -> AppResult<Option<String>> {
        let answer = self.client()?.get_secret_value().secret_id(self.secret_name(name)).send().await;
        match answer {
            Ok(value) => Ok(value.secret_string().map(str::to_string)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(fail(format!(
                "reading the secret {}: {}",
                self.secret_name(name),
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))),
        }
    }

    fn client(&self) -> AppResult<&aws_sdk_secretsmanager::Client> {
        let aws = self.aws.as_ref().ok_or_else(|| fail("Secrets Manager is not configured"))?;
        Ok(self.secrets.get_or_init(|| aws_sdk_secretsmanager::Client::new(aws)))
    }
}

fn fail(message: impl std::fmt::Display) -> AppError {
    AppError::Internal(anyhow::anyhow!("{message}"))
}

fn new_key() -> AppResult<PrivateKey> {
    let seed: [u8; 32] = rand::random();
    let pair = ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let mut key = PrivateKey::from(pair);
    key.set_comment("mpanel");
    Ok(key)
}

fn parse(text: &str) -> AppResult<PrivateKey> {
    PrivateKey::from_openssh(text).map_err(|e| fail(format!("the stored SSH key is unreadable: {e}")))
}

/// A key file ssh may use: a regular file (no symlink), 0600, ours.
fn check_key_file(path: &Path) -> AppResult<()> {
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| fail(format!("the tenant's SSH key {}: {e}", path.display())))?;
    if !meta.file_type().is_file() || meta.permissions().mode() & 0o077 != 0 {
        return Err(fail(format!("{} is not a private (0600) key file", path.display())));
    }
    if meta.uid() != process_uid()? {
        return Err(fail(format!("{} belongs to another user", path.display())));
    }
    Ok(())
}

/// This process's directory for SSH files (only `/tmp` is writable on
/// Lambda): made once by mkdtemp, so its name is unpredictable and it is
/// ours, 0700, and checked before every use.
struct PrivateDir {
    dir: tempfile::TempDir,
    uid: u32,
}

static PRIVATE_DIR: OnceLock<PrivateDir> = OnceLock::new();

pub(crate) fn private_dir() -> std::io::Result<&'static Path> {
    let private = match PRIVATE_DIR.get() {
        Some(private) => private,
        None => {
            let dir = tempfile::Builder::new().prefix("mpanel-ssh-").tempdir()?;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
            let uid = std::fs::symlink_metadata(dir.path())?.uid();
            // A racing first use may have won: its directory is kept, ours dropped.
            let _ = PRIVATE_DIR.set(PrivateDir { dir, uid });
            PRIVATE_DIR.get().ok_or_else(|| std::io::Error::other("private directory not set"))?
        }
    };
    check_private(private.dir.path(), private.uid)?;
    Ok(private.dir.path())
}

/// The uid this process runs as (the owner of the directory it made).
pub(crate) fn process_uid() -> AppResult<u32> {
    private_dir().map_err(AppError::internal)?;
    PRIVATE_DIR.get().map(|p| p.uid).ok_or_else(|| fail("private directory not set"))
}

/// Writes `contents` to `name` (0600) in this process's private directory.
pub(crate) fn private_file(name: &str, contents: &[u8]) -> std::io::Result<PathBuf> {
    let path = private_dir()?.join(name);
    write_atomically(&path, contents, 0o600)?;
    Ok(path)
}

/// Refuses a directory that is not (any longer) a 0700 directory of `uid`.
fn check_private(path: &Path, uid: u32) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_dir() || meta.uid() != uid || meta.mode() & 0o777 != 0o700 {
        return Err(std::io::Error::other(format!("{} is not a private directory of this process", path.display())));
    }
    Ok(())
}

/// Replaces `path` with `contents` (mode `mode`) atomically: written to a
/// unique temporary file, then renamed over it. Jobs connect concurrently
/// and rewrite these files each time; an ssh started by one job must never
/// read another job's half-written (truncated) file, or it finds no host
/// key and refuses the server.
pub(crate) fn write_atomically(path: &std::path::Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
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

/// The platform key file (legacy servers only): the configured file, or
/// the Secrets Manager key written, 0600, to the private directory.
pub(crate) fn platform_key_file(source: &SshKeySource) -> std::io::Result<PathBuf> {
    match source {
        SshKeySource::File(path) => Ok(path.clone()),
        SshKeySource::Inline(key) => {
            let mut text = key.expose().clone();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            private_file("platform-id", text.as_bytes())
        }
    }
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

    #[test]
    fn a_new_key_round_trips_through_its_openssh_text() {
        let key = new_key().unwrap();
        let text = key.to_openssh(LineEnding::LF).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let back = parse(&text).unwrap();
        assert_eq!(back.public_key().to_openssh().unwrap(), key.public_key().to_openssh().unwrap());
        assert!(key.public_key().to_openssh().unwrap().starts_with("ssh-ed25519 AAAA"));
        assert_ne!(new_key().unwrap().public_key(), key.public_key(), "keys must be random");
    }

    #[test]
    fn the_private_directory_is_made_by_mkdtemp_0700_and_checked_before_use() {
        let dir = private_dir().unwrap();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("mpanel-ssh-") && name.len() > "mpanel-ssh-".len() + 4, "{name}");
        let meta = std::fs::symlink_metadata(dir).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(meta.uid(), process_uid().unwrap());

        // What check_private refuses: a widened mode, a symlink, another owner.
        let uid = meta.uid();
        let other = tempfile::Builder::new().prefix("mpanel-check-").tempdir().unwrap();
        std::fs::set_permissions(other.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_private(other.path(), uid).is_ok());
        std::fs::set_permissions(other.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_private(other.path(), uid).is_err());
        std::fs::set_permissions(other.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_private(other.path(), uid.wrapping_add(1)).is_err());
        let link = other.path().with_extension("link");
        std::os::unix::fs::symlink(other.path(), &link).unwrap();
        assert!(check_private(&link, uid).is_err());
        std::fs::remove_file(&link).unwrap();
    }
}
