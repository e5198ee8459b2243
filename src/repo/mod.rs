//! The repository: the only writer of objects, and the keeper of the write order
//! packs → index → snapshot (a snapshot exists only once its manifest is durable).
//!
//! It opens the key with a password, keeps the catalog in step with the objects, and
//! reads blobs back with every check: the pack range must authenticate as the blob's
//! kind and id, and the plaintext must hash to that id again.

mod catalog_sync;
mod config;
mod holds;
mod keys;
mod lock;
mod removal;
#[doc(hidden)]
pub mod synth;
mod wal;
mod writer;

pub(crate) use catalog_sync::PACKS_PER_INDEX;
pub use config::RepoConfig;
pub use holds::Hold;
pub use keys::KeyInfo;
pub(crate) use keys::MAX_KEY_FILE;
pub(crate) use lock::audit_turn;
pub use lock::{LockGuard, LockInfo};
pub use removal::Removed;
pub use writer::{BlobWriter, WriteStats, PACK_TARGET};

use std::path::Path;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::catalog::{Catalog, Location};
use crate::codec;
use crate::crypto::{Kind, MasterKey};
use crate::error::{Error, Result};
use crate::id::{BlobId, ChunkId, ObjectId, PackId, TreeId};
use crate::model::chunk_list;
use crate::model::snapshot::{Snapshot, SnapshotEntry};
use crate::model::tree::{Node, Tree};
use crate::storage::{pack_path, Backend, StorageError};

/// Folders every repository has.
pub const DIRS: &[&str] = &[
    "keys",
    "packs",
    "index",
    "snapshots",
    "holds",
    "wal",
    "locks",
    "audit",
];

/// Catalog meta keys: the key file this machine opened last (tried first next
/// time), a fingerprint of the key set (trust on first use), the newest key epoch seen.
const LAST_KEY: &str = "key_file";
/// Catalog meta key: the location (`Backend::location`) the catalog belongs to.
const LOCATION: &str = "location";
pub(crate) const KEY_FINGERPRINT: &str = "key_fingerprint";
pub(crate) const KEY_EPOCH: &str = "key_epoch";

/// A fingerprint of the key set for the catalog: a check value in a domain no
/// config uses (epoch `u32::MAX`), revealing nothing of the keys.
pub(crate) fn key_fingerprint(key: &MasterKey, config: &RepoConfig) -> String {
    hex::encode(key.check_value(&config.id_bytes(), "catalog fingerprint", u32::MAX))
}

/// Refuse a key set other than the one this machine used before for this
/// repository id: someone replaced both the config and the key files.
fn trust_on_first_use(
    catalog: &Catalog,
    key: &MasterKey,
    config: &RepoConfig,
    location: &str,
) -> Result<()> {
    let fp = key_fingerprint(key, config);
    match catalog.meta(KEY_FINGERPRINT)? {
        Some(old) if old != fp => Err(Error::Failed(format!(
            "the repository at {location} now holds other keys than the ones this machine used for it before: someone replaced its config and key files. Do not write to it; check the copy, or restore from another (the catalog {} remembers the old keys' fingerprint)",
            catalog.path().display()
        ))),
        Some(_) => Ok(()),
        None => catalog.set_meta(KEY_FINGERPRINT, &fp),
    }
}

/// Rewrite a format-1 config as format 2 (with the key check), once the key is
/// known to be the repository's. Where the copy cannot be written (read-only
/// media, read-only credentials) it stays format 1 and is read as it is.
fn upgrade(backend: &dyn Backend, old: RepoConfig, key: &MasterKey) -> RepoConfig {
    let new = RepoConfig::new_v2(old.id.clone(), old.created.clone(), key, key.epoch());
    match backend.put("config", &new.to_json()) {
        Ok(()) => {
            tracing::info!(
                "repository {} upgraded to format {}",
                backend.location(),
                new.version
            );
            new
        }
        Err(e) => {
            tracing::warn!(
                "repository {} stays at format {} for now: {e}",
                backend.location(),
                old.version
            );
            old
        }
    }
}

