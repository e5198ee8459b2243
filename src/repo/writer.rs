//! Adding blobs: dedup against the catalog, seal, gather into packs, write packs.
//!
//! Safe to call from many threads. A blob id is always either in the `pending` set
//! (sealed, in a pack not yet durable) or in the catalog (in a durable pack), so two
//! threads never store the same chunk twice. Catalog rows for a pack are committed
//! only after the pack file is durable (DESIGN.md §3).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::Repository;
use crate::codec;
use crate::crypto::Kind;
use crate::error::Result;
use crate::id::BlobId;
use crate::model::index::IndexedPack;
use crate::pack::PackBuilder;
use crate::storage::pack_path;

/// A pack is written once its blobs reach this size.
pub const PACK_TARGET: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct State {
    data: PackBuilder,
    trees: PackBuilder,
    pending: HashSet<[u8; 32]>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub blobs_added: u64,
    /// Bytes of new pack files (sealed, after dedup and compression).
    pub bytes_added: u64,
    pub packs_written: u64,
}

pub struct BlobWriter<'r> {
    repo: &'r Repository,
    state: Mutex<State>,
    blobs: AtomicU64,
    bytes: AtomicU64,
    packs: AtomicU64,
}

impl<'r> BlobWriter<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        BlobWriter {
            repo,
            state: Mutex::default(),
            blobs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            packs: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store a blob unless the repository has it. Returns true when it was new.
    pub fn add(&self, kind: Kind, id: [u8; 32], plain: &[u8]) -> Result<bool> {
        if self.lock().pending.contains(&id) || self.repo.catalog().has_blob(&BlobId(id))? {
            return Ok(false);
        }
        let sealed = codec::encode(self.repo.key(), kind, &id, plain);
        let full = {
            let mut st = self.lock();
            if !st.pending.insert(id) {
                return Ok(false);
            }
            let builder = if kind == Kind::Tree {
                &mut st.trees
            } else {
                &mut st.data
            };
            builder.add(kind, id, &sealed, plain.len() as u32);
            self.blobs.fetch_add(1, Ordering::Relaxed);
            (builder.len() >= PACK_TARGET).then(|| std::mem::take(builder))
        };
        if let Some(pack) = full {
            self.write_pack(pack)?;
        }
        Ok(true)
    }

    fn write_pack(&self, pack: PackBuilder) -> Result<()> {
        let (id, bytes, blobs) = pack.finish(self.repo.key());
        self.repo.backend().put(&pack_path(&id), &bytes)?;
        crate::util::failpoint("after-pack");
        self.repo.catalog().add_unindexed_pack(&IndexedPack {
            id,
            size: bytes.len() as u64,
            blobs: blobs.clone(),
        })?;
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.packs.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        for b in &blobs {
            st.pending.remove(&b.id);
        }
        Ok(())
    }

    /// Write the partly filled packs. Call before writing the index.
    pub fn flush(&self) -> Result<()> {
        let (data, trees) = {
            let mut st = self.lock();
            (std::mem::take(&mut st.data), std::mem::take(&mut st.trees))
        };
        for p in [data, trees] {
            if !p.is_empty() {
                self.write_pack(p)?;
            }
        }
        Ok(())
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            blobs_added: self.blobs.load(Ordering::Relaxed),
            bytes_added: self.bytes.load(Ordering::Relaxed),
            packs_written: self.packs.load(Ordering::Relaxed),
        }
    }
}
