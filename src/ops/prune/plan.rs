//! Prune's decision, as a value: what happens to each pack and index object,
//! and why, computed from what the copy holds (recorded in the working set,
//! `work`, on disk) by queries and a pure rule per pack (`fate_of`).
//! `--dry-run` renders it; `execute` carries it out.
//!
//! Two phases, so that snapshots on any host never wait for a prune
//! (`docs/decisions/009-many-writers-prune.md`): a pack no snapshot needs is
//! first *condemned* (marked, with the time, in a new index object; no
//! snapshot deduplicates against it from then on), and deleted by a later
//! prune once the grace period has passed and every writer that started
//! before the mark has ended. A condemned pack a snapshot uses again is
//! recovered.

use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId};
use crate::storage::pack_path;

use super::work::{PackState, Work};
use super::{PruneReport, Removed};

/// Allowed clock difference between hosts, plus the time an index object takes
/// to be written: a writer whose lock started within this much after a mark
/// may still have read the index before the mark was visible.
pub const MARK_MARGIN: i64 = 5 * 60;

/// An index object listing fewer packs than this is small: once a prune
/// finds `MERGE_AT` of them, it merges them into full ones.
pub const SMALL_INDEX: usize = crate::repo::PACKS_PER_INDEX / 4;
pub const MERGE_AT: usize = 8;

/// What the copy holds, as prune read it.
pub struct Inputs {
    pub location: String,
    pub snapshots: u64,
    /// Every index object, pack and blob, and the blobs snapshots use, on disk.
    pub work: Work,
    /// This host's clock (Unix seconds) when the locks were read.
    pub now: i64,
    /// How long a pack stays condemned before it may be deleted (seconds).
    pub grace: i64,
    /// The writers (snapshots, restores, mirrors: every repository lock) live
    /// when prune started, read before the snapshots were.
    pub writers: Writers,
}

/// The repository locks live at a moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Writers {
    pub live: usize,
    /// The earliest start among them (`i64::MIN` when one's start is unknown).
    pub oldest_start: Option<i64>,
}

impl Writers {
    /// Whether a writer that may have read the index before a mark at `marked`
    /// was visible is still running.
    fn predate(&self, marked: i64) -> bool {
        self.oldest_start
            .is_some_and(|s| s <= marked.saturating_add(MARK_MARGIN))
    }

    /// Whether something written at `written` (an index object; `None`: not
    /// indexed at all) may be a running writer's, its manifest still to come.
    /// Only spares work: condemning such a pack is safe (it waits for that
    /// writer, then is recovered), so no margin for clocks is needed.
    fn may_own(&self, written: Option<i64>) -> bool {
        match (self.oldest_start, written) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(s), Some(w)) => w >= s,
        }
    }
}

/// What happens to a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum Fate {
    Keep = 0,
    /// Its used blobs are copied into new packs; it is condemned.
    Repack = 1,
    /// Nothing in it is used: condemned now, deleted by a later prune.
    Condemn = 2,
    /// Condemned earlier and not deletable yet (grace period, or writers that
    /// started before the mark are still running).
    Wait = 3,
    /// Condemned earlier, and a snapshot uses it again: live once more.
    Recover = 4,
    /// Condemned past the grace period, unused, no writer from before the mark.
    Delete = 5,
    /// Listed by an index but gone, holding nothing a snapshot needs.
    Forget = 6,
    /// Nothing uses it, and it may be a running writer's (no index lists it,
    /// or only index objects written since that writer started): its
    /// manifest may be yet to come, so it is left alone.
    InFlight = 7,
}

impl Fate {
    const ALL: [Fate; 8] = [
        Fate::Keep,
        Fate::Repack,
        Fate::Condemn,
        Fate::Wait,
        Fate::Recover,
        Fate::Delete,
        Fate::Forget,
        Fate::InFlight,
    ];

