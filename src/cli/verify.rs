//! `hcbackup verify [--read-data | --read-data-subset N/M|auto] [--destination NAME|all]
//! [--restore-test [SNAPSHOT]]`.

use super::{render, render_db, Ctx};
use crate::error::{exit, Error, Result};
use crate::ops::copies;
use crate::ops::restore_test::{self, RestoreTestOptions};
use crate::ops::verify::{Finding, Object, Problem, ReadMode, VerifyReport};
use crate::repo::Repository;
use crate::retention::LOCAL;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Read back and check every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read back the N-th of M slices of the packs (3/12), or `auto`: the packs read
    /// longest ago, a twelfth of the data, so monthly runs cover everything each year.
    #[arg(long, value_name = "N/M|auto")]
    pub read_data_subset: Option<ReadMode>,
    /// The copy to check: `local` (the repository), a destination's name, or `all`.
    #[arg(long, default_value = LOCAL)]
    pub destination: String,
    /// Restore SNAPSHOT's databases (default: the latest with a database) into a
    /// temporary database on the POSTGRES_* server, check them, drop it. Uses the
    /// copy checked (the repository when several are).
    #[arg(long, value_name = "SNAPSHOT", num_args = 0..=1, default_missing_value = "")]
    pub restore_test: Option<String>,
    /// With --restore-test: use a throwaway cluster (initdb in a temp folder)
    /// instead of the POSTGRES_* server.
    #[arg(long, requires = "restore_test")]
    pub scratch_cluster: bool,
    /// With --restore-test: a point-in-time recovery test instead (a restore
    /// point written on the POSTGRES_* server must be reached by recovering
    /// the newest base backup with the archived WAL, in a private copy).
    #[arg(long, requires = "restore_test", conflicts_with = "scratch_cluster")]
    pub pitr: bool,
}

pub fn run(ctx: &Ctx, a: VerifyArgs) -> Result<i32> {
    let mode = ReadMode::from_flags(a.read_data, a.read_data_subset);
    let names = super::retention::copies(ctx, &a.destination)?;
    let primary = ctx.open()?;
    let open = |name: &str| ctx.open_destination(name);
    // The restore test uses the copy checked (the repository when several are).
    let mut tested: Option<Repository> = None;
    let outcomes = copies::each(&primary, &names, &open, |name, copy| {
        ctx.step(format!("verify of {name}"));
        let r = crate::ops::verify::run(&copy, name, mode)?;
        if let (1, copies::Copy::Destination(d)) = (names.len(), copy) {
            tested = Some(*d);
        }
        Ok(r)
    });
    let mut reports: Vec<VerifyReport> = Vec::new();
    let mut code = exit::OK;
    for o in outcomes {
        let name = o.copy;
        ctx.note(|d| d.destinations.push(name.clone()));
        match o.result {
            Ok(r) => {
                if !r.problems().is_empty() {
                    code = exit::ERROR;
                    ctx.note(|d| {
                        d.problems.push(format!(
                            "verify of {name}: {} problems, first: {}",
                            r.problems().len(),
                            r.problems()[0]
                        ))
                    });
                }
                reports.push(r);
            }
            // Another run holds the lock (after the wait): exit 11 as every command does.
            Err(e) if names.len() == 1 && e.exit_code() == exit::LOCKED => return Err(e),
            Err(e) => {
                code = exit::ERROR;
                ctx.step(format!("verify of {name}"));
                ctx.note(|d| {
                    d.problems
                        .push(format!("verify of {name}: cannot open this copy: {e}"))
                });
                reports.push(VerifyReport {
                    copy: name.clone(),
                    findings: vec![Finding::new(
                        Object::Copy,
                        Problem::Unreadable,
                        format!("cannot open this copy: {e}"),
                    )],
                    ..Default::default()
                });
            }
        }
    }
    // The step an alert names is a copy's verify only when one failed.
    if code == exit::OK {
        ctx.note(|d| d.step = None);
    }
    let Some(spec) = a.restore_test else {
        render::verify(ctx, &reports);
        return Ok(code);
    };
    if !ctx.json {
        render::verify(ctx, &reports);
    } else {
        render::verify_problems(&reports);
    }
    let repo = tested.as_ref().unwrap_or(&primary);
    let mut draft = crate::audit::Draft::new("restore test");
    draft.destinations = vec![if tested.is_some() {
        names[0].clone()
    } else {
        LOCAL.to_string()
    }];
    let result = match a.pitr {
        true => pitr_test(ctx, repo, &reports, &mut draft),
        false => restore_test(ctx, repo, &spec, a.scratch_cluster, &reports, &mut draft),
    };
    let mut outcome = crate::audit::Outcome::of(&result);
    if outcome.failed() && outcome.error.is_none() {
        outcome.error = Some(draft.problems.join("; "));
    }
    ctx.record(&draft, &outcome);
    if outcome.failed() {
        ctx.step("restore test");
    }
    if let Some(e) = &outcome.error {
        ctx.note(|d| d.problems.push(format!("restore test: {e}")));
    }
    Ok(code.max(result?))
}

