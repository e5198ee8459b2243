//! `mirror`: copy what a destination lacks, in the order that keeps it a valid
//! repository at every moment: config and keys, then packs, then index objects,
//! then snapshots (a snapshot reaches a copy only after everything it needs).
//!
//! What the destination holds is read from the catalog's record of it (what this
//! machine copied there or saw in its listing); with no record, with `--full-check`,
//! or when the destination has no `config` (new or emptied), it is read from the
//! destination's own listing and the record replaced. Either way an interrupted
//! mirror simply resumes.
//!
//! Nothing leaves unchecked: the local storage is as hostile as any (someone who
//! can write the folder has no password), and a mirror must not carry damage to
//! every copy over the good objects there. A pack must hash to its name; index
//! objects, manifests, audit events and holds must open under the key and hash
//! to their names; the config sent is the one this run opened and checked (and
//! never an older one over a newer); key files are never overwritten at a copy,
//! and the one this run opened goes as it opened. What fails its check is
//! reported and left out, and the copy keeps its own. Every upload is checked by
//! the destination (S3: SHA-256 checksum) and its size read back.
//! Legal holds are made equal to the source's (placed and lifted), and key files
//! removed here are removed there (an old password stops opening every copy).
//! Locks are not mirrored.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::crypto::Kind;
use crate::error::Result;
use crate::id::ObjectId;
use crate::repo::{RepoConfig, Repository};
use crate::storage::Backend;

#[derive(Debug, Default, serde::Serialize)]
pub struct MirrorReport {
    pub destination: String,
    pub copied: u64,
    pub bytes: u64,
    /// Objects the destination already had.
    pub present: u64,
    /// Objects that could not be copied, with the reason.
    pub failures: Vec<String>,
    /// Whether the destination was listed (rather than trusted to the catalog's record).
    pub listed: bool,
    /// Key files removed at the destination because they are gone here.
    pub keys_removed: u64,
}

/// How `run_with` learns what the destination holds.
#[derive(Clone, Copy, Default)]
pub struct Options<'a> {
    /// The record of what destinations hold; `None` lists every time.
    pub catalog: Option<&'a crate::catalog::Catalog>,
    /// List the destination even when the catalog has a record of it.
    pub full_check: bool,
}

/// Why an index object naming packs a prune here removed is not mirrored.
const REPLAY: &str = "it names packs a prune here removed (put back: a replay?)";

/// Objects in flight at once (each up to one pack, about 16 MiB, in memory).
const TRANSFERS: usize = 8;

/// The folders mirrored, in order; `config` first of all.
const ORDER: &[&str] = &["keys", "packs", "index", "wal", "snapshots", "audit"];

/// Mirror, reading the destination's listing.
/// Mirror `repo` to each destination of `chosen` (name, backend or why it
/// cannot be built), under shared repository and maintenance locks here and at
/// each destination (a prune or forget on either side waits); one outcome per destination, a failure on one never
/// stopping the others.
pub fn to_each(
    repo: &Repository,
    chosen: Vec<(String, Result<std::sync::Arc<dyn Backend>>)>,
    full_check: bool,
) -> Result<Vec<super::copies::Outcome<MirrorReport>>> {
    // No prune here meanwhile: a pack it deletes may be one this mirror sends.
    let _maintenance = repo.lock_maintenance_shared("mirror")?;
    let _lock = repo.lock(false, "mirror")?;
    crate::util::failpoint("mirror-locked");
    // The record of what each destination holds lives in this repository's catalog.
    let opts = Options {
        catalog: Some(repo.catalog()),
        full_check,
    };
    Ok(chosen
        .into_iter()
        .map(|(name, dest)| {
            let result = dest.and_then(|dest| {
                // No prune or forget there meanwhile: a pack one condemns there
                // may be one this mirror finds present and does not send.
                let _dest_maintenance = repo.lock_maintenance_at(dest.clone(), "mirror")?;
                let _dest_lock = repo.lock_at(dest.clone(), false, "mirror")?;
                run_with(repo, dest.as_ref(), &name, opts)
            });
            super::copies::Outcome { copy: name, result }
        })
        .collect())
}

