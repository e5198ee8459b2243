//! The database part of a snapshot: dump each configured database through the
//! engine, and read a stored dump back as a stream.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde_bytes::ByteBuf;

use super::archive::Archiver;
use crate::chunker::{Chunker, DB_CHUNKS};
use crate::config::PgTarget;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::model::snapshot::{DatabaseEntry, Snapshot};
use crate::model::tree::{Node, NodeKind, Tree};
use crate::pg::dump::{self, Dump};
use crate::repo::Repository;

/// Dump one database into the snapshot being written. A database failure is
/// recorded in the entry (the snapshot goes on without it); only a repository
/// failure is returned as an error.
pub fn dump_database(arch: &Archiver, repo: &Repository, t: &PgTarget) -> Result<DatabaseEntry> {
    let started = Instant::now();
    let mut entry = DatabaseEntry {
        db: t.db.clone(),
        host: t.host.clone(),
        port: t.port,
        user: t.user.clone(),
        format: dump::FORMAT.into(),
        ..Default::default()
    };
    let chunker = Chunker::new(DB_CHUNKS, repo.key().gear_table());
    let mut d = match Dump::start(t) {
        Ok(d) => d,
        Err(e) => {
            entry.error = Some(e.to_string());
            return Ok(entry);
        }
    };
    entry.server_version = d.info.server_version.clone();
    entry.encoding = d.info.encoding.clone();
    entry.collate = d.info.collate.clone();
    entry.ctype = d.info.ctype.clone();
    entry.extensions = d.info.extensions.clone();
    entry.tables = d.info.tables.clone();
    let superuser = d.info.superuser;
    let read = {
        let mut r = d.reader();
        let read = arch.chunk_stream(&chunker, &mut r, None)?;
        entry.rows_by_primary_key = r.ordered() as u32;
        read
    };
    let finished = d.finish();
    let (content, size) = match (read, finished) {
        (_, Err(e)) => {
            entry.error = Some(e.to_string());
            return Ok(entry);
        }
        (Err(e), _) => {
            entry.error = Some(format!("reading pg_dump's output: {e}"));
            return Ok(entry);
        }
        (Ok(r), Ok(())) => r,
    };
    let lists = arch.store_lists(&content)?;
    let mut nodes = vec![stream_node(DatabaseEntry::DUMP_NAME, lists, size)];
    entry.dump_bytes = size;
    match dump::globals(t, superuser) {
        Ok((sql, warning)) => {
            entry.warnings.extend(warning);
            let (content, size) = arch
                .chunk_stream(&chunker, &sql[..], Some(sql.len() as u64))?
                .map_err(|e| Error::io("chunking the globals", e))?;
            entry.globals_bytes = size;
            let lists = arch.store_lists(&content)?;
            nodes.push(stream_node(DatabaseEntry::GLOBALS_NAME, lists, size));
        }
        Err(e) => entry.error = Some(e.to_string()),
    }
    entry.tree = Some(arch.store_tree(Tree::new(nodes))?);
    entry.duration_secs = started.elapsed().as_secs_f64();
    Ok(entry)
}

/// A file node for a stream whose chunk ids are in list blobs.
pub(crate) fn stream_node(name: &str, lists: Vec<TreeId>, size: u64) -> Node {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Node {
        name: ByteBuf::from(name.as_bytes().to_vec()),
        kind: NodeKind::File,
        mode: 0o600,
        uid,
        gid,
        mtime_ns: (crate::util::now().unix_timestamp_nanos()) as i64,
        size,
        content: Vec::new(),
        lists,
        subtree: None,
        target: None,
        rdev: 0,
        link: 0,
    }
}

/// The database of a snapshot to restore: the one named `name`, or the only one.
pub fn pick<'s>(snap: &'s Snapshot, name: Option<&str>) -> Result<&'s DatabaseEntry> {
    let dbs = &snap.databases;
    let found = match name {
        Some(n) => dbs.iter().find(|d| d.db == n),
        None if dbs.len() == 1 => dbs.first(),
        None => None,
    };
    let names: Vec<&str> = dbs.iter().map(|d| d.db.as_str()).collect();
    let d = found.ok_or_else(|| {
        Error::Usage(match (dbs.is_empty(), name) {
            (true, _) => "this snapshot holds no database dump (it was taken with --no-postgres or without POSTGRES_DB)".into(),
            (false, Some(n)) => format!("this snapshot holds no dump of database {n:?}; it has: {}", names.join(", ")),
            (false, None) => format!("this snapshot holds several databases ({}): choose one with --dump NAME", names.join(", ")),
        })
    })?;
    if !d.ok() {
        return Err(Error::Failed(format!(
            "the dump of database {} in this snapshot failed when it was taken ({}); choose an earlier snapshot",
            d.db,
            d.error.as_deref().unwrap_or("no dump stored")
        )));
    }
    Ok(d)
}

