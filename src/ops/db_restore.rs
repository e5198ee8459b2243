//! `restore --db`: put a snapshot's database dump back into a PostgreSQL database.
//!
//! The dump is written to a private temp file (mode 0600, removed afterwards) so
//! pg_restore can run one job per core; when the temp folder has no room it is
//! streamed to a single-job pg_restore instead. Each phase is timed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::database::{copy_stream, pick, streams};
use super::snapshot::SnapshotOptions;
use crate::config::PgTarget;
use crate::error::{Error, Result};
use crate::model::snapshot::{DatabaseEntry, Snapshot, SnapshotEntry, SAFETY_DUMP_TAG};
use crate::pg::restore as pgr;
use crate::repo::Repository;

pub struct DbRestoreOptions {
    /// Where to restore: server, login and the database name to restore into.
    pub target: PgTarget,
    /// Which of the snapshot's databases (default: the only one, or the target's name).
    pub dump: Option<String>,
    /// Also restore roles and tablespaces (pg_dumpall --globals-only).
    pub globals: bool,
    /// Folder for the temp dump (default: HCBACKUP_TMPDIR, else the system's).
    pub temp_dir: Option<PathBuf>,
    /// `--table`/`--schema`: only these, into a new database (`pg::select`).
    pub only: Vec<crate::pg::select::Want>,
}

#[derive(Debug, Default)]
pub struct DbRestoreReport {
    pub db: String,
    pub source_db: String,
    pub created: bool,
    /// The id of the safety dump saved before the database was replaced.
    pub safety_dump: Option<String>,
    /// True when the dump was streamed (no room for a temp file).
    pub streamed: bool,
    pub bytes: u64,
    /// (phase, seconds), in order.
    pub phases: Vec<(String, f64)>,
    pub warnings: Vec<String>,
    /// `--table`/`--schema`: the tables restored (`schema.name`).
    pub tables: Vec<String>,
}

impl DbRestoreReport {
    pub fn total_secs(&self) -> f64 {
        self.phases.iter().map(|p| p.1).sum()
    }
}

/// What a restore into an existing database does first, decided before anything
/// is touched: a database is replaced only when its name was given (or
/// `--force`), and after a safety dump of it unless `--no-safety-dump`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbPlan {
    /// The database does not exist: created.
    Create,
    /// It exists and is replaced, after a safety dump when `safety_dump`.
    Replace { safety_dump: bool },
}

/// How a restore may treat the target database.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplaceRules {
    /// The target was named on the command line (`--db NAME`), not taken from POSTGRES_DB.
    pub named: bool,
    /// `--force`: replace it even when only POSTGRES_DB names it.
    pub force: bool,
    /// `--no-safety-dump`.
    pub no_safety_dump: bool,
    /// `--table`/`--schema`: some tables only, into a new database.
    pub tables: bool,
}

pub fn plan(target: &PgTarget, exists: bool, rules: ReplaceRules) -> Result<DbPlan> {
    if !exists {
        return Ok(DbPlan::Create);
    }
    if rules.tables {
        let db = &target.db;
        return Err(Error::Usage(format!(
            "--table and --schema restore into a new database beside the others, and {db} exists on {}:{}: name a new one (--db {db}_restored); nothing was changed",
            target.host, target.port
        )));
    }
    if !rules.named && !rules.force {
        let db = &target.db;
        return Err(Error::Usage(format!(
            "database {db} exists on {}:{} (POSTGRES_DB) and restoring replaces everything in it: to replace it, name it (--db {db}; a safety dump of it is saved first) or add --force; to look at the backup beside it, restore into a new database (--db {db}_restored)",
            target.host, target.port
        )));
    }
    Ok(DbPlan::Replace {
        safety_dump: !rules.no_safety_dump,
    })
}

/// Whether `target`'s database exists now.
pub fn target_exists(target: &PgTarget) -> Result<bool> {
    pgr::database_exists(&pgr::maintenance(target)?, &target.db)
}

