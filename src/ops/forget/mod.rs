//! `forget`: apply a retention policy to one copy of the repository, removing the
//! manifests of the snapshots it does not keep. Data goes only with `prune`.
//!
//! Snapshots are judged in groups of the same host, paths and databases (a files-
//! only job and a database job do not crowd each other out). A snapshot is kept
//! when the policy keeps it, when a legal hold names it (in this copy or in the
//! primary repository), or, at a destination, while the primary repository still
//! has it (the next mirror would only copy it back).

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::model::snapshot::{Filter, SnapshotEntry};
use crate::repo::{Hold, Removed, Repository};
use crate::retention::Policy;

mod plan;
mod wal;

pub use plan::{decide, Inputs};
pub use wal::WalRetention;

pub struct ForgetOptions<'a> {
    pub policy: &'a Policy,
    /// Snapshots named on the command line (ids, prefixes, `latest`): exactly
    /// these go, instead of what the policy does not keep.
    pub named: &'a [String],
    /// Only snapshots that match are judged (or named); the others stay.
    pub filter: &'a Filter,
    pub now: OffsetDateTime,
    pub dry_run: bool,
    /// Holds placed elsewhere (the primary's, when forgetting at a destination).
    pub extra_holds: &'a [Hold],
    /// Snapshots kept whatever the policy: the primary still has them.
    pub in_primary: &'a HashSet<ObjectId>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlanEntry {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub host: String,
    pub paths: Vec<String>,
    pub databases: Vec<String>,
    /// A group of safety dumps (taken by `restore --db` before it replaced a database).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub safety_dumps: bool,
    /// Newest first.
    pub snapshots: Vec<PlanEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ForgetReport {
    /// `local` or the destination's name.
    pub copy: String,
    pub location: String,
    pub policy: String,
    pub policy_source: String,
    pub dry_run: bool,
    pub kept: u64,
    pub removed: u64,
    pub groups: Vec<Group>,
    /// Manifests the policy did not keep but a retention lock does (S3 Object Lock).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<String>,
    /// What happens to the archived WAL; absent when the copy holds none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalRetention>,
}

/// Decide (and unless `dry_run`, remove). `copy`/`source` only label the report.
pub fn run(
    repo: &Repository,
    copy: &str,
    source: &str,
    opts: &ForgetOptions<'_>,
) -> Result<ForgetReport> {
    if opts.policy.is_empty() && opts.named.is_empty() {
        return Err(Error::Usage(
            "no retention policy given: pass --keep-daily N (or --keep-last/-hourly/-weekly/-monthly/-yearly, --keep-within, --keep-tag), set [retention.NAME] in hcbackup.toml, or name the snapshots to remove".into(),
        ));
    }
    // One maintainer at a time: a prune running now must not see snapshots
    // vanish while it marks. Snapshots go on meanwhile; one written now is not
    // among those judged.
    let _lock = (!opts.dry_run)
        .then(|| repo.lock_maintenance("forget"))
        .transpose()?;
    crate::util::failpoint("forget-locked");
    let inputs = gather(repo, copy, source, opts)?;
    let (mut report, doomed) = decide(&inputs, opts.policy, opts.now);
    report.dry_run = opts.dry_run;
    if opts.dry_run {
        return Ok(report);
    }
    execute(repo, copy, report, &doomed)
}

/// What forget judges: the snapshots the filter selects, the names resolved,
/// and every legal hold that counts.
fn gather(repo: &Repository, copy: &str, source: &str, opts: &ForgetOptions<'_>) -> Result<Inputs> {
    let named = named_ids(repo, opts)?;
    let (all, bad) = repo.snapshots_checked()?;
    let wal = repo.wal_names()?;
    let wal_doubt = if wal.is_empty() {
        Vec::new()
    } else {
        doubts(repo, copy, &all, &bad)?
    };
    crate::repo::warn_left_out(bad);
    let base_backups = crate::model::wal_chain::Base::of(&all);
    let snaps: Vec<SnapshotEntry> = all
        .into_iter()
        .filter(|s| opts.filter.matches(&s.snapshot))
        .collect();
    Ok(Inputs {
        copy: copy.to_string(),
        location: repo.backend().location(),
        policy_source: source.to_string(),
        snaps,
        named,
        holds: holds(repo, opts.extra_holds)?,
        in_primary: opts.in_primary.clone(),
        clock: crate::util::now(),
        base_backups,
        wal,
        wal_doubt,
    })
}

