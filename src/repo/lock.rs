//! Repository locks in `locks/`: shared for snapshots and restores, exclusive for
//! operations that delete (prune). A lock is a sealed object naming host, pid and
//! time; it is refreshed while held. A lock whose process is gone (same host) or
//! that was not refreshed for `STALE_AFTER` (another host) is removed with a warning.
//!
//! A lock that is lost is lost for good: when the refresh finds the lock file gone
//! (another process judged it stale and removed it) or cannot refresh it for half
//! of `STALE_AFTER`, the repository's `lock_lost` flag is raised, and every write
//! (`check_lock`) stops the operation (exit 11), as restic does: past that point a
//! prune elsewhere may already be deleting what this run would reference.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::Repository;
use crate::crypto::{Kind, MasterKey};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::storage::{Backend, StorageError};

/// A lock not refreshed for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// Failed refreshes are retried this often.
const RETRY_EVERY: Duration = Duration::from_secs(30);

/// The refresh interval: debug builds take HCBACKUP_TEST_LOCK_REFRESH_SECS (tests).
fn refresh_every() -> Duration {
    crate::config::tuning::get()
        .hooks
        .lock_refresh
        .unwrap_or(REFRESH_EVERY)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    pub user: String,
    pub time: String,
    pub exclusive: bool,
    pub operation: String,
    /// Empty for the repository's locks; `audit` for a turn at appending to the
    /// audit chain (`audit_turn`), which no repository lock conflicts with.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// When the lock was taken (`time` is its last refresh): a prune deletes a
    /// condemned pack only when no lock started before the mark. Empty in
    /// locks of older releases: such a lock counts as started long ago.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub started: String,
}

impl LockInfo {
    /// Something in `locks/` whose holder cannot be known: it counts as an
    /// exclusive repository lock (`what` says what it is).
    fn unknown(what: String) -> LockInfo {
        LockInfo {
            host: "?".into(),
            pid: 0,
            user: "?".into(),
            time: "?".into(),
            exclusive: true,
            operation: what,
            scope: String::new(),
            started: String::new(),
        }
    }

    /// Whether this is something in `locks/` that did not open as a lock.
    fn is_unknown(&self) -> bool {
        self.pid == 0 && self.host == "?"
    }

    /// When the lock was taken, in Unix seconds; `i64::MIN` when not known.
    fn started_at(&self) -> i64 {
        crate::util::parse_rfc3339(&self.started).map_or(i64::MIN, |t| t.unix_timestamp())
    }

    fn describe(&self) -> String {
        format!(
            "{} (pid {} on {}, {}{}, since {})",
            self.operation,
            self.pid,
            self.host,
            if self.scope == MAINTENANCE_SCOPE {
                "maintenance lock, which snapshots do not wait for, "
            } else {
                ""
            },
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            if self.started.is_empty() {
                &self.time
            } else {
                &self.started
            }
        )
    }

    /// Why this lock is stale, if it is.
    fn stale_reason(&self, host: &str) -> Option<String> {
        if self.host == host && !crate::util::pid_alive(self.pid) {
            return Some(format!("process {} on {} is gone", self.pid, self.host));
        }
        let t = crate::util::parse_rfc3339(&self.time)?;
        let age = crate::util::now() - t;
        (age > STALE_AFTER).then(|| format!("not refreshed for {} minutes", age.whole_minutes()))
    }
}

/// The locks this process holds in one repository (and its copies), and whether
/// one of them was lost. Shared by the repository and its lock guards.
#[derive(Default)]
pub struct LockState {
    lost: AtomicBool,
    held: std::sync::Mutex<Vec<(Arc<dyn Backend>, String)>>,
}

impl LockState {
    fn held(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<dyn Backend>, String)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Held while an operation runs; removes its lock file when dropped.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    path: String,
    stop: Arc<AtomicBool>,
    refresher: Option<JoinHandle<()>>,
    state: Arc<LockState>,
}