    /// The fate stored as `code` (the working set's); an unknown code keeps.
    pub fn from_code(code: i64) -> Fate {
        Fate::ALL
            .into_iter()
            .find(|f| *f as i64 == code)
            .unwrap_or(Fate::Keep)
    }

    /// The fates whose packs make the index objects naming them be rewritten.
    const REWRITE: [Fate; 5] = [
        Fate::Repack,
        Fate::Condemn,
        Fate::Recover,
        Fate::Delete,
        Fate::Forget,
    ];
}

/// What a pack's fate depends on besides the pack.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub now: i64,
    pub grace: i64,
    pub writers: Writers,
    pub max_unused: f64,
}

/// A pack's fate: a live pack none of whose blobs is kept there is condemned,
/// one whose unused share is above `max_unused` repacked (and condemned); a
/// condemned pack is recovered when used again, deleted once past the grace
/// period with no writer from before its mark, and waits otherwise.
pub fn fate_of(p: &PackState, rule: &Rule) -> Fate {
    let used_here = p.nkept > 0;
    if !p.present {
        Fate::Forget
    } else if let Some(at) = p.marked {
        if used_here {
            Fate::Recover
        } else if rule.now.saturating_sub(at) >= rule.grace && !rule.writers.predate(at) {
            Fate::Delete
        } else {
            Fate::Wait
        }
    } else if !used_here {
        if rule.writers.may_own(p.indexed) {
            Fate::InFlight
        } else {
            Fate::Condemn
        }
    } else if p.unused_share() > rule.max_unused {
        Fate::Repack
    } else {
        Fate::Keep
    }
}

/// Prune's decision. Each pack's fate, and the pack keeping each used blob,
/// are in the working set (`Inputs::work`).
#[derive(Debug)]
pub struct PrunePlan {
    /// Index objects naming a pack whose state changes: replaced.
    pub affected: Vec<ObjectId>,
    /// Packs no index lists that stay listed (kept or condemned): indexed by
    /// the new index objects.
    pub unindexed: Vec<PackId>,
    /// Unused bytes left in packs below the repack threshold.
    pub bytes_unused_kept: u64,
    pub blobs_used: u64,
}

impl PrunePlan {
    /// Whether the new index objects mark pack `id` condemned, and since when:
    /// a new mark carries `written`, the moment its index object is written
    /// (not when prune began: a writer that starts in between reads the index
    /// before the mark is there).
    pub fn mark_of(&self, inputs: &Inputs, id: &PackId, written: i64) -> Result<Option<i64>> {
        Ok(match inputs.work.fate(id)? {
            Some((Fate::Repack | Fate::Condemn, _)) => Some(written),
            Some((Fate::Wait, marked)) => marked,
            _ => None,
        })
    }

    /// Every object the plan removes, and why: packs in id order, then index
    /// objects.
    pub fn removals(&self, inputs: &Inputs) -> Result<Vec<Removed>> {
        let mut out = Vec::new();
        for (fate, reason) in [
            (
                Fate::Delete,
                "condemned by an earlier prune, and still no snapshot uses it",
            ),
            (
                Fate::Forget,
                "already gone; nothing a snapshot needs was in it",
            ),
        ] {
            for id in inputs.work.packs_with(&[fate])? {
                out.push((id, reason));
            }
        }
        out.sort_by_key(|(id, _)| *id);
        let mut out: Vec<Removed> = out
            .into_iter()
            .map(|(id, reason)| Removed {
                object: pack_path(&id),
                reason: reason.into(),
            })
            .collect();
        for id in &self.affected {
            out.push(Removed {
                object: format!("index/{}", id.to_hex()),
                reason: "names packs whose state prune changes; replaced by a new index object"
                    .into(),
            });
        }
        Ok(out)
    }