/// The line that says why restore test `t` failed: its error, or the checks
/// that did not pass.
fn failure(what: &str, t: &restore_test::RestoreTestReport) -> String {
    if let Some(e) = &t.error {
        return format!("{what} of {}: {e}", t.database);
    }
    let failed: Vec<String> = t
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{} ({})", c.name, c.detail))
        .collect();
    format!(
        "{what} of {}: checks failed: {}",
        t.database,
        failed.join(", ")
    )
}

/// The PITR restore test (`ops::pitr_test`); recorded as a restore test.
fn pitr_test(
    ctx: &Ctx,
    repo: &Repository,
    reports: &[VerifyReport],
    draft: &mut crate::audit::Draft,
) -> Result<i32> {
    let server = ctx.settings.databases.first().cloned().ok_or_else(|| {
        Error::Usage(
            "--restore-test --pitr needs the PostgreSQL server whose WAL is archived: set POSTGRES_HOST, POSTGRES_USER and POSTGRES_DB".into(),
        )
    })?;
    let fetcher = super::restore::fetcher(ctx)?;
    let t = crate::ops::pitr_test::run(repo, &server, &fetcher, &ctx.settings.restore_test)?;
    restore_test::record(repo, &t)?;
    draft.snapshot = Some(t.snapshot.clone());
    draft.duration_secs = Some(t.restore_secs);
    draft.detail = Some(format!(
        "{}: recovered to a restore point in {:.1} s (RTO {:.0} s)",
        t.database, t.restore_secs, t.rto_secs
    ));
    render_db::restore_tests(ctx, reports, std::slice::from_ref(&t));
    if t.passed {
        return Ok(exit::OK);
    }
    draft.problems.push(failure("PITR restore test", &t));
    Ok(exit::ERROR)
}

/// Restore a snapshot's databases into a temporary database and check them;
/// the result also goes to `draft`, the restore test's own audit event.
fn restore_test(
    ctx: &Ctx,
    repo: &Repository,
    spec: &str,
    scratch_cluster: bool,
    reports: &[VerifyReport],
    draft: &mut crate::audit::Draft,
) -> Result<i32> {
    let mut code = exit::OK;
    let server = match ctx.settings.databases.first() {
        Some(s) => s.clone(),
        // A scratch cluster needs no server settings.
        None if scratch_cluster => crate::config::PgTarget {
            host: String::new(),
            port: 0,
            user: String::new(),
            password: None,
            db: String::new(),
            lock_timeout_secs: crate::config::DEFAULT_PG_LOCK_TIMEOUT,
        },
        None => return Err(Error::Usage(
            "--restore-test needs the PostgreSQL server: set POSTGRES_HOST, POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB (or use --scratch-cluster)".into(),
        )),
    };
    let snap = if spec.is_empty() {
        // The latest snapshot holding a good database dump.
        repo.snapshots()?
            .into_iter()
            .rev()
            .find(|s| s.snapshot.databases.iter().any(|d| d.ok()))
            .ok_or_else(|| {
                Error::Failed(
                    "no snapshot holds a database dump yet: take one with POSTGRES_DB set".into(),
                )
            })?
    } else {
        repo.find_snapshot(spec)?
    };
    draft.snapshot = Some(snap.id.to_hex());
    let opts = RestoreTestOptions {
        server,
        config: ctx.settings.restore_test.clone(),
        temp_dir: None,
        scratch: scratch_cluster,
    };
    let tests = restore_test::run(repo, &snap, &opts)?;
    render_db::restore_tests(ctx, reports, &tests);
    draft.duration_secs = tests.iter().map(|t| t.restore_secs).reduce(f64::max);
    draft.detail = Some(
        tests
            .iter()
            .map(|t| {
                format!(
                    "{}: restored in {:.1} s (RTO {:.0} s)",
                    t.database, t.restore_secs, t.rto_secs
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    );
    for t in tests.iter().filter(|t| !t.passed) {
        code = exit::ERROR;
        draft.problems.push(failure("restore test", t));
    }
    if crate::util::interrupted() {
        return Err(Error::Failed(
            "interrupted; the temporary database was dropped".into(),
        ));
    }
    Ok(code)
}
