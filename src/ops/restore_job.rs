//! One `restore` run: the files, a dump file, the database. `plan` decides
//! everything that can be decided before anything is written (which snapshot
//! the database parts read, which dump, whether an existing database may be
//! replaced); `execute` carries the plan out under one shared lock, telling
//! its caller each step as it ends.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::PgTarget;
use crate::error::Result;
use crate::model::snapshot::{DatabaseEntry, Snapshot, SnapshotEntry};
use crate::ops::database::{pick, write_dump_file};
use crate::ops::db_restore::{
    self, source_entry, DbPlan, DbRestoreOptions, DbRestoreReport, ReplaceRules,
};
use crate::ops::restore::{self, RestoreOptions, RestoreReport};
use crate::progress::Progress;
use crate::repo::Repository;

/// What was asked for.
pub struct Request {
    /// The snapshot as given (`latest` lets the database parts use an older one).
    pub spec: String,
    pub files: Option<RestoreOptions>,
    /// `--db-file`: the dump written to this file.
    pub dump_file: Option<PathBuf>,
    /// Replace an existing dump file.
    pub overwrite: bool,
    /// `--db`: the database restored into, and how it may be replaced.
    pub database: Option<(PgTarget, ReplaceRules)>,
    /// `--dump`: which of the snapshot's databases.
    pub dump: Option<String>,
    /// `--table`/`--schema`: only these tables, into a new database.
    pub only: Vec<crate::pg::select::Want>,
    /// `--globals`.
    pub globals: bool,
}

/// What will be done.
pub struct RestoreJob {
    pub snap: SnapshotEntry,
    /// The snapshot the database parts read: `snap`, or with `latest` the
    /// newest that holds a good dump of the database (`None`: no database part).
    pub db_snap: Option<SnapshotEntry>,
    pub files: Option<RestoreOptions>,
    pub dump_file: Option<PathBuf>,
    pub overwrite: bool,
    pub database: Option<(DbRestoreOptions, DbPlan)>,
    /// `--dump`: which of the snapshot's databases.
    pub dump: Option<String>,
}

/// One step, as it ends.
pub enum Step<'a> {
    Files {
        report: &'a RestoreReport,
        took: Duration,
    },
    DumpWritten {
        entry: &'a DatabaseEntry,
        path: &'a Path,
        bytes: u64,
        took: Duration,
    },
    /// The database `db` was saved, as snapshot `saved`, before it is replaced.
    SafetyDump {
        db: &'a str,
        saved: &'a SnapshotEntry,
    },
    Database(&'a DbRestoreReport),
}