    /// The packs condemned now, and why.
    pub fn marks(&self, inputs: &Inputs) -> Result<Vec<Removed>> {
        let mut out = Vec::new();
        for id in inputs.work.packs_with(&[Fate::Condemn, Fate::Repack])? {
            let reason = match inputs.work.fate(&id)? {
                Some((Fate::Repack, _)) => format!(
                    "repacked: {}% of it was unused",
                    (inputs.work.state(&id)?.unused_share() * 100.0).round()
                ),
                _ => "no snapshot uses any of its data".to_string(),
            };
            out.push(Removed {
                object: pack_path(&id),
                reason,
            });
        }
        Ok(out)
    }

    /// The report's facts before anything is done.
    pub fn facts(&self, inputs: &Inputs) -> Result<PruneReport> {
        let count = |f: Fate| inputs.work.count(f);
        let (packs_before, bytes_before) = inputs.work.listed_totals()?;
        Ok(PruneReport {
            location: inputs.location.clone(),
            snapshots: inputs.snapshots,
            blobs_used: self.blobs_used,
            packs_before,
            bytes_before,
            bytes_unused_kept: self.bytes_unused_kept,
            packs_condemned: count(Fate::Condemn)? + count(Fate::Repack)?,
            packs_waiting: count(Fate::Wait)?,
            packs_recovered: count(Fate::Recover)?,
            grace_secs: inputs.grace.max(0) as u64,
            ..Default::default()
        })
    }

    /// What a run would do if no retention lock kept anything: `--dry-run`.
    pub fn preview(&self, inputs: &Inputs) -> Result<PruneReport> {
        let mut r = self.facts(inputs)?;
        r.dry_run = true;
        r.packs_deleted = inputs.work.count(Fate::Delete)?;
        r.bytes_deleted = inputs.work.present_bytes(Fate::Delete)?;
        r.packs_repacked = inputs.work.count(Fate::Repack)?;
        r.removed = self.removals(inputs)?;
        r.marked = self.marks(inputs)?;
        Ok(r)
    }
}

