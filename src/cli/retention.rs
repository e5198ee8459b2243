//! `hcbackup forget`, `prune` and `hold`: retention per copy (`local` is the
//! primary repository; destinations go by their names).

use std::collections::HashSet;

use clap::{Args, Subcommand};

use super::{render_retention as render, Ctx};
use crate::catalog::Removal;
use crate::error::{exit, Error, Result};
use crate::ops::copies::{self, Outcome};
use crate::ops::{forget, prune};
use crate::repo::Repository;
use crate::retention::{Policy, Span, LOCAL};

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Remove exactly these snapshots (ids, unique prefixes, `latest`) instead of
    /// applying a policy; a legal hold still keeps one.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub select: super::Select,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the N most recent hours that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    /// … of each of the N most recent days that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// … of each of the N most recent ISO weeks that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// … of each of the N most recent months that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// … of each of the N most recent years that have one.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every snapshot within this span of the newest (90d, 1y6m, 2w, 36h).
    #[arg(long, value_name = "SPAN")]
    pub keep_within: Option<Span>,
    /// Keep every snapshot with this tag.
    #[arg(long, value_name = "TAG")]
    pub keep_tag: Vec<String>,
    /// The copy: `local` (the repository), a destination's name, or `all`; each
    /// uses its own policy from hcbackup.toml (or the seed's) unless --keep-* is given.
    #[arg(long, default_value = LOCAL)]
    pub destination: String,
    /// Then prune the same copies.
    #[arg(long)]
    pub prune: bool,
    /// Show the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Judge as of this time (RFC 3339 or YYYY-MM-DD) instead of now.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// With --prune: repack packs with more than this percentage unused.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    pub max_unused: f64,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// The copy: `local`, a destination's name, or `all`.
    #[arg(long, default_value = LOCAL)]
    pub destination: String,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Repack packs with more than this percentage of unused bytes.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    pub max_unused: f64,
}

