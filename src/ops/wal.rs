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
use crate::model::wal::{kind_of, WalRecord};
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

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| Error::io_path("reading", path, e))
}

/// Archive the file at `path` (PostgreSQL's `%p`).
pub fn push(repo: &Repository, path: &Path) -> Result<Pushed> {
    let name = wal_name(path)?;
    let _lock = repo.lock_to_write("wal-push")?;
    let mut first = Hashing {
        inner: open(path)?,
        hash: blake3::Hasher::new(),
    };
    let size = std::io::copy(&mut first, &mut std::io::sink())
        .map_err(|e| Error::io_path("reading", path, e))?;
    let digest = first.hash.finalize().to_hex().to_string();
    if let Some(had) = repo.wal(&name)? {
        if had.blake3 == digest && had.size == size {
            return Ok(Pushed {
                name,
                size,
                already: true,
                bytes_added: 0,
            });
        }
        return Err(Error::Failed(format!(
            "{name} was archived before with other content ({} bytes then, {size} now): not replaced; if this server was restored or promoted, check its timeline, and never point two clusters at one repository's WAL",
            had.size
        )));
    }
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
        let node = super::database::stream_node(&name, lists, size);
        arch.store_tree(Tree::new(vec![node]))
    })();
    let tree = writer.flush_after(built)?;
    repo.write_index()?;
    crate::util::failpoint("wal-before-record");
    repo.put_wal(&WalRecord {
        version: 1,
        name: name.clone(),
        size,
        blake3: digest,
        time: crate::util::rfc3339(crate::util::now()),
        host: crate::util::hostname(),
        tree,
    })?;
    Ok(Pushed {
        name,
        size,
        already: false,
        bytes_added: writer.stats().bytes_added,
    })
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
pub fn fetch(repo: &Repository, name: &str, dest: &Path) -> Result<Fetched> {
    if kind_of(name).is_none() {
        return Err(Error::Usage(format!(
            "{name:?}: not a file PostgreSQL archives: set restore_command = 'hcbackup wal-fetch %f %p'"
        )));
    }
    let _lock = repo.lock(false, "wal-fetch")?;
    let Some(record) = repo.wal(name)? else {
        return Ok(Fetched::NotArchived);
    };
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
    Ok(Fetched::Written(n))
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
