//! `hcbackup mirror`, and the mirror step at the end of `snapshot`.

use super::{backend_at, Ctx};
use crate::error::{exit, Error, Result};
use crate::ops::mirror;
use crate::repo::Repository;

/// Mirror to `which` (a destination name or `all`); exit 1 when any copy failed,
/// with one line per failing destination naming it and the reason.
pub fn run(ctx: &Ctx, which: &str, full_check: bool) -> Result<i32> {
    let repo = ctx.open()?;
    mirror_to(ctx, &repo, which, true, full_check)
}

/// `print` false: failures still go to stderr, nothing to stdout (the caller
/// prints its own document).
pub fn mirror_to(
    ctx: &Ctx,
    repo: &Repository,
    which: &str,
    print: bool,
    full_check: bool,
) -> Result<i32> {
    let chosen: Vec<&(String, crate::config::RepoLocation)> = ctx
        .settings
        .destinations
        .iter()
        .filter(|(n, _)| which == "all" || n == which)
        .collect();
    if chosen.is_empty() {
        return Err(Error::Usage(if ctx.settings.destinations.is_empty() {
            "no destinations: set S3_BACKUP_BUCKET (and AWS_* credentials) to mirror to S3, GOOGLE_DRIVE_BACKUP_FOLDER (and GOOGLE_CREDENTIALS) to mirror to Google Drive".into()
        } else {
            format!("no destination named {which}")
        }));
    }
    // Shared locks here and at each destination: a prune on either side waits.
    let _lock = repo.lock(false, "mirror")?;
    crate::util::failpoint("mirror-locked");
    // The record of what each destination holds lives in this repository's catalog.
    let opts = mirror::Options {
        catalog: Some(repo.catalog()),
        full_check,
    };
    let mut failed = false;
    let mut reports = Vec::new();
    for (name, loc) in chosen {
        ctx.note(|d| d.destinations.push(name.clone()));
        let result = backend_at(loc.clone()).and_then(|dest| {
            let _dest_lock = repo.lock_at(dest.clone(), false, "mirror")?;
            mirror::run_with(repo, dest.as_ref(), name, opts)
        });
        match result {
            Ok(r) => {
                if !r.failures.is_empty() {
                    failed = true;
                    ctx.note(|d| {
                        d.step = Some(format!("mirror to {name}"));
                        d.problems.push(format!(
                            "mirror to {name}: {} objects failed, first: {}",
                            r.failures.len(),
                            r.failures[0]
                        ));
                    });
                    eprintln!(
                        "hcbackup: mirror to {name} FAILED for {} objects; first: {}",
                        r.failures.len(),
                        r.failures[0]
                    );
                }
                ctx.note(|d| {
                    if d.operation == "mirror" {
                        d.bytes += r.bytes;
                    }
                });
                reports.push(r);
            }
            Err(e) => {
                failed = true;
                eprintln!("hcbackup: mirror to {name} FAILED: {e}");
                ctx.note(|d| {
                    d.step = Some(format!("mirror to {name}"));
                    d.problems.push(format!("mirror to {name}: {e}"));
                });
                reports.push(mirror::MirrorReport {
                    destination: name.clone(),
                    failures: vec![e.to_string()],
                    ..Default::default()
                });
            }
        }
    }
    if print && ctx.json {
        crate::cli::render::emit_raw(&serde_json::to_string_pretty(&reports).expect("json"));
    } else if print && !ctx.quiet {
        for r in &reports {
            outln!(
                "mirror to {}: {} objects copied ({}), {} already there{}{}",
                r.destination,
                r.copied,
                super::render::size(r.bytes),
                r.present,
                if r.listed { " (listed)" } else { "" },
                if r.failures.is_empty() {
                    ""
                } else {
                    ", FAILED"
                }
            );
        }
    }
    Ok(if failed { exit::ERROR } else { exit::OK })
}
