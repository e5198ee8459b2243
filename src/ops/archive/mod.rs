//! The archiver: walks file trees in parallel and turns them into tree and data blobs.
//!
//! Each folder's entries are handled in parallel (rayon); each file is read in
//! segments whose chunks are hashed, sealed and packed in parallel, so one large
//! video keeps both cores busy too. A file whose size, mtime, ctime, inode and device
//! match the folder's file-cache row, and whose chunks are all still in the
//! repository, is not read again: an unchanged folder costs one `lstat` per entry and
//! two catalog queries. An entry that cannot be read is reported and left out.

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
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
use crate::source::exclude::{self, Exclusions, Why};
use crate::source::fs::{base_node, Stat};
use rustix::fs::{AtFlags, Mode, OFlags};
pub use store::{RepoStore, Store};

mod store;
#[cfg(test)]
mod tests;

#[derive(Default)]
pub struct Counters {
    pub files: AtomicU64,
    pub dirs: AtomicU64,
    pub bytes: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Entries the exclusion rules left out.
    pub excluded: AtomicU64,
}

/// How many left-out entries are named (in a dry run's report); the rest are counted.
pub const EXCLUDED_NAMED: usize = 1000;

pub struct Archiver<'a> {
    store: &'a dyn Store,
    chunker: Chunker,
    progress: &'a dyn Progress,
    /// This run's id in the file cache, and the runs whose rows need no chunk check.
    run: i64,
    trusted: HashSet<i64>,
    pub counters: Counters,
    errors: Mutex<Vec<String>>,
    exclusions: Exclusions,
    /// Leave the file cache as it is (a dry run stores nothing).
    dry_run: bool,
    excluded: Mutex<Vec<(String, Why)>>,
}

impl<'a> Archiver<'a> {
    pub fn new(
        store: &'a dyn Store,
        chunker: Chunker,
        progress: &'a dyn Progress,
        run: i64,
        trusted: HashSet<i64>,
    ) -> Self {
        Archiver {
            store,
            chunker,
            progress,
            run,
            trusted,
            counters: Counters::default(),
            errors: Mutex::default(),
            exclusions: Exclusions::default(),
            dry_run: false,
            excluded: Mutex::default(),
        }
    }

    /// Leave out what `exclusions` says.
    pub fn excluding(mut self, exclusions: Exclusions) -> Self {
        self.exclusions = exclusions;
        self
    }