/// Largest snapshot manifest read.
const MAX_MANIFEST: u64 = 64 << 20;

/// Largest structured object (index, snapshot, tree) we accept when decoding.
pub(crate) const MAX_OBJECT: usize = 512 * 1024 * 1024;

pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepoConfig,
    key: MasterKey,
    key_id: String,
    /// The bytes of key file `key_id` that opened (see `key_file_bytes`).
    key_file: Vec<u8>,
    catalog: Arc<Catalog>,
    /// How long `lock` waits for a conflicting lock to go (HCBACKUP_LOCK_WAIT).
    lock_wait: std::time::Duration,
    /// Raised when a lock this process holds here is lost (`check_lock`).
    lock_lost: Arc<lock::LockState>,
    /// `--no-lock` (read-only commands only): shared locks are not taken.
    no_lock: bool,
    /// The packs this process deduplicated against: the ones a manifest it
    /// writes relies on beyond its own (`confirm_durable`).
    reused: std::sync::Mutex<std::collections::HashSet<PackId>>,
}

/// An object that does not read back: its path and why.
pub type Unreadable = (ObjectId, Error);

/// A manifest this machine saw: its id and time.
type Seen = (ObjectId, String);

/// Gives the password when it is first needed (after the repository was found).
pub type PasswordFn<'a> = &'a mut dyn FnMut() -> Result<Zeroizing<String>>;

impl Repository {
    /// Open an existing repository: find it, unlock a key, open and sync the catalog.
    ///
    /// The catalog is `<id>.sqlite`, unless that one belongs to another location
    /// of the same repository (the primary, when a copy is opened with `--repo`
    /// on the clinic's server): then the copy's own, as `open_copy` uses. A
    /// catalog carries what this machine saw and removed at its location;
    /// judging a copy by the primary's would raise false alarms.
    pub fn open(
        backend: Arc<dyn Backend>,
        password: PasswordFn<'_>,
        cache_dir: &Path,
    ) -> Result<Repository> {
        Repository::open_then(backend, password, cache_dir, |_| {})
    }

    /// `open`, handing the repository to `unlocked` once its key is known and
    /// before the catalog is brought in step: a command's audit event still has
    /// a place to go when the catalog then fails (damaged, its disk full).
    pub fn open_then(
        backend: Arc<dyn Backend>,
        password: PasswordFn<'_>,
        cache_dir: &Path,
        unlocked: impl FnOnce(&Repository),
    ) -> Result<Repository> {
        let location = backend.location();
        Repository::open_at(backend, password, unlocked, |c| {
            let primary = Catalog::open(&c.catalog_path(cache_dir))?;
            match primary.meta(LOCATION)? {
                Some(l) if l != location => {
                    Catalog::open(&c.copy_catalog_path(cache_dir, &location))
                }
                Some(_) => Ok(primary),
                None => {
                    primary.set_meta(LOCATION, &location)?;
                    Ok(primary)
                }
            }
        })
    }

    /// Open a destination's copy, with its own catalog (see `copy_catalog_path`).
    pub fn open_copy(
        backend: Arc<dyn Backend>,
        password: PasswordFn<'_>,
        cache_dir: &Path,
    ) -> Result<Repository> {
        let location = backend.location();
        Repository::open_at(
            backend,
            password,
            |_| {},
            |c| Catalog::open(&c.copy_catalog_path(cache_dir, &location)),
        )
    }

