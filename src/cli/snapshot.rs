//! `hcbackup snapshot`.

use std::path::PathBuf;

use clap::Args;

use super::{progress::CliProgress, render, Ctx};
use crate::error::{exit, Error, Result};
use crate::ops::snapshot::{self, SnapshotOptions};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Folders or files to back up (default: UPLOADS_DIR). The POSTGRES_* database
    /// and `[[postgres]]` databases are dumped into the same snapshot.
    pub paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// The snapshot's time instead of now (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<String>,
    /// Skip the databases: files only.
    #[arg(long)]
    pub no_postgres: bool,
    /// Do not mirror to the destinations (S3_BACKUP_BUCKET) afterwards.
    #[arg(long)]
    pub no_mirror: bool,
}

pub fn run(ctx: &Ctx, a: SnapshotArgs) -> Result<i32> {
    let databases = if a.no_postgres {
        Vec::new()
    } else {
        ctx.settings.databases.clone()
    };
    let paths = if a.paths.is_empty() {
        match (&ctx.settings.uploads_dir, databases.is_empty()) {
            (Some(u), _) => vec![u.clone()],
            (None, false) => Vec::new(),
            (None, true) => {
                return Err(Error::Usage(
                    "nothing to back up: give a PATH, set UPLOADS_DIR, or set POSTGRES_DB".into(),
                ))
            }
        }
    } else {
        a.paths
    };
    let time = match &a.time {
        Some(t) => Some(crate::util::parse_rfc3339(t).ok_or_else(|| {
            Error::Usage(format!(
                "--time {t}: not an RFC 3339 time like 2026-01-15T03:00:00Z"
            ))
        })?),
        None => None,
    };
    let repo = ctx.open()?;
    let progress = CliProgress::start(ctx, &paths, "backing up");
    let result = snapshot::run(
        &repo,
        &SnapshotOptions {
            paths,
            tags: a.tags,
            time,
            databases,
        },
        &progress,
    );
    progress.finish();
    let entry = result?;
    render::snapshot_done(ctx, &entry);
    let mut code = if entry.snapshot.incomplete() {
        exit::INCOMPLETE
    } else {
        exit::OK
    };
    // A local success never hides an offsite failure.
    if !a.no_mirror && !ctx.settings.destinations.is_empty() {
        let mirrored = super::mirror::mirror_to(ctx, &repo, "all", !ctx.json, false)
            .unwrap_or_else(|e| {
                eprintln!("hcbackup: mirror FAILED: {e}");
                exit::ERROR
            });
        if mirrored != exit::OK && code == exit::OK {
            code = exit::ERROR;
        }
    }
    Ok(code)
}