/// Snapshots that may be base backups forget cannot see: manifests that do
/// not read back or that this machine saw and are gone, and (in the primary)
/// snapshots the audit log says were made and not forgotten that are missing.
/// While there is any, no WAL goes: one of them may need it.
fn doubts(
    repo: &Repository,
    copy: &str,
    all: &[SnapshotEntry],
    bad: &[crate::repo::Unreadable],
) -> Result<Vec<String>> {
    let mut doubt: Vec<String> = bad.iter().map(|(id, _)| id.short()).collect();
    if copy == crate::retention::LOCAL {
        doubt.extend(repo.snapshots_unaccounted(all)?);
    }
    doubt.sort();
    doubt.dedup();
    if !doubt.is_empty() {
        tracing::warn!(
            "no archived WAL is removed: snapshots {} are missing or do not read back, and any of them may be a base backup that needs it; run `hcbackup verify` and `hcbackup repair`",
            doubt.join(", ")
        );
    }
    Ok(doubt)
}

/// The legal holds that count, by snapshot (hex id): their reasons.
fn holds(repo: &Repository, extra: &[Hold]) -> Result<HashMap<String, String>> {
    let mut holds: HashMap<String, String> = HashMap::new();
    let in_audit = repo.catalog().holds_in_audit()?;
    for h in repo.holds()?.into_iter().chain(extra.iter().cloned()) {
        // A hold the audit log says was lifted, whose object is back (put back
        // by someone with access to the storage): it no longer holds.
        if in_audit.get(&h.snapshot).is_some_and(|(held, _)| !held) {
            tracing::warn!(
                "the legal hold on snapshot {} was lifted (`hold remove` in the audit log) and its object is back: ignored",
                h.snapshot
            );
            continue;
        }
        holds.entry(h.snapshot).or_insert(h.reason);
    }
    // A hold whose object is gone but that no `hold remove` lifted (someone with
    // access to the storage deleted it) still holds.
    for (snap, (held, reason)) in in_audit {
        if held && !holds.contains_key(&snap) {
            tracing::warn!(
                "the legal hold on snapshot {snap} is missing from {} although no `hold remove` lifted it: the snapshot is kept; place the hold again with `hcbackup hold add`",
                repo.backend().location()
            );
            holds.insert(snap, reason);
        }
    }
    Ok(holds)
}

/// Remove the manifests the plan dooms, after announcing them in the audit
/// log; one a retention lock keeps is reported as kept.
fn execute(
    repo: &Repository,
    copy: &str,
    mut report: ForgetReport,
    doomed: &[ObjectId],
) -> Result<ForgetReport> {
    repo.confirm_lock()?;
    let wal_before = report
        .wal
        .as_ref()
        .filter(|w| w.removed > 0)
        .map(|w| w.before.clone());
    announce(repo, copy, doomed, wal_before)?;
    for id in doomed {
        let removed = repo.remove_snapshot(id)?;
        crate::util::failpoint("forget-after-delete");
        // S3 Object Lock: the manifest stays until its lock expires.
        if let Removed::Retained(why) = removed {
            report.removed -= 1;
            report.kept += 1;
            report.retained.push(why);
            for s in report
                .groups
                .iter_mut()
                .flat_map(|g| g.snapshots.iter_mut())
                .filter(|s| s.id == id.to_hex())
            {
                s.keep = true;
                s.reasons
                    .push("under a retention lock (S3 Object Lock)".into());
            }
        }
    }
    // After the manifests: killed in between, a base backup is never left
    // without its WAL (the next forget removes what is left over).
    if let Some(w) = report.wal.as_mut() {
        for name in std::mem::take(&mut w.names) {
            if let Removed::Retained(_) = repo.remove_wal(&name)? {
                w.removed -= 1;
                w.kept += 1;
            }
        }
    }
    Ok(report)
}

