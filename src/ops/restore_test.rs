//! `verify --restore-test`: the seed's monthly restore test. For each database of a
//! snapshot: create a temporary database with a unique name, restore the dump into
//! it, compare every table's row count with the manifest, run amcheck and the
//! user's SQL checks, time the restore against the RTO, and drop the database in
//! every case (failure and Ctrl-C included). Results are kept in the catalog.

use std::time::Instant;

use serde::Serialize;

use super::db_restore::{load_dump, DbRestoreReport};
use crate::catalog::RestoreTestRow;
use crate::config::{PgTarget, RestoreTestConfig};
use crate::error::{Error, Result};
use crate::model::snapshot::{DatabaseEntry, SnapshotEntry};
use crate::pg::restore as pgr;
use crate::pg::restore_test::{self as checks, Check};
use crate::pg::Session;
use crate::repo::Repository;

pub struct RestoreTestOptions {
    /// The server to test on (its database name is not used).
    pub server: PgTarget,
    pub config: RestoreTestConfig,
    pub temp_dir: Option<std::path::PathBuf>,
    /// Test in a throwaway cluster instead of on `server`.
    pub scratch: bool,
}

#[derive(Debug, Serialize)]
pub struct RestoreTestReport {
    pub time: String,
    pub snapshot: String,
    pub database: String,
    pub temp_database: String,
    pub passed: bool,
    pub restore_secs: f64,
    pub rto_secs: f64,
    pub phases: Vec<(String, f64)>,
    pub checks: Vec<Check>,
    /// Why the test could not run to its end.
    pub error: Option<String>,
    /// Whether the temporary database is gone again.
    pub dropped: bool,
}

/// Test every database of `snap`; a report per database. An error only when
/// nothing could be tested (no database in the snapshot, server unreachable).
pub fn run(
    repo: &Repository,
    snap: &SnapshotEntry,
    opts: &RestoreTestOptions,
) -> Result<Vec<RestoreTestReport>> {
    let dbs: Vec<&DatabaseEntry> = snap.snapshot.databases.iter().filter(|d| d.ok()).collect();
    if dbs.is_empty() {
        return Err(Error::Failed(format!(
            "snapshot {} holds no complete database dump to test; take a snapshot with POSTGRES_DB set",
            snap.id.short()
        )));
    }
    crate::util::catch_interrupts();
    // Declared before the loop's work so it outlives every session on it.
    let scratch = if opts.scratch {
        Some(crate::pg::scratch::Scratch::start()?)
    } else {
        None
    };
    let server = scratch.as_ref().map_or(&opts.server, |s| &s.target);
    let mut out = Vec::new();
    for d in dbs {
        let r = test_one(repo, snap, d, server, scratch.is_some(), opts)?;
        record(repo, &r)?;
        out.push(r);
        if crate::util::interrupted() {
            break;
        }
    }
    Ok(out)
}

/// Keep a test's result in the catalog (`status`, `report`).
pub fn record(repo: &Repository, r: &RestoreTestReport) -> Result<()> {
    repo.catalog().add_restore_test(&RestoreTestRow {
        time: r.time.clone(),
        snapshot: r.snapshot.clone(),
        database: r.database.clone(),
        passed: r.passed,
        restore_secs: r.restore_secs,
        report: serde_json::to_string(r).unwrap_or_default(),
    })
}

fn test_one(
    repo: &Repository,
    snap: &SnapshotEntry,
    d: &DatabaseEntry,
    server: &PgTarget,
    scratch: bool,
    opts: &RestoreTestOptions,
) -> Result<RestoreTestReport> {
    let now = crate::util::now();
    let temp = stamped("hcbackup_restoretest", '_', now);
    let mut report = RestoreTestReport {
        time: crate::util::rfc3339(now),
        snapshot: snap.id.to_hex(),
        database: d.db.clone(),
        temp_database: temp.clone(),
        passed: false,
        restore_secs: 0.0,
        rto_secs: opts.config.rto_minutes * 60.0,
        phases: Vec::new(),
        checks: Vec::new(),
        error: None,
        dropped: false,
    };
    // Failing before the temporary database exists is a failed test too, recorded
    // like any other (nothing to drop).
    let prepared = (|| -> Result<Session> {
        if scratch {
            // The roles the dump's objects belong to exist only in the globals.
            let (_, globals) = super::database::streams(repo, d)?;
            if let Some(g) = globals {
                let mut sql = Vec::new();
                super::database::copy_stream(repo, &g, &mut sql, "reading the globals")?;
                for w in pgr::run_globals(server, &sql)? {
                    tracing::info!("scratch cluster globals: {w}");
                }
            }
        }
        let m = pgr::maintenance(server)?;
        if let Some(w) = pgr::create_database(&m, &temp, d)? {
            tracing::warn!("{w}");
        }
        Ok(m)
    })();
    let m = match prepared {
        Ok(m) => m,
        Err(e) => {
            report.error = Some(e.to_string());
            report.dropped = true;
            return Ok(report);
        }
    };
    let target = server.with_db(&temp);
    let body = (|| -> Result<()> {
        let started = Instant::now();
        let mut dr = DbRestoreReport::default();
        let loaded = load_dump(repo, d, &target, false, opts.temp_dir.as_deref(), &mut dr);
        report.phases = dr.phases;
        loaded?;
        report.restore_secs = started.elapsed().as_secs_f64();
        if crate::util::interrupted() {
            return Err(Error::Failed("interrupted".into()));
        }
        let s = Session::connect(&target)?;
        if d.imported() {
            report.checks.push(Check {
                name: "row counts".into(),
                passed: true,
                skipped: true,
                detail: "an imported dump (import-legacy) carries no counts to compare".into(),
            });
        } else {
            report.checks.extend(checks::counts(&s, &d.tables));
        }
        report.checks.extend(checks::amcheck(&s));
        report
            .checks
            .extend(checks::user_checks(&s, &opts.config.checks));
        report.checks.push(Check {
            name: "restore time".into(),
            passed: report.restore_secs <= report.rto_secs,
            skipped: false,
            detail: format!(
                "{:.1} s against an RTO of {:.0} s",
                report.restore_secs, report.rto_secs
            ),
        });
        Ok(())
    })();
    if let Err(e) = body {
        report.error = Some(e.to_string());
    }
    // Always: drop the temporary database (its sessions are ours and are gone).
    match pgr::drop_database(&m, &temp) {
        Ok(()) => report.dropped = true,
        Err(e) => {
            let msg = format!(
                "the temporary database {temp} could not be dropped ({e}); drop it by hand"
            );
            report.error = Some(match report.error.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
        }
    }
    report.passed = report.error.is_none() && report.checks.iter().all(|c| c.passed);
    Ok(report)
}

/// A scratch name no other run picks: `PREFIX` `sep` the time (UTC, to the
/// second) `sep` six random hex digits.
pub(crate) fn stamped(prefix: &str, sep: char, now: time::OffsetDateTime) -> String {
    format!(
        "{prefix}{sep}{}{sep}{:06x}",
        crate::util::format_time(
            now,
            time::macros::format_description!("[year][month][day][hour][minute][second]")
        ),
        rand::random::<u32>() & 0xff_ffff
    )
}
