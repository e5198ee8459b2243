//! Keeping the catalog in step with the repository, and the index step of a snapshot.
//!
//! On open, index objects the catalog has not seen are loaded; if one it had loaded
//! is gone (pruned elsewhere), or the catalog belongs to another repository, it is
//! rebuilt from scratch. Packs that no index covers yet (a run killed after writing
//! them) are found by listing `packs/` and reading their sealed headers, so the next
//! snapshot reuses them instead of uploading the same data again.

use std::collections::HashSet;

use super::Repository;
use crate::codec;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId};
use crate::model::index::{self, IndexedPack};
use crate::pack::{self, PackEntry};
use crate::storage::pack_path;

/// Packs per index object: keeps each index object a few MiB.
pub(crate) const PACKS_PER_INDEX: usize = 2048;

impl Repository {
    /// Load the index objects the catalog has not seen, and drop those they
    /// replace (a prune's rewrite, version 2 `supersedes`). Only when an index
    /// object it had loaded is gone and nothing replaced it (deleted by hand,
    /// or by a release before issue #20) is the whole index reloaded. Prune
    /// calls it after listing the snapshots: every index object a listed
    /// manifest needs was written before the manifest.
    pub(crate) fn sync_catalog(&self) -> Result<()> {
        let fresh = self.catalog.meta("repo_id")?.as_deref() != Some(&self.config.id);
        if fresh {
            self.catalog.clear()?;
            self.catalog.set_meta("repo_id", &self.config.id)?;
        }
        let in_repo: HashSet<ObjectId> = self
            .backend
            .list("index")?
            .into_iter()
            .filter_map(|(n, _)| ObjectId::from_hex(&n))
            .collect();
        let loaded: HashSet<ObjectId> = self.catalog.loaded_indexes()?.into_iter().collect();
        let new: Vec<&ObjectId> = in_repo.iter().filter(|id| !loaded.contains(id)).collect();
        self.load_indexes(new.into_iter(), &in_repo)?;
        // When marks of objects no longer there were first seen is forgotten
        // (after the objects replacing them took it over): one put back later
        // is seen anew.
        self.catalog.keep_marks_seen(&in_repo)?;
        let vanished = self
            .catalog
            .loaded_indexes()?
            .into_iter()
            .any(|id| !in_repo.contains(&id));
        if vanished {
            // Removed, and no index object says it replaced them: reload the
            // index, keeping the file cache.
            tracing::info!("index objects were removed from the repository; reloading the index");
            self.catalog.clear_index()?;
            self.load_indexes(in_repo.iter(), &in_repo)?;
            self.recover_packs()?;
            return Ok(());
        }
        if fresh {
            // A new catalog: packs of runs killed before their index, on any
            // machine, are found once (later runs know their own), and packs
            // index objects name that are not there (an index object put back
            // after a prune) are forgotten before anything deduplicates.
            let listed = self.recover_packs()?;
            self.forget_missing_packs(&listed)?;
        }
        Ok(())
    }

