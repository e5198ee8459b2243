//! Forget's decision, as a value: each selected snapshot kept or removed, and
//! why, grouped as they are judged. A pure function of what `gather` read.

use std::collections::{BTreeMap, HashMap, HashSet};

use time::OffsetDateTime;

use crate::id::ObjectId;
use crate::model::snapshot::SnapshotEntry;
use crate::retention::{self, Candidate, Policy};

use super::{ForgetReport, Group, PlanEntry};
use crate::model::wal_chain::Base;

/// What forget judges.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// `local` or the destination's name, and where it is (labels).
    pub copy: String,
    pub location: String,
    /// Where the policy comes from (a label).
    pub policy_source: String,
    /// The snapshots the filter selects.
    pub snaps: Vec<SnapshotEntry>,
    /// Snapshots named on the command line, resolved: exactly these go (held
    /// ones excepted); `None`: the policy decides.
    pub named: Option<Vec<ObjectId>>,
    /// Legal holds that count, by snapshot (hex id): their reasons.
    pub holds: HashMap<String, String>,
    /// Snapshots the primary still has (forgetting at a destination).
    pub in_primary: HashSet<ObjectId>,
    /// The clock: safety dumps younger than 30 days by it stay.
    pub clock: OffsetDateTime,
    /// Every good base backup of the copy, selected or not.
    pub base_backups: Vec<Base>,
    /// The names of the files archived in the copy (`wal/`).
    pub wal: Vec<String>,
    /// Snapshots (short ids) that are missing or do not read back: while
    /// there is any, no WAL goes.
    pub wal_doubt: Vec<String>,
}

/// The group a snapshot is judged in.
/// Snapshots are judged in groups of the same host, paths and databases, as
/// restic does; safety dumps (`restore --db`) form groups of their own, so one
/// taken at noon never stands in for that day's nightly snapshot.
fn group_key(e: &SnapshotEntry) -> (String, Vec<String>, Vec<String>, bool) {
    let s = &e.snapshot;
    let mut paths = s.paths.clone();
    paths.sort();
    let mut dbs: Vec<String> = s.databases.iter().map(|d| d.db.clone()).collect();
    dbs.sort();
    (s.host.clone(), paths, dbs, s.is_safety_dump())
}

/// How long a policy keeps every safety dump (`restore --db`).
const SAFETY_DUMP_DAYS: time::Duration = time::Duration::days(30);

/// The plan: the report as it stands before anything is removed (`dry_run`
/// false), and the manifests to remove.
pub fn decide(
    inputs: &Inputs,
    policy: &Policy,
    now: OffsetDateTime,
) -> (ForgetReport, Vec<ObjectId>) {
    let named = &inputs.named;
    let mut report = ForgetReport {
        copy: inputs.copy.clone(),
        location: inputs.location.clone(),
        policy: match named {
            Some(ids) => format!("remove the {} snapshots named", ids.len()),
            None => policy.describe(),
        },
        policy_source: inputs.policy_source.clone(),
        dry_run: false,
        kept: 0,
        removed: 0,
        groups: Vec::new(),
        retained: Vec::new(),
        wal: None,
    };
    let mut doomed = Vec::new();
    if let Some(g) = unreadable_named(inputs, &mut doomed) {
        report.groups.push(g);
    }
    let mut groups: BTreeMap<_, Vec<&SnapshotEntry>> = BTreeMap::new();
    for s in &inputs.snaps {
        groups.entry(group_key(s)).or_default().push(s);
    }
    for ((host, paths, databases, safety_dumps), members) in groups {
        let entries = judge(inputs, policy, now, &members, safety_dumps, &mut doomed);
        report.groups.push(Group {
            host,
            paths,
            databases,
            safety_dumps,
            snapshots: entries,
        });
    }
    for s in report.groups.iter().flat_map(|g| &g.snapshots) {
        if s.keep {
            report.kept += 1;
        } else {
            report.removed += 1;
        }
    }
    report.wal = super::wal::decide(&report, &inputs.base_backups, &inputs.wal)
        .map(|w| w.unless_in_doubt(&inputs.wal_doubt));
    (report, doomed)
}

/// Named manifests that do not read back: no group, no policy, no hold to read
/// but the hold objects'. A group of their own, or `None`.
fn unreadable_named(inputs: &Inputs, doomed: &mut Vec<ObjectId>) -> Option<Group> {
    let readable: HashSet<ObjectId> = inputs.snaps.iter().map(|s| s.id).collect();
    let entries: Vec<PlanEntry> = inputs
        .named
        .iter()
        .flatten()
        .filter(|id| !readable.contains(id))
        .map(|id| {
            let held = inputs.holds.get(&id.to_hex());
            if held.is_none() {
                doomed.push(*id);
            }
            PlanEntry {
                id: id.to_hex(),
                short_id: id.short(),
                time: String::new(),
                keep: held.is_some(),
                reasons: vec![match held {
                    Some(why) => format!("legal hold: {why}"),
                    None => "named; its manifest does not read back".into(),
                }],
            }
        })
        .collect();
    (!entries.is_empty()).then(|| Group {
        host: "(unreadable)".into(),
        paths: Vec::new(),
        databases: Vec::new(),
        safety_dumps: false,
        snapshots: entries,
    })
}

