//! `snapshot`: archive the sources, then write packs → index → manifest, in that order.

use std::path::PathBuf;
use std::time::Instant;

use crate::chunker::{Chunker, FILE_CHUNKS};
use crate::config::PgTarget;
use crate::error::{Error, Result};
use crate::model::snapshot::{PhysicalEntry, Snapshot, SnapshotEntry, Summary};
use crate::model::tree::Tree;
use crate::progress::Progress;
use crate::repo::{BlobWriter, Repository};
use crate::source::fs::{source_name, Stat};

use serde::Serialize;

use super::archive::{Archiver, RepoStore};
use crate::model::tree::Node;
use crate::source::exclude::Exclusions;

pub struct SnapshotOptions {
    pub paths: Vec<PathBuf>,
    pub tags: Vec<String>,
    /// The snapshot's time (default: now).
    pub time: Option<time::OffsetDateTime>,
    /// Databases to dump into the same snapshot.
    pub databases: Vec<PgTarget>,
    /// What the walk leaves out.
    pub exclusions: Exclusions,
    /// The host the manifest names (default: this machine's name).
    pub host: Option<String>,
    /// A physical base backup of this server's cluster (`--physical`).
    pub physical: Option<PgTarget>,
}

/// What `snapshot --dry-run` found: what a snapshot would save and add, and
/// what it would leave out. Nothing was written.
#[derive(Debug, Serialize)]
pub struct DryRun {
    pub paths: Vec<String>,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// Bytes that would be read (the rest the file cache vouches for).
    pub bytes_read: u64,
    /// New data the snapshot would store (sealed, before pack headers).
    pub bytes_added: u64,
    pub blobs_added: u64,
    pub excluded: u64,
    /// The first entries left out (`archive::EXCLUDED_NAMED`), and why.
    pub excluded_entries: Vec<Excluded>,
    /// Databases a snapshot would dump (a dry run does not run pg_dump).
    pub databases: Vec<String>,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Excluded {
    pub path: String,
    pub why: &'static str,
}

pub fn run(
    repo: &Repository,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotEntry> {
    let started = Instant::now();
    if opts.paths.is_empty() && opts.databases.is_empty() && opts.physical.is_none() {
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
    // No listing of packs unless a run of this machine was killed: the
    // catalog knows this machine's packs that no index lists yet, a prune
    // indexes other machines' ones, and `confirm_durable` checks what this
    // run reuses. So a nightly run's requests do not grow with the
    // repository (issue #20).
    repo.remove_stale_partials(std::time::Duration::from_secs(3600))?;
    let _writing = Writing::begin(repo)?;

    let writer = BlobWriter::new(repo);
    let chunker = Chunker::new(FILE_CHUNKS, repo.key().gear_table());
    let generation = repo.catalog().cache_generation()?;
    let run = (rand::random::<u64>() >> 1) as i64 | 1;
    let store = RepoStore {
        repo,
        writer: &writer,
    };
    let arch = Archiver::new(
        &store,
        chunker,
        progress,
        run,
        repo.catalog().trusted_runs()?,
    );
    let arch = arch.excluding(opts.exclusions.clone());
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut databases = Vec::new();
    let mut physical = None;
    let archived = (|| -> Result<_> {
        // The database first: its dump is the snapshot's most important part, and
        // its exported snapshot then sits closest to the snapshot's time.
        for t in &opts.databases {
            databases.push(super::database::dump_database(&arch, repo, t)?);
        }
        if let Some(t) = &opts.physical {
            physical = Some(super::physical::base_backup(&arch, repo, t)?);
        }
        let nodes = archive_files(&arch, &sources, &mut names)?;
        arch.store_tree(Tree::new(nodes))
    })();
    let root = writer.flush_after(archived)?;
    if sources.is_empty()
        && !databases.iter().any(|d| d.ok())
        && !physical.as_ref().is_some_and(|p: &PhysicalEntry| p.ok())
    {
        let why: Vec<String> = databases
            .iter()
            .filter_map(|d| d.error.as_ref().map(|e| format!("database {}: {e}", d.db)))
            .chain(
                physical
                    .iter()
                    .filter_map(|p| p.error.as_ref().map(|e| format!("base backup: {e}"))),
            )
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
        host: opts.host.clone().unwrap_or_else(crate::util::hostname),
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
            excluded: c.excluded.load(Relaxed),
        },
        written: crate::model::snapshot::written(time, crate::util::now()),
        original: None,
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
        physical,
    };

    let id = repo.write_snapshot(&snapshot)?;
    Ok(SnapshotEntry { id, snapshot })
}

/// This machine's catalog knows a snapshot is writing; after one that was
/// killed, the packs no index lists are looked for in the repository (once).
struct Writing<'r>(&'r Repository);

impl<'r> Writing<'r> {
    fn begin(repo: &'r Repository) -> Result<Writing<'r>> {
        if repo.catalog().begin_writing(std::process::id())? {
            let listed = repo.recover_packs()?;
            repo.forget_missing_packs(&listed)?;
        } else {
            // Packs of a killed run no index lists yet may have been condemned
            // and deleted by a prune since: a stat each (they are few).
            repo.confirm_unindexed()?;
        }
        Ok(Writing(repo))
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let _ = self.0.catalog().end_writing(std::process::id());
    }
}

/// Walk the sources as a snapshot would, storing nothing: what it would save,
/// add and leave out. The databases are named, not dumped.
pub fn dry_run(
    repo: &Repository,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<DryRun> {
    let (sources, missing) = open_sources(&opts.paths)?;
    let _lock = repo.lock(false, "snapshot --dry-run")?;
    let writer = BlobWriter::dry_run(repo);
    let chunker = Chunker::new(FILE_CHUNKS, repo.key().gear_table());
    let trusted = repo.catalog().trusted_runs()?;
    let store = RepoStore {
        repo,
        writer: &writer,
    };
    let arch = Archiver::new(&store, chunker, progress, 0, trusted)
        .excluding(opts.exclusions.clone())
        .dry_run();
    archive_files(&arch, &sources, &mut Vec::new())?;
    let c = &arch.counters;
    let w = writer.stats();
    use std::sync::atomic::Ordering::Relaxed;
    Ok(DryRun {
        paths: sources
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect(),
        files: c.files.load(Relaxed),
        dirs: c.dirs.load(Relaxed),
        bytes: c.bytes.load(Relaxed),
        bytes_read: c.bytes_read.load(Relaxed),
        bytes_added: w.bytes_added,
        blobs_added: w.blobs_added,
        excluded: c.excluded.load(Relaxed),
        excluded_entries: arch
            .take_excluded()
            .into_iter()
            .map(|(path, why)| Excluded {
                path,
                why: why.as_str(),
            })
            .collect(),
        databases: opts.databases.iter().map(|d| d.db.clone()).collect(),
        errors: missing
            .iter()
            .map(unreadable_source)
            .chain(arch.take_errors())
            .collect(),
    })
}

/// The nodes of the file sources, each named by its last component (made
/// unique with `-2`, `-3`…); `names` gets every name given.
fn archive_files(
    arch: &Archiver,
    sources: &[Source],
    names: &mut Vec<Vec<u8>>,
) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for (path, meta) in sources {
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
    Ok(nodes)
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
        let mut abs = std::path::absolute(p).map_err(|e| Error::io_path("resolving", p, e))?;
        // A source that is a link to a folder (UPLOADS_DIR pointing at another
        // disk) is the operator's own: the folder is backed up, not the link.
        // A link to anything else is saved as a link.
        let to_folder = std::fs::metadata(&abs).is_ok_and(|m| m.is_dir());
        if to_folder
            && abs
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        {
            if let Ok(real) = std::fs::canonicalize(&abs) {
                tracing::info!("source {} is a link to {}", abs.display(), real.display());
                abs = real;
            }
        }
        match std::fs::symlink_metadata(&abs) {
            Ok(meta) => sources.push((abs, Stat::from(&meta))),
            Err(e) => missing.push((abs, e)),
        }
    }
    Ok((sources, missing))
}
