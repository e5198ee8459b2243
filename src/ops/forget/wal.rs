//! Forget's WAL retention (issue #19, step 5): archived WAL goes with the base
//! backups that needed it. What stays is every file from the first segment of
//! the oldest base backup the copy keeps by its policy onwards, the segments a
//! base backup kept only by a legal hold needs to become consistent, and every
//! history file (`model::wal::removable`).

use std::collections::HashMap;

use serde::Serialize;

use crate::model::wal::{position, removable, Span};
use crate::model::wal_chain::Base;

use super::ForgetReport;

/// What forget does to the copy's archived WAL.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WalRetention {
    /// WAL before this file's position goes (the first segment of the oldest
    /// base backup kept by the policy); empty when none is kept, and then
    /// nothing goes.
    pub before: String,
    pub removed: u64,
    pub kept: u64,
    /// Why nothing goes although the policy would remove some: snapshots
    /// that are missing or do not read back may be base backups that need it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back: Option<String>,
    /// The files to remove.
    #[serde(skip)]
    pub names: Vec<String>,
}

impl WalRetention {
    /// Nothing removed while `doubt` names snapshots (short ids) that are
    /// missing or do not read back.
    pub fn unless_in_doubt(mut self, doubt: &[String]) -> WalRetention {
        if !doubt.is_empty() && self.removed > 0 {
            self.held_back = Some(format!(
                "snapshots {} are missing or do not read back and may need it: run `hcbackup verify` and `hcbackup repair`",
                doubt.join(", ")
            ));
            self.kept += self.removed;
            self.removed = 0;
            self.names.clear();
        }
        self
    }
}

/// WAL retention given the snapshots' verdicts in `report` (a base backup the
/// filter did not select stays, and anchors), or `None` when the copy holds no WAL.
pub fn decide(report: &ForgetReport, bases: &[Base], wal: &[String]) -> Option<WalRetention> {
    if wal.is_empty() {
        return None;
    }
    let verdicts: HashMap<&str, (bool, bool)> = report
        .groups
        .iter()
        .flat_map(|g| &g.snapshots)
        .map(|s| {
            let by_policy = s.reasons.iter().any(|r| !r.starts_with("legal hold"));
            (s.id.as_str(), (s.keep, by_policy))
        })
        .collect();
    let mut spans = Vec::new();
    let mut anchors: Vec<(u64, &str)> = Vec::new();
    for b in bases {
        let (keep, anchor) = verdicts
            .get(b.snapshot.as_str())
            .copied()
            .unwrap_or((true, true));
        let (Some(first), Some(last)) = (position(&b.first), position(&b.last)) else {
            continue;
        };
        if keep {
            spans.push(Span {
                first,
                last,
                anchor,
            });
            if anchor {
                anchors.push((first, &b.first));
            }
        }
    }
    let names: Vec<String> = removable(wal.iter().map(String::as_str), &spans)
        .into_iter()
        .map(String::from)
        .collect();
    Some(WalRetention {
        before: anchors
            .iter()
            .min()
            .map(|(_, n)| n.to_string())
            .unwrap_or_default(),
        removed: names.len() as u64,
        kept: (wal.len() - names.len()) as u64,
        held_back: None,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ObjectId;
    use crate::ops::forget::{Group, PlanEntry};

    fn entry(n: u8, keep: bool, reason: &str) -> PlanEntry {
        PlanEntry {
            id: ObjectId([n; 32]).to_hex(),
            short_id: String::new(),
            time: String::new(),
            keep,
            reasons: vec![reason.to_string()],
        }
    }

    fn base(n: u8, first: u32, last: u32) -> Base {
        Base {
            snapshot: ObjectId([n; 32]).to_hex(),
            first: format!("0000000100000000{first:08X}"),
            last: format!("0000000100000000{last:08X}"),
            end_time: String::new(),
        }
    }

    fn report(entries: Vec<PlanEntry>) -> ForgetReport {
        ForgetReport {
            copy: "local".into(),
            location: String::new(),
            policy: String::new(),
            policy_source: String::new(),
            dry_run: false,
            kept: 0,
            removed: 0,
            groups: vec![Group {
                host: String::new(),
                paths: Vec::new(),
                databases: Vec::new(),
                safety_dumps: false,
                snapshots: entries,
            }],
            retained: Vec::new(),
            wal: None,
        }
    }

    #[test]
    fn wal_goes_with_the_base_backups_forget_removes_and_a_hold_keeps_its_own() {
        let wal: Vec<String> = (1..=9)
            .map(|n| format!("0000000100000000{n:08X}"))
            .chain(["00000002.history".to_string()])
            .collect();
        // 1 removed, 2 held only, 3 kept by the policy, 4 not selected.
        let r = report(vec![
            entry(1, false, "not kept"),
            entry(2, true, "legal hold: court case"),
            entry(3, true, "daily snapshot"),
        ]);
        let bases = [base(1, 1, 1), base(2, 3, 4), base(3, 6, 6), base(4, 8, 8)];
        let w = decide(&r, &bases, &wal).expect("the copy holds WAL");
        assert_eq!(w.before, "000000010000000000000006");
        assert_eq!(
            w.names,
            [
                "000000010000000000000001",
                "000000010000000000000002",
                "000000010000000000000005"
            ]
        );
        assert_eq!((w.removed, w.kept), (3, 7));
        // The base backup no filter selected anchors by itself.
        let w = decide(&report(Vec::new()), &bases[3..], &wal).unwrap();
        assert_eq!(w.before, "000000010000000000000008");
        assert_eq!(w.removed, 7);
        // Only held base backups: nothing goes.
        let w = decide(
            &report(vec![entry(2, true, "legal hold: x")]),
            &bases[1..2],
            &wal,
        );
        assert_eq!(w.map(|w| (w.removed, w.before)), Some((0, String::new())));
        assert!(decide(&r, &bases, &[]).is_none());
        // A snapshot that is missing or does not read back holds all WAL back.
        let w = decide(&r, &bases, &wal)
            .unwrap()
            .unless_in_doubt(&["1a2b3c4d".to_string()]);
        assert_eq!((w.removed, w.kept, w.names.len()), (0, 10, 0));
        assert!(w.held_back.unwrap().contains("1a2b3c4d"));
    }
}