/// Before the first manifest goes, the repository's audit log names those about
/// to go (event `forget-start`): a forget killed half-way leaves no manifest
/// that other machines, which saw it, take for one hidden behind their back.
/// Only the primary's log: a copy's is the primary's, brought by `mirror`, and
/// an event of its own there would fork it.
/// WAL the forget removes is named by the file it is before (`wal_before`).
pub(crate) fn announce(
    repo: &Repository,
    copy: &str,
    doomed: &[ObjectId],
    wal_before: Option<String>,
) -> Result<()> {
    if (doomed.is_empty() && wal_before.is_none()) || copy != crate::retention::LOCAL {
        return Ok(());
    }
    let mut d = crate::audit::Draft::new("forget-start");
    d.destinations = vec![copy.to_string()];
    d.detail = Some(format!("removing {} snapshots", doomed.len()));
    d.forgotten = doomed.iter().map(|id| id.to_hex()).collect();
    d.wal_before = wal_before;
    repo.audit_log()
        .append(&d, &crate::audit::Outcome::ok())
        .map(|_| ())
        .map_err(|e| {
            Error::Failed(format!(
                "forget could not record which snapshots it removes in the audit log ({e}): nothing was removed; run it again"
            ))
        })
}

/// The snapshots named on the command line, resolved in this copy; `None` when
/// the policy decides. A name that matches nothing, or matches a snapshot the
/// filter leaves out, is an error: nothing is removed.
fn named_ids(repo: &Repository, opts: &ForgetOptions<'_>) -> Result<Option<Vec<ObjectId>>> {
    if opts.named.is_empty() {
        return Ok(None);
    }
    // Listed once: every name is checked against the same manifests.
    let unreadable = repo.unreadable_snapshots()?;
    let mut ids = Vec::new();
    for spec in opts.named {
        let e = match repo.find_snapshot(spec) {
            Ok(e) => e,
            Err(e) => match damaged(&unreadable, spec, opts.filter) {
                Some(id) => {
                    ids.push(id);
                    continue;
                }
                None => return Err(e),
            },
        };
        // A prefix that also names a manifest that does not read back is
        // ambiguous: the one meant may be that one, and a good snapshot must
        // not go in its place.
        let prefix = spec.to_ascii_lowercase();
        if spec != "latest" && e.id.to_hex() != prefix {
            if let Some(bad) = unreadable
                .iter()
                .find(|id| id.to_hex().starts_with(&prefix))
            {
                return Err(Error::Usage(format!(
                    "{spec} names both snapshot {} and the unreadable manifest {}: give more of the id; nothing was removed",
                    e.id.short(),
                    bad.short()
                )));
            }
        }
        if !opts.filter.matches(&e.snapshot) {
            return Err(Error::Usage(format!(
                "snapshot {} does not match {}: nothing was removed",
                e.id.short(),
                opts.filter.describe()
            )));
        }
        ids.push(e.id);
    }
    Ok(Some(ids))
}

/// A named manifest that does not read back (no `repair` source for it): it may
/// be removed by name, with no filter (nothing of it can be matched).
fn damaged(unreadable: &[ObjectId], spec: &str, filter: &Filter) -> Option<ObjectId> {
    let prefix = spec.to_ascii_lowercase();
    let bad: Vec<&ObjectId> = unreadable
        .iter()
        .filter(|id| !prefix.is_empty() && id.to_hex().starts_with(&prefix))
        .collect();
    match bad[..] {
        [id] if filter.is_empty() => Some(*id),
        _ => None,
    }
}
