//! `hcbackup verify [--read-data | --read-data-subset N/M|auto] [--destination NAME|all]
//! [--restore-test [SNAPSHOT]]`.

use super::{render, render_db, Ctx};
use crate::error::{exit, Error, Result};
use crate::ops::restore_test::{self, RestoreTestOptions};
use crate::ops::verify::{ReadMode, VerifyReport};
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
}

pub fn run(ctx: &Ctx, a: VerifyArgs) -> Result<i32> {
    let mode = ReadMode::from_flags(a.read_data, a.read_data_subset);
    let names = super::retention::copies(ctx, &a.destination)?;
    let primary = ctx.open()?;
    let mut reports: Vec<VerifyReport> = Vec::new();
    let mut code = exit::OK;
    let mut tested: Option<Repository> = None;
    for name in &names {
        let copy = super::retention::open_copy(ctx, name);
        let result = copy.and_then(|copy| {
            let repo = copy.as_ref().unwrap_or(&primary);
            let r = crate::ops::verify::run(repo, name, mode)?;
            Ok((r, copy))
        });
        match result {
            Ok((r, copy)) => {
                if !r.problems.is_empty() {
                    code = exit::ERROR;
                }
                if names.len() == 1 {
                    tested = copy;
                }
                reports.push(r);
            }
            Err(e) => {
                code = exit::ERROR;
                reports.push(VerifyReport {
                    copy: name.clone(),
                    problems: vec![format!("cannot open this copy: {e}")],
                    ..Default::default()
                });
            }
        }
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
    let server = match ctx.settings.databases.first() {
        Some(s) => s.clone(),
        // A scratch cluster needs no server settings.
        None if a.scratch_cluster => crate::config::PgTarget {
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
        scratch: a.scratch_cluster,
    };
    let tests = restore_test::run(repo, &snap, &opts)?;
    render_db::restore_tests(ctx, &reports, &tests);
    if tests.iter().any(|r| !r.passed) {
        code = exit::ERROR;
    }
    if crate::util::interrupted() {
        return Err(Error::Failed(
            "interrupted; the temporary database was dropped".into(),
        ));
    }
    Ok(code)
}