/// The verdicts on one group's `members` (oldest first), newest first.
fn judge(
    inputs: &Inputs,
    policy: &Policy,
    now: OffsetDateTime,
    members: &[&SnapshotEntry],
    safety_dumps: bool,
    doomed: &mut Vec<ObjectId>,
) -> Vec<PlanEntry> {
    let cands: Vec<Candidate> = members
        .iter()
        .map(|e| Candidate {
            time: e.snapshot.parsed_time(),
            tags: e.snapshot.tags.clone(),
            hold: inputs.holds.get(&e.id.to_hex()).cloned(),
        })
        .collect();
    let verdicts = match &inputs.named {
        Some(ids) => members
            .iter()
            .zip(&cands)
            .map(|(e, c)| named_verdict(ids.contains(&e.id), c))
            .collect(),
        None => policy_verdicts(policy, now, members, &cands),
    };
    let mut entries = Vec::new();
    for (e, mut v) in members.iter().zip(verdicts) {
        // Two restores on one day make two safety dumps, each maybe the only
        // copy of that morning's rows: a policy never takes one under 30 days
        // old by the clock (not by --now, which a what-if may set years on).
        let young = e
            .snapshot
            .parsed_time()
            .is_some_and(|t| t > inputs.clock - SAFETY_DUMP_DAYS);
        if safety_dumps && inputs.named.is_none() && !v.keep && young {
            v.reasons
                .push("safety dump younger than 30 days (forget it by name)".into());
            v.keep = true;
        }
        if inputs.in_primary.contains(&e.id) {
            v.reasons
                .push("still in the local repository (a mirror would copy it back)".into());
            v.keep = true;
        }
        if !v.keep {
            doomed.push(e.id);
        }
        entries.push(PlanEntry {
            id: e.id.to_hex(),
            short_id: e.id.short(),
            time: e.snapshot.time.clone(),
            keep: v.keep,
            reasons: v.reasons,
        });
    }
    entries.reverse();
    entries
}

/// The policy's verdicts on `members` (with their candidates `cands`). The
/// manifests of one snapshot — a `tag` run stopped between writing the new
/// manifest and removing the old leaves two, the new one naming the first as
/// `original` — count once and share a verdict, with the tags and hold of all:
/// they never push another snapshot out of `--keep-last`, and neither set of
/// tags is dropped by chance.
fn policy_verdicts(
    policy: &Policy,
    now: OffsetDateTime,
    members: &[&SnapshotEntry],
    cands: &[Candidate],
) -> Vec<retention::Verdict> {
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut merged: Vec<Candidate> = Vec::new();
    let mut of: Vec<usize> = Vec::new();
    let mut copies: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (e, c) in members.iter().zip(cands) {
        let key = (e.snapshot.original.clone()).unwrap_or_else(|| e.id.to_hex());
        let i = *first.entry(key).or_insert(merged.len());
        if i == merged.len() {
            merged.push(c.clone());
        } else {
            let m = &mut merged[i];
            m.tags.extend(c.tags.iter().cloned());
            m.hold = m.hold.take().or_else(|| c.hold.clone());
        }
        copies.entry(i).or_default().push(e.id.short());
        of.push(i);
    }
    for ids in copies.values().filter(|ids| ids.len() > 1) {
        tracing::warn!(
            "one snapshot has {} manifests ({}: a `tag` run was stopped); they are kept or forgotten together; any `hcbackup tag` of it merges them (such as `hcbackup tag {} --remove none`)",
            ids.len(),
            ids.join(", "),
            ids[0]
        );
    }
    let verdicts = retention::apply(policy, &merged, now);
    of.into_iter().map(|i| verdicts[i].clone()).collect()
}

