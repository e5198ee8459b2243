//! The archiver: walks file trees in parallel and turns them into tree and data blobs.
//!
//! Each folder's entries are handled in parallel (rayon); each file is read in
//! segments whose chunks are hashed, sealed and packed in parallel, so one large
//! video keeps both cores busy too. A file whose size, mtime, ctime, inode and device
//! match the file cache, and whose chunks are all still in the repository, is not read
//! again. An entry that cannot be read is reported and left out; the rest goes on.

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;
use serde_bytes::ByteBuf;

use crate::catalog::CachedFile;
use crate::chunker::Chunker;
use crate::crypto::Kind;
use crate::error::Result;
use crate::id::{ChunkId, TreeId};
use crate::model::tree::{Node, NodeKind, Tree};
use crate::progress::Progress;
use crate::repo::{BlobWriter, Repository};
use crate::source::fs::{base_node, ctime_ns, mtime_ns};

const CACHE_BATCH: usize = 1000;

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
    pub counters: Counters,
    errors: Mutex<Vec<String>>,
    cache_rows: Mutex<Vec<([u8; 32], CachedFile)>>,
}

impl<'a> Archiver<'a> {
    pub fn new(
        repo: &'a Repository,
        writer: &'a BlobWriter<'a>,
        chunker: Chunker,
        progress: &'a dyn Progress,
    ) -> Self {
        Archiver {
            repo,
            writer,
            chunker,
            progress,
            counters: Counters::default(),
            errors: Mutex::default(),
            cache_rows: Mutex::default(),
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

    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The node for `path` (stat'ed as `meta`), named `name`; `None` if unreadable.
    /// A repository failure (not a source failure) is returned as an error.
    pub fn node(&self, path: &Path, name: &[u8], meta: &Metadata) -> Result<Option<Node>> {
        let mut node = base_node(name, meta);
        match node.kind {
            NodeKind::Dir => match self.dir(path)? {
                Some(t) => {
                    node.subtree = Some(t);
                    self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                }
                None => return Ok(None),
            },
            NodeKind::File => match self.file(path, meta)? {
                Some((content, size)) => {
                    node.content = content;
                    node.size = size;
                }
                None => return Ok(None),
            },
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(t) => node.target = Some(ByteBuf::from(t.as_os_str().as_bytes().to_vec())),
                Err(e) => {
                    self.error(path, e);
                    return Ok(None);
                }
            },
            _ => {}
        }
        Ok(Some(node))
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
        let mut names: Vec<OsString> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => names.push(e.file_name()),
                Err(e) => self.error(path, e),
            }
        }
        let nodes: Vec<Option<Node>> = names
            .par_iter()
            .map(|name| {
                let p = path.join(name);
                match fs::symlink_metadata(&p) {
                    Ok(m) => self.node(&p, name.as_bytes(), &m),
                    Err(e) => {
                        self.error(&p, e);
                        Ok(None)
                    }
                }
            })
            .collect::<Result<_>>()?;
        self.store_tree(Tree::new(nodes.into_iter().flatten().collect()))
            .map(Some)
    }

    pub fn store_tree(&self, tree: Tree) -> Result<TreeId> {
        let bytes = tree.to_bytes();
        let id = self.repo.key().id_of(&bytes);
        self.writer.add(Kind::Tree, id, &bytes)?;
        Ok(TreeId(id))
    }

    /// Chunk and store a file; returns its chunk ids and the bytes read, or `None`
    /// if it cannot be read.
    fn file(&self, path: &Path, meta: &Metadata) -> Result<Option<(Vec<ChunkId>, u64)>> {
        let key = self
            .repo
            .key()
            .derived_hash("file-cache path", path.as_os_str().as_bytes());
        let fresh = CachedFile {
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
            ctime_ns: ctime_ns(meta),
            inode: meta.ino(),
            dev: meta.dev(),
            content: Vec::new(),
        };
        if let Some(c) = self.repo.catalog().cached_file(&key)? {
            if (CachedFile {
                content: Vec::new(),
                ..c.clone()
            }) == fresh
                && self.repo.catalog().has_all(&c.content)?
            {
                self.counted(path, c.size, false);
                return Ok(Some((c.content, c.size)));
            }
        }
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        let mut content = Vec::new();
        let mut size = 0u64;
        let mut batches = self.chunker.batches(f, Some(meta.len()));
        loop {
            let batch = match batches.next_batch() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    self.error(path, e);
                    return Ok(None);
                }
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
        self.counted(path, size, true);
        // Cache only what was read from a file that did not change meanwhile.
        let unchanged = fs::symlink_metadata(path)
            .is_ok_and(|m| mtime_ns(&m) == fresh.mtime_ns && m.len() == size);
        if unchanged {
            self.cache(
                key,
                CachedFile {
                    content: content.clone(),
                    ..fresh
                },
            )?;
        }
        Ok(Some((content, size)))
    }

    fn counted(&self, path: &Path, size: u64, read: bool) {
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(size, Ordering::Relaxed);
        if read {
            self.counters.bytes_read.fetch_add(size, Ordering::Relaxed);
        }
        self.progress.file_done(path, size);
    }

    fn cache(&self, key: [u8; 32], row: CachedFile) -> Result<()> {
        let batch = {
            let mut rows = self.cache_rows.lock().unwrap_or_else(|p| p.into_inner());
            rows.push((key, row));
            if rows.len() < CACHE_BATCH {
                return Ok(());
            }
            std::mem::take(&mut *rows)
        };
        self.repo.catalog().put_cached_files(&batch)
    }

    /// Write the remaining file-cache rows (after the packs are durable).
    pub fn flush_cache(&self) -> Result<()> {
        let rows = std::mem::take(&mut *self.cache_rows.lock().unwrap_or_else(|p| p.into_inner()));
        self.repo.catalog().put_cached_files(&rows)
    }
}