    fn open_at(
        backend: Arc<dyn Backend>,
        password: PasswordFn<'_>,
        unlocked: impl FnOnce(&Repository),
        catalog: impl FnOnce(&RepoConfig) -> Result<Catalog>,
    ) -> Result<Repository> {
        let mut config = RepoConfig::load(backend.as_ref())?;
        let catalog = Arc::new(catalog(&config)?);
        // HCBACKUP_KEY_ID (a prefix of the key file's id): the operator's choice,
        // for a new machine facing a repository flooded with planted key files.
        let preferred = crate::config::tuning::get()
            .key_id
            .clone()
            .or(catalog.meta(LAST_KEY)?);
        let pw = password()?;
        let (mut key, key_id, key_file) = keys::unlock(
            backend.as_ref(),
            &config,
            pw.as_bytes(),
            preferred.as_deref(),
        )?;
        drop(pw);
        trust_on_first_use(&catalog, &key, &config, &backend.location())?;
        // Written only when changed: a catalog on a full disk still opens.
        if catalog.meta(LAST_KEY)?.as_deref() != Some(key_id.as_str()) {
            catalog.set_meta(LAST_KEY, &key_id)?;
        }
        // The newest epoch this machine has seen: a config rolled back by someone
        // with access to the storage does not move writing back to a spent key.
        let seen: u32 = catalog
            .meta(KEY_EPOCH)?
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        key.set_epoch(config.key_epoch.max(seen));
        if key.epoch() != seen {
            catalog.set_meta(KEY_EPOCH, &key.epoch().to_string())?;
        }
        if config.version < config::FORMAT_VERSION {
            config = upgrade(backend.as_ref(), config, &key);
        }
        let repo = Repository {
            backend,
            config,
            key,
            key_id,
            key_file,
            catalog,
            lock_wait: std::time::Duration::ZERO,
            no_lock: false,
            lock_lost: Arc::default(),
            reused: Default::default(),
        };
        unlocked(&repo);
        repo.sync_catalog()?;
        Ok(repo)
    }

    /// `--no-lock`: read without taking shared locks (restic's flag), for
    /// commands that write nothing to the repository.
    pub fn set_no_lock(&mut self, on: bool) {
        self.no_lock = on;
    }