/// A named snapshot goes unless a legal hold keeps it; the others stay.
fn named_verdict(named: bool, c: &Candidate) -> retention::Verdict {
    let reasons = match (&c.hold, named) {
        (Some(why), _) => vec![format!("legal hold: {why}")],
        (None, false) => vec!["not named".to_string()],
        (None, true) => Vec::new(),
    };
    retention::Verdict {
        keep: !reasons.is_empty(),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TreeId;
    use crate::model::snapshot::{Snapshot, Summary, SAFETY_DUMP_TAG};
    use time::macros::datetime;

    /// Snapshot `n` of host `host`, made at `time`.
    fn snap(n: u8, host: &str, time: &str) -> SnapshotEntry {
        SnapshotEntry {
            id: ObjectId([n; 32]),
            snapshot: Snapshot {
                version: 2,
                time: time.into(),
                host: host.into(),
                user: "root".into(),
                tags: Vec::new(),
                paths: vec!["/srv/uploads".into()],
                names: vec!["uploads".into()],
                tree: TreeId([0; 32]),
                summary: Summary::default(),
                errors: Vec::new(),
                databases: Vec::new(),
                written: None,
                original: None,
                physical: None,
            },
        }
    }

    fn inputs(snaps: Vec<SnapshotEntry>) -> Inputs {
        Inputs {
            copy: "local".into(),
            location: "/repo".into(),
            policy_source: "--keep-last".into(),
            snaps,
            named: None,
            holds: HashMap::new(),
            in_primary: HashSet::new(),
            clock: datetime!(2026-12-01 0:00 UTC),
            base_backups: Vec::new(),
            wal: Vec::new(),
            wal_doubt: Vec::new(),
        }
    }

    fn keep_last(n: u32) -> Policy {
        Policy {
            keep_last: n,
            ..Default::default()
        }
    }

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-01 0:00 UTC);

    #[test]
    fn each_host_is_judged_on_its_own_and_holds_keep() {
        let mut i = inputs(vec![
            snap(1, "a", "2026-11-01T03:00:00Z"),
            snap(2, "a", "2026-11-02T03:00:00Z"),
            snap(3, "b", "2026-11-01T03:00:00Z"),
        ]);
        i.holds
            .insert(ObjectId([1; 32]).to_hex(), "court order".into());
        let (r, doomed) = decide(&i, &keep_last(1), NOW);
        // Host a keeps its newest and its held one; host b its only one.
        assert!(doomed.is_empty(), "{doomed:?}");
        assert_eq!((r.kept, r.removed, r.groups.len()), (3, 0, 2));
        assert_eq!(
            r.groups[0].snapshots[1].reasons,
            ["legal hold: court order"]
        );

        i.holds.clear();
        let (r, doomed) = decide(&i, &keep_last(1), NOW);
        assert_eq!(doomed, [ObjectId([1; 32])]);
        assert_eq!((r.kept, r.removed), (2, 1));
    }

    #[test]
    fn named_snapshots_go_exactly_and_unreadable_ones_too() {
        let mut i = inputs(vec![
            snap(1, "a", "2026-11-01T03:00:00Z"),
            snap(2, "a", "2026-11-02T03:00:00Z"),
        ]);
        i.named = Some(vec![ObjectId([1; 32]), ObjectId([9; 32])]);
        let (r, doomed) = decide(&i, &Policy::default(), NOW);
        assert_eq!(doomed, [ObjectId([9; 32]), ObjectId([1; 32])]);
        assert_eq!(r.groups[0].host, "(unreadable)");
        assert_eq!(r.policy, "remove the 2 snapshots named");
        assert_eq!((r.kept, r.removed), (1, 2));
    }

    #[test]
    fn young_safety_dumps_and_what_the_primary_has_stay() {
        let mut dump = snap(1, "a", "2026-11-25T12:00:00Z");
        dump.snapshot.tags = vec![SAFETY_DUMP_TAG.into()];
        let old_dump = {
            let mut s = snap(2, "a", "2026-09-01T12:00:00Z");
            s.snapshot.tags = vec![SAFETY_DUMP_TAG.into()];
            s
        };
        let mut i = inputs(vec![
            old_dump,
            dump,
            snap(3, "a", "2026-11-01T03:00:00Z"),
            snap(4, "a", "2026-11-02T03:00:00Z"),
        ]);
        i.in_primary.insert(ObjectId([3; 32]));
        let within = Policy {
            keep_within: Some("1d".parse().unwrap()),
            ..Default::default()
        };
        let (_, doomed) = decide(&i, &within, NOW);
        // The old safety dump goes; the young one, the primary's and the
        // newest stay.
        assert_eq!(doomed, [ObjectId([2; 32])]);
    }

    #[test]
    fn two_manifests_of_one_snapshot_count_once() {
        let old = snap(1, "a", "2026-11-02T03:00:00Z");
        let mut retagged = snap(2, "a", "2026-11-02T03:00:00Z");
        retagged.snapshot.original = Some(old.id.to_hex());
        retagged.snapshot.tags = vec!["x".into()];
        let i = inputs(vec![snap(3, "a", "2026-11-01T03:00:00Z"), old, retagged]);
        let (_, doomed) = decide(&i, &keep_last(1), NOW);
        assert_eq!(doomed, [ObjectId([3; 32])]);
        let (_, doomed) = decide(&i, &keep_last(2), NOW);
        assert!(doomed.is_empty());
    }
}
