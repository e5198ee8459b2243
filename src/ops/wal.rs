//! `wal-push` and `wal-fetch`: PostgreSQL's `archive_command` and
//! `restore_command` (docs/decisions/008-wal-archiving.md).
//!
//! A push returns only once the file's chunks, their index object and its
//! record are durable: PostgreSQL recycles the segment as soon as it is told
//! it is archived. A second push of a name succeeds when the bytes are the
//! same and fails when they differ (never overwriting what was archived).

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use crate::chunker::{Chunker, FILE_CHUNKS};
use crate::error::{Error, Result};
use crate::model::tree::Tree;
use crate::model::wal::{kind_of, WalFile, WalRecord};
use crate::ops::archive::{Archiver, RepoStore};
use crate::progress::NoProgress;
use crate::repo::{BlobWriter, Repository};

/// What a push did.
#[derive(Debug, serde::Serialize)]
pub struct Pushed {
    pub name: String,
    pub size: u64,
    /// The same bytes were archived before: nothing was written.
    pub already: bool,
    /// Bytes added to the repository (after dedup and compression).
    pub bytes_added: u64,
}

/// The file name of `path`, when PostgreSQL archives such names.
fn wal_name(path: &Path) -> Result<String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if kind_of(name).is_none() {
        return Err(Error::Usage(format!(
            "{}: not a file PostgreSQL archives (a WAL segment, NNNNNNNN.history or a .backup label): set archive_command = 'hcbackup wal-push %p'",
            path.display()
        )));
    }
    Ok(name.to_string())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: blake3::Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// `path` opened for reading: a regular file (a FIFO would hang the push
/// while it holds the lock; PostgreSQL archives only files).
fn open(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io_path("reading", path, e))?;
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        Ok(_) => Err(Error::Usage(format!(
            "{}: not a regular file; PostgreSQL archives only files",
            path.display()
        ))),
        Err(e) => Err(Error::io_path("reading", path, e)),
    }
}

/// The BLAKE3 (hex) and size of the file at `path`.
fn digest(path: &Path) -> Result<(String, u64)> {
    let mut first = Hashing {
        inner: open(path)?,
        hash: blake3::Hasher::new(),
    };
    let size = std::io::copy(&mut first, &mut std::io::sink())
        .map_err(|e| Error::io_path("reading", path, e))?;
    Ok((first.hash.finalize().to_hex().to_string(), size))
}

/// Archive the file at `path` (PostgreSQL's `%p`).
pub fn push(repo: &Repository, path: &Path) -> Result<Pushed> {
    let name = wal_name(path)?;
    let _lock = repo.lock_to_write("wal-push")?;
    let (digest, size) = digest(path)?;
    let pushed = |already, bytes_added| Pushed {
        name: name.clone(),
        size,
        already,
        bytes_added,
    };
    if let Some(had) = repo.wal(&name)? {
        same_or_refused(&had, &digest, size)?;
        // Archived before: make sure its data is still all there (a pack
        // lost since would make every later fetch fail).
        if !data_present(repo, had.tree)? {
            repo.forget_missing_packs(&repo.recover_packs()?)?;
            let (tree, added) = store(repo, path, &name, &digest, size)?;
            if tree != had.tree || !data_present(repo, tree)? {
                return Err(lost(&name));
            }
            return Ok(pushed(true, added));
        }
        return Ok(pushed(true, 0));
    }
    let (mut tree, mut added) = store(repo, path, &name, &digest, size)?;
    // Dedup trusts the catalog: a chunk whose pack is gone since would be
    // "stored" in nothing. Such packs are forgotten and the data stored again.
    if !data_present(repo, tree)? {
        repo.forget_missing_packs(&repo.recover_packs()?)?;
        (tree, added) = store(repo, path, &name, &digest, size)?;
        if !data_present(repo, tree)? {
            return Err(lost(&name));
        }
    }
    crate::util::failpoint("wal-before-record");
    let record = WalRecord {
        version: 1,
        name: name.clone(),
        size,
        blake3: digest.clone(),
        time: crate::util::rfc3339(crate::util::now()),
        host: crate::util::hostname(),
        tree,
    };
    if !repo.put_wal(&record)? {
        // Another push of this name won the race: ours is archived only if
        // it is the same file.
        let had = repo.wal(&name)?.ok_or_else(|| {
            Error::Failed(format!("{name}: its record vanished while it was written"))
        })?;
        same_or_refused(&had, &digest, size)?;
        return Ok(pushed(true, added));
    }
    Ok(pushed(false, added))
}

fn lost(name: &str) -> Error {
    Error::Failed(format!(
        "{name}: its data is still not all in the repository after storing it again (packs are vanishing): not archived; run `hcbackup verify`"
    ))
}

/// Ok when `had` records these bytes; the refusal otherwise.
fn same_or_refused(had: &WalRecord, digest: &str, size: u64) -> Result<()> {
    if had.blake3 == digest && had.size == size {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "{} was archived before with other content ({} bytes then, {size} now): not replaced; if this server was restored or promoted, check its timeline, and never point two clusters at one repository's WAL",
        had.name, had.size
    )))
}