/// Dump the database about to be replaced into the repository, as a snapshot
/// tagged `safety-dump`; nothing is replaced unless it is saved whole.
pub fn safety_dump(repo: &Repository, target: &PgTarget) -> Result<SnapshotEntry> {
    let opts = SnapshotOptions {
        paths: Vec::new(),
        tags: vec![SAFETY_DUMP_TAG.to_string()],
        time: None,
        databases: vec![target.clone()],
        exclusions: Default::default(),
        host: None,
        physical: None,
    };
    let failed = |why: String| {
        Error::Failed(format!(
            "the safety dump of database {} failed ({why}): nothing was replaced; fix that, or add --no-safety-dump to replace it without one",
            target.db
        ))
    };
    let entry = super::snapshot::run(repo, &opts, &crate::progress::NoProgress)
        .map_err(|e| failed(e.to_string()))?;
    if let Some(e) = entry
        .snapshot
        .databases
        .iter()
        .find_map(|d| d.error.clone())
    {
        return Err(failed(e));
    }
    Ok(entry)
}

/// The database entry a restore into `target_db` uses.
pub fn source_entry<'s>(
    snap: &'s Snapshot,
    dump: Option<&str>,
    target_db: &str,
) -> Result<&'s DatabaseEntry> {
    match dump {
        Some(n) => pick(snap, Some(n)),
        None if snap.databases.len() > 1 => pick(snap, Some(target_db)),
        None => pick(snap, None),
    }
}

pub fn restore_database(
    repo: &Repository,
    snap: &Snapshot,
    opts: &DbRestoreOptions,
) -> Result<DbRestoreReport> {
    let d = source_entry(snap, opts.dump.as_deref(), &opts.target.db)?;
    let mut report = DbRestoreReport {
        db: opts.target.db.clone(),
        source_db: d.db.clone(),
        ..Default::default()
    };
    if !opts.only.is_empty() {
        load_tables(repo, d, opts, &mut report)?;
        return Ok(report);
    }
    let t0 = Instant::now();
    let m = pgr::maintenance(&opts.target)?;
    let exists = pgr::database_exists(&m, &opts.target.db)?;
    if !exists {
        report
            .warnings
            .extend(pgr::create_database(&m, &opts.target.db, d)?);
        report.created = true;
    }
    drop(m);
    report
        .phases
        .push(("prepare".into(), t0.elapsed().as_secs_f64()));
    let loaded = load_dump(
        repo,
        d,
        &opts.target,
        exists,
        opts.temp_dir.as_deref(),
        &mut report,
    );
    if let Err(e) = loaded {
        if report.created {
            // A database this run created holds only what failed half-way:
            // it goes, so the same restore can run again.
            drop_created(&opts.target);
        }
        return Err(e);
    }
    if opts.globals {
        let t = Instant::now();
        let (_, globals) = streams(repo, d)?;
        let node = globals.ok_or_else(|| {
            Error::Failed(format!(
                "the snapshot holds no globals for database {}",
                d.db
            ))
        })?;
        let mut sql = Vec::new();
        copy_stream(repo, &node, &mut sql, "reading the globals")?;
        report
            .warnings
            .extend(pgr::run_globals(&opts.target, &sql)?);
        report
            .phases
            .push(("globals".into(), t.elapsed().as_secs_f64()));
    }
    Ok(report)
}

/// Drop `target.db`, which this run created (a failure is only said).
fn drop_created(target: &PgTarget) {
    let dropped = pgr::maintenance(target).and_then(|m| pgr::drop_database(&m, &target.db));
    if let Err(e) = dropped {
        tracing::warn!(
            "could not drop the half-restored database {}: {e}",
            target.db
        );
    }
}

