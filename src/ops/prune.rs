//! `prune`: remove the data no snapshot needs any more, from one copy.
//!
//! Under the copy's exclusive lock (a snapshot, mirror or verify running there holds
//! a shared one, so nothing it writes or reads can be deleted under it):
//! 1. **Mark**: walk every snapshot's trees (files and database dumps); every tree,
//!    chunk list and chunk reached is used. Any tree that cannot be read stops
//!    prune before it deletes anything.
//! 2. **Plan** from the index objects (and the headers of packs no index lists,
//!    left by interrupted runs): a pack none of whose blobs is used is deleted; a
//!    pack whose unused share is above `max_unused` is repacked; a blob stored
//!    twice is used in one pack only. A pack that holds used data but is missing
//!    stops prune (run `repair`).
//! 3. **Repack**: download each pack to repack whole, check it against its name,
//!    check every used blob (authenticated, hashes to its id) and copy its sealed
//!    bytes into new packs, unchanged.
//! 4. Write index objects for the kept packs of every index object that names a
//!    pack going away, and for the new packs; then delete those old index objects;
//!    then the packs.
//!
//! A crash between steps leaves at worst blobs listed twice or packs no index
//! lists; both are harmless, and the next prune removes them. On a cloud copy only
//! the index objects and the packs being repacked are downloaded.

use std::collections::{HashMap, HashSet};

use crate::codec;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId, TreeId};
use crate::model::index::{self, IndexedPack};
use crate::model::tree::NodeKind;
use crate::pack::{BlobKey, PackBuilder};
use crate::repo::{Repository, PACK_TARGET};
use crate::storage::{pack_path, StorageError};

#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    pub dry_run: bool,
    /// Repack a pack when more than this share of its bytes is unused (0.0–1.0).
    pub max_unused: f64,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            max_unused: 0.10,
        }
    }
}

/// One object removed (or, in a dry run, to be removed), and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Removed {
    pub object: String,
    pub reason: String,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub location: String,
    pub dry_run: bool,
    pub snapshots: u64,
    pub blobs_used: u64,
    pub packs_before: u64,
    pub bytes_before: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    pub bytes_deleted: u64,
    pub bytes_written: u64,
    /// Bytes of packs downloaded to repack them.
    pub bytes_downloaded: u64,
    /// Unused bytes left in packs below the repack threshold.
    pub bytes_unused_kept: u64,
    pub indexes_written: u64,
    pub indexes_deleted: u64,
    pub removed: Vec<Removed>,
    /// Objects prune would delete but that are under a retention lock (S3 Object
    /// Lock): they stay, and a later prune removes them once the lock expires.
    pub retained: Vec<String>,
    /// Objects still in use whose retention lock was extended.
    pub locks_extended: u64,
}

/// What happens to a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    Repack,
    Delete,
    /// Listed by an index but gone, holding nothing a snapshot needs.
    Forget,
}

