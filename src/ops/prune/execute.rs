//! Carrying out a prune plan: repack, write the new index objects (with the
//! packs condemned now and those still waiting), delete the old ones and the
//! packs whose time has come, and report what was done (a retention lock may
//! keep what the plan removes: it is reported as retained, not as freed).

use std::collections::HashSet;

use crate::codec;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId};
use crate::model::index::{self, Index, IndexedPack};
use crate::pack::PackBuilder;
use crate::repo::{Removed, Repository, PACK_TARGET};
use crate::storage::pack_path;

use super::plan::{Fate, Inputs, PrunePlan};
use super::PruneReport;

/// Carry out `plan`, made from `inputs`, under the maintenance lock.
pub fn execute(repo: &Repository, inputs: &mut Inputs, plan: &PrunePlan) -> Result<PruneReport> {
    let mut r = plan.facts(inputs)?;
    // A blob stored twice leaves with one pack and stays in another: that copy
    // must read back before the one leaving is deleted.
    check_kept_copies(repo, inputs)?;

    // Repack.
    let repack = inputs.work.packs_with(&[Fate::Repack])?;
    let mut new_packs = Vec::new();
    repack_into(repo, &repack, inputs, &mut new_packs, &mut r)?;
    r.packs_repacked = repack.len() as u64;
    crate::util::failpoint("prune-after-repack");

    // New index objects, replacing the affected ones: their packs that stay
    // (condemned ones with their mark), packs no index listed, the new packs.
    // Only while the lock still holds.
    repo.confirm_lock()?;
    let written = write_indexes(repo, inputs, plan, new_packs)?;
    r.indexes_written = written.len() as u64;
    crate::util::failpoint("prune-after-index");
    // An index object under a retention lock stays, and so do the packs it lists:
    // an index never names a pack that is gone.
    let mut gone: HashSet<ObjectId> = HashSet::new();
    let mut pinned: HashSet<PackId> = HashSet::new();
    for id in &plan.affected {
        let path = format!("index/{}", id.to_hex());
        if taken(repo.remove_index(id)?, path, &mut r) {
            gone.insert(*id);
            r.indexes_deleted += 1;
        } else {
            pinned.extend(inputs.work.packs_of_index(id)?);
        }
    }
    crate::util::failpoint("prune-after-index-delete");
    let deleting = inputs.work.packs_with(&[Fate::Delete])?;
    for id in &deleting {
        if pinned.contains(id) {
            r.retained.push(pack_path(id));
            continue;
        }
        if taken(repo.remove_pack(id)?, pack_path(id), &mut r) {
            r.bytes_deleted += inputs.work.state(id)?.present_size;
            r.packs_deleted += 1;
            if r.packs_deleted == 1 {
                crate::util::failpoint("prune-sweeping");
            }
        }
    }
    let retained: HashSet<String> = r.retained.iter().cloned().collect();
    r.removed = plan.removals(inputs)?;
    r.removed.retain(|x| !retained.contains(&x.object));
    r.marked = plan.marks(inputs)?;
    if let Some(days) = repo.backend().retention_days() {
        extend_locks(repo, days, inputs, &retained, &mut r)?;
    }
    refresh_catalog(repo, inputs, plan, &written, &gone, &pinned)?;
    Ok(r)
}

/// The catalog after a prune, in an order that never leaves out a pack that
/// is still there (a restore on this machine may be reading it meanwhile):
/// the new index objects first (the packs that stay move to them), then the
/// replaced ones go (or, kept by a retention lock, stay with their packs),
/// then the packs deleted or found gone. Index objects prune did not touch
/// stay as they are (the file cache too).
fn refresh_catalog(
    repo: &Repository,
    inputs: &Inputs,
    plan: &PrunePlan,
    written: &[ObjectId],
    gone: &HashSet<ObjectId>,
    pinned: &HashSet<PackId>,
) -> Result<()> {
    let catalog = repo.catalog();
    for id in written {
        catalog.add_own_index(id, &inputs.work.index(id)?)?;
    }
    for id in &plan.affected {
        if gone.contains(id) {
            catalog.forget_index(id)?;
        } else {
            catalog.add_index(id, &inputs.work.index(id)?)?;
        }
        // Replaced: put back later (a replay), its marks are not believed
        // and the next prune rewrites it away.
        catalog.note_superseded(id)?;
    }
    for id in inputs.work.packs_with(&[Fate::Delete, Fate::Forget])? {
        if !pinned.contains(&id) {
            catalog.remove_pack(&id)?;
        }
    }
    let present: HashSet<ObjectId> = inputs
        .work
        .index_ids()?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| !gone.contains(id))
        .collect();
    catalog.keep_marks_seen(&present)
}