    /// Load index objects into the catalog. One loaded earlier that a new one
    /// replaces and that is gone from the repository (`in_repo`) is dropped,
    /// with the packs it alone listed (the ones its prune deleted): no reload.
    /// One still there stays: a copy keeps objects its source's prune replaced
    /// when its own retention still needs their packs (S3 keeps 90 days, the
    /// local copy 30). A damaged one is skipped with a warning (and tried
    /// again next time): the packs it listed are found by their headers, and
    /// `verify` reports it.
    fn load_indexes<'a>(
        &self,
        ids: impl Iterator<Item = &'a ObjectId>,
        in_repo: &HashSet<ObjectId>,
    ) -> Result<()> {
        let removed = self.catalog.removed_packs()?;
        for id in ids {
            match self.read_index(id) {
                // An index object naming a pack this machine's prune removed was
                // removed with it: someone put it back (a replay). Believing it
                // would make new snapshots reference data that is gone.
                Ok(ix) if ix.packs.iter().any(|p| removed.contains(&pack_path(&p.id))) => {
                    tracing::warn!(
                        "index object index/{} names packs a prune removed here: it was put back (a replay?) and is ignored; `hcbackup verify` names it",
                        id.to_hex()
                    );
                }
                Ok(ix) => {
                    self.catalog.add_index(id, &ix)?;
                    for old in ix.supersedes.iter().filter(|o| !in_repo.contains(o)) {
                        self.catalog.supersede(old)?;
                    }
                }
                Err(e @ (Error::Corrupt { .. } | Error::Missing { .. })) => {
                    tracing::warn!("{e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Read and decode one index object.
    pub fn read_index(&self, id: &ObjectId) -> Result<index::Index> {
        let plain = self.read_object(Kind::Index, "index", id)?;
        index::decode(&plain).map_err(|e| Error::corrupt(format!("index {}", id.to_hex()), e))
    }

    /// Rebuild the catalog from the repository alone; returns (indexes, packs, blobs).
    pub fn rebuild_catalog(&self) -> Result<(u64, u64, u64)> {
        self.catalog.clear()?;
        self.catalog.set_meta("repo_id", &self.config.id)?;
        self.sync_catalog()?;
        self.recover_packs()?;
        self.catalog.counts()
    }

    /// Read and authenticate a pack's header (not yet checked against its blobs).
    pub fn read_pack_header(&self, id: &PackId, size: u64) -> Result<pack::PackHeader> {
        let path = pack_path(id);
        let bad = |d: String| Error::corrupt(format!("pack {}", id.to_hex()), d);
        let trailer = self
            .backend
            .get_range(&path, size.saturating_sub(4), 4)
            .map_err(|e| bad(e.to_string()))?;
        let (start, len) = pack::header_location(size, trailer.try_into().expect("4 bytes"))
            .map_err(|e| bad(e.into()))?;
        let sealed = self
            .backend
            .get_range(&path, start, len)
            .map_err(|e| bad(e.to_string()))?;
        self.open_pack_header(id, start, &sealed)
    }

    /// Decode the sealed header that starts at `start` of pack `id`.
    fn open_pack_header(&self, id: &PackId, start: u64, sealed: &[u8]) -> Result<pack::PackHeader> {
        let bad = |d: String| Error::corrupt(format!("pack {}", id.to_hex()), d);
        let plain = codec::decode(
            &self.key,
            Kind::PackHeader,
            &pack::HEADER_ID,
            sealed,
            64 << 20,
        )
        .map_err(|e| bad(format!("header: {e}")))?;
        let header = pack::decode_header(&plain).map_err(|e| bad(e.into()))?;
        let end = header
            .entries
            .last()
            .map_or(0, |e| e.offset + e.length as u64);
        if end != start {
            return Err(bad("header does not match the pack's length".into()));
        }
        Ok(header)
    }

    /// The blobs of a pack that no index object lists, trusted only after the whole
    /// pack is checked: its bytes hash to its name, and its blob section hashes to
    /// what the sealed header says (format 2) or every blob authenticates and
    /// hashes to its id (format 1). Anyone who can write to the storage can copy a
    /// real pack's header onto other bytes; such a decoy is refused here, so it can
    /// neither stand in for the real pack nor make prune delete it.
    pub fn read_pack_verified(&self, id: &PackId) -> Result<Vec<PackEntry>> {
        let path = pack_path(id);
        let bad = |d: String| Error::corrupt(format!("pack {}", id.to_hex()), d);
        let bytes = self.backend.get(&path).map_err(|e| match e {
            crate::storage::StorageError::NotFound(_) => {
                Error::missing(format!("pack {}", id.to_hex()), "the pack file is gone")
            }
            e => bad(e.to_string()),
        })?;
        let size = bytes.len() as u64;
        let trailer: [u8; 4] = bytes[bytes.len().saturating_sub(4)..]
            .try_into()
            .map_err(|_| bad("shorter than a pack".into()))?;
        let (start, len) = pack::header_location(size, trailer).map_err(|e| bad(e.into()))?;
        let blobs = &bytes[..start as usize];
        let mut h = blake3::Hasher::new();
        h.update(blobs);
        let blobs_hash = *h.clone().finalize().as_bytes();
        h.update(&bytes[start as usize..]);
        if h.finalize().as_bytes() != &id.0 {
            return Err(bad("its bytes do not match its name".into()));
        }
        let header = self.open_pack_header(
            id,
            start,
            &bytes[start as usize..(start + len as u64) as usize],
        )?;
        match header.blobs_hash {
            Some(h) if h == blobs_hash => {}
            Some(_) => {
                return Err(bad(
                    "its header belongs to another pack (planted by someone with access to the storage?)".into(),
                ))
            }
            None => {
                for e in &header.entries {
                    let sealed = &blobs[e.offset as usize..(e.offset + e.length as u64) as usize];
                    let ok = codec::decode(&self.key, e.kind, &e.id, sealed, e.raw_length as usize)
                        .is_ok_and(|p| p.len() == e.raw_length as usize && self.key.id_of(&p) == e.id);
                    if !ok {
                        return Err(bad(format!(
                            "{} {} does not match its header (planted or damaged)",
                            e.kind.name(),
                            hex::encode(&e.id[..4])
                        )));
                    }
                }
            }
        }
        Ok(header.entries)
    }

    /// Add durable packs that no index covers to the catalog; forget vanished ones.
    /// Returns the packs present (id and size), as listed for this.
    pub fn recover_packs(&self) -> Result<Vec<(PackId, u64)>> {
        let mut present = HashSet::new();
        let mut listed = Vec::new();
        let mut recovered = 0;
        for (name, size) in self.backend.list("packs")? {
            let Some(id) = name.rsplit('/').next().and_then(PackId::from_hex) else {
                continue;
            };
            present.insert(id);
            listed.push((id, size));
            if self.catalog.has_pack(&id)? || self.catalog.pack_refused(&id, size)? {
                continue;
            }
            match self.read_pack_verified(&id) {
                Ok(blobs) => {
                    self.catalog
                        .add_unindexed_pack(&IndexedPack { id, size, blobs })?;
                    recovered += 1;
                }
                Err(e @ Error::Corrupt { .. }) => {
                    tracing::warn!("ignoring unreadable pack {}: {e}", id.to_hex());
                    self.catalog.refuse_pack(&id, size)?;
                }
                Err(e) => tracing::warn!("ignoring unreadable pack {}: {e}", id.to_hex()),
            }
        }
        for p in self.catalog.unindexed_packs()? {
            if !present.contains(&p.id) {
                self.catalog.remove_pack(&p.id)?;
            }
        }
        let partials = self
            .backend
            .remove_stale_partials(std::time::Duration::from_secs(3600))?;
        if partials > 0 {
            tracing::info!("removed {partials} partial file(s) left by interrupted runs");
        }
        if recovered > 0 {
            tracing::info!(
                "found {recovered} pack(s) from an interrupted run; they will be reused"
            );
        }
        Ok(listed)
    }

    /// Before writing: forget the packs the catalog places blobs in but that the
    /// repository does not hold (`listed` is `recover_packs`'s listing), so their
    /// blobs count as missing and are stored again instead of being referenced.
    /// An index object someone replayed from before a prune, or a pack deleted
    /// behind the catalog's back, would otherwise make a snapshot "saved" that
    /// does not restore. Returns how many were forgotten.
    pub fn forget_missing_packs(&self, listed: &[(PackId, u64)]) -> Result<usize> {
        let present: std::collections::HashMap<PackId, u64> = listed.iter().copied().collect();
        let condemned = self.catalog.condemned()?;
        let mut gone = 0;
        for (id, size) in self.catalog.packs()? {
            // Gone, or not the size the index says (a junk file under its name).
            // A condemned pack going is a prune's sweep: nothing to warn about.
            if present.get(&id) != Some(&size) {
                self.catalog.remove_pack(&id)?;
                gone += usize::from(!condemned.contains_key(&id));
            }
        }
        if gone > 0 {
            tracing::warn!(
                "{gone} pack(s) that index objects name are not in the repository (or not whole): their data is stored again (run `hcbackup verify`, then `hcbackup repair`)"
            );
        }
        Ok(gone)
    }

    /// Note that this process deduplicated against `pack`.
    pub(crate) fn note_reused(&self, pack: PackId) {
        self.reused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pack);
    }

    /// The last check before a manifest is written: every pack this run
    /// deduplicated against is still in the repository, whole (a stat each, or
    /// one listing when that takes fewer requests). A prune deletes only
    /// condemned packs, which no snapshot deduplicates against, so this
    /// catches what got round it (packs deleted by hand, or by someone
    /// without the lock), so that a snapshot reported saved always restores.
    /// A missing one is forgotten here: the next run stores its data again.
    /// The rest is trusted from the runs that found it durable: it costs no
    /// request, however old the repository.
    pub fn confirm_durable(&self) -> Result<()> {
        let reused: Vec<PackId> = {
            let r = self.reused.lock().unwrap_or_else(|p| p.into_inner());
            r.iter().copied().collect()
        };
        if reused.is_empty() {
            return Ok(());
        }
        let pages = self
            .catalog
            .pack_count()?
            .div_ceil(crate::storage::counting::LIST_PAGE);
        let present = self.sizes_of(&reused, reused.len() as u64 > pages)?;
        let mut lost = 0;
        for id in &reused {
            // Gone, or not the size the index says (a junk file under its name).
            // The catalog may be between a clear and a reload by another
            // process on this machine (a prune): then presence is the test.
            let there = present.get(id);
            let known = self.catalog.pack_size(id)?;
            if there.is_none() || known.is_some_and(|s| Some(&s) != there) {
                self.catalog.remove_pack(id)?;
                lost += 1;
            }
        }
        if lost == 0 {
            return Ok(());
        }
        Err(Error::Failed(format!(
            "{lost} pack(s) this run relied on left the repository while it ran (deleted by hand, or by someone working without the lock); nothing was saved: run it again, it stores that data anew (and `hcbackup verify` shows what else is affected)"
        )))
    }

    /// Forget the packs the catalog holds that no index lists (a killed run's)
    /// and that are no longer in the repository whole: a prune may have
    /// condemned and deleted them, with index objects this catalog never saw.
    pub fn confirm_unindexed(&self) -> Result<()> {
        let packs = self.catalog.unindexed_pack_sizes()?;
        let ids: Vec<PackId> = packs.iter().map(|(id, _)| *id).collect();
        let present = self.sizes_of(&ids, false)?;
        for (id, size) in packs {
            if present.get(&id) != Some(&size) {
                self.catalog.remove_pack(&id)?;
            }
        }
        Ok(())
    }

    /// Every pack in the repository, with its size (one listing of `packs/`).
    pub fn listed_packs(&self) -> Result<std::collections::HashMap<PackId, u64>> {
        Ok(self
            .backend
            .list("packs")?
            .into_iter()
            .filter_map(|(n, size)| Some((PackId::from_hex(n.rsplit('/').next()?)?, size)))
            .collect())
    }

    /// The sizes of those of `packs` that are in the repository: by one
    /// listing of `packs/` (`list`), or by a stat each.
    fn sizes_of(
        &self,
        packs: &[PackId],
        list: bool,
    ) -> Result<std::collections::HashMap<PackId, u64>> {
        if list {
            return self.listed_packs();
        }
        let mut out = std::collections::HashMap::new();
        for id in packs {
            match self.backend.stat(&pack_path(id)) {
                Ok(size) => {
                    out.insert(*id, size);
                }
                Err(crate::storage::StorageError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Write index objects for every pack no index covers yet (step two of the
    /// write order). Returns the new index ids.
    pub fn write_index(&self) -> Result<Vec<ObjectId>> {
        self.confirm_lock()?;
        let packs = self.catalog.unindexed_packs()?;
        let mut ids = Vec::new();
        for group in packs.chunks(PACKS_PER_INDEX) {
            let ix = index::Index::of(group.to_vec());
            let id = self.write_object(Kind::Index, "index", &index::encode(&ix))?;
            self.catalog.add_index(&id, &ix)?;
            ids.push(id);
        }
        Ok(ids)
    }
}