    /// Keep the file cache as it is: the writer of a dry run stores nothing, so
    /// no cache row may vouch for what it "stored".
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// The first `EXCLUDED_NAMED` entries left out, and why.
    pub fn take_excluded(&self) -> Vec<(String, Why)> {
        std::mem::take(&mut *self.excluded.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn exclude(&self, path: &Path, why: Why) {
        tracing::debug!("left out {}: {}", path.display(), why.as_str());
        self.counters.excluded.fetch_add(1, Ordering::Relaxed);
        let mut list = self.excluded.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() < EXCLUDED_NAMED {
            list.push((path.display().to_string(), why));
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

    /// The hard-link group of a file with several names: a keyed hash of its
    /// device and inode (never 0), the same in every snapshot while they last.
    fn link_group(&self, st: &Stat) -> u64 {
        let mut at = [0u8; 16];
        at[..8].copy_from_slice(&st.dev.to_le_bytes());
        at[8..].copy_from_slice(&st.ino.to_le_bytes());
        let h = self.store.derived_hash("hard link", &at);
        u64::from_le_bytes(h[..8].try_into().expect("8 bytes")) | 1
    }

    /// The chunker of file content.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The node for the source `path` (stat'ed as `st`), named `name`; `None` if
    /// unreadable. A repository failure (not a source failure) is returned as an
    /// error. The source's own path is the operator's; everything below it is
    /// reached relative to open folders (`At`).
    pub fn node(&self, path: &Path, name: &[u8], st: &Stat) -> Result<Option<Node>> {
        self.node_with(At::Path, path, name, st, None)
            .map(|r| r.map(|(n, _)| n))
    }

    /// Like `node`; `hit` is the file's chunk list when the file cache vouches for it.
    /// Also says what the file cache keeps for the entry.
    fn node_with(
        &self,
        at: At<'_>,
        path: &Path,
        name: &[u8],
        st: &Stat,
        hit: Option<&CachedFile>,
    ) -> Result<Option<(Node, Kept)>> {
        let mut kept = Kept::Nothing;
        let mut node = base_node(name, st);
        match node.kind {
            NodeKind::Dir => match self.dir(at, path, name, st)? {
                Some(t) => {
                    node.subtree = Some(t);
                    self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                }
                None => return Ok(None),
            },
            NodeKind::File => {
                let (content, size) = match hit {
                    Some(c) => {
                        self.progress.bytes_done(c.size);
                        self.counted(path, c.size, false);
                        kept = Kept::Hit;
                        (c.content.clone(), c.size)
                    }
                    None => match self.file(at, path, name, st)? {
                        Some((content, size, entry)) => {
                            kept = entry.map_or(Kept::Nothing, Kept::Read);
                            (content, size)
                        }
                        None => return Ok(None),
                    },
                };
                node.content = content;
                node.size = size;
                if st.nlink > 1 {
                    node.link = self.link_group(st);
                }
            }
            NodeKind::Symlink => match at.read_link(path, name) {
                Ok(t) => node.target = Some(ByteBuf::from(t)),
                Err(e) => {
                    self.error(path, e);
                    return Ok(None);
                }
            },
            _ => {}
        }
        Ok(Some((node, kept)))
    }

    /// Store a folder's tree; `None` if the folder cannot be listed. The folder is
    /// opened without following a link and must be the one the walk saw (`st`);
    /// its entries are listed, stat'ed and opened relative to it.
    fn dir(&self, at: At<'_>, path: &Path, name: &[u8], st: &Stat) -> Result<Option<TreeId>> {
        if at.depth() >= crate::model::tree::MAX_DEPTH {
            self.error(path, crate::model::tree::too_deep("this folder"));
            return Ok(None);
        }
        // A mount point below a source, with -x: its folder is kept, empty (as
        // restic does), and not even opened (a dead network mount would hang).
        if let At::Dir(_, _, parent) = at {
            if self.exclusions.other_file_system(st, parent) {
                self.exclude(path, Why::OtherFileSystem);
                return self.store_tree(Tree::new(Vec::new())).map(Some);
            }
        }
        crate::util::failpoint("archive-before-open");
        let fd = match at.open(path, name, st, OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        let mut names: Vec<Vec<u8>> = Vec::new();
        match rustix::fs::Dir::read_from(&fd) {
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => {
                            let n = e.file_name().to_bytes();
                            if n != b"." && n != b".." {
                                names.push(n.to_vec());
                            }
                        }
                        Err(e) => {
                            self.error(path, std::io::Error::from(e));
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                self.error(path, std::io::Error::from(e));
                return Ok(None);
            }
        }
        if self.exclusions.caches && is_cache_dir(&fd, &names) {
            // A tagged cache folder keeps its tag, so that it is still known as one.
            names.retain(|n| n.as_slice() == exclude::CACHEDIR_TAG);
            self.exclude(path, Why::Cache);
        }
        let key = self.store;
        let dir_key = key.derived_hash("file-cache dir", path.as_os_str().as_bytes());
        let row = self.store.dir_cache(&dir_key)?;
        let trusted = row.run != 0 && self.trusted.contains(&row.run);
        let cached = row.files;
        // lstat everything relative to the open folder, then find the files the
        // cache vouches for.
        let entries: Vec<Listed> = names
            .into_par_iter()
            .map(|n| {
                let p = path.join(std::ffi::OsStr::from_bytes(&n));
                let m = rustix::fs::statat(&fd, n.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                    .map(|s| Stat::from(&s))
                    .map_err(std::io::Error::from);
                let k: [u8; 16] = key.derived_hash("file-cache name", &n)[..16]
                    .try_into()
                    .unwrap();
                (n, p, m, k)
            })
            .filter(|(n, p, m, _)| match m {
                Ok(m) => match self.exclusions.excluded(p, n, m) {
                    Some(why) => {
                        self.exclude(p, why);
                        false
                    }
                    None => true,
                },
                Err(_) => true,
            })
            .collect();
        let candidates: Vec<(usize, &CachedFile)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, (_, _, m, k))| {
                let m = m.as_ref().ok().filter(|m| m.kind == NodeKind::File)?;
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
            self.store.has_all_many(&lists)?
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
                    .node_with(
                        At::Dir(fd.as_fd(), at.depth() + 1, st.dev),
                        p,
                        name,
                        m,
                        *hit,
                    )?
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
            if (fresh != cached || !trusted) && !self.dry_run {
                self.store.put_dir_cache(&dir_key, &fresh, self.run)?;
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
                let id = self.store.id_of(&bytes);
                self.store.add(Kind::Tree, id, &bytes)?;
                Ok(TreeId(id))
            })
            .collect()
    }

    pub fn store_tree(&self, tree: Tree) -> Result<TreeId> {
        let bytes = tree.to_bytes();
        let id = self.store.id_of(&bytes);
        self.store.add(Kind::Tree, id, &bytes)?;
        Ok(TreeId(id))
    }

    /// Chunk and store a file; returns its chunk ids, the bytes read and the
    /// file-cache entry to keep (none if it changed while being read), or `None` if
    /// it cannot be read. It is opened without following a link, and what was
    /// opened must be the file the walk saw: a file swapped for a link (or another
    /// file) in between is reported, never stored under the first one's name.
    fn file(&self, at: At<'_>, path: &Path, name: &[u8], st: &Stat) -> Result<Option<FileRead>> {
        crate::util::failpoint("archive-before-open");
        // O_NONBLOCK: a FIFO swapped in does not hang the run (it fails the check).
        let f = match at.open(path, name, st, OFlags::NONBLOCK) {
            Ok(fd) => File::from(fd),
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        // What was stat'ed, no more: a file growing while it is read (or a sparse
        // one made enormous) cannot keep a night's run going; it is read again
        // next time, since its cache entry is kept only when it did not change.
        let (content, size) = match self.chunk_stream(
            &self.chunker,
            Counting(std::io::Read::take(&f, st.size), self.progress),
            Some(st.size),
        )? {
            Ok(r) => r,
            Err(e) => {
                self.error(path, e);
                return Ok(None);
            }
        };
        self.counted(path, size, true);
        // Cache only what was read from a file that did not change meanwhile.
        let before = stat_of(st);
        let after = rustix::fs::fstat(&f).ok().map(|m| Stat::from(&m));
        // Its content changed while it was read (rewritten in place): what was
        // saved may mix old and new bytes. Said (exit 3), and read again next time.
        if after
            .as_ref()
            .is_some_and(|a| a.size != st.size || a.mtime_ns != st.mtime_ns || size != st.size)
        {
            self.error(
                path,
                "changed while it was read: saved as read (it may mix old and new content); the next snapshot saves it again",
            );
        }
        let entry = after
            .map(|a| stat_of(&a))
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
                    let id = self.store.id_of(c);
                    self.store.add(Kind::Data, id, c)?;
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

/// A reader that reports what it reads to the progress as it goes, so that
/// progress moves within a large file.
struct Counting<'p, R>(R, &'p dyn Progress);

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.bytes_done(n as u64);
        Ok(n)
    }
}

/// An entry of a folder: its name, path, metadata (or why not) and name key.
type Listed = (Vec<u8>, PathBuf, std::io::Result<Stat>, [u8; 16]);

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
fn stat_of(m: &Stat) -> CachedFile {
    CachedFile {
        size: m.size,
        mtime_ns: m.mtime_ns,
        ctime_ns: m.ctime_ns,
        inode: m.ino,
        dev: m.dev,
        content: Vec::new(),
    }
}

/// Where an entry is reached from: the operator's path (a source's root), or a
/// folder the walk opened (everything below a source).
#[derive(Clone, Copy)]
enum At<'a> {
    Path,
    /// A folder, how deep it is below the source, and its device.
    Dir(BorrowedFd<'a>, usize, u64),
}

impl At<'_> {
    fn depth(&self) -> usize {
        match self {
            At::Path => 0,
            At::Dir(_, d, _) => *d,
        }
    }

    /// Open the entry without following a link (`O_NOFOLLOW`) and check that it is
    /// the one stat'ed as `st` (device, inode, kind).
    fn open(&self, path: &Path, name: &[u8], st: &Stat, extra: OFlags) -> std::io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra;
        let fd = match self {
            At::Path => rustix::fs::open(path, flags, Mode::empty()),
            At::Dir(d, _, _) => rustix::fs::openat(d, name, flags, Mode::empty()),
        }
        .map_err(|e| match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => swapped(),
            e => e.into(),
        })?;
        let now = Stat::from(&rustix::fs::fstat(&fd)?);
        if !now.same_entry(st) {
            return Err(swapped());
        }
        Ok(fd)
    }

    fn read_link(&self, path: &Path, name: &[u8]) -> std::io::Result<Vec<u8>> {
        let t = match self {
            At::Path => rustix::fs::readlink(path, Vec::new()),
            At::Dir(d, _, _) => rustix::fs::readlinkat(d, name, Vec::new()),
        }
        // EINVAL: no longer a link (swapped for a file since it was listed).
        .map_err(|e| {
            if e == rustix::io::Errno::INVAL {
                swapped()
            } else {
                e.into()
            }
        })?;
        Ok(t.into_bytes())
    }
}

/// Whether the open folder `fd`, listing `names`, holds a real `CACHEDIR.TAG`
/// (a regular file, not a link, starting with the signature).
fn is_cache_dir(fd: &OwnedFd, names: &[Vec<u8>]) -> bool {
    if !names.iter().any(|n| n.as_slice() == exclude::CACHEDIR_TAG) {
        return false;
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let Ok(tag) = rustix::fs::openat(fd, exclude::CACHEDIR_TAG, flags, Mode::empty()) else {
        return false;
    };
    let regular = rustix::fs::fstat(&tag).is_ok_and(|s| Stat::from(&s).kind == NodeKind::File);
    let mut head = Vec::with_capacity(exclude::CACHEDIR_SIGNATURE.len());
    let read = std::io::Read::read_to_end(
        &mut std::io::Read::take(File::from(tag), exclude::CACHEDIR_SIGNATURE.len() as u64),
        &mut head,
    );
    regular && read.is_ok() && exclude::is_cachedir_tag(&head)
}

fn swapped() -> std::io::Error {
    std::io::Error::other("it was replaced (by a link or another file) while being read: skipped")
}
