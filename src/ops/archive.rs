//! The archiver: walks file trees in parallel and turns them into tree and data blobs.
//!
//! Each folder's entries are handled in parallel (rayon); each file is read in
//! segments whose chunks are hashed, sealed and packed in parallel, so one large
//! video keeps both cores busy too. A file whose size, mtime, ctime, inode and device
//! match the folder's file-cache row, and whose chunks are all still in the
//! repository, is not read again: an unchanged folder costs one `lstat` per entry and
//! two catalog queries. An entry that cannot be read is reported and left out.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;
use serde_bytes::ByteBuf;

use crate::catalog::{CachedFile, DirCache};
use crate::chunker::Chunker;
use crate::crypto::Kind;
use crate::error::Result;
use crate::id::{ChunkId, TreeId};
use crate::model::tree::{Node, NodeKind, Tree};
use crate::progress::Progress;
use crate::repo::{BlobWriter, Repository};
use crate::source::fs::{base_node, ctime_ns, mtime_ns};

#[derive(Default)]
pub struct Counters {
    pub files: AtomicU64,
    pub dirs: AtomicU64,
    pub bytes: AtomicU64,
    pub bytes_read: AtomicU64,
}

pub struct Archiver<'a> {
    repo: &'a Repository,
    writer: &'a BlobWriter<'a>,
    chunker: Chunker,
    progress: &'a dyn Progress,
    /// This run's id in the file cache, and the runs whose rows need no chunk check.
    run: i64,
    trusted: HashSet<i64>,
    pub counters: Counters,
    errors: Mutex<Vec<String>>,
}

impl<'a> Archiver<'a> {
    pub fn new(
        repo: &'a Repository,
        writer: &'a BlobWriter<'a>,
        chunker: Chunker,
        progress: &'a dyn Progress,
        run: i64,
        trusted: HashSet<i64>,
    ) -> Self {
        Archiver {
            repo,
            writer,
            chunker,
            progress,
            run,
            trusted,
            counters: Counters::default(),
            errors: Mutex::default(),
        }
    }

    fn error(&self, path: &Path, e: impl std::fmt::Display) {
        let msg = e.to_string();
        self.progress.entry_error(path, &msg);
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{}: {msg}", path.display()));
    }

    /// The chunker of file content.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The node for `path` (stat'ed as `meta`), named `name`; `None` if unreadable.
    /// A repository failure (not a source failure) is returned as an error.
    pub fn node(&self, path: &Path, name: &[u8], meta: &Metadata) -> Result<Option<Node>> {
        self.node_with(path, name, meta, None)
            .map(|r| r.map(|(n, _)| n))
    }