impl LockGuard {
    /// No lock at all (`--no-lock`, a read-only file system): nothing to remove.
    fn none(backend: Arc<dyn Backend>, state: Arc<LockState>) -> LockGuard {
        LockGuard {
            backend,
            path: String::new(),
            stop: Arc::default(),
            refresher: None,
            state,
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.path.is_empty() {
            return;
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.refresher.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        self.state.held().retain(|(_, p)| *p != self.path);
        let _ = self.backend.delete(&self.path);
    }
}

impl Repository {
    /// Take a lock. Shared locks coexist; an exclusive lock excludes every other.
    /// A conflicting lock is waited for up to the repository's lock wait (checked
    /// every few seconds, with jitter so two waiters do not collide forever).
    ///
    /// Once granted, the catalog is brought in step with the repository again:
    /// while this run waited, another (a prune from another machine) may have
    /// deleted packs the catalog still placed blobs in. Deduplicating against
    /// those would make a snapshot "saved" that does not restore.
    ///
    /// A shared lock is not taken with `--no-lock`, nor on a read-only file
    /// system (a write-protected USB disk): nothing can delete from it, and a
    /// lock could not be written there anyway.
    pub fn lock(&self, exclusive: bool, operation: &str) -> Result<LockGuard> {
        if !exclusive && (self.no_lock || self.backend.read_only()) {
            if !self.no_lock {
                tracing::warn!(
                    "{} is on a read-only file system: {operation} reads it without a lock",
                    self.backend.location()
                );
            }
            self.sync_catalog()?;
            return Ok(LockGuard::none(
                self.backend.clone(),
                self.lock_lost.clone(),
            ));
        }
        let guard = self.lock_at(self.backend.clone(), exclusive, operation)?;
        self.sync_catalog()?;
        Ok(guard)
    }

    /// A shared lock for an operation that writes, whatever `--no-lock` says.
    pub fn lock_to_write(&self, operation: &str) -> Result<LockGuard> {
        let guard = self.lock_at(self.backend.clone(), false, operation)?;
        self.sync_catalog()?;
        Ok(guard)
    }

    /// The maintenance lock (prune, forget), exclusive in its own scope: one
    /// maintainer at a time, no verify or mirror meanwhile, and no repository
    /// lock, so snapshots never wait for it nor it for them.
    pub fn lock_maintenance(&self, operation: &str) -> Result<LockGuard> {
        let guard = self.lock_waiting(self.backend.clone(), MAINTENANCE_SCOPE, true, operation)?;
        self.sync_catalog()?;
        Ok(guard)
    }

    /// A shared maintenance lock, for a reader that walks every snapshot or
    /// pack (verify, mirror): no prune or forget changes the copy under it.
    /// None where no lock is taken (`--no-lock`, a read-only file system).
    pub fn lock_maintenance_shared(&self, operation: &str) -> Result<Option<LockGuard>> {
        if self.no_lock || self.backend.read_only() {
            return Ok(None);
        }
        // Taken before the repository lock, whose grant brings the catalog in
        // step (a prune may have run while this waited).
        self.lock_waiting(self.backend.clone(), MAINTENANCE_SCOPE, false, operation)
            .map(Some)
    }

    /// The shared maintenance lock of another copy (a mirror destination): a
    /// mirror and a prune or forget there never run at once.
    pub fn lock_maintenance_at(
        &self,
        backend: Arc<dyn Backend>,
        operation: &str,
    ) -> Result<LockGuard> {
        self.lock_waiting(backend, MAINTENANCE_SCOPE, false, operation)
    }

    /// The repository locks live now (stale ones removed): how many, and when
    /// the earliest of them started. Read by prune before the snapshots.
    pub fn writers(&self) -> Result<crate::ops::prune::plan::Writers> {
        let locker = Locker {
            backend: self.backend.clone(),
            key: &self.key,
            state: Arc::default(),
        };
        let live: Vec<LockInfo> = locker
            .live_locks()?
            .into_iter()
            .map(|(_, l)| l)
            .filter(|l| l.scope.is_empty())
            .collect();
        for l in live.iter().filter(|l| l.is_unknown()) {
            tracing::warn!(
                "{}: prune deletes nothing while it is there (it may be a running snapshot's)",
                l.operation
            );
        }
        Ok(crate::ops::prune::plan::Writers {
            live: live.len(),
            oldest_start: live.iter().map(LockInfo::started_at).min(),
        })
    }

    /// Take a lock in another copy of this repository (a mirror destination),
    /// sealed with this repository's key.
    pub fn lock_at(
        &self,
        backend: Arc<dyn Backend>,
        exclusive: bool,
        operation: &str,
    ) -> Result<LockGuard> {
        self.lock_waiting(backend, "", exclusive, operation)
    }

    /// Take a lock in `scope`, waiting up to the repository's lock wait.
    fn lock_waiting(
        &self,
        backend: Arc<dyn Backend>,
        scope: &str,
        exclusive: bool,
        operation: &str,
    ) -> Result<LockGuard> {
        let locker = Locker {
            backend,
            key: &self.key,
            state: self.lock_lost.clone(),
        };
        let start = std::time::Instant::now();
        let mut told: Option<std::time::Instant> = None;
        loop {
            match locker.try_lock_in(scope, exclusive, operation) {
                Err(Error::Locked(who)) if start.elapsed() < self.lock_wait => {
                    // Said once, then every minute: a cron mail shows why it took long.
                    if told.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        tracing::warn!(
                            "waiting for the repository lock held by {who} (up to {} more; HCBACKUP_LOCK_WAIT sets how long, 0 not at all)",
                            crate::util::human_secs(self.lock_wait.saturating_sub(start.elapsed()).as_secs())
                        );
                        told = Some(std::time::Instant::now());
                    }
                    let jitter = rand::random::<u64>() % 2000;
                    std::thread::sleep(Duration::from_millis(1000 + jitter));
                }
                Err(Error::Locked(who)) if !self.lock_wait.is_zero() => {
                    return Err(Error::Locked(format!(
                        "{who}, still after {} of waiting",
                        crate::util::human_secs(self.lock_wait.as_secs())
                    )));
                }
                other => return other,
            }
        }
    }
}

/// The scope of audit turns.
const AUDIT_SCOPE: &str = "audit";
/// The scope of prune, forget and tag (exclusive), and of verify and mirror
/// (shared). Taken before the repository lock by those that take both, so
/// that one waiting for it holds up no snapshot, and no two wait on each other.
const MAINTENANCE_SCOPE: &str = "maintenance";

/// A turn at appending to the audit chain of the repository at `backend`:
/// appends from several machines take turns, so the chain never forks. No
/// repository lock conflicts with it, and a lock that cannot be read does not
/// stop it (an append deletes nothing, and planted junk must not stop the
/// record). Waits up to `wait`; `None` when the turn did not come (the append
/// goes ahead, and `audit verify` would show a fork).
pub(crate) fn audit_turn(
    backend: Arc<dyn Backend>,
    key: &MasterKey,
    wait: Duration,
) -> Option<LockGuard> {
    let locker = Locker {
        backend,
        key,
        state: Arc::default(),
    };
    let start = std::time::Instant::now();
    loop {
        match locker.try_lock_in(AUDIT_SCOPE, true, "audit") {
            Ok(g) => return Some(g),
            Err(Error::Locked(_)) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(50 + rand::random::<u64>() % 200));
            }
            Err(e) => {
                tracing::warn!("appending to the audit log without its turn: {e}");
                return None;
            }
        }
    }
}