pub fn run(repo: &Repository, dest: &dyn Backend, name: &str) -> Result<MirrorReport> {
    run_with(repo, dest, name, Options::default())
}

/// Make the copy's config this run's (checked when the repository opened): sent
/// where there is none or an older one of the same repository; a newer one there
/// (a later key epoch) stays; another repository's is never touched.
fn sync_config(repo: &Repository, dest: &dyn Backend, r: &mut MirrorReport) -> Result<bool> {
    let ours = repo.config();
    let theirs = match dest.get("config") {
        Ok(b) => Some(serde_json::from_slice::<RepoConfig>(&b).ok()),
        Err(crate::storage::StorageError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let send = match &theirs {
        None => true,
        Some(Some(t)) if t == ours => {
            r.present += 1;
            false
        }
        Some(Some(t)) if t.id == ours.id => {
            let newer = (ours.version, ours.key_epoch) >= (t.version, t.key_epoch);
            if !newer {
                tracing::warn!(
                    "{} has a newer config (format {}, key epoch {}) than this one (format {}, key epoch {}): left as it is there",
                    dest.location(), t.version, t.key_epoch, ours.version, ours.key_epoch
                );
            }
            newer
        }
        Some(_) => {
            return Err(crate::Error::Failed(format!(
                "{} holds another repository (its config differs): choose another bucket or prefix",
                dest.location()
            )))
        }
    };
    if send {
        let bytes = ours.to_json();
        dest.put("config", &bytes)?;
        r.copied += 1;
        r.bytes += bytes.len() as u64;
    }
    Ok(theirs.is_none())
}

/// What this machine knows that objects are checked against: the BLAKE3 of each
/// key file the audit log records as written (`init`, `key add`, `key passwd`),
/// the wrapped keys of every key file here (a copy of one under another name was
/// planted), and the packs this machine's prunes removed (an index object naming
/// one was put back: a replay).
pub(crate) struct Records {
    recorded: HashMap<String, String>,
    wrapped: HashMap<String, Vec<u8>>,
    removed_packs: std::collections::HashSet<String>,
}

impl Records {
    fn load(repo: &Repository) -> Result<Records> {
        // Key files added from another machine are in the log once it is caught up.
        if let Err(e) = repo.audit_log().catch_up() {
            tracing::warn!("audit log: could not read the repository's events ({e})");
        }
        let mut wrapped = HashMap::new();
        for (name, size) in repo.backend().list("keys")? {
            if size > crate::repo::MAX_KEY_FILE {
                continue;
            }
            if let Some(k) = repo
                .backend()
                .get(&format!("keys/{name}"))
                .ok()
                .and_then(|b| crate::crypto::KeyFile::from_json(&b))
            {
                wrapped.insert(name, k.data);
            }
        }
        Ok(Records {
            recorded: repo.catalog().key_files_in_audit()?,
            wrapped,
            removed_packs: repo.catalog().removed_packs()?,
        })
    }

    /// No records (for objects that are no key files).
    fn empty() -> Records {
        Records {
            recorded: HashMap::new(),
            wrapped: HashMap::new(),
            removed_packs: Default::default(),
        }
    }

    /// Why key file `name` (other than the one this run opened) must not leave.
    fn refuse(&self, name: &str, data: &[u8]) -> Option<&'static str> {
        if let Some(hash) = self.recorded.get(name) {
            return (blake3::hash(data).to_hex().as_str() != hash).then_some(
                "it differs from the key file the audit log recorded when it was written",
            );
        }
        // Not in the log (written by an older release, or planted): it must be a
        // sane key file, and not a copy of another under a new name.
        let Some(k) = (data.len() as u64 <= crate::repo::MAX_KEY_FILE)
            .then(|| crate::crypto::KeyFile::from_json(data))
            .flatten()
            .filter(|k| k.kdf_refused().is_none())
        else {
            return Some("not a key file");
        };
        self.wrapped
            .iter()
            .any(|(other, w)| other != name && *w == k.data)
            .then_some("a copy of another key file under a new name")
    }
}

/// Whether an object read here is one this repository wrote (see the module
/// docs); why not, as a failure line.
fn authentic(
    repo: &Repository,
    keys: &Records,
    dir: &str,
    name: &str,
    data: &[u8],
) -> std::result::Result<(), String> {
    let path = format!("{dir}/{name}");
    let refused = |why: &str| {
        Err(format!(
            "{path}: {why} (damaged, or replaced by someone with access to the storage); not mirrored, the copy keeps its own — run `hcbackup verify`"
        ))
    };
    let base = name.rsplit('/').next().unwrap_or(name);
    match dir {
        "packs" => {
            if blake3::hash(data).to_hex().as_str() != base {
                return Err(format!(
                    "{path}: the local copy is damaged (its bytes do not match its name); not mirrored — run `hcbackup verify --read-data`"
                ));
            }
            Ok(())
        }
        "keys" if name == repo.key_file() => {
            if data != repo.key_file_bytes() {
                return refused("the key file this run opened has changed since");
            }
            Ok(())
        }
        "keys" => match keys.refuse(name, data) {
            Some(why) => refused(why),
            None => Ok(()),
        },
        _ => {
            let kind = match dir {
                "index" => Kind::Index,
                "snapshots" => Kind::Snapshot,
                "audit" => Kind::Audit,
                "holds" => Kind::Hold,
                "wal" => Kind::Wal,
                _ => return refused("not an object this program mirrors"),
            };
            let Some(id) = ObjectId::from_hex(base) else {
                return refused("not an object name");
            };
            let Ok(plain) =
                crate::codec::decode(repo.key(), kind, &id.0, data, crate::repo::MAX_OBJECT)
            else {
                return refused("it does not open under the repository's key");
            };
            // A hold is named by its snapshot, a WAL record by its file's
            // name; the rest by their content.
            let named = if kind == Kind::Hold {
                serde_json::from_slice::<crate::repo::Hold>(&plain)
                    .is_ok_and(|h| h.snapshot == base)
            } else if kind == Kind::Wal {
                crate::model::wal::WalRecord::from_bytes(&plain)
                    .is_ok_and(|w| repo.wal_id(&w.name) == id)
            } else {
                repo.key().id_of(&plain) == id.0
            };
            if !named {
                return refused("its content does not match its name");
            }
            if kind == Kind::Index {
                let replayed = crate::model::index::decode(&plain).is_ok_and(|ix| {
                    ix.packs.iter().any(|p| {
                        keys.removed_packs
                            .contains(&crate::storage::pack_path(&p.id))
                    })
                });
                if replayed {
                    return refused(REPLAY);
                }
            }
            Ok(())
        }
    }
}

pub fn run_with(
    repo: &Repository,
    dest: &dyn Backend,
    name: &str,
    opts: Options<'_>,
) -> Result<MirrorReport> {
    let src = repo.backend();
    let location = dest.location();
    let mut r = MirrorReport {
        destination: name.to_string(),
        ..Default::default()
    };
    // The config first: without it the copy is no repository at all. A different
    // config there means another repository: never mix objects into it.
    let keys = Records::load(repo)?;
    if sync_config(repo, dest, &mut r)? {
        // A new or emptied destination: whatever was recorded is gone.
        if let Some(c) = opts.catalog {
            c.forget_holdings(&location)?;
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(TRANSFERS)
        .build()
        .map_err(|e| crate::Error::Failed(format!("starting the mirror's transfers: {e}")))?;
    let trust_record = match opts.catalog {
        Some(c) if !opts.full_check => c.holdings_known(&location)?,
        _ => false,
    };
    r.listed = !trust_record;
    for dir in ORDER {
        let have: HashMap<String, u64> = match opts.catalog {
            Some(c) if trust_record => c.holdings(&location, dir)?,
            _ => {
                let listing = dest.list(dir)?;
                if let Some(c) = opts.catalog {
                    c.set_holdings(&location, dir, &listing)?;
                }
                listing.into_iter().collect()
            }
        };
        let want: Vec<(String, u64)> = src
            .list(dir)?
            .into_iter()
            .filter(|(n, size)| {
                // Key files cannot be checked without their passwords: one a
                // copy has is never replaced (nor is a WAL record). Other objects of a size the copy
                // does not have are sent again (once they check good).
                let there = match have.get(n) {
                    Some(_) if *dir == "keys" => true,
                    // A WAL record is never replaced: once a copy serves a
                    // file, it keeps serving those bytes. Another record
                    // under the name is said, not overwritten.
                    Some(s) if *dir == "wal" => {
                        if s != size {
                            r.failures.push(format!(
                                "wal/{n}: {name} holds another record of this name ({s} bytes, {size} here): not replaced; run `hcbackup verify --destination {name}`"
                            ));
                        }
                        true
                    }
                    Some(s) => s == size,
                    None => false,
                };
                if there {
                    r.present += 1;
                }
                !there
            })
            .collect();
        // Transfers wait on the network, not the CPU: more of them than cores.
        let results: Vec<std::result::Result<u64, String>> = pool.install(|| {
            want.par_iter()
                .map(|(n, size)| copy(repo, &keys, dest, dir, n, *size))
                .collect()
        });
        let failed_before = r.failures.len();
        let mut copied = Vec::new();
        for ((n, _), res) in want.iter().zip(results) {
            match res {
                Ok(b) => {
                    r.copied += 1;
                    r.bytes += b;
                    copied.push((format!("{dir}/{n}"), b));
                }
                Err(e) => r.failures.push(e),
            }
        }
        if let Some(c) = opts.catalog {
            c.add_holdings(&location, &copied)?;
        }
        // Never send index objects or snapshots that name packs the copy lacks
        // (an index object refused as a replay names only packs that are gone).
        let blocking = r.failures[failed_before..]
            .iter()
            .any(|f| !f.contains(REPLAY));
        if blocking && matches!(*dir, "packs" | "index") {
            return Ok(r);
        }
    }
    // What the audit log says, read once (not once per hold or key file).
    let holds = opts.catalog.and_then(|c| c.holds_in_audit().ok());
    let lifted = |name: &str| {
        holds
            .as_ref()
            .is_some_and(|h| h.get(name).is_some_and(|(held, _)| !held))
    };
    if let Err(e) = sync_holds(repo, dest, &mut r, &lifted) {
        r.failures.push(format!("holds/: {e}"));
    }
    let removed_keys = opts.catalog.and_then(|c| c.keys_removed_in_audit().ok());
    let removed_here = |name: &str| {
        removed_keys
            .as_ref()
            .is_some_and(|k| k.contains(&name[..8.min(name.len())]))
    };
    match remove_old_keys(src, dest, &mut r, &removed_here) {
        Ok(paths) => {
            if let Some(c) = opts.catalog {
                c.remove_holdings(&location, &paths)?;
            }
        }
        Err(e) => r.failures.push(format!("keys/: {e}")),
    }
    Ok(r)
}

/// Key files removed here (`key remove`, `key passwd`) are removed at the
/// destination too, so an old or compromised password stops opening every copy —
/// but only those the audit log records as removed (`removed_here`): a key file
/// someone deleted from the storage behind the log's back is not deleted at every
/// copy (which could leave none). Keys were copied first, so the destination
/// keeps every key that opens this repository; a source with no keys removes
/// nothing. Returns the paths removed.
fn remove_old_keys(
    src: &dyn Backend,
    dest: &dyn Backend,
    r: &mut MirrorReport,
    removed_here: &dyn Fn(&str) -> bool,
) -> crate::storage::StorageResult<Vec<String>> {
    let ours: std::collections::HashSet<String> =
        src.list("keys")?.into_iter().map(|(n, _)| n).collect();
    let mut removed = Vec::new();
    if ours.is_empty() {
        return Ok(removed);
    }
    for (name, _) in dest.list("keys")? {
        if ours.contains(&name) {
            continue;
        }
        if !removed_here(&name) {
            tracing::warn!(
                "key file keys/{name} is at {} but not here, and the audit log has no `key remove` for it: left in place there",
                dest.location()
            );
            continue;
        }
        let path = format!("keys/{name}");
        match dest.delete(&path) {
            Ok(()) | Err(crate::storage::StorageError::NotFound(_)) => removed.push(path),
            Err(crate::storage::StorageError::Retained(why)) => tracing::warn!(
                "{}: the removed key file {why}; it still opens that copy until then",
                dest.location()
            ),
            Err(e) => return Err(e),
        }
    }
    r.keys_removed = removed.len() as u64;
    Ok(removed)
}

/// Make the destination's legal holds those of the source: placed and lifted alike
/// (a few small objects, always listed).
/// Make the destination's holds the source's: copy every hold; lift one there
/// only when the audit log records that `hold remove` lifted it here (`lifted`).
/// A hold object deleted behind the log's back (anyone who can write the storage
/// can delete a file) is not copied as a deletion to every other copy.
fn sync_holds(
    repo: &Repository,
    dest: &dyn Backend,
    r: &mut MirrorReport,
    lifted: &dyn Fn(&str) -> bool,
) -> crate::storage::StorageResult<()> {
    let src = repo.backend();
    let theirs: HashMap<String, u64> = dest.list("holds")?.into_iter().collect();
    // A hold the audit log says was lifted, put back here (a replay): not
    // spread, and lifted at the copy too.
    let ours: Vec<(String, u64)> = src
        .list("holds")?
        .into_iter()
        .filter(|(name, _)| {
            let replayed = lifted(name);
            if replayed {
                tracing::warn!(
                    "holds/{name} is here, but the audit log records that `hold remove` lifted it: a replayed hold, not mirrored"
                );
            }
            !replayed
        })
        .collect();
    for (name, _) in &ours {
        let path = format!("holds/{name}");
        let data = src.get(&path)?;
        if theirs.contains_key(name) && dest.get(&path)? == data {
            r.present += 1;
            continue;
        }
        if let Err(e) = authentic(repo, &Records::empty(), "holds", name, &data) {
            r.failures.push(e);
            continue;
        }
        dest.put(&path, &data)?;
        r.copied += 1;
        r.bytes += data.len() as u64;
    }
    for name in theirs.keys() {
        if !ours.iter().any(|(n, _)| n == name) {
            if !lifted(name) {
                tracing::warn!(
                    "the legal hold on snapshot {name} is at {} but not here, and the audit log has no `hold remove` for it: left in place there",
                    dest.location()
                );
                continue;
            }
            match dest.delete(&format!("holds/{name}")) {
                Ok(()) | Err(crate::storage::StorageError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn copy(
    repo: &Repository,
    keys: &Records,
    dest: &dyn Backend,
    dir: &str,
    name: &str,
    size: u64,
) -> std::result::Result<u64, String> {
    let path = format!("{dir}/{name}");
    let data = repo
        .backend()
        .get(&path)
        .map_err(|e| format!("{path}: reading it here: {e}"))?;
    authentic(repo, keys, dir, name, &data)?;
    dest.put(&path, &data).map_err(|e| format!("{path}: {e}"))?;
    crate::util::failpoint("mirror-copy");
    match dest.stat(&path) {
        Ok(n) if n == size && n == data.len() as u64 => Ok(n),
        Ok(n) => Err(format!("{path}: the copy has {n} bytes, {size} were sent")),
        Err(e) => Err(format!("{path}: checking the copy: {e}")),
    }
}