/// Store the file's bytes (checked against `digest`) as a tree of one node;
/// packs and index object durable. The tree's id and the bytes added.
fn store(
    repo: &Repository,
    path: &Path,
    name: &str,
    digest: &str,
    size: u64,
) -> Result<(crate::id::TreeId, u64)> {
    let writer = BlobWriter::new(repo);
    let store = RepoStore {
        repo,
        writer: &writer,
    };
    let chunker = Chunker::new(FILE_CHUNKS, repo.key().gear_table());
    let arch = Archiver::new(&store, chunker, &NoProgress, 0, HashSet::new()).dry_run();
    let built = (|| -> Result<_> {
        let mut second = Hashing {
            inner: open(path)?,
            hash: blake3::Hasher::new(),
        };
        let (content, read) = arch
            .chunk_stream(arch.chunker(), &mut second, Some(size))?
            .map_err(|e| Error::io_path("reading", path, e))?;
        if read != size || second.hash.finalize().to_hex().as_str() != digest {
            return Err(Error::Failed(format!(
                "{} changed while it was being archived: not archived (PostgreSQL tries again)",
                path.display()
            )));
        }
        let lists = arch.store_lists(&content)?;
        // The same bytes give the same tree (no time, no owner in it): stored
        // again after a loss, it is the tree the record names.
        let mut node = super::database::stream_node(name, lists, size);
        (node.mtime_ns, node.uid, node.gid) = (0, 0, 0);
        arch.store_tree(Tree::new(vec![node]))
    })();
    let tree = writer.flush_after(built)?;
    repo.write_index()?;
    Ok((tree, writer.stats().bytes_added))
}

/// Whether every pack holding `tree` and the chunks it lists is in the
/// storage now (a stat each; a segment's data sits in a few packs).
fn data_present(repo: &Repository, tree: crate::id::TreeId) -> Result<bool> {
    use crate::crypto::Kind;
    use crate::id::BlobId;
    let mut packs = HashSet::new();
    let mut blobs: Vec<(Kind, BlobId)> = vec![(Kind::Tree, BlobId(tree.0))];
    match repo.load_tree(tree) {
        Ok(t) => {
            for n in &t.nodes {
                blobs.extend(n.lists.iter().map(|l| (Kind::Tree, BlobId(l.0))));
                match repo.node_content(n) {
                    Ok(ids) => blobs.extend(ids.iter().map(|c| (Kind::Data, BlobId(c.0)))),
                    Err(Error::Missing { .. } | Error::Corrupt { .. }) => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
        }
        Err(Error::Missing { .. } | Error::Corrupt { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    for (kind, id) in blobs {
        match repo.catalog().lookup(kind, &id)? {
            Some(loc) => {
                packs.insert(loc.pack);
            }
            None => return Ok(false),
        }
    }
    for p in packs {
        match repo.backend().stat(&crate::storage::pack_path(&p)) {
            Ok(_) => {}
            Err(crate::storage::StorageError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// What a fetch found.
pub enum Fetched {
    /// Written to the destination: this many bytes.
    Written(u64),
    /// This copy never archived that name.
    NotArchived,
}

/// Bring back the file `name` (PostgreSQL's `%f`) to `dest` (`%p`), checked
/// chunk by chunk and whole against the BLAKE3 recorded at push time.
/// `source`: the repository as `--repo` names it (the spool of segments
/// fetched ahead serves only the same one).
pub fn fetch(repo: &Repository, name: &str, dest: &Path, source: &str) -> Result<Fetched> {
    if kind_of(name).is_none() {
        return Err(Error::Usage(format!(
            "{name:?}: not a file PostgreSQL archives: set restore_command = 'hcbackup wal-fetch %f %p'"
        )));
    }
    let _lock = repo.lock(false, "wal-fetch")?;
    let Some(record) = repo.wal(name)? else {
        // A segment past the end of the archived WAL: recovery is about to
        // end. (A history file that is not there says nothing of that:
        // recovery probes for newer timelines when it starts.)
        if kind_of(name) == Some(WalFile::Segment) {
            super::wal_spool::clear(dest);
        }
        return Ok(Fetched::NotArchived);
    };
    let n = write_record(repo, &record, dest)?;
    super::wal_spool::prefetch(repo, &record, dest, source);
    Ok(Fetched::Written(n))
}

/// Write the file `record` names to `dest` (replacing it), checked against
/// the record's size and BLAKE3: bytes.
pub(crate) fn write_record(repo: &Repository, record: &WalRecord, dest: &Path) -> Result<u64> {
    let name = &record.name;
    let tree = repo.load_tree(record.tree)?;
    let node = match tree.nodes.as_slice() {
        [n] if n.name.as_slice() == name.as_bytes() && n.size == record.size => n,
        _ => {
            return Err(Error::corrupt(
                format!("WAL record of {name}"),
                "its tree is not the one file it names",
            ))
        }
    };
    let mut out = crate::ops::output_file::OutputFile::create(dest, true)?;
    let mut hashing = HashingWriter {
        inner: &mut out,
        hash: blake3::Hasher::new(),
    };
    let n = super::database::copy_stream(
        repo,
        node,
        &mut hashing,
        &format!("writing {}", dest.display()),
    )?;
    if n != record.size || hashing.hash.finalize().to_hex().as_str() != record.blake3 {
        return Err(Error::corrupt(
            format!("WAL file {name}"),
            "its bytes differ from what was archived",
        ));
    }
    out.commit()?;
    Ok(n)
}

/// A writer that hashes what passes through it.
struct HashingWriter<'a, W> {
    inner: &'a mut W,
    hash: blake3::Hasher,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
