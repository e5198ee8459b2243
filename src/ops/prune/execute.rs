//! Carrying out a prune plan: repack, write the new index objects, delete the
//! old ones and the packs, and report what was done (a retention lock may keep
//! what the plan removes: it is reported as retained, not as freed).

use std::collections::{HashMap, HashSet};

use crate::codec;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId};
use crate::model::index::{self, IndexedPack};
use crate::pack::{BlobKey, PackBuilder};
use crate::repo::{Removed, Repository, PACK_TARGET};
use crate::storage::pack_path;

use super::plan::{Chosen, Fate, Inputs, PrunePlan};
use super::PruneReport;

/// Carry out `plan`, made from `inputs`, under the exclusive lock.
pub fn execute(repo: &Repository, inputs: &Inputs, plan: &PrunePlan) -> Result<PruneReport> {
    let mut r = plan.facts(inputs);
    let going = plan.going();
    // A blob stored twice leaves with one pack and stays in another: that copy
    // must read back before the one leaving is deleted.
    check_kept_copies(repo, inputs, plan)?;

    // 3. Repack.
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
    crate::util::failpoint("prune-after-repack");

    // 4. New index objects: kept packs of the affected index objects, kept packs no
    // index listed, and the new packs. Only while the lock still holds.
    repo.confirm_lock()?;
    let affected: Vec<&(ObjectId, Vec<IndexedPack>)> = inputs
        .indexes
        .iter()
        .filter(|(id, _)| plan.affected.contains(id))
        .collect();
    let mut reindex: Vec<IndexedPack> = Vec::new();
    let mut queued: HashSet<PackId> = HashSet::new();
    for (_, list) in &affected {
        for p in list {
            if !going.contains(&p.id) && queued.insert(p.id) {
                reindex.push(p.clone());
            }
        }
    }
    for id in &plan.unindexed_kept {
        if queued.insert(*id) {
            reindex.push(inputs.packs[id].clone());
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
        if taken(repo.remove_index(id)?, path, &mut r) {
            gone.insert(*id);
            r.indexes_deleted += 1;
        } else {
            pinned.extend(list.iter().map(|p| p.id));
        }
    }
    crate::util::failpoint("prune-after-index-delete");
    for id in plan.packs_where(|f| matches!(f, Fate::Delete | Fate::Repack)) {
        if pinned.contains(&id) {
            r.retained.push(pack_path(&id));
            continue;
        }
        if taken(repo.remove_pack(&id)?, pack_path(&id), &mut r) {
            r.bytes_deleted += inputs.present[&id];
            match plan.fates[&id] {
                Fate::Delete => r.packs_deleted += 1,
                _ => r.packs_repacked += 1,
            }
        }
    }
    r.removed = plan.removals(inputs);
    r.removed.retain(|x| !r.retained.contains(&x.object));
    if let Some(days) = repo.backend().retention_days() {
        extend_locks(repo, days, &inputs.packs, &going, &mut r)?;
    }
    // The catalog: the surviving index objects and the new ones (the file cache stays).
    repo.catalog().clear_index()?;
    for (id, list) in inputs.indexes.iter().filter(|(id, _)| !gone.contains(id)) {
        repo.catalog().add_index(id, list)?;
    }
    for (id, list) in &written {
        repo.catalog().add_index(id, list)?;
    }
    Ok(r)
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