#[derive(Subcommand, Debug)]
pub enum HoldCommand {
    /// Keep SNAPSHOT whatever the retention policies say, in every copy.
    Add {
        /// Snapshot id (a unique prefix) or `latest`.
        snapshot: String,
        /// Why (a court order, a complaint number): recorded in the hold and the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Lift the hold on SNAPSHOT.
    Remove {
        /// Snapshot id (a unique prefix).
        snapshot: String,
        /// Why the hold ends: recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// List the holds.
    List,
}

impl ForgetArgs {
    fn policy(&self) -> Policy {
        Policy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within,
            keep_tag: self.keep_tag.clone(),
        }
    }
}

/// The copies `which` names: `local`, a destination, or `all`.
pub(super) fn copies(ctx: &Ctx, which: &str) -> Result<Vec<String>> {
    crate::ops::copies::select(
        ctx.settings.destinations.iter().map(|(n, _)| n.as_str()),
        which,
    )
}

/// Fold the outcomes of `what` on each copy: a failure gets one line on stderr
/// naming the copy and a problem in the audit event (when `loud`; verify puts
/// it in its report instead). The exit code is the worst of the failures, or 0.
pub(super) fn fold<T>(
    ctx: &Ctx,
    label: impl Fn(&str) -> String,
    outcomes: Vec<Outcome<T>>,
    mut on_error: impl FnMut(&str, &Error) -> Option<T>,
) -> (i32, Vec<T>) {
    let mut code = exit::OK;
    let mut done = Vec::new();
    for o in outcomes {
        ctx.note(|d| d.destinations.push(o.copy.clone()));
        match o.result {
            Ok(t) => done.push(t),
            Err(e) => {
                let label = label(&o.copy);
                eprintln!("hcbackup: {label} FAILED: {e}");
                ctx.note(|d| {
                    d.step = Some(label.clone());
                    d.problems.push(format!("{label}: {e}"));
                });
                code = code.max(e.exit_code().max(exit::ERROR));
                done.extend(on_error(&o.copy, &e));
            }
        }
    }
    (code, done)
}

fn max_unused(pct: f64) -> Result<f64> {
    if !(0.0..=100.0).contains(&pct) {
        return Err(Error::Usage(format!(
            "--max-unused {pct}: give a percentage from 0 to 100"
        )));
    }
    Ok(pct / 100.0)
}

pub fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<i32> {
    let now = super::now_flag(&a.now)?;
    let threshold = max_unused(a.max_unused)?;
    let names = copies(ctx, &a.destination)?;
    let primary = ctx.open()?;
    let cli_policy = a.policy();
    if !a.snapshots.is_empty() && !cli_policy.is_empty() {
        return Err(Error::Usage(
            "name the snapshots to remove or give a policy (--keep-*), not both".into(),
        ));
    }
    let filter = a.select.filter();
    let primary_holds = primary.holds()?;
    let open = |name: &str| ctx.open_destination(name);
    let outcomes = copies::each(&primary, &names, &open, |name, repo| {
        let (policy, source) = if cli_policy.is_empty() {
            ctx.settings.policy(name)
        } else {
            (cli_policy.clone(), "command line")
        };
        // What the repository holds now (after its own forget, with `all`).
        let primary_ids: HashSet<_> = match repo.is_primary() {
            false => primary.snapshots()?.into_iter().map(|s| s.id).collect(),
            true => HashSet::new(),
        };
        let opts = forget::ForgetOptions {
            policy: &policy,
            named: &a.snapshots,
            filter: &filter,
            now,
            dry_run: a.dry_run,
            extra_holds: if repo.is_primary() {
                &[]
            } else {
                &primary_holds
            },
            in_primary: &primary_ids,
        };
        let report = forget::run(&repo, name, source, &opts)?;
        if !a.dry_run {
            record_forget(
                ctx,
                &primary,
                &repo,
                name,
                &report,
                source,
                a.snapshots.is_empty(),
            )?;
        }
        render::forget(ctx, &report);
        let mut doc = serde_json::to_value(&report).expect("json");
        if a.prune {
            let p = run_prune(ctx, &primary, &repo, name, a.dry_run, threshold)?;
            doc["prune"] = serde_json::to_value(&p).expect("json");
        }
        Ok(doc)
    });
    Ok(print_docs(ctx, "forget", outcomes))
}

/// Note what forget removed from copy `name`: in the audit event, in the
/// primary's record of removals, and (at a destination) in the mirror's record.
fn record_forget(
    ctx: &Ctx,
    primary: &Repository,
    repo: &Repository,
    name: &str,
    report: &forget::ForgetReport,
    source: &str,
    by_policy: bool,
) -> Result<()> {
    ctx.note(|d| {
        add_detail(d, format!("{name}: {} snapshots removed", report.removed));
        d.forgotten.extend(
            report
                .groups
                .iter()
                .flat_map(|g| g.snapshots.iter().filter(|s| !s.keep))
                .map(|s| s.id.clone()),
        );
    });
    let time = crate::util::rfc3339(crate::util::now());
    let rows: Vec<Removal> = report
        .groups
        .iter()
        .flat_map(|g| g.snapshots.iter().filter(|s| !s.keep))
        .map(|s| Removal {
            time: time.clone(),
            copy: name.to_string(),
            operation: "forget".into(),
            object: format!("snapshots/{}", s.id),
            reason: if by_policy {
                format!("not kept by {} ({source})", report.policy)
            } else {
                "named on the command line".to_string()
            },
        })
        .collect();
    primary.catalog().record_removals(&rows)?;
    if name != LOCAL {
        let paths: Vec<String> = rows.iter().map(|r| r.object.clone()).collect();
        primary
            .catalog()
            .remove_holdings(&repo.backend().location(), &paths)?;
    }
    Ok(())
}

/// Fold the outcomes of `what` and, with --json, print one array of the
/// copies' documents (a failed copy's names its error). Returns the exit code.
fn print_docs(ctx: &Ctx, what: &str, outcomes: Vec<Outcome<serde_json::Value>>) -> i32 {
    let (code, docs) = fold(
        ctx,
        |name| format!("{what} on {name}"),
        outcomes,
        |name, e| Some(serde_json::json!({ "copy": name, "error": e.to_string() })),
    );
    if ctx.json {
        crate::cli::render::emit_raw(&serde_json::to_string_pretty(&docs).expect("json"));
    }
    code
}

pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<i32> {
    let threshold = max_unused(a.max_unused)?;
    let names = copies(ctx, &a.destination)?;
    let primary = ctx.open()?;
    let open = |name: &str| ctx.open_destination(name);
    let outcomes = copies::each(&primary, &names, &open, |name, repo| {
        let r = run_prune(ctx, &primary, &repo, name, a.dry_run, threshold)?;
        Ok(serde_json::json!({ "copy": name, "prune": r }))
    });
    Ok(print_docs(ctx, "prune", outcomes))
}

/// Prune one copy and record what went, in the primary's catalog.
fn run_prune(
    ctx: &Ctx,
    primary: &Repository,
    repo: &Repository,
    name: &str,
    dry_run: bool,
    max_unused: f64,
) -> Result<prune::PruneReport> {
    let r = prune::run(
        repo,
        prune::PruneOptions {
            dry_run,
            max_unused,
        },
    )?;
    if !dry_run {
        ctx.note(|d| {
            d.bytes += r.bytes_deleted;
            add_detail(d, format!("{name}: {} packs deleted", r.packs_deleted));
        });
        let time = crate::util::rfc3339(crate::util::now());
        let rows: Vec<Removal> = r
            .removed
            .iter()
            .map(|x| Removal {
                time: time.clone(),
                copy: name.to_string(),
                operation: "prune".into(),
                object: x.object.clone(),
                reason: x.reason.clone(),
            })
            .collect();
        primary.catalog().record_removals(&rows)?;
        if name != LOCAL {
            // The destination changed under the mirror's record: list it next time.
            primary
                .catalog()
                .forget_holdings(&repo.backend().location())?;
        }
    }
    render::prune(ctx, name, &r);
    Ok(r)
}

pub fn hold(ctx: &Ctx, cmd: HoldCommand) -> Result<i32> {
    let repo = ctx.open()?;
    match cmd {
        HoldCommand::Add { snapshot, reason } => {
            // An old snapshot may live only in a destination (S3 keeps years the
            // repository does not): the hold goes in the repository all the same,
            // and the destination's forget honours it.
            let id = match repo.find_snapshot(&snapshot) {
                Ok(s) => s.id,
                Err(first) => ctx
                    .settings
                    .destinations
                    .iter()
                    .find_map(|(name, _)| {
                        ctx.open_destination(name)
                            .and_then(|d| d.find_snapshot(&snapshot))
                            .ok()
                    })
                    .map(|s| s.id)
                    .ok_or(first)?,
            };
            ctx.note(|d| {
                d.snapshot = Some(id.to_hex());
                d.reason = Some(reason.trim().to_string());
            });
            let h = repo.add_hold(&id, &reason)?;
            render::hold_changed(ctx, "placed", &h.snapshot, &h.reason);
        }
        HoldCommand::Remove { snapshot, reason } => {
            if reason.trim().is_empty() {
                return Err(Error::Usage(
                    "say why the hold is lifted: --reason TEXT".into(),
                ));
            }
            // The snapshot may be gone from here already; match the holds by prefix.
            let holds = repo.holds()?;
            let id =
                crate::id::resolve_prefix(&snapshot, holds.iter().map(|h| h.snapshot.as_str()))
                    .map_err(|e| Error::Usage(format!("no hold on {snapshot}: {e}")))?
                    .to_string();
            let oid = crate::id::ObjectId::from_hex(&id).expect("hold names are ids");
            ctx.note(|d| {
                d.snapshot = Some(id.clone());
                d.reason = Some(reason.trim().to_string());
            });
            repo.remove_hold(&oid)?;
            repo.catalog().record_removals(&[Removal {
                time: crate::util::rfc3339(crate::util::now()),
                copy: LOCAL.into(),
                operation: "hold remove".into(),
                object: format!("holds/{id}"),
                reason: reason.trim().to_string(),
            }])?;
            render::hold_changed(ctx, "lifted", &id, &reason);
        }
        HoldCommand::List => render::holds(ctx, &repo.holds()?),
    }
    Ok(exit::OK)
}

/// Append to the audit event's summary (one part per copy).
fn add_detail(d: &mut crate::audit::Draft, part: String) {
    d.detail = Some(match d.detail.take() {
        Some(s) => format!("{s}; {part}"),
        None => part,
    });
}
