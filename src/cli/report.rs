//! `hcbackup report [--format md|html] [--output FILE] [--since TIME]`: compliance
//! evidence for an audit, as Markdown or a self-contained HTML page.

use std::path::PathBuf;

use super::doc::{self, Block};
use super::render::size;
use super::status::{compute_with, StatusArgs};
use super::Ctx;
use crate::error::{exit, Error, Result};
use crate::ops::report::{self, CopyPolicy, Report, ReportInput, Targets};
use crate::retention::LOCAL;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum Format {
    Md,
    Html,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Markdown (md) or HTML (html).
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Write to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The period the lists cover (RFC 3339 or a date; default: the last 400 days).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    #[command(flatten)]
    pub status: StatusArgs,
}

pub fn run(ctx: &Ctx, a: ReportArgs) -> Result<i32> {
    let now = super::now_flag(&a.status.now)?;
    let since = match &a.since {
        Some(t) => super::time_flag("--since", t)?,
        None => now - time::Duration::days(400),
    };
    let since = since.replace_nanosecond(0).unwrap_or(since);
    let repo = ctx.open()?;
    let status = compute_with(ctx, &repo, now, &a.status)?;
    let policies = std::iter::once(LOCAL.to_string())
        .chain(ctx.settings.destinations.iter().map(|(n, _)| n.clone()))
        .map(|copy| {
            let (p, source) = ctx.settings.policy(&copy);
            CopyPolicy {
                copy,
                policy: p.describe(),
                source: source.to_string(),
            }
        })
        .collect();
    let r = report::run(
        &repo,
        ReportInput {
            status,
            policies,
            targets: Targets {
                rpo_hours: 24.0,
                rto_database_minutes: ctx.settings.restore_test.rto_minutes,
                rto_files_minutes: 30.0,
                rto_server_minutes: 120.0,
            },
            since,
        },
    )?;
    let blocks = compose(&r);
    let text = match a.format {
        Format::Md => doc::markdown(&blocks),
        Format::Html => doc::html("hcbackup compliance report", &blocks),
    };
    match &a.output {
        // The report may replace its file, never what a planted link names.
        Some(p) => {
            crate::ops::output_file::claim_stdout(p);
            let mut f = crate::ops::output_file::OutputFile::create(p, true)?;
            std::io::Write::write_all(&mut f, text.as_bytes())
                .map_err(|e| Error::io_path("writing", p, e))?;
            f.commit()?
        }
        None => crate::cli::render::emit_raw(text.trim_end_matches('\n')),
    }
    Ok(exit::OK)
}

fn met(ok: bool) -> String {
    if ok { "met" } else { "NOT MET" }.into()
}

