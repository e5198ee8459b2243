//! Carrying out a prune plan: repack, write the new index objects (with the
//! packs condemned now and those still waiting), delete the old ones and the
//! packs whose time has come, and report what was done (a retention lock may
//! keep what the plan removes: it is reported as retained, not as freed).

use std::collections::{HashMap, HashSet};

use crate::codec;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId};
use crate::model::index::{self, Index, IndexedPack};
use crate::pack::{BlobKey, PackBuilder};
use crate::repo::{Removed, Repository, PACK_TARGET};
use crate::storage::pack_path;

use super::plan::{Chosen, Fate, Inputs, PrunePlan};
use super::PruneReport;

/// Carry out `plan`, made from `inputs`, under the maintenance lock.
pub fn execute(repo: &Repository, inputs: &Inputs, plan: &PrunePlan) -> Result<PruneReport> {
    let mut r = plan.facts(inputs);
    // A blob stored twice leaves with one pack and stays in another: that copy
    // must read back before the one leaving is deleted.
    check_kept_copies(repo, inputs, plan)?;

    // Repack.
    let repack: Vec<PackId> = plan.packs_where(|f| f == Fate::Repack).collect();
    let mut new_packs = Vec::new();
    repack_into(
        repo,
        &repack,
        &inputs.packs,
        &plan.chosen,
        &mut new_packs,
        &mut r,
    )?;
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
    for (id, ix) in inputs
        .indexes
        .iter()
        .filter(|(id, _)| plan.affected.contains(id))
    {
        let path = format!("index/{}", id.to_hex());
        if taken(repo.remove_index(id)?, path, &mut r) {
            gone.insert(*id);
            r.indexes_deleted += 1;
        } else {
            pinned.extend(ix.packs.iter().map(|p| p.id));
        }
    }
    crate::util::failpoint("prune-after-index-delete");
    for id in plan.packs_where(|f| f == Fate::Delete) {
        if pinned.contains(&id) {
            r.retained.push(pack_path(&id));
            continue;
        }
        if taken(repo.remove_pack(&id)?, pack_path(&id), &mut r) {
            r.bytes_deleted += inputs.present[&id];
            r.packs_deleted += 1;
            if r.packs_deleted == 1 {
                crate::util::failpoint("prune-sweeping");
            }
        }
    }
    r.removed = plan.removals();
    r.removed.retain(|x| !r.retained.contains(&x.object));
    r.marked = plan.marks(inputs);
    if let Some(days) = repo.backend().retention_days() {
        let going: HashSet<PackId> = plan.packs_where(|f| f == Fate::Delete).collect();
        extend_locks(repo, days, &inputs.packs, &going, &mut r)?;
    }
    // The catalog: the surviving index objects and the new ones (the file cache stays).
    repo.catalog().clear_index()?;
    for (id, ix) in inputs.indexes.iter().filter(|(id, _)| !gone.contains(id)) {
        repo.catalog().add_index(id, ix)?;
    }
    for (id, ix) in &written {
        repo.catalog().add_own_index(id, ix)?;
    }
    // Replaced: put back later (a replay), their marks are not believed and
    // the next prune rewrites them away.
    for id in &plan.affected {
        repo.catalog().note_superseded(id)?;
    }
    // Packs no index listed that this catalog held (a killed run's here) and
    // that went: kept by `clear_index`, forgotten now.
    for id in plan.packs_where(|f| matches!(f, Fate::Delete | Fate::Forget)) {
        if !pinned.contains(&id) {
            repo.catalog().remove_pack(&id)?;
        }
    }
    let present: HashSet<ObjectId> = inputs
        .indexes
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !gone.contains(id))
        .chain(written.iter().map(|(id, _)| *id))
        .collect();
    repo.catalog().keep_marks_seen(&present)?;
    Ok(r)
}