/// Locks in one copy, sealed with the repository's key.
struct Locker<'k> {
    backend: Arc<dyn Backend>,
    key: &'k MasterKey,
    /// Raised when a lock of this repository's is lost; the locks held.
    state: Arc<LockState>,
}

impl Locker<'_> {
    /// Every lock in the copy, stale ones removed (with a warning).
    fn live_locks(&self) -> Result<Vec<(String, LockInfo)>> {
        let host = crate::util::hostname();
        let mut out = Vec::new();
        for (name, _) in self.backend.list("locks")? {
            let Some(id) = ObjectId::from_hex(&name) else {
                continue;
            };
            let path = format!("locks/{name}");
            let sealed = match self.backend.get(&path) {
                Ok(b) => b,
                Err(StorageError::NotFound(_)) => continue, // released meanwhile
                Err(e) => return Err(e.into()),
            };
            let info = crate::codec::decode(self.key, Kind::Lock, &id.0, &sealed, 1 << 20)
                .ok()
                .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok());
            // A lock that does not open may be a prune's whose bytes someone
            // garbled to let a snapshot (or a prune) in beside it: it counts as
            // held, exclusively, until someone who knows nothing runs removes it.
            let Some(info) = info else {
                out.push((
                    name.clone(),
                    LockInfo::unknown(format!(
                        "an unreadable lock ({path}: damaged, or written by someone without the key; remove it if no hcbackup runs anywhere)"
                    )),
                ));
                continue;
            };
            if let Some(why) = info.stale_reason(&host) {
                tracing::warn!("removed stale lock of {}: {why}", info.describe());
                let _ = self.backend.delete(&path);
                continue;
            }
            out.push((name, info));
        }
        // Something in locks/ that is not a lock file (a lock turned into a link
        // or a folder, to hide it from this listing while a prune runs): held.
        for name in self.backend.list_foreign("locks")? {
            out.push((
                name.clone(),
                LockInfo::unknown(format!(
                    "locks/{} (not a lock file: someone changed the repository; remove it if no hcbackup runs anywhere)",
                    crate::model::tree::escape(name.as_bytes())
                )),
            ));
        }
        Ok(out)
    }

    /// Take a lock in `scope`: locks of other scopes do not conflict; in the
    /// audit scope every lock is exclusive (whatever it says).
    fn try_lock_in(&self, scope: &str, exclusive: bool, operation: &str) -> Result<LockGuard> {
        let exclusive = exclusive || scope == AUDIT_SCOPE;
        let conflict = |locks: &[(String, LockInfo)], mine: Option<&str>| {
            locks
                .iter()
                .filter(|(_, l)| l.scope == scope)
                .find(|(n, l)| {
                    Some(n.as_str()) != mine && (exclusive || l.exclusive || l.scope == AUDIT_SCOPE)
                })
                .map(|(_, l)| Error::Locked(l.describe()))
        };
        if let Some(e) = conflict(&self.live_locks()?, None) {
            return Err(e);
        }
        let now = crate::util::rfc3339(crate::util::now());
        let info = LockInfo {
            host: crate::util::hostname(),
            pid: std::process::id(),
            user: crate::util::username(),
            time: now.clone(),
            started: now,
            // Older releases read an audit turn as a shared lock (no conflict),
            // and an exclusive maintenance lock as an exclusive repository one.
            exclusive: exclusive && scope != AUDIT_SCOPE,
            operation: operation.to_string(),
            scope: scope.to_string(),
        };
        // Random id: the lock's content changes as it is refreshed, its name does not.
        let mut r = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut r);
        let id = ObjectId(r);
        let name = id.to_hex();
        let path = format!("locks/{name}");
        put_lock(self.backend.as_ref(), self.key, &id, &info)?;
        let guard = LockGuard {
            backend: self.backend.clone(),
            path: path.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            refresher: None,
            state: self.state.clone(),
        };
        self.state.held().push((self.backend.clone(), path));
        // Another process may have locked at the same moment: look again.
        if let Some(e) = conflict(&self.live_locks()?, Some(&name)) {
            return Err(e); // dropping the guard removes our lock
        }
        if scope == AUDIT_SCOPE {
            return Ok(guard); // held for milliseconds: no refresh
        }
        Ok(self.start_refresh(guard, id, info))
    }

    fn start_refresh(&self, mut guard: LockGuard, id: ObjectId, mut info: LockInfo) -> LockGuard {
        let stop = guard.stop.clone();
        let state = self.state.clone();
        let backend = self.backend.clone();
        let key = self.key.clone();
        let path = guard.path.clone();
        let every = refresh_every();
        guard.refresher = Some(std::thread::spawn(move || {
            let mut last_ok = std::time::Instant::now();
            let mut wait = every;
            loop {
                std::thread::park_timeout(wait);
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let why = match backend.stat(&path) {
                    Err(StorageError::NotFound(_)) => Some(
                        "its lock file was removed (another process judged it stale)".to_string(),
                    ),
                    _ => {
                        info.time = crate::util::rfc3339(crate::util::now());
                        match put_lock(backend.as_ref(), &key, &id, &info) {
                            Ok(()) => {
                                last_ok = std::time::Instant::now();
                                wait = every;
                                None
                            }
                            Err(e) if last_ok.elapsed() > STALE_AFTER / 2 => Some(format!(
                                "it could not be refreshed for {} minutes ({e})",
                                last_ok.elapsed().as_secs() / 60
                            )),
                            Err(e) => {
                                tracing::warn!(
                                    "could not refresh the repository lock ({e}); retrying"
                                );
                                wait = RETRY_EVERY.min(every);
                                None
                            }
                        }
                    }
                };
                if let Some(why) = why {
                    tracing::error!("the repository lock was lost: {why}; stopping before anything more is written");
                    state.lost.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }));
        guard
    }
}

impl Repository {
    /// Fail when a lock this run holds was lost: nothing may be written after it.
    pub fn check_lock(&self) -> Result<()> {
        if self.lock_lost.lost.load(Ordering::SeqCst) {
            return Err(Error::LockLost(
                "removed as stale by another process, or not refreshed in time".into(),
            ));
        }
        Ok(())
    }

    /// `check_lock`, and every lock this run holds still there: called before the
    /// steps that commit (index objects, the manifest, deletions), so a lock
    /// someone removed stops even a run shorter than the refresh interval.
    pub fn confirm_lock(&self) -> Result<()> {
        self.check_lock()?;
        let held = self.lock_lost.held().clone();
        for (backend, path) in held {
            // Still there, still a lock sealed by this repository's key: a lock
            // turned into a link, a folder or junk meanwhile was not one.
            let id = path
                .strip_prefix("locks/")
                .and_then(ObjectId::from_hex)
                .expect("lock paths are ours");
            let intact = backend.get(&path).ok().is_some_and(|sealed| {
                crate::codec::decode(&self.key, Kind::Lock, &id.0, &sealed, 1 << 20)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok())
                    .is_some_and(|l| {
                        l.pid == std::process::id() && l.host == crate::util::hostname()
                    })
            });
            if !intact {
                self.lock_lost.lost.store(true, Ordering::SeqCst);
                return Err(Error::LockLost(format!(
                    "{path} was removed or changed by someone else"
                )));
            }
        }
        Ok(())
    }
}

fn put_lock(backend: &dyn Backend, key: &MasterKey, id: &ObjectId, info: &LockInfo) -> Result<()> {
    let plain = serde_json::to_vec(info).expect("lock serializes");
    let sealed = crate::codec::encode(key, Kind::Lock, &id.0, &plain);
    backend.put(&format!("locks/{}", id.to_hex()), &sealed)?;
    Ok(())
}
