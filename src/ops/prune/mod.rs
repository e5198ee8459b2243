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

use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId, TreeId};
use crate::model::index::{self, IndexedPack};
use crate::model::tree::NodeKind;
use crate::pack::BlobKey;
use crate::repo::Repository;

mod execute;
pub mod plan;

pub use plan::Inputs;

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

pub fn run(repo: &Repository, opts: PruneOptions) -> Result<PruneReport> {
    let _lock = repo.lock(!opts.dry_run, "prune")?;
    crate::util::failpoint("prune-locked");
    // What killed runs left half-written goes first: it may be what fills the disk.
    if !opts.dry_run {
        let partials = repo.remove_stale_partials(std::time::Duration::from_secs(3600))?;
        if partials > 0 {
            tracing::info!("removed {partials} partial file(s) left by interrupted runs");
        }
    }
    let inputs = gather(repo)?;
    let plan = plan::decide(&inputs, opts.max_unused)?;
    if opts.dry_run {
        return Ok(plan.preview(&inputs));
    }
    execute::execute(repo, &inputs, &plan)
}

/// Read what the copy holds: the blobs its snapshots use, its index objects,
/// its packs (and the checked headers of packs no index lists).
fn gather(repo: &Repository) -> Result<Inputs> {
    let (snapshots, used) = mark(repo)?;
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
    Ok(Inputs {
        location: repo.backend().location(),
        snapshots,
        used,
        indexes,
        packs,
        present,
    })
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
        if let Some(t) = s.snapshot.physical.as_ref().and_then(|p| p.tree) {
            walk(repo, t, &mut used, &mut seen, 0).map_err(stop)?;
        }
    }
    // The files PostgreSQL archived are kept whole (until retention of WAL,
    // issue #19): a record that does not open stops the prune.
    for rec in repo.wal_records().map_err(stop)? {
        walk(repo, rec.tree, &mut used, &mut seen, 0).map_err(stop)?;
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