    /// Like `node`; `hit` is the file's chunk list when the file cache vouches for it.
    /// Also says what the file cache keeps for the entry.
    fn node_with(
        &self,
        path: &Path,
        name: &[u8],
        meta: &Metadata,
        hit: Option<&CachedFile>,
    ) -> Result<Option<(Node, Kept)>> {
        let mut kept = Kept::Nothing;
        let mut node = base_node(name, meta);
        match node.kind {
            NodeKind::Dir => match self.dir(path)? {
                Some(t) => {
                    node.subtree = Some(t);
                    self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                }
                None => return Ok(None),
            },
            NodeKind::File => {
                let (content, size) = match hit {
                    Some(c) => {
                        self.counted(path, c.size, false);
                        kept = Kept::Hit;
                        (c.content.clone(), c.size)
                    }
                    None => match self.file(path, meta)? {
                        Some((content, size, entry)) => {
                            kept = entry.map_or(Kept::Nothing, Kept::Read);
                            (content, size)
                        }
                        None => return Ok(None),
                    },
                };
                node.content = content;
                node.size = size;
            }
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(t) => node.target = Some(ByteBuf::from(t.as_os_str().as_bytes().to_vec())),
                Err(e) => {
                    self.error(path, e);
                    return Ok(None);
                }
            },
            _ => {}
        }
        Ok(Some((node, kept)))
    }

    /// Store a folder's tree; `None` if the folder cannot be listed.
    fn dir(&self, path: &Path) -> Result<Option<TreeId>> {
        let rd = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        let mut dirents: Vec<fs::DirEntry> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => dirents.push(e),
                Err(e) => self.error(path, e),
            }
        }
        let key = self.repo.key();
        let dir_key = key.derived_hash("file-cache dir", path.as_os_str().as_bytes());
        let row = self.repo.catalog().dir_cache(&dir_key)?;
        let trusted = row.run != 0 && self.trusted.contains(&row.run);
        let cached = row.files;
        // lstat everything, then find the files the cache vouches for.
        // DirEntry::metadata is an lstat relative to the open folder: no path walk.
        let entries: Vec<(OsString, PathBuf, std::io::Result<Metadata>, [u8; 16])> = dirents
            .into_par_iter()
            .map(|e| {
                let n = e.file_name();
                let p = path.join(&n);
                let m = e.metadata();
                let k: [u8; 16] = key.derived_hash("file-cache name", n.as_bytes())[..16]
                    .try_into()
                    .unwrap();
                (n, p, m, k)
            })
            .collect();
        let candidates: Vec<(usize, &CachedFile)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, (_, _, m, k))| {
                let m = m.as_ref().ok().filter(|m| m.is_file())?;
                cached
                    .get(k)
                    .filter(|c| c.same_stat(&stat_of(m)))
                    .map(|c| (i, c))
            })
            .collect();
        let lists: Vec<&[ChunkId]> = candidates
            .iter()
            .map(|(_, c)| c.content.as_slice())
            .collect();
        let valid = if trusted {
            vec![true; lists.len()]
        } else {
            self.repo.catalog().has_all_many(&lists)?
        };
        let mut hits: Vec<Option<&CachedFile>> = vec![None; entries.len()];
        for ((i, c), ok) in candidates.iter().zip(valid) {
            if ok {
                hits[*i] = Some(c);
            }
        }
        let results: Vec<Option<Keyed>> = entries
            .par_iter()
            .zip(hits.par_iter())
            .map(|((name, p, m, k), hit)| match m {
                Ok(m) => Ok(self
                    .node_with(p, name.as_bytes(), m, *hit)?
                    .map(|(n, c)| (n, c, *k))),
                Err(e) => {
                    self.error(p, e);
                    Ok(None)
                }
            })
            .collect::<Result<_>>()?;
        let mut fresh = DirCache::new();
        let mut hit_keys = Vec::new();
        let mut nodes = Vec::with_capacity(results.len());
        for (node, kept, k) in results.into_iter().flatten() {
            match kept {
                Kept::Hit => hit_keys.push(k),
                Kept::Read(e) => {
                    fresh.insert(k, e);
                }
                Kept::Nothing => {}
            }
            nodes.push(node);
        }
        // The new row is the hits' old entries plus the files read. Every cached
        // entry a hit and nothing read: the row is the old one (no copy, no compare).
        let unchanged = fresh.is_empty() && hit_keys.len() == cached.len();
        // Rewrite a changed row, and an unchanged one from an untrusted run, so that
        // it is trusted once this run completes.
        if !unchanged || (!trusted && !cached.is_empty()) {
            for k in hit_keys {
                if let Some(c) = cached.get(&k) {
                    fresh.insert(k, c.clone());
                }
            }
            if fresh != cached || !trusted {
                self.repo
                    .catalog()
                    .put_dir_cache(&dir_key, &fresh, self.run)?;
            }
        }
        self.store_tree(Tree::new(nodes)).map(Some)
    }

    /// Store a long stream's chunk ids as content-defined list blobs.
    pub fn store_lists(&self, ids: &[ChunkId]) -> Result<Vec<TreeId>> {
        crate::model::chunk_list::split(ids)
            .into_iter()
            .map(|l| {
                let bytes = crate::model::chunk_list::to_bytes(l);
                let id = self.repo.key().id_of(&bytes);
                self.writer.add(Kind::Tree, id, &bytes)?;
                Ok(TreeId(id))
            })
            .collect()
    }

    pub fn store_tree(&self, tree: Tree) -> Result<TreeId> {
        let bytes = tree.to_bytes();
        let id = self.repo.key().id_of(&bytes);
        self.writer.add(Kind::Tree, id, &bytes)?;
        Ok(TreeId(id))
    }

    /// Chunk and store a file; returns its chunk ids, the bytes read and the
    /// file-cache entry to keep (none if it changed while being read), or `None` if
    /// it cannot be read.
    fn file(&self, path: &Path, meta: &Metadata) -> Result<Option<FileRead>> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        let (content, size) = match self.chunk_stream(&self.chunker, f, Some(meta.len()))? {
            Ok(r) => r,
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        self.counted(path, size, true);
        // Cache only what was read from a file that did not change meanwhile.
        let before = stat_of(meta);
        let entry = fs::symlink_metadata(path)
            .ok()
            .map(|m| stat_of(&m))
            .filter(|after| after.same_stat(&before) && after.size == size)
            .map(|s| CachedFile {
                content: content.clone(),
                ..s
            });
        Ok(Some((content, size, entry)))
    }

    /// Chunk and store everything `reader` yields: its chunk ids and length. The outer
    /// error is the repository's; the inner one is the reader's.
    pub fn chunk_stream<R: std::io::Read>(
        &self,
        chunker: &Chunker,
        reader: R,
        size_hint: Option<u64>,
    ) -> Result<std::io::Result<(Vec<ChunkId>, u64)>> {
        let mut content = Vec::new();
        let mut size = 0u64;
        let mut batches = chunker.batches(reader, size_hint);
        loop {
            let batch = match batches.next_batch() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => return Ok(Err(e)),
            };
            let chunks: Vec<&[u8]> = batch.chunks().collect();
            let ids: Vec<ChunkId> = chunks
                .par_iter()
                .map(|c| {
                    let id = self.repo.key().id_of(c);
                    self.writer.add(Kind::Data, id, c)?;
                    Ok(ChunkId(id))
                })
                .collect::<Result<_>>()?;
            content.extend(ids);
            size += batch.data.len() as u64;
        }
        Ok(Ok((content, size)))
    }

    fn counted(&self, path: &Path, size: u64, read: bool) {
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(size, Ordering::Relaxed);
        if read {
            self.counters.bytes_read.fetch_add(size, Ordering::Relaxed);
        }
        self.progress.file_done(path, size);
    }
}

/// A node, the file-cache entry to keep for it, and its name key.
type Keyed = (Node, Kept, [u8; 16]);

/// What the file cache keeps of an entry: its old row (the file cache vouched for
/// it), a new one (the file was read and did not change meanwhile), or nothing.
enum Kept {
    Nothing,
    Hit,
    Read(CachedFile),
}
/// A file's chunk ids, the bytes read, and the file-cache entry to keep.
type FileRead = (Vec<ChunkId>, u64, Option<CachedFile>);

/// A file's cache-relevant metadata (no chunks yet).
fn stat_of(m: &Metadata) -> CachedFile {
    CachedFile {
        size: m.len(),
        mtime_ns: mtime_ns(m),
        ctime_ns: ctime_ns(m),
        inode: m.ino(),
        dev: m.dev(),
        content: Vec::new(),
    }
}