    /// Wait up to `d` for conflicting locks instead of failing at once.
    pub fn set_lock_wait(&mut self, d: std::time::Duration) {
        self.lock_wait = d;
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// A shared handle on the catalog, for threads that outlive a borrow.
    pub(crate) fn catalog_arc(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    pub(crate) fn backend_arc(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    /// This repository's audit log (its own handles: it outlives the borrow).
    pub fn audit_log(&self) -> crate::audit::AuditLog {
        crate::audit::AuditLog::new(
            self.backend.clone(),
            self.catalog.clone(),
            self.key.clone(),
            &self.config.id,
        )
    }

    /// Seal and store a structured object (index, snapshot, lock) under `dir/<id>`,
    /// the id being the keyed hash of its plaintext.
    pub(crate) fn write_object(&self, kind: Kind, dir: &str, plain: &[u8]) -> Result<ObjectId> {
        self.check_lock()?;
        let id = ObjectId(self.key.id_of(plain));
        let sealed = codec::encode(&self.key, kind, &id.0, plain);
        self.backend
            .put(&format!("{dir}/{}", id.to_hex()), &sealed)?;
        Ok(id)
    }

    pub(crate) fn read_object(&self, kind: Kind, dir: &str, id: &ObjectId) -> Result<Vec<u8>> {
        let path = format!("{dir}/{}", id.to_hex());
        let sealed = self.backend.get(&path).map_err(|e| match e {
            StorageError::NotFound(_) => Error::missing(kind.name(), format!("{path} is gone")),
            // Not an object that can be read (a link, a folder, far too large):
            // as good as damaged, for this object alone.
            StorageError::Permanent(why) => Error::corrupt(format!("{} {path}", kind.name()), why),
            e => e.into(),
        })?;
        let plain = codec::decode(&self.key, kind, &id.0, &sealed, MAX_OBJECT)
            .map_err(|e| Error::corrupt(format!("{} {path}", kind.name()), e.to_string()))?;
        // Locks, holds and WAL records are named by a random id, their
        // snapshot's or their file name's, not their content.
        if !matches!(kind, Kind::Lock | Kind::Hold | Kind::Wal) && self.key.id_of(&plain) != id.0 {
            return Err(Error::corrupt(
                format!("{} {path}", kind.name()),
                "content does not match its name",
            ));
        }
        Ok(plain)
    }

    /// Read one blob, checking its authenticity and that it hashes to its id.
    pub fn read_blob(&self, kind: Kind, id: BlobId) -> Result<Vec<u8>> {
        let loc = self.locate(kind, id)?;
        self.read_blob_from(kind, id, &loc)
    }

    /// Where a blob is, or a "missing" error naming it.
    pub fn locate(&self, kind: Kind, id: BlobId) -> Result<Location> {
        self.catalog.lookup(kind, &id)?.ok_or_else(|| {
            Error::missing(
                format!("{} {}", kind.name(), id.short()),
                "no index lists it",
            )
        })
    }

    /// Read a blob starting at `first`; when that copy is damaged or gone, every
    /// other copy the catalog knows is tried before the first error is returned.
    /// A pack someone planted or damaged never hides a good copy elsewhere.
    pub fn read_blob_from(&self, kind: Kind, id: BlobId, first: &Location) -> Result<Vec<u8>> {
        let err = match self.read_blob_at(kind, id, first) {
            Ok(b) => return Ok(b),
            Err(e @ (Error::Corrupt { .. } | Error::Missing { .. })) => e,
            Err(e) => return Err(e),
        };
        for loc in self.catalog.locations(kind, &id)? {
            if loc.pack == first.pack && loc.offset == first.offset {
                continue;
            }
            if let Ok(b) = self.read_blob_at(kind, id, &loc) {
                tracing::warn!(
                    "{err}; read {} {} from pack {} instead",
                    kind.name(),
                    id.short(),
                    loc.pack.to_hex()
                );
                return Ok(b);
            }
        }
        Err(err)
    }

    /// Read a blob at a known location, with the same checks as `read_blob`.
    pub fn read_blob_at(&self, kind: Kind, id: BlobId, loc: &Location) -> Result<Vec<u8>> {
        let path = pack_path(&loc.pack);
        let sealed = self
            .backend
            .get_range(&path, loc.offset, loc.length)
            .map_err(|e| match e {
                StorageError::NotFound(_) => Error::missing(
                    format!("pack {}", loc.pack.to_hex()),
                    "the pack file is gone",
                ),
                e => Error::corrupt(format!("pack {}", loc.pack.to_hex()), e.to_string()),
            })?;
        let plain = codec::decode(&self.key, kind, &id.0, &sealed, loc.raw_length as usize)
            .map_err(|e| {
                Error::corrupt(
                    format!("pack {}", loc.pack.to_hex()),
                    format!("{} {}: {e}", kind.name(), id.short()),
                )
            })?;
        if self.key.id_of(&plain) != id.0 || plain.len() != loc.raw_length as usize {
            return Err(Error::corrupt(
                format!("pack {}", loc.pack.to_hex()),
                format!("{} {} does not hash to its id", kind.name(), id.short()),
            ));
        }
        Ok(plain)
    }

    /// A file node's chunk ids: inline, or read from its list blobs (in parallel).
    pub fn node_content<'n>(&self, node: &'n Node) -> Result<std::borrow::Cow<'n, [ChunkId]>> {
        if node.lists.is_empty() {
            return Ok(std::borrow::Cow::Borrowed(&node.content));
        }
        use rayon::prelude::*;
        let parts: Vec<Vec<ChunkId>> = node
            .lists
            .par_iter()
            .map(|l| {
                let b = self.read_blob(Kind::Tree, (*l).into())?;
                chunk_list::from_bytes(&b)
                    .map_err(|e| Error::corrupt(format!("chunk list {}", l.short()), e))
            })
            .collect::<Result<_>>()?;
        Ok(std::borrow::Cow::Owned(parts.concat()))
    }

    pub fn load_tree(&self, id: TreeId) -> Result<Tree> {
        let bytes = self.read_blob(Kind::Tree, id.into())?;
        Tree::from_bytes(&bytes).map_err(|e| Error::corrupt(format!("tree {}", id.short()), e))
    }

    /// Write the manifest: the last step of a snapshot (only while its lock holds,
    /// and only when everything it relies on is still in the repository).
    pub fn write_snapshot(&self, s: &Snapshot) -> Result<ObjectId> {
        self.confirm_lock()?;
        self.confirm_durable()?;
        let plain = s.to_bytes();
        let id = self.write_object(Kind::Snapshot, "snapshots", &plain)?;
        self.catalog
            .see_snapshots(std::iter::once((&id, s.time.as_str())))?;
        self.catalog.cache_manifest(&id, &plain)?;
        Ok(id)
    }

    /// Every snapshot that reads back, oldest first. One that does not (damaged,
    /// or planted by someone with access to the storage) is named in a warning and
    /// left out, so it cannot hide every other snapshot from a restore; `verify`
    /// reports it and `repair` heals it from a copy.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let (out, bad) = self.snapshots_checked()?;
        warn_left_out(bad);
        Ok(out)
    }