pub fn run(repo: &Repository, opts: PruneOptions) -> Result<PruneReport> {
    let _lock = repo.lock(!opts.dry_run, "prune")?;
    crate::util::failpoint("prune-locked");
    // What killed runs left half-written goes first: it may be what fills the disk.
    if !opts.dry_run {
        let partials = repo
            .backend()
            .remove_stale_partials(std::time::Duration::from_secs(3600))?;
        if partials > 0 {
            tracing::info!("removed {partials} partial file(s) left by interrupted runs");
        }
    }
    let mut r = PruneReport {
        location: repo.backend().location(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let (snapshots, used) = mark(repo)?;
    r.snapshots = snapshots;
    r.blobs_used = used.len() as u64;

    // Every index object, decoded: the truth about which packs hold what.
    let mut indexes: Vec<(ObjectId, Vec<IndexedPack>)> = Vec::new();
    for (name, _) in repo.backend().list("index")? {
        let Some(id) = ObjectId::from_hex(&name) else {
            continue;
        };
        let plain = repo.read_object(Kind::Index, "index", &id)?;
        let packs =
            index::decode(&plain).map_err(|e| Error::corrupt(format!("index {name}"), e))?;
        indexes.push((id, packs));
    }
    let present: HashMap<PackId, u64> = repo
        .backend()
        .list("packs")?
        .into_iter()
        .filter_map(|(n, size)| Some((PackId::from_hex(n.rsplit('/').next()?)?, size)))
        .collect();
    let mut packs: HashMap<PackId, IndexedPack> = HashMap::new();
    for (_, list) in &indexes {
        for p in list {
            packs.entry(p.id).or_insert_with(|| p.clone());
        }
    }
    // Packs no index lists (an interrupted run's): their sealed headers say what they
    // hold, once the whole pack is checked against its header (a decoy is not).
    for (id, size) in &present {
        if !packs.contains_key(id) {
            match repo.read_pack_verified(id) {
                Ok(blobs) => {
                    packs.insert(
                        *id,
                        IndexedPack {
                            id: *id,
                            size: *size,
                            blobs,
                        },
                    );
                }
                // Not trusted, so not a copy of anything, and not deleted either:
                // it may be planted (a decoy) or a damaged pack `repair` can heal.
                Err(e) => tracing::warn!("prune leaves pack {} alone: {e}", id.to_hex()),
            }
        }
    }
    r.packs_before = present.len() as u64;
    r.bytes_before = present.values().sum();

    let (fates, chosen) = plan(&packs, &present, &used, opts.max_unused, &mut r)?;
    let going: HashSet<PackId> = fates
        .iter()
        .filter(|(_, f)| **f != Fate::Keep)
        .map(|(id, _)| *id)
        .collect();
    let mut indexed: HashSet<PackId> = HashSet::new();
    let affected: Vec<&(ObjectId, Vec<IndexedPack>)> = indexes
        .iter()
        .filter(|(_, list)| {
            list.iter().for_each(|p| {
                indexed.insert(p.id);
            });
            list.iter().any(|p| going.contains(&p.id))
        })
        .collect();
    let mut sorted: Vec<(&PackId, &Fate)> = fates.iter().collect();
    sorted.sort_by_key(|(id, _)| **id);
    for (id, fate) in &sorted {
        let reason = match fate {
            Fate::Keep => continue,
            Fate::Delete => "no snapshot uses any of its data".to_string(),
            Fate::Forget => "already gone; nothing a snapshot needs was in it".to_string(),
            Fate::Repack => format!(
                "repacked: {}% of it was unused",
                (unused_share(&packs[id], &chosen) * 100.0).round()
            ),
        };
        r.removed.push(Removed {
            object: pack_path(id),
            reason,
        });
    }
    for (id, _) in &affected {
        r.removed.push(Removed {
            object: format!("index/{}", id.to_hex()),
            reason: "names packs that prune removes; replaced by a new index object".into(),
        });
    }
    if opts.dry_run {
        return Ok(r);
    }

    // A blob stored twice leaves with one pack and stays in another: that copy
    // must read back before the one leaving is deleted.
    check_kept_copies(repo, &packs, &fates, &chosen)?;

    // 3. Repack.
    let repack: Vec<PackId> = sorted
        .iter()
        .filter(|(_, f)| **f == Fate::Repack)
        .map(|(id, _)| **id)
        .collect();
    let mut new_packs = Vec::new();
    repack_into(repo, &repack, &packs, &chosen, &mut new_packs, &mut r)?;
    crate::util::failpoint("prune-after-repack");

    // 4. New index objects: kept packs of the affected index objects, kept packs no
    // index listed, and the new packs. Only while the lock still holds.
    repo.confirm_lock()?;
    let mut reindex: Vec<IndexedPack> = Vec::new();
    let mut queued: HashSet<PackId> = HashSet::new();
    for (_, list) in &affected {
        for p in list {
            if !going.contains(&p.id) && queued.insert(p.id) {
                reindex.push(p.clone());
            }
        }
    }
    for (id, fate) in &sorted {
        if **fate == Fate::Keep && !indexed.contains(id) && queued.insert(**id) {
            reindex.push(packs[id].clone());
        }
    }
    reindex.extend(new_packs);
    let mut written = Vec::new();
    for group in reindex.chunks(crate::repo::PACKS_PER_INDEX) {
        let id = repo.write_object(Kind::Index, "index", &index::encode(group))?;
        written.push((id, group.to_vec()));
        r.indexes_written += 1;
    }
    crate::util::failpoint("prune-after-index");
    // An index object under a retention lock stays, and so do the packs it lists:
    // an index never names a pack that is gone.
    let mut gone: HashSet<ObjectId> = HashSet::new();
    let mut pinned: HashSet<PackId> = HashSet::new();
    for (id, list) in &affected {
        let path = format!("index/{}", id.to_hex());
        if delete(repo, &path, &mut r)? {
            gone.insert(*id);
            r.indexes_deleted += 1;
        } else {
            pinned.extend(list.iter().map(|p| p.id));
        }
    }
    crate::util::failpoint("prune-after-index-delete");
    for id in &going {
        if fates[id] == Fate::Forget {
            continue;
        }
        let kept = if pinned.contains(id) {
            r.retained.push(pack_path(id));
            true
        } else {
            !delete(repo, &pack_path(id), &mut r)?
        };
        if kept {
            // Still there: not counted as freed.
            r.bytes_deleted -= present[id];
            match fates[id] {
                Fate::Delete => r.packs_deleted -= 1,
                _ => r.packs_repacked -= 1,
            }
        }
    }
    r.removed.retain(|x| !r.retained.contains(&x.object));
    if let Some(days) = repo.backend().retention_days() {
        extend_locks(repo, days, &packs, &going, &mut r)?;
    }
    // The catalog: the surviving index objects and the new ones (the file cache stays).
    repo.catalog().clear_index()?;
    for (id, list) in indexes.iter().filter(|(id, _)| !gone.contains(id)) {
        repo.catalog().add_index(id, list)?;
    }
    for (id, list) in &written {
        repo.catalog().add_index(id, list)?;
    }
    Ok(r)
}

/// Delete `path`; false when a retention lock keeps it (noted in the report).
fn delete(repo: &Repository, path: &str, r: &mut PruneReport) -> Result<bool> {
    repo.check_lock()?;
    match repo.backend().delete(path) {
        Ok(()) | Err(StorageError::NotFound(_)) => Ok(true),
        Err(StorageError::Retained(why)) => {
            tracing::info!("prune: {why}; it stays until the lock expires");
            r.retained.push(path.to_string());
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// On a copy whose objects are locked (S3 Object Lock): keep what live snapshots
/// use locked for another `days` — every kept pack, index object and manifest —
/// so the lock protects the whole of every snapshot, not only its newest objects.
fn extend_locks(
    repo: &Repository,
    days: u32,
    packs: &HashMap<PackId, IndexedPack>,
    going: &HashSet<PackId>,
    r: &mut PruneReport,
) -> Result<()> {
    let until = crate::util::now() + time::Duration::days(days as i64);
    let mut paths: Vec<String> = packs
        .keys()
        .filter(|id| !going.contains(id))
        .map(pack_path)
        .collect();
    // Index objects (new ones included) and manifests, as they are now.
    for dir in ["index", "snapshots"] {
        paths.extend(
            repo.backend()
                .list(dir)?
                .into_iter()
                .map(|(n, _)| format!("{dir}/{n}")),
        );
    }
    for p in paths {
        if r.retained.contains(&p) {
            continue;
        }
        repo.backend().extend_retention(&p, until)?;
        r.locks_extended += 1;
    }
    Ok(())
}

/// Every blob some snapshot needs; and how many snapshots there are.
fn mark(repo: &Repository) -> Result<(u64, HashSet<BlobKey>)> {
    let stop = |e: Error| {
        Error::Failed(format!(
            "prune stopped before deleting anything: {e}; run `hcbackup verify`, then `hcbackup repair`"
        ))
    };
    let snaps = repo.snapshots_strict().map_err(stop)?;
    let mut used = HashSet::new();
    let mut seen = HashSet::new();
    for s in &snaps {
        walk(repo, s.snapshot.tree, &mut used, &mut seen, 0).map_err(stop)?;
        for d in &s.snapshot.databases {
            if let Some(t) = d.tree {
                walk(repo, t, &mut used, &mut seen, 0).map_err(stop)?;
            }
        }
    }
    Ok((snaps.len() as u64, used))
}

fn walk(
    repo: &Repository,
    id: TreeId,
    used: &mut HashSet<BlobKey>,
    seen: &mut HashSet<TreeId>,
    depth: usize,
) -> Result<()> {
    // A folder unchanged since an earlier snapshot is one tree, walked once.
    if !seen.insert(id) {
        return Ok(());
    }
    if depth > crate::model::tree::MAX_DEPTH {
        return Err(Error::corrupt(
            format!("tree {}", id.short()),
            crate::model::tree::too_deep("a folder"),
        ));
    }
    used.insert((Kind::Tree, id.0));
    let tree = repo.load_tree(id)?;
    for n in &tree.nodes {
        match n.kind {
            NodeKind::Dir => {
                if let Some(t) = n.subtree {
                    walk(repo, t, used, seen, depth + 1)?;
                }
            }
            NodeKind::File => {
                used.extend(n.lists.iter().map(|l| (Kind::Tree, l.0)));
                used.extend(repo.node_content(n)?.iter().map(|c| (Kind::Data, c.0)));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Blobs chosen to stay, per pack: a used blob stored in several packs stays in
/// the one that is otherwise most used.
type Chosen = HashMap<PackId, HashSet<BlobKey>>;

fn plan(
    packs: &HashMap<PackId, IndexedPack>,
    present: &HashMap<PackId, u64>,
    used: &HashSet<BlobKey>,
    max_unused: f64,
    r: &mut PruneReport,
) -> Result<(HashMap<PackId, Fate>, Chosen)> {
    // Most-used present packs first, so duplicates leave the emptier packs.
    let mut order: Vec<(&PackId, u64)> = packs
        .iter()
        .filter(|(id, _)| present.contains_key(id))
        .map(|(id, p)| {
            let bytes = p
                .blobs
                .iter()
                .filter(|b| used.contains(&b.key()))
                .map(|b| b.length as u64)
                .sum();
            (id, bytes)
        })
        .collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut placed: HashSet<BlobKey> = HashSet::new();
    let mut chosen: Chosen = HashMap::new();
    for (id, _) in &order {
        let set = chosen.entry(**id).or_default();
        for b in &packs[*id].blobs {
            if used.contains(&b.key()) && placed.insert(b.key()) {
                set.insert(b.key());
            }
        }
    }
    // A used blob only in missing packs: data is lost here; prune must not go on.
    let mut lost: Vec<String> = Vec::new();
    for (id, p) in packs {
        if !present.contains_key(id)
            && p.blobs
                .iter()
                .any(|b| used.contains(&b.key()) && !placed.contains(&b.key()))
        {
            lost.push(id.to_hex());
        }
    }
    if !lost.is_empty() {
        lost.sort();
        return Err(Error::Failed(format!(
            "prune stopped before deleting anything: pack {} is missing and holds data snapshots need; run `hcbackup repair` (or `hcbackup verify` to see what is affected)",
            lost.join(", pack ")
        )));
    }
    let mut fates = HashMap::new();
    for (id, p) in packs {
        let fate = if !present.contains_key(id) {
            Fate::Forget
        } else {
            let keep = chosen.get(id).map_or(0, |s| s.len());
            if keep == 0 {
                Fate::Delete
            } else if unused_share(p, &chosen) > max_unused {
                Fate::Repack
            } else {
                r.bytes_unused_kept += p
                    .blobs
                    .iter()
                    .filter(|b| !chosen[id].contains(&b.key()))
                    .map(|b| b.length as u64)
                    .sum::<u64>();
                Fate::Keep
            }
        };
        if matches!(fate, Fate::Delete | Fate::Repack) {
            r.bytes_deleted += present[id];
            if fate == Fate::Delete {
                r.packs_deleted += 1;
            } else {
                r.packs_repacked += 1;
            }
        }
        fates.insert(*id, fate);
    }
    Ok((fates, chosen))
}

/// For every used blob a pack that goes away also holds, read the copy kept in a
/// pack that stays (repacked packs are checked blob by blob as they are copied):
/// it must authenticate and hash to its id, or prune stops before deleting
/// anything. A damaged (or planted) pack never becomes the only copy.
fn check_kept_copies(
    repo: &Repository,
    packs: &HashMap<PackId, IndexedPack>,
    fates: &HashMap<PackId, Fate>,
    chosen: &Chosen,
) -> Result<()> {
    let holder: HashMap<BlobKey, PackId> = chosen
        .iter()
        .flat_map(|(p, set)| set.iter().map(move |b| (*b, *p)))
        .collect();
    let mut checked: HashSet<BlobKey> = HashSet::new();
    for (id, fate) in fates {
        if !matches!(fate, Fate::Delete | Fate::Repack) {
            continue;
        }
        for b in &packs[id].blobs {
            let Some(kept) = holder.get(&b.key()).filter(|k| *k != id) else {
                continue;
            };
            if fates.get(kept) != Some(&Fate::Keep) || !checked.insert(b.key()) {
                continue;
            }
            let e = packs[kept]
                .blobs
                .iter()
                .find(|e| e.key() == b.key())
                .expect("a chosen blob is in its pack");
            let loc = crate::catalog::Location {
                pack: *kept,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
            };
            repo.read_blob_at(b.kind, crate::id::BlobId(b.id), &loc)
                .map_err(|err| {
                    Error::Failed(format!(
                        "prune stopped before deleting anything: the copy of {} {} it would keep (pack {}) does not read back: {err}",
                        b.kind.name(),
                        hex::encode(&b.id[..4]),
                        kept.to_hex()
                    ))
                })?;
        }
    }
    Ok(())
}

/// The share of a pack's blob bytes that prune would not keep there.
fn unused_share(p: &IndexedPack, chosen: &Chosen) -> f64 {
    let total: u64 = p.blobs.iter().map(|b| b.length as u64).sum();
    if total == 0 {
        return 1.0;
    }
    let kept: u64 = chosen.get(&p.id).map_or(0, |set| {
        p.blobs
            .iter()
            .filter(|b| set.contains(&b.key()))
            .map(|b| b.length as u64)
            .sum()
    });
    (total - kept) as f64 / total as f64
}

/// Copy the chosen blobs of `repack` into new packs (trees and data apart).
fn repack_into(
    repo: &Repository,
    repack: &[PackId],
    packs: &HashMap<PackId, IndexedPack>,
    chosen: &Chosen,
    out: &mut Vec<IndexedPack>,
    r: &mut PruneReport,
) -> Result<()> {
    let mut data = PackBuilder::default();
    let mut trees = PackBuilder::default();
    for id in repack {
        let name = id.to_hex();
        let bytes = repo.backend().get(&pack_path(id)).map_err(|e| {
            Error::Failed(format!(
                "prune: reading pack {name} to repack it: {e}; nothing was deleted"
            ))
        })?;
        r.bytes_downloaded += bytes.len() as u64;
        if blake3::hash(&bytes).as_bytes() != &id.0 {
            return Err(Error::corrupt(
                format!("pack {name}"),
                "its bytes do not match its name (prune stopped; nothing was deleted)",
            ));
        }
        for b in &packs[id].blobs {
            if !chosen[id].contains(&b.key()) {
                continue;
            }
            let sealed = &bytes[b.offset as usize..(b.offset + b.length as u64) as usize];
            let ok = codec::decode(repo.key(), b.kind, &b.id, sealed, b.raw_length as usize)
                .is_ok_and(|plain| repo.key().id_of(&plain) == b.id);
            if !ok {
                return Err(Error::corrupt(
                    format!("pack {name}"),
                    format!(
                        "{} {} is damaged (prune stopped; nothing was deleted)",
                        b.kind.name(),
                        hex::encode(&b.id[..4])
                    ),
                ));
            }
            let builder = if b.kind == Kind::Tree {
                &mut trees
            } else {
                &mut data
            };
            builder.add(b.kind, b.id, sealed, b.raw_length);
            if builder.len() >= PACK_TARGET {
                let full = std::mem::take(builder);
                out.push(write_pack(repo, full, r)?);
            }
        }
    }
    for b in [data, trees] {
        if !b.is_empty() {
            out.push(write_pack(repo, b, r)?);
        }
    }
    Ok(())
}

fn write_pack(repo: &Repository, b: PackBuilder, r: &mut PruneReport) -> Result<IndexedPack> {
    repo.check_lock()?;
    let (id, bytes, blobs) = b.finish(repo.key());
    repo.backend().put(&pack_path(&id), &bytes)?;
    r.packs_written += 1;
    r.bytes_written += bytes.len() as u64;
    Ok(IndexedPack {
        id,
        size: bytes.len() as u64,
        blobs,
    })
}
