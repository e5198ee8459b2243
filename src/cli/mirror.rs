//! `hcbackup mirror`, and the mirror step at the end of `snapshot`.

use super::{backend_at, Ctx};
use crate::error::{exit, Error, Result};
use crate::ops::mirror;

/// Mirror to `which` (a destination name or `all`); exit 1 when any copy failed,
/// with one line per failing destination naming it and the reason.
pub fn run(ctx: &Ctx, which: &str, full_check: bool) -> Result<i32> {
    mirror_to(ctx, which, true, full_check)
}

/// `print` false: failures still go to stderr, nothing to stdout (the caller
/// prints its own document).
pub fn mirror_to(ctx: &Ctx, which: &str, print: bool, full_check: bool) -> Result<i32> {
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
    let src = ctx.backend()?;
    // The record of what each destination holds lives in this repository's catalog
    // (opened without a password: it holds no secrets).
    let config = crate::repo::RepoConfig::load(src.as_ref())?;
    let catalog = crate::catalog::Catalog::open(&config.catalog_path(&ctx.settings.cache_dir))?;
    let opts = mirror::Options {
        catalog: Some(&catalog),
        full_check,
    };
    let mut failed = false;
    let mut reports = Vec::new();
    for (name, loc) in chosen {
        let result = backend_at(loc.clone())
            .and_then(|dest| mirror::run_with(src.as_ref(), dest.as_ref(), name, opts));
        match result {
            Ok(r) => {
                if !r.failures.is_empty() {
                    failed = true;
                    eprintln!(
                        "hcbackup: mirror to {name} FAILED for {} objects; first: {}",
                        r.failures.len(),
                        r.failures[0]
                    );
                }
                reports.push(r);
            }
            Err(e) => {
                failed = true;
                eprintln!("hcbackup: mirror to {name} FAILED: {e}");
                reports.push(mirror::MirrorReport {
                    destination: name.clone(),
                    failures: vec![e.to_string()],
                    ..Default::default()
                });
            }
        }
    }
    if print && ctx.json {
        println!("{}", serde_json::to_string_pretty(&reports).expect("json"));
    } else if print && !ctx.quiet {
        for r in &reports {
            println!(
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
