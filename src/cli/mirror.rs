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
    let chosen = chosen
        .into_iter()
        .map(|(name, loc)| (name.clone(), backend_at(loc.clone())))
        .collect();
    let outcomes = mirror::to_each(repo, chosen, full_check)?;
    for o in &outcomes {
        let (name, Ok(r)) = (&o.copy, &o.result) else {
            continue;
        };
        if !r.failures.is_empty() {
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
    }
    let (code, reports) = super::retention::fold(
        ctx,
        |name| format!("mirror to {name}"),
        outcomes,
        |name, e| {
            Some(mirror::MirrorReport {
                destination: name.to_string(),
                failures: vec![e.to_string()],
                ..Default::default()
            })
        },
    );
    let failed = code != exit::OK || reports.iter().any(|r| !r.failures.is_empty());
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
