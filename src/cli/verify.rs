//! `hcbackup verify [--read-data] [--restore-test [SNAPSHOT]]`.

use super::{render, render_db, Ctx};
use crate::error::{exit, Error, Result};
use crate::ops::restore_test::{self, RestoreTestOptions};

pub fn run(ctx: &Ctx, read_data: bool, restore_test: Option<String>, scratch: bool) -> Result<i32> {
    let repo = ctx.open()?;
    let report = crate::ops::verify::run(&repo, read_data)?;
    let mut code = if report.problems.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    };
    let Some(spec) = restore_test else {
        render::verify(ctx, &report);
        return Ok(code);
    };
    if !ctx.json {
        render::verify(ctx, &report);
    } else {
        for p in &report.problems {
            eprintln!("hcbackup: verify: {p}");
        }
    }
    let server = match ctx.settings.databases.first() {
        Some(s) => s.clone(),
        // A scratch cluster needs no server settings.
        None if scratch => crate::config::PgTarget {
            host: String::new(),
            port: 0,
            user: String::new(),
            password: None,
            db: String::new(),
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
        repo.find_snapshot(&spec)?
    };
    let opts = RestoreTestOptions {
        server,
        config: ctx.settings.restore_test.clone(),
        temp_dir: None,
        scratch,
    };
    let reports = restore_test::run(&repo, &snap, &opts)?;
    render_db::restore_tests(ctx, &report, &reports);
    if reports.iter().any(|r| !r.passed) {
        code = exit::ERROR;
    }
    if crate::util::interrupted() {
        return Err(Error::Failed(
            "interrupted; the temporary database was dropped".into(),
        ));
    }
    Ok(code)
}
