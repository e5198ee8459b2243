//! `hcbackup restore`.

use std::path::PathBuf;

use clap::Args;

use super::{progress::CliProgress, render, Ctx};
use crate::error::{exit, Result};
use crate::ops::restore::{self, RestoreOptions};
use crate::progress::Progress;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id (a unique prefix) or `latest`.
    pub snapshot: String,
    /// Folder to restore into (created when missing; must be empty unless --overwrite).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// Restore only paths matching this glob (repeatable), e.g. 'uploads/exams/**'.
    #[arg(long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Allow restoring into a non-empty folder, replacing files of the same name.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(ctx: &Ctx, a: RestoreArgs) -> Result<i32> {
    let repo = ctx.open()?;
    let snap = repo.find_snapshot(&a.snapshot)?;
    let progress = CliProgress::start(ctx, &[], "restoring");
    progress.set_totals(snap.snapshot.summary.files, snap.snapshot.summary.bytes);
    let started = std::time::Instant::now();
    let opts = RestoreOptions {
        target: a.target,
        includes: a.includes,
        overwrite: a.overwrite,
    };
    let result = restore::run(&repo, &snap, &opts, &progress);
    progress.finish();
    let report = result?;
    render::restore_done(ctx, &snap, &report, started.elapsed());
    Ok(if report.errors.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    })
}
