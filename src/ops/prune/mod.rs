//! `prune`: remove the data no snapshot needs any more, from one copy, while
//! snapshots on any host go on (`docs/decisions/009-many-writers-prune.md`).
//!
//! Under the copy's maintenance lock (one prune or forget at a time; no
//! repository lock, so writers never wait):
//! 1. **Writers**: the repository locks live now, and when each started.
//! 2. **Mark**: walk every snapshot's trees (files and database dumps) and WAL
//!    records; every tree, chunk list and chunk reached is used. Any tree that
//!    cannot be read stops prune before it changes anything.
//! 3. **Plan** from the index objects (and the headers of packs no index lists,
//!    left by interrupted runs): `plan::decide`. An unused pack is condemned; a
//!    condemned one is deleted once the grace period has passed and no writer
//!    that started before its mark is running, or recovered when used again.
//! 4. **Repack** the packs whose unused share is above `max_unused`: their used
//!    blobs are checked and copied into new packs, unchanged; the old ones are
//!    condemned.
//! 5. Write index objects replacing every index object that names a pack whose
//!    state changes; then delete those old index objects; then the packs.
//!
//! With a grace period of 0 (`HCBACKUP_PRUNE_GRACE_SECS=0`) a second pass
//! deletes what the first condemned, once the writers that started before the
//! mark have ended. A crash between steps leaves at worst blobs listed twice,
//! marks not yet written, or packs no index lists; all are harmless, and the
//! next prune finishes the work. On a cloud copy only the index objects and
//! the packs being repacked are downloaded.

use std::collections::HashMap;

use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId, TreeId};
use crate::model::index::{self, Index, IndexedPack};
use crate::model::tree::NodeKind;
use crate::repo::Repository;

mod execute;
pub mod plan;
mod work;

pub use plan::Inputs;
use work::Work;

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
    /// Packs deleted: condemned earlier, past the grace period, still unused.
    pub packs_deleted: u64,
    /// Packs whose used blobs were copied into new packs (they are condemned).
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
    /// Packs condemned by this run (unused, or repacked): a later prune
    /// deletes them.
    pub packs_condemned: u64,
    /// Packs condemned earlier that are not deleted yet: the grace period has
    /// not passed, or a writer that started before the mark is running.
    pub packs_waiting: u64,
    /// Condemned packs a snapshot uses again: live once more.
    pub packs_recovered: u64,
    /// The grace period between condemning a pack and deleting it.
    pub grace_secs: u64,
    pub removed: Vec<Removed>,
    /// The packs condemned by this run, and why.
    pub marked: Vec<Removed>,
    /// Objects prune would delete but that are under a retention lock (S3 Object
    /// Lock): they stay, and a later prune removes them once the lock expires.
    pub retained: Vec<String>,
    /// Objects still in use whose retention lock was extended.
    pub locks_extended: u64,
}

impl PruneReport {
    /// Add a second pass's report to this one (a grace period of 0).
    fn absorb(&mut self, next: PruneReport) {
        self.packs_deleted += next.packs_deleted;
        self.packs_repacked += next.packs_repacked;
        self.packs_written += next.packs_written;
        self.bytes_deleted += next.bytes_deleted;
        self.bytes_written += next.bytes_written;
        self.bytes_downloaded += next.bytes_downloaded;
        self.indexes_written += next.indexes_written;
        self.indexes_deleted += next.indexes_deleted;
        self.packs_condemned += next.packs_condemned;
        self.packs_recovered += next.packs_recovered;
        self.locks_extended += next.locks_extended;
        self.packs_waiting = next.packs_waiting;
        self.bytes_unused_kept = next.bytes_unused_kept;
        self.removed.extend(next.removed);
        self.marked.extend(next.marked);
        self.retained.extend(next.retained);
    }
}

pub fn run(repo: &Repository, opts: PruneOptions) -> Result<PruneReport> {
    let _lock = if opts.dry_run {
        repo.lock(false, "prune")?
    } else {
        repo.lock_maintenance("prune")?
    };
    crate::util::failpoint("prune-locked");
    // What killed runs left half-written goes first: it may be what fills the disk.
    if !opts.dry_run {
        let partials = repo.remove_stale_partials(std::time::Duration::from_secs(3600))?;
        if partials > 0 {
            tracing::info!("removed {partials} partial file(s) left by interrupted runs");
        }
    }
    let grace = crate::config::tuning::get().prune_grace.as_secs() as i64;
    let mut report = pass(repo, opts, grace)?;
    if !opts.dry_run && grace == 0 && report.packs_condemned > 0 {
        crate::util::failpoint("prune-between-passes");
        let second = pass(repo, opts, grace)?;
        report.absorb(second);
    }
    Ok(report)
}

/// Read, decide and (unless a dry run) act, once.
fn pass(repo: &Repository, opts: PruneOptions, grace: i64) -> Result<PruneReport> {
    let mut inputs = gather(repo, grace)?;
    let plan = plan::decide(&mut inputs, opts.max_unused)?;
    if opts.dry_run {
        return plan.preview(&inputs);
    }
    execute::execute(repo, &mut inputs, &plan)
}

