//! `mirror`: copy what a destination lacks, in the order that keeps it a valid
//! repository at every moment: config and keys, then packs, then index objects,
//! then snapshots (a snapshot reaches a copy only after everything it needs).
//!
//! What the destination holds is read from the catalog's record of it (what this
//! machine copied there or saw in its listing); with no record, with `--full-check`,
//! or when the destination has no `config` (new or emptied), it is read from the
//! destination's own listing and the record replaced. Either way an interrupted
//! mirror simply resumes. A pack is checked against its name (the BLAKE3 of its
//! bytes) before it leaves, so a damaged local pack is never copied; every upload
//! is checked by the destination (S3: SHA-256 checksum) and its size read back.
//! Legal holds are made equal to the source's (placed and lifted), and key files
//! removed here are removed there (an old password stops opening every copy).
//! Locks are not mirrored.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::error::Result;
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

/// Objects in flight at once (each up to one pack, about 16 MiB, in memory).
const TRANSFERS: usize = 8;

/// The folders mirrored, in order; `config` first of all.
const ORDER: &[&str] = &["keys", "packs", "index", "snapshots", "audit"];

/// Whether two configs name the same repository id (a copy that is behind).
fn same_repository(a: &[u8], b: &[u8]) -> bool {
    let id = |c: &[u8]| {
        serde_json::from_slice::<crate::repo::RepoConfig>(c)
            .ok()
            .map(|c| c.id)
    };
    matches!((id(a), id(b)), (Some(x), Some(y)) if x == y)
}

/// Mirror, reading the destination's listing.
pub fn run(src: &dyn Backend, dest: &dyn Backend, name: &str) -> Result<MirrorReport> {
    run_with(src, dest, name, Options::default())
}

pub fn run_with(
    src: &dyn Backend,
    dest: &dyn Backend,
    name: &str,
    opts: Options<'_>,
) -> Result<MirrorReport> {
    let location = dest.location();
    let mut r = MirrorReport {
        destination: name.to_string(),
        ..Default::default()
    };
    // The config first: without it the copy is no repository at all. A different
    // config there means another repository: never mix objects into it.
    let config = src.get("config")?;
    match dest.get("config") {
        Ok(theirs) if theirs == config => r.present += 1,
        Ok(theirs) if same_repository(&theirs, &config) => {
            // The same repository, upgraded to a newer format or rotated to a
            // new key epoch here: the copy follows.
            dest.put("config", &config)?;
            r.copied += 1;
            r.bytes += config.len() as u64;
        }
        Ok(_) => {
            return Err(crate::Error::Failed(format!(
                "{} holds another repository (its config differs): choose another bucket or prefix",
                dest.location()
            )))
        }
        Err(crate::storage::StorageError::NotFound(_)) => {
            // A new or emptied destination: whatever was recorded is gone.
            if let Some(c) = opts.catalog {
                c.forget_holdings(&location)?;
            }
            dest.put("config", &config)?;
            r.copied += 1;
            r.bytes += config.len() as u64;
        }
        Err(e) => return Err(e.into()),
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
                let there = have.get(n) == Some(size);
                if there {
                    r.present += 1;
                }
                !there
            })
            .collect();
        // Transfers wait on the network, not the CPU: more of them than cores.
        let results: Vec<std::result::Result<u64, String>> = pool.install(|| {
            want.par_iter()
                .map(|(n, size)| copy(src, dest, dir, n, *size))
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
        // Never send index objects or snapshots that name packs the copy lacks.
        if r.failures.len() > failed_before {
            return Ok(r);
        }
    }
    let lifted = |name: &str| {
        opts.catalog
            .and_then(|c| c.holds_in_audit().ok())
            .is_some_and(|h| h.get(name).is_some_and(|(held, _)| !held))
    };
    if let Err(e) = sync_holds(src, dest, &mut r, &lifted) {
        r.failures.push(format!("holds/: {e}"));
    }
    let removed_here = |name: &str| {
        opts.catalog
            .and_then(|c| c.keys_removed_in_audit().ok())
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
    src: &dyn Backend,
    dest: &dyn Backend,
    r: &mut MirrorReport,
    lifted: &dyn Fn(&str) -> bool,
) -> crate::storage::StorageResult<()> {
    let theirs: HashMap<String, u64> = dest.list("holds")?.into_iter().collect();
    let ours = src.list("holds")?;
    for (name, _) in &ours {
        let path = format!("holds/{name}");
        let data = src.get(&path)?;
        if theirs.contains_key(name) && dest.get(&path)? == data {
            r.present += 1;
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
    src: &dyn Backend,
    dest: &dyn Backend,
    dir: &str,
    name: &str,
    size: u64,
) -> std::result::Result<u64, String> {
    let path = format!("{dir}/{name}");
    let data = src
        .get(&path)
        .map_err(|e| format!("{path}: reading it here: {e}"))?;
    if dir == "packs" {
        let id = name.rsplit('/').next().unwrap_or(name);
        if blake3::hash(&data).to_hex().as_str() != id {
            return Err(format!(
                "{path}: the local copy is damaged (its bytes do not match its name); not mirrored — run `hcbackup verify --read-data`"
            ));
        }
    }
    dest.put(&path, &data).map_err(|e| format!("{path}: {e}"))?;
    match dest.stat(&path) {
        Ok(n) if n == size && n == data.len() as u64 => Ok(n),
        Ok(n) => Err(format!("{path}: the copy has {n} bytes, {size} were sent")),
        Err(e) => Err(format!("{path}: checking the copy: {e}")),
    }
}