/// Fetch the dump and run pg_restore into `target.db`; phases go in `report`.
pub fn load_dump(
    repo: &Repository,
    d: &DatabaseEntry,
    target: &PgTarget,
    clean: bool,
    temp_dir: Option<&Path>,
    report: &mut DbRestoreReport,
) -> Result<()> {
    let (dump, _) = streams(repo, d)?;
    report.bytes = dump.size;
    let dir = temp_dir
        .map(Path::to_path_buf)
        .or_else(|| crate::config::tuning::get().tmpdir.clone())
        .unwrap_or_else(std::env::temp_dir);
    let room = free_bytes(&dir).is_some_and(|f| f > dump.size + 64 * 1024 * 1024);
    if room {
        let t = Instant::now();
        // Unnamed (O_TMPFILE): the decrypted dump never has a name, and no
        // interruption, kill -9 included, leaves it behind.
        let mut file = tempfile::tempfile_in(&dir)
            .map_err(|e| Error::io_path("creating a temp file in", &dir, e))?;
        match copy_stream(repo, &dump, &mut file, "writing the temp dump") {
            Ok(_) => {
                report
                    .phases
                    .push(("fetch".into(), t.elapsed().as_secs_f64()));
                let t = Instant::now();
                pgr::restore_file(target, &file, None, pgr::jobs(), clean)?;
                report
                    .phases
                    .push(("pg_restore".into(), t.elapsed().as_secs_f64()));
                return Ok(());
            }
            Err(Error::DiskFull(_)) => {
                report.warnings.push(format!(
                    "no room for the dump in {}: streaming it to pg_restore instead (one job)",
                    dir.display()
                ));
            }
            Err(e) => return Err(e),
        }
    }
    if !room {
        report.warnings.push(format!(
            "not enough free space in {} for the {} byte dump: streaming it to pg_restore (one job)",
            dir.display(),
            dump.size
        ));
    }
    let t = Instant::now();
    report.streamed = true;
    pgr::restore_stream(target, clean, &mut |w| {
        copy_stream(repo, &dump, w, "feeding pg_restore")
    })?;
    report
        .phases
        .push(("pg_restore (streamed)".into(), t.elapsed().as_secs_f64()));
    Ok(())
}

/// `--table`/`--schema`: the dump into an unnamed temp file, the entries
/// that restore those tables chosen from its table of contents, then the new
/// database created and `pg_restore -L` of only those into it. Anything that
/// fails leaves no database behind.
fn load_tables(
    repo: &Repository,
    d: &DatabaseEntry,
    opts: &DbRestoreOptions,
    report: &mut DbRestoreReport,
) -> Result<()> {
    use std::io::{Seek, Write};
    let (dump, _) = streams(repo, d)?;
    report.bytes = dump.size;
    let dir = opts
        .temp_dir
        .clone()
        .or_else(|| crate::config::tuning::get().tmpdir.clone())
        .unwrap_or_else(std::env::temp_dir);
    let t = Instant::now();
    let mut file = tempfile::tempfile_in(&dir)
        .map_err(|e| Error::io_path("creating a temp file in", &dir, e))?;
    copy_stream(repo, &dump, &mut file, "writing the temp dump")?;
    file.rewind()
        .map_err(|e| Error::io("reading the temp dump", e))?;
    let toc = crate::pg::reorder::read_toc(&mut std::io::BufReader::new(&mut file))
        .map_err(|e| Error::corrupt(format!("the dump of database {}", d.db), e.to_string()))?;
    let chosen = crate::pg::select::select(&toc.entries, &opts.only)
        .map_err(|e| Error::Usage(format!("database {}: {e}; nothing was restored", d.db)))?;
    report.tables = chosen.tables.clone();
    report
        .warnings
        .extend(chosen.left_out.iter().map(|w| format!("left out: {w}")));
    let mut list = tempfile::tempfile_in(&dir)
        .map_err(|e| Error::io_path("creating a temp file in", &dir, e))?;
    list.write_all(chosen.list().as_bytes())
        .and_then(|_| list.rewind())
        .map_err(|e| Error::io("writing pg_restore's list", e))?;
    report
        .phases
        .push(("fetch".into(), t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let m = pgr::maintenance(&opts.target)?;
    if pgr::database_exists(&m, &opts.target.db)? {
        return Err(Error::Usage(format!(
            "database {} appeared on the server while this restore ran: name a new one; nothing was changed",
            opts.target.db
        )));
    }
    report
        .warnings
        .extend(pgr::create_database(&m, &opts.target.db, d)?);
    report.created = true;
    if let Err(e) = pgr::restore_file(&opts.target, &file, Some(&list), pgr::jobs(), false) {
        drop(m);
        drop_created(&opts.target);
        return Err(e);
    }
    report
        .phases
        .push(("pg_restore (tables)".into(), t.elapsed().as_secs_f64()));
    Ok(())
}

/// Free bytes for an unprivileged writer in the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated, st is a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}