    /// `snapshots`, with the manifests read back before taken from the
    /// catalog (their authenticated plaintext): the listing is the storage's,
    /// the bytes are not read again. For a look at every snapshot that is not
    /// a check of the storage (a nightly run's shrink warnings).
    pub fn snapshots_cached(&self) -> Result<Vec<SnapshotEntry>> {
        let (out, bad, hidden) = self.snapshots_listed(true)?;
        warn_left_out(bad);
        warn_left_out(
            hidden
                .into_iter()
                .map(|(id, time)| hidden_error(&id, &time))
                .collect(),
        );
        Ok(out)
    }

    /// Every snapshot, oldest first; an error if any does not read back. For
    /// what must know every snapshot before it deletes anything (prune).
    pub fn snapshots_strict(&self) -> Result<Vec<SnapshotEntry>> {
        let (out, mut bad) = self.snapshots_checked()?;
        match bad.pop() {
            Some((_, e)) => Err(e),
            None => Ok(out),
        }
    }

    /// Every snapshot that reads back, oldest first; and the manifests that do not
    /// (their id and why), with those this machine saw that are gone (see
    /// `catalog::seen`).
    pub fn snapshots_checked(&self) -> Result<(Vec<SnapshotEntry>, Vec<Unreadable>)> {
        let (out, mut bad, hidden) = self.snapshots_listed(false)?;
        bad.extend(
            hidden
                .into_iter()
                .map(|(id, time)| hidden_error(&id, &time)),
        );
        Ok((out, bad))
    }

    /// The manifests in the repository that do not read back (damaged,
    /// truncated, planted): what `forget ID` may remove by name.
    pub fn unreadable_snapshots(&self) -> Result<Vec<ObjectId>> {
        let (_, bad, _) = self.snapshots_listed(false)?;
        Ok(bad.iter().map(|(id, _)| *id).collect())
    }

