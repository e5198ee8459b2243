//! `restore --db`: put a snapshot's database dump back into a PostgreSQL database.
//!
//! The dump is written to a private temp file (mode 0600, removed afterwards) so
//! pg_restore can run one job per core; when the temp folder has no room it is
//! streamed to a single-job pg_restore instead. Each phase is timed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::database::{copy_stream, pick, streams};
use crate::config::PgTarget;
use crate::error::{Error, Result};
use crate::model::snapshot::{DatabaseEntry, Snapshot};
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
}

#[derive(Debug, Default)]
pub struct DbRestoreReport {
    pub db: String,
    pub source_db: String,
    pub created: bool,
    /// True when the dump was streamed (no room for a temp file).
    pub streamed: bool,
    pub bytes: u64,
    /// (phase, seconds), in order.
    pub phases: Vec<(String, f64)>,
    pub warnings: Vec<String>,
}

impl DbRestoreReport {
    pub fn total_secs(&self) -> f64 {
        self.phases.iter().map(|p| p.1).sum()
    }
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
    load_dump(
        repo,
        d,
        &opts.target,
        exists,
        opts.temp_dir.as_deref(),
        &mut report,
    )?;
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
        .or_else(|| std::env::var_os("HCBACKUP_TMPDIR").map(PathBuf::from))
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
                pgr::restore_file(target, &file, pgr::jobs(), clean)?;
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