fn secs(s: f64) -> String {
    if s >= 120.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// The report's sections, in reading order.
pub fn compose(r: &Report) -> Vec<Block> {
    let s = &r.status;
    let mut b = vec![
        Block::H1("hcbackup compliance report".into()),
        Block::P(format!(
            "Repository {}. Generated {} by hcbackup {}. Lists cover {} to now.",
            s.repository, r.generated, r.version, r.since
        )),
    ];
    summary(r, &mut b);
    objectives(r, &mut b);
    retention(r, &mut b);
    copies(r, &mut b);
    last_backups(r, &mut b);
    restore_tests(r, &mut b);
    restores(r, &mut b);
    holds(r, &mut b);
    removed(r, &mut b);
    key_changes(r, &mut b);
    audit_chain(r, &mut b);
    b
}

/// The report's section: summary.
fn summary(r: &Report, b: &mut Vec<Block>) {
    let s = &r.status;
    // Summary.
    let chain = chain(r);
    let mut summary = vec![
        format!(
            "Backups: {}",
            if s.fresh {
                "fresh".to_string()
            } else {
                format!("STALE: {}", s.problems.join("; "))
            }
        ),
        format!("Audit chain: {chain}"),
        format!(
            "Risks: {}",
            if s.warnings.is_empty() {
                "none".to_string()
            } else {
                s.warnings.join("; ")
            }
        ),
        format!(
            "{} snapshots, {} stored, dedup {:.1}x",
            s.snapshots,
            size(s.stored_bytes),
            s.dedup_ratio
        ),
    ];
    if let Some(v) = &s.last_verify {
        summary.push(format!("Last verify: {} {}", v.time, v.result));
    }
    b.push(Block::H2("Summary".into()));
    b.push(Block::List(summary));
}

/// The report's section: objectives.
fn objectives(r: &Report, b: &mut Vec<Block>) {
    let s = &r.status;
    let t = &r.targets;
    // Objectives.
    let mut rows = Vec::new();
    // Sources the settings replaced (a moved folder) have no objective.
    for src in s.sources.iter().filter(|x| x.judged) {
        let (measured, ok) = match &src.last_good {
            Some(g) => (
                format!(
                    "last good snapshot {:.1} h old{}",
                    g.age_hours,
                    g.written
                        .as_ref()
                        .map(|w| format!(" (backdated: made {w})"))
                        .unwrap_or_default()
                ),
                g.age_hours <= t.rpo_hours,
            ),
            None => ("no good snapshot".into(), false),
        };
        rows.push(vec![
            format!("RPO: {} {}", src.kind, src.name),
            format!("{} h", t.rpo_hours),
            measured,
            met(ok),
        ]);
    }
    let db_rto = t.rto_database_minutes * 60.0;
    let has_db = s.sources.iter().any(|x| x.kind == "database");
    let db = r.restore_tests.iter().rev().find(|x| x.passed);
    if has_db {
        rows.push(match db {
            Some(x) => vec![
                "RTO: database".into(),
                format!("{} min", t.rto_database_minutes),
                format!(
                    "{} restored in {} ({})",
                    x.database,
                    secs(x.restore_secs),
                    x.time
                ),
                met(x.restore_secs <= db_rto),
            ],
            None => vec![
                "RTO: database".into(),
                format!("{} min", t.rto_database_minutes),
                "no passed restore test in the period".into(),
                "NOT MET".into(),
            ],
        });
    }
    let files = r
        .restores
        .iter()
        .filter(|e| e.result == "ok" && e.detail.as_deref().is_some_and(|d| d.ends_with(" files")))
        .filter_map(|e| e.duration_secs.map(|d| (e, d)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    rows.push(match files {
        Some((e, d)) => vec![
            "RTO: files".into(),
            format!("{} min", t.rto_files_minutes),
            format!("slowest restore: {} in {} ({})", size(e.bytes), secs(d), e.time),
            met(d <= t.rto_files_minutes * 60.0),
        ],
        None => vec![
            "RTO: files".into(),
            format!("{} min", t.rto_files_minutes),
            "no restore of files in the period: time one (hcbackup restore latest --target DIR --reason \"restore drill\")".into(),
            "not measured".into(),
        ],
    });
    let server = match (db, files) {
        (Some(x), Some((_, d))) => Some(x.restore_secs + d),
        (None, Some((_, d))) if !has_db => Some(d),
        _ => None,
    };
    rows.push(vec![
        "RTO: server".into(),
        format!("{} min", t.rto_server_minutes),
        match server {
            Some(x) => format!(
                "the restores above together: {} (rebuilding the machine comes on top; runbook: docs/operations.md §3)",
                secs(x)
            ),
            None => "not measured: needs a database and a files restore in the period".into(),
        },
        match server {
            Some(x) if x <= t.rto_server_minutes * 60.0 => "met (restores)".into(),
            Some(_) => "NOT MET".into(),
            None => "not measured".into(),
        },
    ]);
    b.push(Block::H2("Recovery objectives".into()));
    b.push(table(
        vec![
            "objective".into(),
            "target".into(),
            "measured".into(),
            "".into(),
        ],
        rows,
    ));
}

/// The report's section: retention.
fn retention(r: &Report, b: &mut Vec<Block>) {
    b.push(Block::H2("Retention policy per copy".into()));
    b.push(table(
        vec!["copy".into(), "policy".into(), "from".into()],
        r.policies
            .iter()
            .map(|p| vec![p.copy.clone(), p.policy.clone(), p.source.clone()])
            .collect(),
    ));
}

/// The report's section: copies.
fn copies(r: &Report, b: &mut Vec<Block>) {
    let s = &r.status;
    b.push(Block::H2("Copies".into()));
    let mut copies = vec![vec![
        LOCAL.to_string(),
        s.repository.clone(),
        s.last_snapshot
            .as_ref()
            .map(|x| x.time.clone())
            .unwrap_or_default(),
        "—".into(),
    ]];
    for d in &s.destinations {
        copies.push(vec![
            d.name.clone(),
            d.location.clone(),
            d.last_mirror.clone().unwrap_or_else(|| "never".into()),
            match d.snapshots_behind {
                Some(0) => "up to date".into(),
                Some(n) => format!("{n} snapshots behind"),
                None => "not known on this machine".into(),
            },
        ]);
    }
    b.push(table(
        vec![
            "copy".into(),
            "location".into(),
            "last write".into(),
            "lag".into(),
        ],
        copies,
    ));
}

/// The report's section: last backups.
fn last_backups(r: &Report, b: &mut Vec<Block>) {
    let s = &r.status;
    b.push(Block::H2("Last backups".into()));
    b.push(table(
        vec![
            "source".into(),
            "last good snapshot".into(),
            "age".into(),
            "size".into(),
            "last attempt".into(),
        ],
        s.sources
            .iter()
            .map(|x| {
                vec![
                    format!("{} {}", x.kind, x.name),
                    x.last_good
                        .as_ref()
                        .map(|g| format!("{} ({})", g.time, short(&g.id)))
                        .unwrap_or_else(|| "none".into()),
                    x.last_good
                        .as_ref()
                        .map(|g| format!("{:.1} h", g.age_hours))
                        .unwrap_or_default(),
                    size(x.bytes),
                    if x.last_ok { "ok" } else { "FAILED" }.into(),
                ]
            })
            .collect(),
    ));
}

/// The report's section: restore tests.
fn restore_tests(r: &Report, b: &mut Vec<Block>) {
    let db_rto = r.targets.rto_database_minutes * 60.0;
    b.push(Block::H2("Restore tests".into()));
    b.push(table(
        vec![
            "time".into(),
            "snapshot".into(),
            "database".into(),
            "result".into(),
            "restore time".into(),
            "RTO".into(),
        ],
        r.restore_tests
            .iter()
            .map(|x| {
                vec![
                    x.time.clone(),
                    short(&x.snapshot),
                    x.database.clone(),
                    if x.passed { "passed" } else { "FAILED" }.into(),
                    secs(x.restore_secs),
                    format!("{} ({})", secs(db_rto), met(x.restore_secs <= db_rto)),
                ]
            })
            .collect(),
    ));
}

/// The report's section: restores.
fn restores(r: &Report, b: &mut Vec<Block>) {
    b.push(Block::H2("Restores".into()));
    b.push(table(
        vec![
            "time".into(),
            "by".into(),
            "snapshot".into(),
            "from".into(),
            "restored".into(),
            "took".into(),
            "result".into(),
            "reason".into(),
        ],
        r.restores
            .iter()
            .map(|e| {
                vec![
                    e.time.clone(),
                    format!("{}@{}", e.user, e.host),
                    e.snapshot.as_deref().map(short).unwrap_or_default(),
                    e.destinations.join(", "),
                    size(e.bytes),
                    e.duration_secs.map(secs).unwrap_or_default(),
                    e.result.clone(),
                    e.reason.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    ));
}

/// The report's section: holds.
fn holds(r: &Report, b: &mut Vec<Block>) {
    b.push(Block::H2("Legal holds".into()));
    b.push(table(
        vec![
            "snapshot".into(),
            "reason".into(),
            "placed by".into(),
            "time".into(),
        ],
        r.holds
            .iter()
            .map(|h| {
                vec![
                    short(&h.snapshot),
                    h.reason.clone(),
                    format!("{}@{}", h.user, h.host),
                    h.time.clone(),
                ]
            })
            .collect(),
    ));
}

/// The report's section: removed.
fn removed(r: &Report, b: &mut Vec<Block>) {
    b.push(Block::H2("Removed by retention".into()));
    b.push(table(
        vec!["copy".into(), "operation".into(), "objects".into()],
        r.removals
            .iter()
            .map(|x| vec![x.copy.clone(), x.operation.clone(), x.objects.to_string()])
            .collect(),
    ));
}

/// The report's section: key changes.
fn key_changes(r: &Report, b: &mut Vec<Block>) {
    b.push(Block::H2("Key changes".into()));
    b.push(table(
        vec!["time".into(), "change".into(), "by".into(), "detail".into()],
        r.key_changes
            .iter()
            .map(|e| {
                vec![
                    e.time.clone(),
                    e.operation.clone(),
                    format!("{}@{}", e.user, e.host),
                    e.detail.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    ));
}

/// The report's section: audit chain.
fn audit_chain(r: &Report, b: &mut Vec<Block>) {
    let chain = chain(r);
    b.push(Block::H2("Audit chain".into()));
    b.push(Block::P(format!(
        "The audit log is {chain}.{}",
        match &r.audit.head {
            Some((seq, id)) => format!(" Head: event #{seq}, id {id}."),
            None => String::new(),
        }
    )));
    if !r.audit.problems.is_empty() {
        b.push(Block::List(r.audit.problems.clone()));
    }
}

/// The audit chain's state, in words.
fn chain(r: &Report) -> String {
    match (
        &r.audit.catalog_broken,
        &r.audit.repository_broken,
        r.audit.ok,
    ) {
        (_, _, true) => format!("intact ({} events)", r.audit.events),
        (Some(x), _, _) | (_, Some(x), _) => format!("BROKEN at event #{}: {}", x.seq, x.reason),
        _ => format!("NOT intact: {}", r.audit.problems.join("; ")),
    }
}

/// A table, or a line saying there is nothing in the period.
fn table(head: Vec<String>, rows: Vec<Vec<String>>) -> Block {
    if rows.is_empty() {
        Block::P("None in the period.".into())
    } else {
        Block::Table(head, rows)
    }
}
