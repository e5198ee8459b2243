//! `export SNAPSHOT --tar FILE`: a snapshot's files as a gzip-compressed tar that
//! stock `tar -xzf` extracts (the seed's `files_backup_*.tar.gz`): folders, files,
//! symlinks and fifos with their modes, owners and mtimes (whole seconds, as tar
//! keeps them); long and non-UTF-8 names in GNU form. File content streams chunk by
//! chunk (each checked as on restore), so memory stays small for any file size.
//!
//! Layout: a snapshot of one folder holds that folder's contents at the top
//! (`./`, `exams/…`), as the seed's `tar czf … -C uploads .` did, so its restore
//! line `tar -xzf FILE -C $UPLOADS_DIR` works unchanged; a snapshot of several
//! sources holds one top-level entry per source (`uploads/…`, `docs/…`).

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ChunkId, TreeId};
use crate::model::snapshot::SnapshotEntry;
use crate::model::tree::{Node, NodeKind};
use crate::repo::Repository;

#[derive(Debug, Default, serde::Serialize)]
pub struct TarReport {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Write `snap`'s file trees (not its database dumps) as tar.gz to `out`.
pub fn write(repo: &Repository, snap: &SnapshotEntry, out: impl Write) -> Result<TarReport> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut r = TarReport::default();
    let root = repo.load_tree(snap.snapshot.tree)?;
    match &root.nodes[..] {
        [only] if only.kind == NodeKind::Dir => {
            entry(repo, only, b".", &mut tar, &mut r)?;
            // Members below it without `./`: the tar crate drops it from short
            // names but not from GNU long ones, and GNU tar must see one spelling
            // to restore folder mtimes.
            if let Some(t) = only.subtree {
                tree(repo, t, &[], &mut tar, &mut r)?;
            }
        }
        _ => tree(repo, snap.snapshot.tree, &[], &mut tar, &mut r)?,
    }
    let gz = tar
        .into_inner()
        .map_err(|e| Error::io("finishing the tar archive", e))?;
    gz.finish()
        .map_err(|e| Error::io("finishing the gzip stream", e))?
        .flush()
        .map_err(|e| Error::io("writing the archive", e))?;
    Ok(r)
}

/// Write one entry of a snapshot (`dump SNAPSHOT PATH` of a folder) as a plain
/// tar to `out`: the folder under its own name, with everything below it.
pub fn write_entry(repo: &Repository, n: &Node, name: &[u8], out: impl Write) -> Result<TarReport> {
    let mut tar = tar::Builder::new(out);
    let mut r = TarReport::default();
    entry(repo, n, name, &mut tar, &mut r)?;
    if let (NodeKind::Dir, Some(t)) = (n.kind, n.subtree) {
        tree(repo, t, name, &mut tar, &mut r)?;
    }
    tar.into_inner()
        .map_err(|e| Error::io("finishing the tar archive", e))?
        .flush()
        .map_err(|e| Error::io("writing the archive", e))?;
    Ok(r)
}

fn tree<W: Write>(
    repo: &Repository,
    id: TreeId,
    dir: &[u8],
    tar: &mut tar::Builder<W>,
    r: &mut TarReport,
) -> Result<()> {
    for n in &repo.load_tree(id)?.nodes {
        let mut path = dir.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&n.name);
        entry(repo, n, &path, tar, r)?;
        if let (NodeKind::Dir, Some(t)) = (n.kind, n.subtree) {
            if path.iter().filter(|&&b| b == b'/').count() >= crate::model::tree::MAX_DEPTH {
                return Err(Error::corrupt(
                    format!("tree {}", t.short()),
                    crate::model::tree::too_deep("a folder"),
                ));
            }
            tree(repo, t, &path, tar, r)?;
        }
    }
    Ok(())
}

fn entry<W: Write>(
    repo: &Repository,
    n: &Node,
    path: &[u8],
    tar: &mut tar::Builder<W>,
    r: &mut TarReport,
) -> Result<()> {
    // The folder itself is `./`, as tar writes it.
    let path = if path == b"." { b"./" } else { path };
    let name = std::ffi::OsStr::from_bytes(path);
    let mut h = tar::Header::new_gnu();
    h.set_mode(n.mode);
    h.set_uid(n.uid as u64);
    h.set_gid(n.gid as u64);
    h.set_mtime(n.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
    let io = |e| Error::io(format!("adding {} to the tar", name.to_string_lossy()), e);
    r.entries += 1;
    match n.kind {
        NodeKind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, name, std::io::empty()).map_err(io)
        }
        NodeKind::File => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(n.size);
            let content = repo.node_content(n)?;
            let reader = Chunks {
                repo,
                ids: &content,
                next: 0,
                buf: Vec::new(),
                pos: 0,
            };
            r.files += 1;
            r.bytes += n.size;
            tar.append_data(&mut h, name, reader).map_err(io)
        }
        NodeKind::Symlink => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            let target = n.target.as_deref().map(|t| t.as_ref()).unwrap_or(&[][..]);
            tar.append_link(&mut h, name, std::ffi::OsStr::from_bytes(target))
                .map_err(io)
        }
        NodeKind::Fifo => {
            h.set_entry_type(tar::EntryType::Fifo);
            h.set_size(0);
            tar.append_data(&mut h, name, std::io::empty()).map_err(io)
        }
        // Sockets and device nodes are not backed-up data; tar -x could not make
        // them without root anyway.
        _ => {
            r.entries -= 1;
            Ok(())
        }
    }
}

/// A file's content, one checked chunk at a time.
struct Chunks<'a> {
    repo: &'a Repository,
    ids: &'a [ChunkId],
    next: usize,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(id) = self.ids.get(self.next) else {
                return Ok(0);
            };
            self.next += 1;
            self.buf = self
                .repo
                .read_blob(Kind::Data, (*id).into())
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.pos = 0;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