/// Write the index objects that replace the plan's affected ones.
fn write_indexes(
    repo: &Repository,
    inputs: &Inputs,
    plan: &PrunePlan,
    new_packs: Vec<IndexedPack>,
) -> Result<Vec<(ObjectId, Index)>> {
    let mut packs: Vec<IndexedPack> = Vec::new();
    let mut queued: HashSet<PackId> = HashSet::new();
    let listed = inputs
        .indexes
        .iter()
        .filter(|(id, _)| plan.affected.contains(id))
        .flat_map(|(_, ix)| ix.packs.iter().map(|p| p.id));
    for id in listed.chain(plan.unindexed.iter().copied()) {
        // Everything but what goes: a running writer's packs (InFlight) stay
        // listed when a merge rewrites its index object.
        let stays = !matches!(plan.fates[&id], Fate::Delete | Fate::Forget);
        if stays && queued.insert(id) {
            packs.push(inputs.packs[&id].clone());
        }
    }
    packs.extend(new_packs);
    let supersedes = superseded_by_rewrite(inputs, plan);
    let groups: Vec<&[IndexedPack]> = if packs.is_empty() && !supersedes.is_empty() {
        // Nothing stays, but what was replaced must still be said.
        vec![&[]]
    } else {
        packs.chunks(crate::repo::PACKS_PER_INDEX).collect()
    };
    let mut written = Vec::new();
    for group in groups {
        // `Index::of` reads the clock as this object is written: its new
        // marks count from then.
        let mut ix = Index::of(group.to_vec());
        ix.condemned = group
            .iter()
            .filter_map(|p| Some((p.id, plan.mark_of(&p.id, ix.written)?)))
            .collect();
        ix.supersedes = supersedes.clone();
        let id = repo.write_object(Kind::Index, "index", &index::encode(&ix))?;
        written.push((id, ix));
    }
    Ok(written)
}

/// Index objects a rewrite says it replaces, at most this many.
const MAX_SUPERSEDES: usize = 1024;

/// What the new index objects replace: the affected objects, and what those
/// replaced (newest rewrite first). A catalog that never saw the objects in
/// between (a prune's two passes, one after the other) still learns that an
/// object it loaded long ago is replaced, even if someone puts it back.
fn superseded_by_rewrite(inputs: &Inputs, plan: &PrunePlan) -> Vec<ObjectId> {
    let mut out = plan.affected.clone();
    let mut seen: HashSet<ObjectId> = out.iter().copied().collect();
    let earlier = inputs
        .indexes
        .iter()
        .filter(|(id, _)| plan.affected.contains(id))
        .flat_map(|(_, ix)| ix.supersedes.iter().copied());
    for id in earlier {
        if out.len() >= MAX_SUPERSEDES {
            break;
        }
        if seen.insert(id) {
            out.push(id);
        }
    }
    out
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
        repo.extend_retention(&p, until)?;
        r.locks_extended += 1;
    }
    Ok(())
}

/// For every used blob a pack that goes away also holds, read the copy kept in a
/// pack that stays (repacked packs are checked blob by blob as they are copied):
/// it must authenticate and hash to its id, or prune stops before deleting
/// anything. A damaged (or planted) pack never becomes the only copy.
fn check_kept_copies(repo: &Repository, inputs: &Inputs, plan: &PrunePlan) -> Result<()> {
    let (packs, fates, chosen) = (&inputs.packs, &plan.fates, &plan.chosen);
    let holder: HashMap<BlobKey, PackId> = chosen
        .iter()
        .flat_map(|(p, set)| set.iter().map(move |b| (*b, *p)))
        .collect();
    let mut checked: HashSet<BlobKey> = HashSet::new();
    for (id, fate) in fates {
        if *fate != Fate::Delete {
            continue;
        }
        for b in &packs[id].blobs {
            let Some(kept) = holder.get(&b.key()).filter(|k| *k != id) else {
                continue;
            };
            let stays = matches!(
                fates.get(kept),
                Some(Fate::Keep | Fate::Repack | Fate::Recover)
            );
            if !stays || !checked.insert(b.key()) {
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