/// Read what the copy holds into the working set (a scratch file beside the
/// catalog): the writers running, the blobs its snapshots use, its index
/// objects, its packs (and the checked headers of packs no index lists). The
/// writers are read first: a writer that ends after that has its snapshot
/// read here.
fn gather(repo: &Repository, grace: i64) -> Result<Inputs> {
    let writers = repo.writers()?;
    let now = crate::util::now().unix_timestamp();
    let dir = repo
        .catalog()
        .path()
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let mut work = Work::new(&dir)?;
    let started = std::time::Instant::now();
    let snapshots = mark(repo, &mut work)?;
    tracing::debug!(
        "prune: snapshots walked in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Every index object, one at a time: the truth about which packs hold what.
    let seen = repo.catalog().marks_seen()?;
    let superseded = repo.catalog().superseded()?;
    for (name, _) in repo.backend().list("index")? {
        let Some(id) = ObjectId::from_hex(&name) else {
            continue;
        };
        let plain = repo.read_object(Kind::Index, "index", &id)?;
        let mut ix =
            index::decode(&plain).map_err(|e| Error::corrupt(format!("index {name}"), e))?;
        let replaced = superseded.contains(&id);
        count_marks_from_sight(&id, &mut ix, replaced, &seen, now);
        work.add_index(&id, &ix, replaced, false)?;
    }
    tracing::debug!(
        "prune: index read in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    work.add_listed(repo.listed_packs()?.into_iter())?;
    // A file under a pack's name that is not the size its index gives (junk,
    // or a truncated copy) holds none of it: the pack counts as missing (and
    // the file is left for `verify` and `repair`), so no blob is kept there.
    for id in work.drop_wrong_sizes()? {
        tracing::warn!(
            "pack {} is not the size its index gives: it counts as missing (run `hcbackup verify`, then `hcbackup repair`)",
            id.to_hex()
        );
    }
    // Packs no index lists (an interrupted run's): their sealed headers say what they
    // hold, once the whole pack is checked against its header (a decoy is not).
    for (id, size) in work.listed_unindexed()? {
        match repo.read_pack_verified(&id) {
            Ok(blobs) => work.add_pack(&IndexedPack { id, size, blobs })?,
            // Not trusted, so not a copy of anything, and not deleted either:
            // it may be planted (a decoy) or a damaged pack `repair` can heal.
            Err(e) => tracing::warn!("prune leaves pack {} alone: {e}", id.to_hex()),
        }
    }
    Ok(Inputs {
        location: repo.backend().location(),
        snapshots,
        work,
        now,
        grace,
        writers,
    })
}

/// A mark counts from when this catalog first saw it, if that is later than
/// the time it carries: an old index object put back by someone with access to
/// the storage (a mark from before a recovery) then waits out the grace period
/// and the writers running when it reappeared, like a new mark. Marks of an
/// object a newer one replaced (`replaced`) do not count at all: its
/// replacement carries the marks that still count.
fn count_marks_from_sight(
    id: &ObjectId,
    ix: &mut Index,
    replaced: bool,
    seen: &HashMap<(ObjectId, PackId), i64>,
    now: i64,
) {
    if replaced {
        ix.condemned.clear();
    }
    for (pack, at) in ix.condemned.iter_mut() {
        let first = seen.get(&(*id, *pack)).copied().unwrap_or(now);
        *at = (*at).max(first);
    }
}

/// Note every blob some snapshot needs in `work`; returns how many snapshots
/// there are.
fn mark(repo: &Repository, work: &mut Work) -> Result<u64> {
    let stop = |e: Error| {
        Error::Failed(format!(
            "prune stopped before deleting anything: {e}; run `hcbackup verify`, then `hcbackup repair`"
        ))
    };
    let snaps = repo.snapshots_strict().map_err(stop)?;
    let wal = repo.wal_records().map_err(stop)?;
    // Snapshots and WAL records written since this prune took its lock (by
    // writers on any host) have index objects the catalog has not loaded yet.
    repo.sync_catalog()?;
    for s in &snaps {
        walk(repo, s.snapshot.tree, work, 0).map_err(stop)?;
        for d in &s.snapshot.databases {
            if let Some(t) = d.tree {
                walk(repo, t, work, 0).map_err(stop)?;
            }
        }
        if let Some(t) = s.snapshot.physical.as_ref().and_then(|p| p.tree) {
            walk(repo, t, work, 0).map_err(stop)?;
        }
    }
    // The files PostgreSQL archived are kept whole (until retention of WAL,
    // issue #19): a record that does not open stops the prune.
    for rec in wal {
        walk(repo, rec.tree, work, 0).map_err(stop)?;
    }
    Ok(snaps.len() as u64)
}

fn walk(repo: &Repository, id: TreeId, work: &mut Work, depth: usize) -> Result<()> {
    // A folder unchanged since an earlier snapshot is one tree, walked once.
    if !work.first_visit(id)? {
        return Ok(());
    }
    if depth > crate::model::tree::MAX_DEPTH {
        return Err(Error::corrupt(
            format!("tree {}", id.short()),
            crate::model::tree::too_deep("a folder"),
        ));
    }
    work.use_blob((Kind::Tree, id.0))?;
    let tree = repo.load_tree(id)?;
    for n in &tree.nodes {
        match n.kind {
            NodeKind::Dir => {
                if let Some(t) = n.subtree {
                    walk(repo, t, work, depth + 1)?;
                }
            }
            NodeKind::File => {
                for l in &n.lists {
                    work.use_blob((Kind::Tree, l.0))?;
                }
                for c in repo.node_content(n)?.iter() {
                    work.use_blob((Kind::Data, c.0))?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
