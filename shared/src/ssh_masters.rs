//! One SSH master connection per hosting server, reused by the jobs of this
//! process. A job then costs one `ssh -S` process over the master instead of
//! a handshake, a check and an exit of its own.
//!
//! A master is reused only while everything it was made with is unchanged
//! (address, user, pinned host key, key file: the `fingerprint`), and only
//! shortly after its last use: a Lambda container is frozen between
//! invocations, and a connection idle for long may have been dropped on the
//! way without either end knowing. At most [`COMMANDS_PER_MASTER`] commands
//! share one master at a time, below sshd's default `MaxSessions` of 10.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openssh::Session;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// Commands running at once over one master.
pub const COMMANDS_PER_MASTER: usize = 8;
/// A master unused for longer is closed, never reused.
pub const IDLE: Duration = Duration::from_secs(30);
/// A master exits by itself after this long without a command (ssh's
/// `ControlPersist`), so none outlives its process for long. Longer than
/// [`IDLE`]: a master this process would reuse is never one that left.
pub const PERSIST: std::num::NonZeroUsize = std::num::NonZeroUsize::new(60).expect("60 is not zero");

struct Master {
    fingerprint: String,
    session: Arc<Session>,
    commands: Arc<Semaphore>,
    last_used: Instant,
}

/// The masters of this process, by server id; each server's own lock, so
/// one server slow to answer holds up only its own jobs.
#[derive(Default)]
pub struct SshMasters {
    servers: std::sync::Mutex<HashMap<Uuid, Arc<Mutex<Option<Master>>>>>,
    opened: AtomicU64,
}

/// A master for one job's commands; the slot is given back when dropped.
pub struct MasterLease {
    pub session: Arc<Session>,
    /// True when the master was made for this lease (not reused).
    pub fresh: bool,
    server_id: Uuid,
    _slot: Option<OwnedSemaphorePermit>,
}

impl SshMasters {
    pub fn new() -> SshMasters {
        SshMasters::default()
    }

    fn slot_of(&self, server_id: Uuid) -> Arc<Mutex<Option<Master>>> {
        let mut servers = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        servers.entry(server_id).or_default().clone()
    }

    /// A master for `server_id` made with `fingerprint`: the one kept, or a
    /// new one from `connect` (which then replaces one made otherwise).
    /// Other servers' masters idle for longer than [`IDLE`] are closed.
    pub async fn lease<E, F, Fut>(&self, server_id: Uuid, fingerprint: &str, connect: F) -> Result<MasterLease, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Session, E>>,
    {
        let mut retired = self.take_idle(server_id);
        let slot = self.slot_of(server_id);
        // Concurrent jobs for one server wait for its one master rather than
        // each making their own.
        let mut kept = slot.lock().await;
        let now = Instant::now();
        let (mut master, fresh) = match kept.take() {
            Some(m) if m.fingerprint == fingerprint && now.duration_since(m.last_used) <= IDLE => (m, false),
            old => {
                retired.extend(old);
                let session = connect().await?;
                self.opened.fetch_add(1, Ordering::Relaxed);
                let master = Master {
                    fingerprint: fingerprint.to_string(),
                    session: Arc::new(session),
                    commands: Arc::new(Semaphore::new(COMMANDS_PER_MASTER)),
                    last_used: now,
                };
                (master, true)
            }
        };
        master.last_used = now;
        let (session, commands) = (master.session.clone(), master.commands.clone());
        *kept = Some(master);
        drop(kept);
        close_all(retired).await;
        // The semaphore is never closed, so a slot always comes.
        let slot = commands.acquire_owned().await.ok();
        Ok(MasterLease { session, fresh, server_id, _slot: slot })
    }

    /// Masters of other servers unused for longer than [`IDLE`] (skipping
    /// any whose lock is held: in use).
    fn take_idle(&self, except: Uuid) -> Vec<Master> {
        let servers = self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        servers
            .iter()
            .filter(|(id, _)| **id != except)
            .filter_map(|(_, slot)| {
                let mut kept = slot.try_lock().ok()?;
                if kept.as_ref().is_some_and(|m| now.duration_since(m.last_used) > IDLE) { kept.take() } else { None }
            })
            .collect()
    }

    /// Drops the lease's master (it failed): the next lease connects anew.
    pub async fn forget(&self, lease: &MasterLease) {
        let slot = self.slot_of(lease.server_id);
        let mut kept = slot.lock().await;
        let retired =
            if kept.as_ref().is_some_and(|m| Arc::ptr_eq(&m.session, &lease.session)) { kept.take() } else { None };
        drop(kept);
        close_all(retired.into_iter().collect()).await;
    }

    /// How many masters this process has made (for tests and benchmarks).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The control sockets of the masters kept now.
    pub async fn control_sockets(&self) -> Vec<PathBuf> {
        let slots: Vec<_> =
            self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
        let mut sockets = Vec::new();
        for slot in slots {
            if let Some(master) = slot.lock().await.as_ref() {
                sockets.push(master.session.control_socket().to_path_buf());
            }
        }
        sockets
    }

    /// Closes every master (at shutdown).
    pub async fn close(&self) {
        let slots: Vec<_> =
            self.servers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect();
        let mut retired = Vec::new();
        for slot in slots {
            retired.extend(slot.lock().await.take());
        }
        close_all(retired).await;
    }
}

/// Ends each master whose last lease is gone; one still in use by a job is
/// ended when that job drops it (openssh's `Session` exits on drop).
async fn close_all(retired: Vec<Master>) {
    for master in retired {
        if let Ok(session) = Arc::try_unwrap(master.session) {
            let _ = session.close().await;
        }
    }
}