    /// Every snapshot that reads back, oldest first; the manifests that do not;
    /// and those this machine saw that are gone: (id, time), oldest first.
    /// With `cached`, manifests read back before come from the catalog.
    fn snapshots_listed(
        &self,
        cached: bool,
    ) -> Result<(Vec<SnapshotEntry>, Vec<Unreadable>, Vec<Seen>)> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let mut listed = std::collections::HashSet::new();
        let forgotten = self.catalog.forgotten_snapshots()?;
        // What this machine had seen, read before the listing: a snapshot of
        // this machine saved meanwhile (after the listing) is not taken for
        // one hidden.
        let seen = self.catalog.seen_snapshots()?;
        for (name, size) in self.backend.list("snapshots")? {
            let Some(id) = ObjectId::from_hex(&name) else {
                continue;
            };
            listed.insert(id);
            // Forgotten here, and back: someone with access to the storage put an
            // old manifest back, maybe after a prune took its data. Believing it
            // would make it `latest`, or keep it in place of good snapshots.
            if let Some(when) = forgotten.get(&format!("snapshots/{name}")) {
                bad.push((
                    id,
                    Error::corrupt(
                        format!("snapshot {}", id.short()),
                        format!(
                            "forget removed it here on {when} and it is back (put back by someone with access to the storage?): ignored; `hcbackup forget {}` removes it again",
                            id.short()
                        ),
                    ),
                ));
                continue;
            }
            // A manifest is JSON of a few KiB (a few MiB with thousands of tables).
            if size > MAX_MANIFEST {
                bad.push((
                    id,
                    Error::corrupt(
                        format!("snapshot {name}"),
                        format!("{size} bytes, larger than any manifest"),
                    ),
                ));
                continue;
            }
            let known = match cached {
                true => self.catalog.cached_manifest(&id)?,
                false => None,
            };
            let read = match known {
                Some(plain) => Snapshot::from_bytes(&plain)
                    .map_err(|e| Error::corrupt(format!("snapshot {name}"), e)),
                None => self
                    .read_object(Kind::Snapshot, "snapshots", &id)
                    .and_then(|bytes| {
                        let s = Snapshot::from_bytes(&bytes)
                            .map_err(|e| Error::corrupt(format!("snapshot {name}"), e))?;
                        self.catalog.cache_manifest(&id, &bytes)?;
                        Ok(s)
                    }),
            };
            match read {
                Ok(snapshot) => out.push(SnapshotEntry { id, snapshot }),
                Err(e @ (Error::Corrupt { .. } | Error::Missing { .. })) => bad.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| {
            let ta = a.snapshot.parsed_time();
            let tb = b.snapshot.parsed_time();
            ta.cmp(&tb).then(a.id.cmp(&b.id))
        });
        // Remembered once: only manifests this machine had not seen yet.
        self.catalog.see_snapshots(
            out.iter()
                .filter(|e| !seen.contains_key(&e.id))
                .map(|e| (&e.id, e.snapshot.time.as_str())),
        )?;
        let hidden = self.hidden_snapshots(seen, &listed)?;
        Ok((out, bad, hidden))
    }

    /// Of the manifests this machine saw (`seen`), those not among `listed` and
    /// not forgotten on purpose: (id, time), oldest first.
    fn hidden_snapshots(
        &self,
        seen: std::collections::HashMap<ObjectId, String>,
        listed: &std::collections::HashSet<ObjectId>,
    ) -> Result<Vec<Seen>> {
        let mut gone: Vec<Seen> = seen
            .into_iter()
            .filter(|(id, _)| !listed.contains(id))
            .collect();
        if gone.is_empty() {
            return Ok(gone);
        }
        // Forgotten from another machine: its forget event says so (once this
        // catalog has taken in the events appended elsewhere).
        if let Err(e) = self.audit_log().catch_up() {
            tracing::warn!("audit log: could not read the repository's events ({e})");
        }
        let mut forgotten = self.catalog.forgotten_in_audit()?;
        if gone.iter().any(|(id, _)| !forgotten.contains(&id.to_hex())) {
            // Events off the chain (a fork) still say what was forgotten.
            match self.audit_log().forgotten_off_chain() {
                Ok(more) => forgotten.extend(more),
                Err(e) => tracing::warn!("audit log: could not read the repository's events ({e})"),
            }
        }
        for (id, _) in gone
            .iter()
            .filter(|(id, _)| forgotten.contains(&id.to_hex()))
        {
            self.catalog.unsee_snapshot(id)?;
        }
        gone.retain(|(id, _)| !forgotten.contains(&id.to_hex()));
        gone.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(gone)
    }

    /// A snapshot by unique id prefix, or `latest`: the newest one that is not a
    /// safety dump (`model::snapshot::SAFETY_DUMP_TAG`).
    pub fn find_snapshot(&self, spec: &str) -> Result<SnapshotEntry> {
        self.find_snapshot_with(spec, |_| true)
    }

