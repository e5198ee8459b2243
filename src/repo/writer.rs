//! Adding blobs: dedup against the catalog, seal, gather into packs, write packs.
//!
//! Safe to call from many threads. A blob (kind and id: a data chunk and a tree
//! with the same id are two blobs) is always either in the `pending` set
//! (sealed, in a pack not yet durable) or in the catalog (in a durable pack), so two
//! threads never store the same chunk twice. Full packs go to one writer thread
//! through a short queue (two packs), so hashing, compressing and encrypting go on
//! while a pack is written and fsynced; memory stays bounded by the queue. Catalog
//! rows for a pack are committed only after the pack file is durable (DESIGN.md §3).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::Repository;
use crate::catalog::Catalog;
use crate::codec;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId};
use crate::model::index::IndexedPack;
use crate::pack::{BlobKey, PackBuilder, PackEntry};
use crate::storage::{pack_path, Backend};

pub use crate::pack::PACK_TARGET;
/// Finished packs waiting for the writer thread.
const QUEUE: usize = 2;

#[derive(Default)]
struct State {
    data: PackBuilder,
    trees: PackBuilder,
    pending: HashSet<BlobKey>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    blobs: AtomicU64,
    bytes: AtomicU64,
    packs: AtomicU64,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub blobs_added: u64,
    /// Bytes of new pack files (sealed, after dedup and compression).
    pub bytes_added: u64,
    pub packs_written: u64,
}

type Finished = (PackId, Vec<u8>, Vec<PackEntry>);

pub struct BlobWriter<'r> {
    repo: &'r Repository,
    shared: Arc<Shared>,
    queue: Mutex<Option<SyncSender<Finished>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Count what would be stored, store nothing (`snapshot --dry-run`).
    dry: bool,
}

impl<'r> BlobWriter<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        let shared = Arc::new(Shared::default());
        let (tx, rx) = sync_channel::<Finished>(QUEUE);
        let (backend, catalog, sh) = (repo.backend_arc(), repo.catalog_arc(), shared.clone());
        let thread = std::thread::spawn(move || {
            for pack in rx {
                if sh.failed.load(Ordering::Relaxed) {
                    continue; // drain: the run is failing anyway
                }
                if let Err(e) = write_pack(backend.as_ref(), &catalog, &sh, pack) {
                    *sh.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    sh.failed.store(true, Ordering::Relaxed);
                }
            }
        });
        BlobWriter {
            repo,
            shared,
            queue: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            dry: false,
        }
    }

    /// A writer that seals every new blob to count its size and stores nothing:
    /// its stats say what a run would add.
    pub fn dry_run(repo: &'r Repository) -> Self {
        BlobWriter {
            repo,
            shared: Arc::new(Shared::default()),
            queue: Mutex::new(None),
            thread: Mutex::new(None),
            dry: true,
        }
    }

    /// Store a blob unless the repository has it. Returns true when it was new.
    pub fn add(&self, kind: Kind, id: [u8; 32], plain: &[u8]) -> Result<bool> {
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(Error::Failed("writing packs failed".into()));
        }
        self.repo.check_lock()?;
        if self.shared.lock().pending.contains(&(kind, id)) {
            return Ok(false);
        }
        if let Some(pack) = self.repo.catalog().live_pack_of(kind, &BlobId(id))? {
            self.repo.note_reused(pack);
            return Ok(false);
        }
        let sealed = codec::encode(self.repo.key(), kind, &id, plain);
        if self.dry {
            if self.shared.lock().pending.insert((kind, id)) {
                self.shared.blobs.fetch_add(1, Ordering::Relaxed);
                (self.shared.bytes).fetch_add(sealed.len() as u64, Ordering::Relaxed);
            }
            return Ok(true);
        }
        let full = {
            let mut st = self.shared.lock();
            if !st.pending.insert((kind, id)) {
                return Ok(false);
            }
            let builder = if kind == Kind::Tree {
                &mut st.trees
            } else {
                &mut st.data
            };
            builder.add(kind, id, &sealed, plain.len() as u32);
            self.shared.blobs.fetch_add(1, Ordering::Relaxed);
            (builder.len() >= PACK_TARGET).then(|| std::mem::take(builder))
        };
        if let Some(pack) = full {
            self.send(pack)?;
        }
        Ok(true)
    }

    fn send(&self, pack: PackBuilder) -> Result<()> {
        let finished = pack.finish(self.repo.key());
        let tx = self.queue.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match tx {
            Some(tx) if tx.send(finished).is_ok() => Ok(()),
            _ => Err(Error::Failed("the pack writer has stopped".into())),
        }
    }

    /// Write the partly filled packs and wait until every pack is durable. Call
    /// before writing the index; after a failed run, call it to get the first
    /// storage error (a full disk, say) rather than its echo.
    pub fn flush(&self) -> Result<()> {
        if self.dry {
            return Ok(());
        }
        let (data, trees) = {
            let mut st = self.shared.lock();
            (std::mem::take(&mut st.data), std::mem::take(&mut st.trees))
        };
        for p in [data, trees] {
            if !p.is_empty() {
                self.send(p)?;
            }
        }
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        match self
            .shared
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            Some(e) => Err(e),
            None if self.shared.failed.load(Ordering::Relaxed) => {
                Err(Error::Failed("writing packs failed".into()))
            }
            None => Ok(()),
        }
    }

    /// `flush` after building with this writer, then the first failure: the
    /// writer's own (a full disk, say) explains a failed build best.
    pub fn flush_after<T>(&self, built: Result<T>) -> Result<T> {
        self.flush().and(built)
    }

    pub fn stats(&self) -> WriteStats {
        WriteStats {
            blobs_added: self.shared.blobs.load(Ordering::Relaxed),
            bytes_added: self.shared.bytes.load(Ordering::Relaxed),
            packs_written: self.shared.packs.load(Ordering::Relaxed),
        }
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn write_pack(
    backend: &dyn Backend,
    catalog: &Catalog,
    sh: &Shared,
    (id, bytes, blobs): Finished,
) -> Result<()> {
    backend.put(&pack_path(&id), &bytes)?;
    crate::util::failpoint("after-pack");
    catalog.add_unindexed_pack(&IndexedPack {
        id,
        size: bytes.len() as u64,
        blobs: blobs.clone(),
    })?;
    sh.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    sh.packs.fetch_add(1, Ordering::Relaxed);
    let mut st = sh.lock();
    for b in &blobs {
        st.pending.remove(&b.key());
    }
    Ok(())
}
