//! `snapshot`: archive the sources, then write packs → index → manifest, in that order.

use std::path::PathBuf;
use std::time::Instant;

use crate::chunker::{Chunker, FILE_CHUNKS};
use crate::config::PgTarget;
use crate::error::{Error, Result};
use crate::model::snapshot::{Snapshot, SnapshotEntry, Summary};
use crate::model::tree::Tree;
use crate::progress::Progress;
use crate::repo::{BlobWriter, Repository};
use crate::source::fs::{source_name, Stat};

use super::archive::Archiver;

pub struct SnapshotOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    /// The snapshot's time (default: now).
    pub time: Option<time::OffsetDateTime>,
    /// Databases to dump into the same snapshot.
    pub databases: Vec<PgTarget>,
}

pub fn run(
    repo: &Repository,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotEntry> {
    let started = Instant::now();
    if opts.paths.is_empty() && opts.databases.is_empty() {
        return Err(Error::Usage(
            "nothing to back up: give a PATH, set UPLOADS_DIR, or set POSTGRES_DB".into(),
        ));
    }
    let (sources, missing) = open_sources(&opts.paths)?;
    // A source that is gone never costs the night's database dump: the rest is
    // saved and the snapshot is incomplete (exit 3, alerted). With nothing else
    // to save, the run fails as before.
    if let Some(m) = missing.first() {
        if sources.is_empty() && opts.databases.is_empty() {
            return Err(Error::Usage(format!(
                "{}: check the path (UPLOADS_DIR?)",
                unreadable_source(m)
            )));
        }
    }
    let time = opts.time.unwrap_or_else(crate::util::now);
    // A snapshot writes: its lock is taken even when the command reads with
    // --no-lock (a restore's safety dump), or a prune could delete what it stores.
    let _lock = repo.lock_to_write("snapshot")?;
    let listed = repo.recover_packs()?;
    repo.forget_missing_packs(&listed)?;

    let writer = BlobWriter::new(repo);
    let chunker = Chunker::new(FILE_CHUNKS, repo.key().gear_table());
    let generation = repo.catalog().cache_generation()?;
    let run = (rand::random::<u64>() >> 1) as i64 | 1;
    let arch = Archiver::new(
        repo,
        &writer,
        chunker,
        progress,
        run,
        repo.catalog().trusted_runs()?,
    );
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut databases = Vec::new();
    let archived = (|| -> Result<_> {
        // The database first: its dump is the snapshot's most important part, and
        // its exported snapshot then sits closest to the snapshot's time.
        for t in &opts.databases {
            databases.push(super::database::dump_database(&arch, repo, t)?);
        }
        let mut nodes = Vec::new();
        for (path, meta) in &sources {
            let mut name = source_name(path);
            let mut n = 2;
            while names.contains(&name) {
                name = [source_name(path), format!("-{n}").into_bytes()].concat();
                n += 1;
            }
            if let Some(node) = arch.node(path, &name, meta)? {
                nodes.push(node);
            }
            names.push(name);
        }
        arch.store_tree(Tree::new(nodes))
    })();
    let root = writer.flush_after(archived)?;
    if sources.is_empty() && !databases.iter().any(|d| d.ok()) {
        let why: Vec<String> = databases
            .iter()
            .filter_map(|d| d.error.as_ref().map(|e| format!("database {}: {e}", d.db)))
            .chain(missing.iter().map(unreadable_source))
            .collect();
        return Err(Error::Failed(why.join("; ")));
    }
    crate::util::failpoint("before-index");
    repo.write_index()?;
    // Every chunk this run's file-cache rows name is durable now.
    repo.catalog().complete_run(run, generation)?;
    crate::util::failpoint("after-index");

    let c = &arch.counters;
    let w = writer.stats();
    use std::sync::atomic::Ordering::Relaxed;
    let snapshot = Snapshot {
        version: 1,
        time: crate::util::rfc3339(time),
        host: crate::util::hostname(),
        user: crate::util::username(),
        tags: opts.tags.clone(),
        paths: sources
            .iter()
            .map(|(p, _)| p)
            .chain(missing.iter().map(|(p, _)| p))
            .map(|p| p.display().to_string())
            .collect(),
        names: names
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect(),
        tree: root,
        summary: Summary {
            files: c.files.load(Relaxed),
            dirs: c.dirs.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            bytes_read: c.bytes_read.load(Relaxed),
            bytes_added: w.bytes_added,
            blobs_added: w.blobs_added,
            duration_secs: started.elapsed().as_secs_f64(),
        },
        written: crate::model::snapshot::written(time, crate::util::now()),
        errors: missing
            .iter()
            .map(|m| {
                format!(
                    "{}: nothing of it was saved; check the path (UPLOADS_DIR?)",
                    unreadable_source(m)
                )
            })
            .chain(arch.take_errors())
            .collect(),
        databases,
    };

    let id = repo.write_snapshot(&snapshot)?;
    Ok(SnapshotEntry { id, snapshot })
}

/// A source that could not be read, and why.
type Missing = (PathBuf, std::io::Error);
/// A source as an absolute path, with its stat.
type Source = (PathBuf, Stat);

/// "source PATH cannot be read (why)".
fn unreadable_source((path, why): &Missing) -> String {
    format!("source {} cannot be read ({why})", path.display())
}

/// The sources as absolute paths with their stat, and those that cannot be read.
fn open_sources(paths: &[PathBuf]) -> Result<(Vec<Source>, Vec<Missing>)> {
    let mut sources = Vec::new();
    let mut missing = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| Error::io_path("resolving", p, e))?;
        match std::fs::symlink_metadata(&abs) {
            Ok(meta) => sources.push((abs, Stat::from(&meta))),
            Err(e) => missing.push((abs, e)),
        }
    }
    Ok((sources, missing))
}