    /// `find_snapshot`, where `latest` is the newest snapshot (not a safety dump)
    /// that `wanted` accepts: `restore latest --db` takes the newest that holds a dump.
    pub fn find_snapshot_with(
        &self,
        spec: &str,
        wanted: impl Fn(&Snapshot) -> bool,
    ) -> Result<SnapshotEntry> {
        let (all, mut bad, hidden) = self.snapshots_listed(false)?;
        let newest_hidden = hidden.last().cloned();
        bad.extend(hidden.iter().map(|(id, time)| hidden_error(id, time)));
        // Asked for by a prefix of one that does not read back: say why, not
        // "no snapshot matches".
        let prefix = spec.to_ascii_lowercase();
        let readable = all.iter().any(|e| e.id.to_hex().starts_with(&prefix));
        if spec != "latest" && !spec.is_empty() && !readable {
            if let Some(i) = bad
                .iter()
                .position(|(id, _)| id.to_hex().starts_with(&prefix))
            {
                let (id, e) = bad.swap_remove(i);
                warn_left_out(bad);
                return Err(Error::Failed(format!(
                    "snapshots/{} does not read back ({e}): `hcbackup repair` brings it back from a copy; `hcbackup snapshots` lists the others",
                    id.to_hex()
                )));
            }
        }
        warn_left_out(bad);
        if spec == "latest" {
            // Not an older snapshot in place of a newer one someone hid.
            let newest = all.last().map(|e| e.snapshot.parsed_time());
            if let Some((id, time)) = newest_hidden {
                let later = crate::util::parse_rfc3339(&time);
                if newest.is_none_or(|n| later.is_some_and(|l| Some(l) > n)) {
                    return Err(Error::missing(
                        format!("the newest snapshot this machine saw ({} of {time})", id.short()),
                        "it is gone from the repository, and no forget here removed it: `hcbackup repair` brings it back from a copy; or name the snapshot to restore (`hcbackup snapshots`)",
                    ));
                }
            }
            if all.is_empty() {
                return Err(Error::Failed("the repository has no snapshots yet".into()));
            }
            let now = crate::util::now();
            for e in all.iter().rev().take_while(|e| e.snapshot.in_future(now)) {
                tracing::warn!(
                    "snapshot {} is dated {}, in the future (a wrong clock or --time): not taken as latest; name it to use it",
                    e.id.short(),
                    e.snapshot.time
                );
            }
            return all
                .into_iter()
                .rev()
                .find(|e| {
                    !e.snapshot.is_safety_dump() && !e.snapshot.in_future(now) && wanted(&e.snapshot)
                })
                .ok_or_else(|| {
                    Error::Failed(
                        "no snapshot is `latest` for this (safety dumps taken before a restore never are): name one from `hcbackup snapshots`".into(),
                    )
                });
        }
        if let Some(id) = crate::id::ObjectId::from_hex(spec) {
            // Asked for by its whole id: one that does not read back says why.
            if !all.iter().any(|e| e.id == id) {
                let bytes = self.read_object(Kind::Snapshot, "snapshots", &id)?;
                Snapshot::from_bytes(&bytes)
                    .map_err(|e| Error::corrupt(format!("snapshot {spec}"), e))?;
            }
        }
        let hexes: Vec<String> = all.iter().map(|e| e.id.to_hex()).collect();
        let found = crate::id::resolve_prefix(spec, hexes.iter().map(|s| s.as_str()))
            .map_err(Error::Usage)?
            .to_string();
        Ok(all
            .into_iter()
            .find(|e| e.id.to_hex() == found)
            .expect("resolved id exists"))
    }
}

/// Name the manifests a listing left out, one warning each.
pub(crate) fn warn_left_out(bad: Vec<Unreadable>) {
    for (id, e) in bad {
        tracing::warn!(
            "snapshot {} does not read back and is left out: {e}",
            id.to_hex()
        );
    }
}

/// The error for a manifest this machine saw that is gone (see `catalog::seen`).
fn hidden_error(id: &ObjectId, time: &str) -> Unreadable {
    (
        *id,
        Error::missing(
            format!("snapshot {} of {time}", id.short()),
            "this machine saw it and no forget here removed it: it was hidden or deleted by someone with access to the storage; `hcbackup repair` brings it back from a copy (only if a copy shows it was forgotten by an older hcbackup elsewhere, `hcbackup catalog rebuild` makes this machine forget it too)",
        ),
    )
}