/// Decide every pack's fate (`fate_of`), which pack keeps each used blob
/// (live packs before condemned ones, then the most-used present packs, so
/// duplicates leave the emptier packs), and which index objects are
/// replaced. A used blob only in missing packs stops prune.
pub fn decide(inputs: &mut Inputs, max_unused: f64) -> Result<PrunePlan> {
    // A used blob only in missing packs: data is lost here; prune must not go on.
    let started = std::time::Instant::now();
    let lost = inputs.work.settle()?;
    tracing::debug!(
        "prune: blobs placed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if !lost.is_empty() {
        let lost: Vec<String> = lost.iter().map(|id| id.to_hex()).collect();
        return Err(Error::Failed(format!(
            "prune stopped before deleting anything: pack {} is missing and holds data snapshots need; run `hcbackup repair` (or `hcbackup verify` to see what is affected)",
            lost.join(", pack ")
        )));
    }
    let rule = Rule {
        now: inputs.now,
        grace: inputs.grace,
        writers: inputs.writers,
        max_unused,
    };
    inputs.work.decide_fates(|p| fate_of(p, &rule))?;
    tracing::debug!(
        "prune: fates decided in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Index objects naming a pack whose state changes, and the small ones
    // (a snapshot's each night) merged into full ones: the number of index
    // objects follows the repository's size, not its age.
    let affected = inputs.work.affect(&Fate::REWRITE, SMALL_INDEX, MERGE_AT)?;
    Ok(PrunePlan {
        affected,
        unindexed: inputs.work.unindexed_staying()?,
        bytes_unused_kept: inputs.work.unused_kept_bytes()?,
        blobs_used: inputs.work.used_count()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Kind;
    use crate::model::index::{Index, IndexedPack};
    use crate::pack::PackEntry;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    /// A pack `n` holding blobs (`id byte`, `length`).
    fn pack(n: u8, blobs: &[(u8, u32)]) -> IndexedPack {
        let mut offset = 0;
        IndexedPack {
            id: PackId([n; 32]),
            size: blobs.iter().map(|b| b.1 as u64).sum(),
            blobs: blobs
                .iter()
                .map(|&(id, length)| {
                    let e = PackEntry {
                        kind: Kind::Data,
                        id: [id; 32],
                        offset,
                        length,
                        raw_length: length,
                    };
                    offset += length as u64;
                    e
                })
                .collect(),
        }
    }

    /// What a copy holds, as prune would read it.
    struct Copy {
        indexes: Vec<(ObjectId, Index)>,
        packs: Vec<IndexedPack>,
        missing: Vec<u8>,
        used: Vec<u8>,
    }

    /// A copy with `packs` (all present unless `missing`), listed by one
    /// index object each, and the blobs `used`.
    fn copy(packs: &[IndexedPack], missing: &[u8], used: &[u8]) -> Copy {
        Copy {
            indexes: packs
                .iter()
                .map(|p| (ObjectId([p.id.0[0] + 100; 32]), Index::of(vec![p.clone()])))
                .collect(),
            packs: packs.to_vec(),
            missing: missing.to_vec(),
            used: used.to_vec(),
        }
    }

    impl Copy {
        /// Recorded in a working set; a grace period of a day, no writers
        /// running.
        fn inputs(&self) -> Inputs {
            let mut work = Work::new(&std::env::temp_dir()).unwrap();
            for (id, ix) in &self.indexes {
                work.add_index(id, ix, false, false).unwrap();
            }
            for p in &self.packs {
                work.add_pack(p).unwrap();
            }
            let present = self
                .packs
                .iter()
                .filter(|p| !self.missing.contains(&p.id.0[0]));
            work.add_listed(present.map(|p| (p.id, p.size))).unwrap();
            for b in &self.used {
                work.use_blob((Kind::Data, [*b; 32])).unwrap();
            }
            Inputs {
                location: "test".into(),
                snapshots: 1,
                work,
                now: NOW,
                grace: DAY,
                writers: Writers::default(),
            }
        }

        /// Mark pack `n` condemned at `at` in its index object.
        fn condemn(&mut self, n: u8, at: i64) {
            let (_, ix) = self
                .indexes
                .iter_mut()
                .find(|(_, ix)| ix.packs.iter().any(|p| p.id.0[0] == n))
                .unwrap();
            ix.condemned.push((PackId([n; 32]), at));
        }
    }

    /// `live` writers running, the oldest since `start`.
    fn running(live: usize, start: i64) -> Writers {
        Writers {
            live,
            oldest_start: Some(start),
        }
    }

    fn fate(i: &Inputs, n: u8) -> Fate {
        i.work.fate(&PackId([n; 32])).unwrap().unwrap().0
    }

    fn others_than_keep(i: &Inputs) -> usize {
        let all = Fate::ALL.into_iter().filter(|f| *f != Fate::Keep);
        i.work.packs_with(&all.collect::<Vec<_>>()).unwrap().len()
    }

    #[test]
    fn unused_packs_are_condemned_emptied_ones_repacked_full_ones_stay() {
        let mut i = copy(
            &[
                pack(1, &[(1, 100), (2, 100)]), // all used
                pack(2, &[(3, 100)]),           // none used
                pack(3, &[(4, 100), (5, 100)]), // half used
                pack(4, &[(6, 950), (7, 50)]),  // 5% unused
            ],
            &[],
            &[1, 2, 4, 6],
        )
        .inputs();
        let plan = decide(&mut i, 0.10).unwrap();
        assert_eq!(fate(&i, 1), Fate::Keep);
        assert_eq!(fate(&i, 2), Fate::Condemn);
        assert_eq!(fate(&i, 3), Fate::Repack);
        assert_eq!(fate(&i, 4), Fate::Keep);
        assert_eq!(plan.bytes_unused_kept, 50);
        assert_eq!(
            (
                plan.mark_of(&i, &PackId([2; 32]), NOW).unwrap(),
                plan.mark_of(&i, &PackId([1; 32]), NOW).unwrap()
            ),
            (Some(NOW), None)
        );
        // The index objects of packs 2 and 3 are rewritten, with the marks.
        assert_eq!(
            plan.affected,
            vec![ObjectId([102; 32]), ObjectId([103; 32])]
        );
        // Nothing is deleted in the run that condemns.
        let r = plan.preview(&i).unwrap();
        assert_eq!(
            (
                r.packs_deleted,
                r.packs_repacked,
                r.packs_condemned,
                r.bytes_deleted,
                r.blobs_used
            ),
            (0, 1, 2, 0, 4)
        );
        assert_eq!(r.marked.len(), 2, "{:?}", r.marked);
        assert!(r.marked[1].reason.contains("50% of it was unused"));
    }

    #[test]
    fn a_condemned_pack_goes_after_the_grace_period_when_no_writer_predates_its_mark() {
        let mut c = copy(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1]);
        c.condemn(2, NOW - DAY);
        let mut i = c.inputs();
        decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 2), Fate::Delete);
        // Not yet: the grace period has a second to go.
        i.now = NOW - 1;
        decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 2), Fate::Wait);
        i.now = NOW;
        // A writer that started before the mark (or just after: the margin for
        // clocks) may still reference it.
        for start in [NOW - 2 * DAY, NOW - DAY + MARK_MARGIN, i64::MIN] {
            i.writers = running(1, start);
            decide(&mut i, 0.1).unwrap();
            assert_eq!(fate(&i, 2), Fate::Wait, "{start}");
        }
        // One that started after the mark read it: it never deduplicates there.
        i.writers = running(3, NOW - DAY + MARK_MARGIN + 1);
        let plan = decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 2), Fate::Delete);
        let r = plan.preview(&i).unwrap();
        assert_eq!(
            (r.packs_deleted, r.bytes_deleted, r.packs_condemned),
            (1, 100, 0)
        );
        assert_eq!(r.removed[0].object, pack_path(&PackId([2; 32])));
    }

    #[test]
    fn a_condemned_pack_a_snapshot_uses_again_is_recovered() {
        let mut c = copy(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1, 2]);
        c.condemn(2, NOW - 2 * DAY);
        let mut i = c.inputs();
        let plan = decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 2), Fate::Recover);
        assert_eq!(plan.mark_of(&i, &PackId([2; 32]), NOW).unwrap(), None);
        assert_eq!(plan.affected, vec![ObjectId([102; 32])]);
    }

    #[test]
    fn a_blob_in_a_live_and_a_condemned_pack_stays_in_the_live_one() {
        // Pack 2 was repacked into pack 3; pack 2 is condemned.
        let mut c = copy(
            &[pack(2, &[(1, 100), (2, 900)]), pack(3, &[(1, 100)])],
            &[],
            &[1],
        );
        c.condemn(2, NOW - 2 * DAY);
        let mut i = c.inputs();
        decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 3), Fate::Keep);
        assert_eq!(fate(&i, 2), Fate::Delete);
    }

    #[test]
    fn a_used_blob_in_two_live_packs_stays_in_the_more_used_one() {
        let mut i = copy(
            &[
                pack(1, &[(1, 100), (9, 900)]),
                pack(2, &[(1, 100), (2, 100), (3, 100)]),
            ],
            &[],
            &[1, 2, 3],
        )
        .inputs();
        decide(&mut i, 0.1).unwrap();
        // Pack 2 holds 300 used bytes, pack 1 100: blob 1 stays in pack 2,
        // and pack 1, holding nothing kept, is condemned.
        assert_eq!(fate(&i, 2), Fate::Keep);
        assert_eq!(fate(&i, 1), Fate::Condemn);
        let kept = i.work.kept_blobs(&PackId([2; 32])).unwrap();
        assert_eq!(kept.len(), 3);
    }

    #[test]
    fn the_latest_mark_counts_and_waiting_marks_are_carried() {
        let mut c = copy(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1]);
        c.condemn(2, NOW - 2 * DAY);
        // A second index object condemns it again, later.
        let mut again = Index::of(vec![pack(2, &[(2, 100)])]);
        again.condemned.push((PackId([2; 32]), NOW - 10));
        c.indexes.push((ObjectId([200; 32]), again));
        let mut i = c.inputs();
        let plan = decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 2), Fate::Wait);
        assert_eq!(
            plan.mark_of(&i, &PackId([2; 32]), NOW).unwrap(),
            Some(NOW - 10)
        );
        assert!(plan.affected.is_empty(), "{:?}", plan.affected);
    }

    #[test]
    fn a_pack_indexed_since_a_running_writer_started_is_left_alone() {
        let mut c = copy(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1]);
        c.indexes[1].1.written = NOW - 60;
        let mut i = c.inputs();
        i.writers = running(1, NOW - 120);
        decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 2), Fate::InFlight);
        // Indexed well before that writer started: nobody's in-flight pack.
        c.indexes[1].1.written = NOW - 121;
        let mut i = c.inputs();
        i.writers = running(1, NOW - 120);
        decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 2), Fate::Condemn);
    }

    #[test]
    fn an_unindexed_unused_pack_is_left_alone_while_writers_run() {
        let mut c = copy(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1]);
        c.indexes.retain(|(id, _)| id.0[0] == 101);
        let mut i = c.inputs();
        i.writers = running(1, NOW);
        let plan = decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 2), Fate::InFlight);
        assert!(plan.unindexed.is_empty() && plan.affected.is_empty());
        // With none running it is an interrupted run's: condemned, and indexed.
        i.writers = Writers::default();
        let plan = decide(&mut i, 0.1).unwrap();
        assert_eq!(fate(&i, 2), Fate::Condemn);
        assert_eq!(plan.unindexed, vec![PackId([2; 32])]);
    }

    #[test]
    fn small_index_objects_are_merged_once_there_are_enough() {
        let packs: Vec<IndexedPack> = (1..MERGE_AT as u8).map(|n| pack(n, &[(n, 100)])).collect();
        let used: Vec<u8> = (1..MERGE_AT as u8).collect();
        let mut i = copy(&packs, &[], &used).inputs();
        assert!(decide(&mut i, 0.1).unwrap().affected.is_empty());
        let packs: Vec<IndexedPack> = (1..=MERGE_AT as u8).map(|n| pack(n, &[(n, 100)])).collect();
        let used: Vec<u8> = (1..=MERGE_AT as u8).collect();
        let mut i = copy(&packs, &[], &used).inputs();
        let plan = decide(&mut i, 0.1).unwrap();
        assert_eq!(plan.affected.len(), MERGE_AT);
        assert_eq!(others_than_keep(&i), 0);
    }

    #[test]
    fn a_missing_pack_stops_prune_only_when_it_held_needed_data() {
        let mut needed = copy(&[pack(1, &[(1, 100)])], &[1], &[1]).inputs();
        let e = decide(&mut needed, 0.10).unwrap_err().to_string();
        assert!(e.contains("stopped before deleting anything"), "{e}");
        // Held elsewhere too: the missing one is only forgotten.
        let mut copied = copy(&[pack(1, &[(1, 100)]), pack(2, &[(1, 100)])], &[1], &[1]).inputs();
        let plan = decide(&mut copied, 0.10).unwrap();
        assert_eq!(fate(&copied, 1), Fate::Forget);
        assert_eq!(fate(&copied, 2), Fate::Keep);
        assert_eq!(plan.preview(&copied).unwrap().packs_deleted, 0);
    }

    #[test]
    fn a_kept_pack_no_index_lists_is_indexed() {
        let mut c = copy(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1, 2]);
        c.indexes.retain(|(id, _)| id.0[0] == 101);
        let mut i = c.inputs();
        let plan = decide(&mut i, 0.10).unwrap();
        assert_eq!(plan.unindexed, vec![PackId([2; 32])]);
        assert!(plan.affected.is_empty());
        assert_eq!(others_than_keep(&i), 0);
    }
}