/// The stored streams of a database entry: the dump, and the globals when present.
pub fn streams(repo: &Repository, d: &DatabaseEntry) -> Result<(Node, Option<Node>)> {
    let tree = repo.load_tree(d.tree.expect("checked by pick"))?;
    let find = |n: &str| {
        tree.nodes
            .iter()
            .find(|x| x.name.as_ref() == n.as_bytes())
            .cloned()
    };
    let dump = find(DatabaseEntry::DUMP_NAME)
        .ok_or_else(|| Error::corrupt(format!("database tree of {}", d.db), "no dump in it"))?;
    Ok((dump, find(DatabaseEntry::GLOBALS_NAME)))
}

/// Chunks decoded together (in parallel) by `read_stream`.
const READ_BATCH: usize = 16;

/// Batches decoded ahead of the consumer: with the one being decoded and the
/// one being consumed, at most four batches in memory (typically 4 × 16 MiB
/// of file chunks, 4 × 128 KiB of database chunks).
const READ_AHEAD: usize = 2;

/// Run `consume` on the stream `node` stores, read back in batches of chunks
/// decoded in parallel on another thread while the consumer writes the ones
/// before. Every chunk is checked against its id; a repository error that
/// stopped the reading comes back typed, beside what `consume` returned.
pub fn read_stream<T>(
    repo: &Repository,
    node: &Node,
    consume: impl FnOnce(&mut dyn Read) -> T,
) -> Result<(T, Option<Error>)> {
    let ids = repo.node_content(node)?.into_owned();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(READ_AHEAD);
    Ok(std::thread::scope(|s| {
        s.spawn(move || {
            for batch in ids.chunks(READ_BATCH) {
                let decoded: Result<Vec<Vec<u8>>> = batch
                    .par_iter()
                    .map(|id| repo.read_blob(Kind::Data, (*id).into()))
                    .collect();
                let failed = decoded.is_err();
                // A consumer that stopped has dropped its end: stop too.
                if tx.send(decoded.map(|parts| parts.concat())).is_err() || failed {
                    return;
                }
            }
        });
        let mut reader = Batches {
            rx,
            buf: Vec::new(),
            pos: 0,
            error: None,
        };
        let out = consume(&mut reader);
        let Batches { error, .. } = reader;
        (out, error)
    }))
}

/// The consumer's end of `read_stream`.
struct Batches {
    rx: std::sync::mpsc::Receiver<Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    error: Option<Error>,
}

impl Read for Batches {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                // The end of the stream.
                Err(_) => return Ok(0),
                Ok(Ok(batch)) => {
                    self.buf = batch;
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    self.error = Some(e);
                    return Err(io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Copy a stored stream to `w`; a repository error comes back typed.
pub fn copy_stream(repo: &Repository, node: &Node, w: &mut dyn Write, what: &str) -> Result<u64> {
    match read_stream(repo, node, |r| io::copy(r, w))? {
        (Ok(n), _) => Ok(n),
        (Err(e), error) => Err(error.unwrap_or_else(|| Error::io(what.to_string(), e))),
    }
}

/// Write a database's dump to `path` (mode 0600): a file stock `pg_restore` reads.
/// An existing file is replaced only with `overwrite`; a partial file is removed.
pub fn write_dump_file(
    repo: &Repository,
    d: &DatabaseEntry,
    path: &Path,
    overwrite: bool,
) -> Result<u64> {
    let (dump, _) = streams(repo, d)?;
    let mut f = super::output_file::OutputFile::create(path, overwrite)?;
    let n = copy_stream(repo, &dump, &mut f, &format!("writing {}", path.display()))?;
    f.commit()?;
    Ok(n)
}
