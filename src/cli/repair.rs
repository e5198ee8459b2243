//! `hcbackup repair [--destination NAME|all] [--read-data | --read-data-subset N/M|auto]`:
//! heal each copy named from the others.

use super::retention::fold;
use super::{render, Ctx};
use crate::error::{exit, Result};
use crate::ops::copies::Outcome;
use crate::ops::repair;
use crate::ops::verify::ReadMode;
use crate::repo::Repository;
use crate::retention::LOCAL;

#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    /// The copy to heal: `local` (the repository), a destination's name, or `all`.
    #[arg(long, default_value = LOCAL)]
    pub destination: String,
    /// Read every pack to find damage (otherwise only missing objects, wrong sizes
    /// and unreadable manifests and index objects are found).
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Read a part of the packs: N/M (the Nth of M parts) or auto (what is due).
    #[arg(long, value_name = "N/M|auto")]
    pub read_data_subset: Option<ReadMode>,
}

pub fn run(ctx: &Ctx, a: RepairArgs) -> Result<i32> {
    let mode = ReadMode::from_flags(a.read_data, a.read_data_subset);
    let targets = super::retention::copies(ctx, &a.destination)?;
    let primary = ctx.open()?;
    // Every copy that opens is a possible source of good objects.
    let mut copies: Vec<(String, Repository)> = Vec::new();
    for (name, _) in &ctx.settings.destinations {
        match ctx.open_destination(name) {
            Ok(r) => copies.push((name.clone(), r)),
            Err(e) => eprintln!("hcbackup: repair: destination {name} cannot be used: {e}"),
        }
    }
    let mut code = exit::OK;
    let mut outcomes = Vec::new();
    for name in &targets {
        let target = if name == LOCAL {
            &primary
        } else {
            match copies.iter().find(|(n, _)| n == name) {
                Some((_, r)) => r,
                None => {
                    code = exit::ERROR;
                    continue; // reported above
                }
            }
        };
        let sources: Vec<(String, &Repository)> = std::iter::once((LOCAL.to_string(), &primary))
            .chain(copies.iter().map(|(n, r)| (n.clone(), r)))
            .filter(|(n, _)| n != name)
            .collect();
        outcomes.push(Outcome {
            copy: name.clone(),
            result: repair::run(target, name, &sources, mode),
        });
    }
    let (failed, reports) = fold(
        ctx,
        |name| format!("repair of {name}"),
        outcomes,
        |_, _| None,
    );
    code = code.max(failed);
    for r in &reports {
        if !r.after.problems().is_empty() {
            code = code.max(exit::ERROR);
            ctx.note(|d| {
                d.problems.push(format!(
                    "{}: {} problems remain, first: {}",
                    r.copy,
                    r.after.problems().len(),
                    r.after.problems()[0]
                ))
            });
        }
    }
    render::repair(ctx, &reports);
    Ok(code)
}
