//! `verify --restore-test --pitr`: the monthly restore test as a
//! point-in-time recovery (issue #19, step 6). A restore point is written on
//! the production server (`pg_create_restore_point`, a marker in the WAL, no
//! table touched) and its segment switched out and waited for in the
//! repository; the newest base backup is laid out in a private temp folder
//! with that restore point as its target, started on a Unix socket there,
//! and must stop exactly at the marker (else the WAL up to a minute ago is
//! not whole); then amcheck in every database. The copy is stopped and
//! deleted in every case; the recovery time is recorded like a restore test's.

use std::time::{Duration, Instant};

use super::pitr::{self, Fetcher, Target};
use super::restore_test::RestoreTestReport;
use crate::config::{PgTarget, RestoreTestConfig};
use crate::error::{Error, Result};
use crate::pg::restore_test::{amcheck, Check};
use crate::pg::session::literal;
use crate::pg::Session;
use crate::repo::Repository;

/// How long the marker's segment may take to reach the repository.
const ARCHIVED_WITHIN: Duration = Duration::from_secs(120);

/// A copy that is stopped when this goes, however the test ends.
struct Running<'a>(&'a std::path::Path);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        super::pitr_start::stop(self.0);
    }
}

/// The test, as a report: a failure after the restore point is written
/// (archiving, laying out, recovery, a check) is a failed test, recorded
/// like any other; only what stops it from starting is an error.
pub fn run(
    repo: &Repository,
    server: &PgTarget,
    fetcher: &Fetcher,
    config: &RestoreTestConfig,
) -> Result<RestoreTestReport> {
    crate::util::catch_interrupts();
    let now = crate::util::now();
    let point = super::restore_test::stamped("hcbackup-test", '-', now);
    let mut report = RestoreTestReport {
        time: crate::util::rfc3339(now),
        snapshot: String::new(),
        database: format!("cluster {}:{} (point in time)", server.host, server.port),
        temp_database: point.clone(),
        passed: false,
        restore_secs: 0.0,
        rto_secs: config.rto_minutes * 60.0,
        phases: Vec::new(),
        checks: Vec::new(),
        error: None,
        dropped: true,
    };
    // What must hold before anything is written on the server.
    let snap = pitr::choose(repo, "latest", &Target::Latest)?;
    report.snapshot = snap.id.to_hex();
    let dir = tempfile::Builder::new()
        .prefix("hcbackup-pitr-test-")
        .tempdir_in(
            crate::config::tuning::get()
                .tmpdir
                .clone()
                .unwrap_or_else(std::env::temp_dir),
        )
        .map_err(|e| Error::io("creating the PITR test folder", e))?;
    super::pitr_start::socket_fits(dir.path(), 5432)?;
    let wal = mark(server, &point)?;
    if let Err(e) = test(
        repo,
        &snap,
        server,
        fetcher,
        &point,
        &wal,
        dir.path(),
        &mut report,
    ) {
        report.error = Some(e.to_string());
    }
    report.passed = report.error.is_none() && report.checks.iter().all(|c| c.passed);
    Ok(report)
}

/// From the restore point on: its segment archived, the copy laid out,
/// started and recovered to it, checked.
#[allow(clippy::too_many_arguments)]
fn test(
    repo: &Repository,
    snap: &crate::model::snapshot::SnapshotEntry,
    server: &PgTarget,
    fetcher: &Fetcher,
    point: &str,
    wal: &str,
    dir: &std::path::Path,
    report: &mut RestoreTestReport,
) -> Result<()> {
    let t = Instant::now();
    wait_archived(repo, wal)?;
    report
        .phases
        .push(("marker archived".into(), t.elapsed().as_secs_f64()));
    let pgdata = dir.join("data");
    let t = Instant::now();
    let target = Target::Name(point.to_string());
    let mut laid = pitr::restore(repo, snap, &pgdata, &target, fetcher)?;
    report
        .phases
        .push(("lay out".into(), t.elapsed().as_secs_f64()));
    let _running = Running(&pgdata);
    let started =
        super::pitr_start::start_fed(repo, &mut laid, &target, &fetcher.repo, 5432, Some(dir))?;
    report
        .phases
        .push(("recovery".into(), started.recovery_secs));
    report.restore_secs = report.phases[1..].iter().map(|p| p.1).sum();
    let log = std::fs::read_to_string(&started.log).unwrap_or_default();
    let reached = log.contains(&format!("recovery stopping at restore point \"{point}\""));
    report.checks.push(Check::new(
        "restore point",
        reached,
        if reached {
            format!(
                "recovery stopped at {point}, written {:.0} s before the copy was laid out",
                report.phases[0].1
            )
        } else {
            format!("recovery did not stop at {point}")
        },
    ));
    let copy = PgTarget {
        host: dir.display().to_string(),
        port: 5432,
        password: None,
        ..server.clone()
    };
    report.checks.extend(check_databases(&copy)?);
    Ok(())
}

/// Write the restore point and switch its segment out: the segment's name.
fn mark(server: &PgTarget, point: &str) -> Result<String> {
    let s = Session::connect(&server.with_db("postgres")).or_else(|_| Session::connect(server))?;
    let lsn = s
        .value(&format!("SELECT pg_create_restore_point({})::text", literal(point)))
        .map_err(|e| {
            Error::Failed(format!(
                "the PITR restore test could not write its restore point on {}:{} ({e}): it needs a superuser, or GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO {}",
                server.host, server.port, server.user
            ))
        })?
        .unwrap_or_default();
    let wal = s
        .value(&format!(
            "SELECT pg_walfile_name({}::pg_lsn)",
            literal(&lsn)
        ))?
        .unwrap_or_default();
    s.value("SELECT pg_switch_wal()::text")?;
    Ok(wal)
}

/// Wait until `wal` is archived in the repository.
fn wait_archived(repo: &Repository, wal: &str) -> Result<()> {
    let t = Instant::now();
    loop {
        if repo.wal(wal)?.is_some() {
            return Ok(());
        }
        if crate::util::interrupted() {
            return Err(Error::Failed("interrupted".into()));
        }
        if t.elapsed() > ARCHIVED_WITHIN {
            return Err(Error::Failed(format!(
                "WAL segment {wal}, which holds the test's restore point, did not reach {} within {} s: is archive_command failing? See the server log",
                repo.backend().location(),
                ARCHIVED_WITHIN.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// amcheck in every database of the recovered copy.
fn check_databases(copy: &PgTarget) -> Result<Vec<Check>> {
    let s = Session::connect(&copy.with_db("postgres"))?;
    let dbs = s.rows("SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1")?;
    drop(s);
    let mut out = Vec::new();
    for name in dbs
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
    {
        let s = Session::connect(&copy.with_db(&name))?;
        for mut c in amcheck(&s) {
            c.name = format!("{} in {name}", c.name);
            // The copy is the test's own: a check that could not run fails.
            if c.skipped {
                c.passed = false;
                c.skipped = false;
            }
            out.push(c);
        }
    }
    Ok(out)
}