/// The caller's side of `execute`: a progress display for the files' step
/// (started when that step starts, ended however it ends) and each step's end.
pub trait Observer {
    fn files_started(&mut self, files: u64, bytes: u64) -> &dyn Progress;
    fn files_ended(&mut self);
    fn step(&mut self, step: Step<'_>);
}

/// Decide the job; reads the repository and asks the database server whether
/// the target exists, writes nothing.
pub fn plan(repo: &Repository, snap: SnapshotEntry, req: Request) -> Result<RestoreJob> {
    let target = req.database.as_ref().map(|(t, _)| t);
    let db_snap = match (target, &req.dump_file) {
        (None, None) => None,
        _ => Some(db_snapshot(
            repo,
            &req.spec,
            &snap,
            req.dump.as_deref(),
            target,
        )?),
    };
    let database = match req.database {
        Some((target, rules)) => {
            let plan = db_restore::plan(&target, db_restore::target_exists(&target)?, rules)?;
            let opts = DbRestoreOptions {
                target,
                dump: req.dump.clone(),
                globals: req.globals,
                temp_dir: None,
                only: req.only.clone(),
            };
            Some((opts, plan))
        }
        None => None,
    };
    Ok(RestoreJob {
        snap,
        db_snap,
        files: req.files,
        dump_file: req.dump_file,
        overwrite: req.overwrite,
        database,
        dump: req.dump,
    })
}

/// Carry `job` out under a shared lock: files, then the dump file, then the
/// database (after its safety dump). Returns whether every file was restored.
pub fn execute(repo: &Repository, job: RestoreJob, obs: &mut dyn Observer) -> Result<bool> {
    let _lock = repo.lock(false, "restore")?;
    still_there(repo, &job.snap)?;
    if let Some(d) = &job.db_snap {
        still_there(repo, d)?;
    }
    let mut files_ok = true;
    if let Some(opts) = &job.files {
        let started = Instant::now();
        let summary = &job.snap.snapshot.summary;
        let result = restore::run(
            repo,
            &job.snap,
            opts,
            obs.files_started(summary.files, summary.bytes),
        );
        obs.files_ended();
        let report = result?;
        files_ok = report.errors.is_empty();
        obs.step(Step::Files {
            report: &report,
            took: started.elapsed(),
        });
    }
    let snap = job.db_snap.as_ref().unwrap_or(&job.snap);
    if let Some(path) = &job.dump_file {
        let dump = job.dump.as_deref();
        let entry = match &job.database {
            Some((o, _)) => source_entry(&snap.snapshot, dump, &o.target.db)?,
            None => pick(&snap.snapshot, dump)?,
        };
        let started = Instant::now();
        let bytes = write_dump_file(repo, entry, path, job.overwrite)?;
        obs.step(Step::DumpWritten {
            entry,
            path,
            bytes,
            took: started.elapsed(),
        });
    }
    if let Some((opts, plan)) = &job.database {
        let saved = match plan {
            DbPlan::Replace { safety_dump: true } => {
                let saved = db_restore::safety_dump(repo, &opts.target)?;
                obs.step(Step::SafetyDump {
                    db: &opts.target.db,
                    saved: &saved,
                });
                Some(saved.id.to_hex())
            }
            _ => None,
        };
        let mut report = db_restore::restore_database(repo, &snap.snapshot, opts)?;
        report.safety_dump = saved;
        obs.step(Step::Database(&report));
    }
    Ok(files_ok)
}

/// `snap`'s manifest is still in the copy now that the lock is held: a
/// `forget --prune` that ran while this run waited for the lock may have
/// removed it and its data (which would otherwise read as damage).
pub fn still_there(repo: &Repository, snap: &SnapshotEntry) -> Result<()> {
    match repo
        .backend()
        .stat(&format!("snapshots/{}", snap.id.to_hex()))
    {
        Err(crate::storage::StorageError::NotFound(_)) => Err(crate::Error::Failed(format!(
            "snapshot {} was forgotten (or retagged) while this run waited for the repository lock: run it again (`latest` takes the newest snapshot now)",
            snap.id.short()
        ))),
        _ => Ok(()),
    }
}

/// The snapshot the database part of a restore reads: the one asked for, or with
/// `latest` the newest that holds the dump wanted (said when it is not `snap`).
fn db_snapshot(
    repo: &Repository,
    spec: &str,
    snap: &SnapshotEntry,
    dump: Option<&str>,
    target: Option<&PgTarget>,
) -> Result<SnapshotEntry> {
    let entry = |s: &Snapshot| match target {
        Some(t) => source_entry(s, dump, &t.db).map(|_| ()),
        None => pick(s, dump).map(|_| ()),
    };
    let why = match entry(&snap.snapshot) {
        Err(why) if spec == "latest" => why,
        _ => return Ok(snap.clone()),
    };
    // When no older one holds it either, the latest snapshot's own reason.
    let found = repo
        .find_snapshot_with("latest", |s| entry(s).is_ok())
        .map_err(|_| why)?;
    tracing::warn!(
        "the latest snapshot {} holds no good dump of this database: the dump comes from {} of {}, the newest that does",
        snap.id.short(),
        found.id.short(),
        found.snapshot.time
    );
    Ok(found)
}