/// Write the index objects that replace the plan's affected ones, a full
/// index object at a time (each is recorded in the working set): the packs
/// they list that stay — a running writer's (InFlight) too, when a merge
/// rewrites its index object — the packs no index listed, the new packs.
/// Returns their ids.
fn write_indexes(
    repo: &Repository,
    inputs: &mut Inputs,
    plan: &PrunePlan,
    new_packs: Vec<IndexedPack>,
) -> Result<Vec<ObjectId>> {
    const FULL: usize = crate::repo::PACKS_PER_INDEX;
    let supersedes = superseded_by_rewrite(inputs, plan)?;
    let queued = inputs.work.queue_staying(&plan.unindexed)?;
    let mut written = Vec::new();
    let mut group: Vec<IndexedPack> = Vec::new();
    for page in 0..queued.div_ceil(FULL as u64) {
        for id in inputs.work.staying_page(page, FULL)? {
            group.push(inputs.work.pack(&id)?);
        }
        if group.len() == FULL {
            let full = std::mem::take(&mut group);
            written.push(write_index(repo, inputs, plan, full, &supersedes)?);
        }
    }
    for p in new_packs {
        group.push(p);
        if group.len() == FULL {
            let full = std::mem::take(&mut group);
            written.push(write_index(repo, inputs, plan, full, &supersedes)?);
        }
    }
    // The rest; or nothing stays, but what was replaced must still be said.
    if !group.is_empty() || (written.is_empty() && !supersedes.is_empty()) {
        written.push(write_index(repo, inputs, plan, group, &supersedes)?);
    }
    Ok(written)
}

/// Write one index object listing `packs`, and record it in the working set.
fn write_index(
    repo: &Repository,
    inputs: &mut Inputs,
    plan: &PrunePlan,
    packs: Vec<IndexedPack>,
    supersedes: &[ObjectId],
) -> Result<ObjectId> {
    // `Index::of` reads the clock as this object is written: its new
    // marks count from then.
    let mut ix = Index::of(packs);
    let mut condemned = Vec::new();
    for p in &ix.packs {
        if let Some(at) = plan.mark_of(inputs, &p.id, ix.written)? {
            condemned.push((p.id, at));
        }
    }
    ix.condemned = condemned;
    ix.supersedes = supersedes.to_vec();
    let id = repo.write_object(Kind::Index, "index", &index::encode(&ix))?;
    inputs.work.add_index(&id, &ix, false, true)?;
    Ok(id)
}

/// Index objects a rewrite says it replaces, at most this many.
const MAX_SUPERSEDES: usize = 1024;

/// What the new index objects replace: the affected objects, and what those
/// replaced (newest rewrite first). A catalog that never saw the objects in
/// between (a prune's two passes, one after the other) still learns that an
/// object it loaded long ago is replaced, even if someone puts it back.
fn superseded_by_rewrite(inputs: &Inputs, plan: &PrunePlan) -> Result<Vec<ObjectId>> {
    let mut out = plan.affected.clone();
    let mut seen: HashSet<ObjectId> = out.iter().copied().collect();
    for id in inputs.work.supersedes_of_affected()? {
        if out.len() >= MAX_SUPERSEDES {
            break;
        }
        if seen.insert(id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Whether `removed` took the object at `path` away; one a retention lock
/// keeps is noted in the report.
fn taken(removed: Removed, path: String, r: &mut PruneReport) -> bool {
    match removed {
        Removed::Gone => true,
        Removed::Retained(why) => {
            tracing::info!("prune: {why}; it stays until the lock expires");
            r.retained.push(path);
            false
        }
    }
}

/// On a copy whose objects are locked (S3 Object Lock): keep what live snapshots
/// use locked for another `days` — every kept pack, index object and manifest —
/// so the lock protects the whole of every snapshot, not only its newest objects.
fn extend_locks(
    repo: &Repository,
    days: u32,
    inputs: &Inputs,
    retained: &HashSet<String>,
    r: &mut PruneReport,
) -> Result<()> {
    let until = crate::util::now() + time::Duration::days(days as i64);
    let mut extend = |p: String| -> Result<()> {
        if !retained.contains(&p) {
            repo.extend_retention(&p, until)?;
            r.locks_extended += 1;
        }
        Ok(())
    };
    inputs.work.staying_packs(|id| extend(pack_path(&id)))?;
    // Index objects (new ones included) and manifests, as they are now.
    for dir in ["index", "snapshots"] {
        for (n, _) in repo.backend().list(dir)? {
            extend(format!("{dir}/{n}"))?;
        }
    }
    Ok(())
}

/// For every used blob a pack that goes away also holds, read the copy kept in a
/// pack that stays (repacked packs are checked blob by blob as they are copied):
/// it must authenticate and hash to its id, or prune stops before deleting
/// anything. A damaged (or planted) pack never becomes the only copy.
fn check_kept_copies(repo: &Repository, inputs: &Inputs) -> Result<()> {
    inputs.work.kept_copies(|c| {
        let loc = crate::catalog::Location {
            pack: c.pack,
            offset: c.entry.offset,
            length: c.entry.length,
            raw_length: c.entry.raw_length,
        };
        let (kind, id) = c.key;
        repo.read_blob_at(kind, crate::id::BlobId(id), &loc)
            .map(|_| ())
            .map_err(|err| {
                Error::Failed(format!(
                    "prune stopped before deleting anything: the copy of {} {} it would keep (pack {}) does not read back: {err}",
                    kind.name(),
                    hex::encode(&id[..4]),
                    c.pack.to_hex()
                ))
            })
    })
}

/// Copy the chosen blobs of `repack` into new packs (trees and data apart).
fn repack_into(
    repo: &Repository,
    repack: &[PackId],
    inputs: &Inputs,
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
        for b in &inputs.work.kept_blobs(id)? {
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
    let (id, bytes, blobs) = b.finish(repo.key());
    repo.put_pack(&id, &bytes)?;
    r.packs_written += 1;
    r.bytes_written += bytes.len() as u64;
    Ok(IndexedPack {
        id,
        size: bytes.len() as u64,
        blobs,
    })
}
