//! `hcbackup import-legacy FILE... [--source DIR]`: the old script's
//! `db_backup_*.dump` and `files_backup_*.tar.gz` as snapshots dated by their names.

use std::path::PathBuf;

use super::{progress::CliProgress, render, Ctx};
use crate::error::{exit, Result};
use crate::ops::import_legacy::{self, ImportOptions};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The files (any order; those of one night make one snapshot).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The folder the tarballs are of (default: UPLOADS_DIR), recorded as the
    /// snapshots' source so they line up with the snapshots that follow.
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: ImportArgs) -> Result<i32> {
    let repo = ctx.open()?;
    let opts = ImportOptions {
        files: a.files,
        // Absolute, as snapshots record their sources: `status` matches them.
        source: a
            .source
            .or_else(|| ctx.settings.uploads_dir.clone())
            .map(|p| std::path::absolute(&p).unwrap_or(p)),
        database: ctx.settings.databases.first().cloned(),
    };
    let progress = CliProgress::start(ctx, &[], "importing");
    let result = import_legacy::run(&repo, &opts, &progress);
    progress.finish();
    let imported = result?;
    let mut code = exit::OK;
    for r in &imported {
        if let Some(e) = &r.error {
            code = exit::ERROR;
            ctx.note(|d| {
                d.step = Some(format!("import of {}", r.stamp));
                d.problems.push(format!("{}: {e}", r.files.join(", ")));
            });
        }
        if r.snapshot.is_some() {
            ctx.note(|d| d.bytes += r.bytes_added);
        }
    }
    let n = imported.iter().filter(|r| r.snapshot.is_some()).count();
    ctx.note(|d| d.detail = Some(format!("{n} snapshots imported")));
    if ctx.json {
        crate::cli::render::emit_raw(&serde_json::to_string_pretty(&imported).expect("json"));
    } else {
        for r in &imported {
            let what = match (&r.snapshot, &r.skipped, &r.error) {
                (Some(id), _, _) => format!(
                    "snapshot {} dated {}: {} held, {} added",
                    &id[..8],
                    r.time,
                    render::size(r.bytes),
                    render::size(r.bytes_added)
                ),
                (_, Some(why), _) => format!("skipped: {why}"),
                (_, _, Some(e)) => format!("FAILED: {e}"),
                _ => String::new(),
            };
            outln!("{}: {what}", r.stamp);
        }
    }
    Ok(code)
}
