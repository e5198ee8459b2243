//! Prune's decision, as a value: what happens to each pack and index object,
//! and why, computed from what the copy holds by a pure function. `--dry-run`
//! renders it; `execute` carries it out.
//!
//! Two phases, so that snapshots on any host never wait for a prune
//! (`docs/decisions/009-many-writers-prune.md`): a pack no snapshot needs is
//! first *condemned* (marked, with the time, in a new index object; no
//! snapshot deduplicates against it from then on), and deleted by a later
//! prune once the grace period has passed and every writer that started
//! before the mark has ended. A condemned pack a snapshot uses again is
//! recovered.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId};
use crate::model::index::{Index, IndexedPack};
use crate::pack::BlobKey;
use crate::storage::pack_path;

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
#[derive(Debug, Default)]
pub struct Inputs {
    pub location: String,
    pub snapshots: u64,
    /// Every blob some snapshot needs.
    pub used: HashSet<BlobKey>,
    /// Every index object, decoded.
    pub indexes: Vec<(ObjectId, Index)>,
    /// Every pack an index lists, and every pack no index lists whose own
    /// header was checked against its bytes.
    pub packs: HashMap<PackId, IndexedPack>,
    /// The packs present, with their sizes.
    pub present: HashMap<PackId, u64>,
    /// This host's clock (Unix seconds) when the locks were read.
    pub now: i64,
    /// How long a pack stays condemned before it may be deleted (seconds).
    pub grace: i64,
    /// The writers (snapshots, restores, mirrors: every repository lock) live
    /// when prune started, read before the snapshots were.
    pub writers: Writers,
    /// Index objects in the copy that a newer one replaced (a killed prune's
    /// leftovers, or put back): rewritten away.
    pub superseded: HashSet<ObjectId>,
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
pub enum Fate {
    Keep,
    /// Its used blobs are copied into new packs; it is condemned.
    Repack,
    /// Nothing in it is used: condemned now, deleted by a later prune.
    Condemn,
    /// Condemned earlier and not deletable yet (grace period, or writers that
    /// started before the mark are still running).
    Wait,
    /// Condemned earlier, and a snapshot uses it again: live once more.
    Recover,
    /// Condemned past the grace period, unused, no writer from before the mark.
    Delete,
    /// Listed by an index but gone, holding nothing a snapshot needs.
    Forget,
    /// Nothing uses it, and it may be a running writer's (no index lists it,
    /// or only index objects written since that writer started): its
    /// manifest may be yet to come, so it is left alone.
    InFlight,
}

impl Fate {
    /// Whether the index objects naming a pack of this fate are rewritten.
    fn rewrites_index(self) -> bool {
        !matches!(self, Fate::Keep | Fate::Wait | Fate::InFlight)
    }
}

/// Blobs chosen to stay, per pack: a used blob stored in several packs stays in
/// the one that is otherwise most used, a live pack before a condemned one.
pub type Chosen = HashMap<PackId, HashSet<BlobKey>>;

/// Prune's decision.
#[derive(Debug)]
pub struct PrunePlan {
    /// Every known pack's fate, in id order.
    pub fates: BTreeMap<PackId, Fate>,
    pub chosen: Chosen,
    /// The time of the latest mark of each condemned pack.
    pub marked: HashMap<PackId, i64>,
    /// Index objects naming a pack whose state changes: replaced.
    pub affected: Vec<ObjectId>,
    /// Packs no index lists that stay listed (kept or condemned): indexed by
    /// the new index objects.
    pub unindexed: Vec<PackId>,
    /// Unused bytes left in packs below the repack threshold.
    pub bytes_unused_kept: u64,
}

impl PrunePlan {
    /// The packs whose fate `f` satisfies, in id order.
    pub fn packs_where<'a>(
        &'a self,
        f: impl Fn(Fate) -> bool + 'a,
    ) -> impl Iterator<Item = PackId> + 'a {
        self.fates
            .iter()
            .filter(move |(_, x)| f(**x))
            .map(|(id, _)| *id)
    }

    /// Whether the new index objects mark pack `id` condemned, and since when:
    /// a new mark carries `written`, the moment its index object is written
    /// (not when prune began: a writer that starts in between reads the index
    /// before the mark is there).
    pub fn mark_of(&self, id: &PackId, written: i64) -> Option<i64> {
        match self.fates.get(id)? {
            Fate::Repack | Fate::Condemn => Some(written),
            Fate::Wait => self.marked.get(id).copied(),
            _ => None,
        }
    }

    /// Every object the plan removes, and why: packs in id order, then index
    /// objects.
    pub fn removals(&self) -> Vec<Removed> {
        let mut out: Vec<Removed> = self
            .fates
            .iter()
            .filter_map(|(id, fate)| {
                let reason = match fate {
                    Fate::Delete => "condemned by an earlier prune, and still no snapshot uses it",
                    Fate::Forget => "already gone; nothing a snapshot needs was in it",
                    _ => return None,
                };
                Some(Removed {
                    object: pack_path(id),
                    reason: reason.into(),
                })
            })
            .collect();
        for id in &self.affected {
            out.push(Removed {
                object: format!("index/{}", id.to_hex()),
                reason: "names packs whose state prune changes; replaced by a new index object"
                    .into(),
            });
        }
        out
    }

    /// The packs condemned now, and why.
    pub fn marks(&self, inputs: &Inputs) -> Vec<Removed> {
        self.fates
            .iter()
            .filter_map(|(id, fate)| {
                let reason = match fate {
                    Fate::Condemn => "no snapshot uses any of its data".to_string(),
                    Fate::Repack => format!(
                        "repacked: {}% of it was unused",
                        (unused_share(&inputs.packs[id], &self.chosen) * 100.0).round()
                    ),
                    _ => return None,
                };
                Some(Removed {
                    object: pack_path(id),
                    reason,
                })
            })
            .collect()
    }

    /// The report's facts before anything is done.
    pub fn facts(&self, inputs: &Inputs) -> PruneReport {
        let count = |f: Fate| self.fates.values().filter(|x| **x == f).count() as u64;
        PruneReport {
            location: inputs.location.clone(),
            snapshots: inputs.snapshots,
            blobs_used: inputs.used.len() as u64,
            packs_before: inputs.present.len() as u64,
            bytes_before: inputs.present.values().sum(),
            bytes_unused_kept: self.bytes_unused_kept,
            packs_condemned: count(Fate::Condemn) + count(Fate::Repack),
            packs_waiting: count(Fate::Wait),
            packs_recovered: count(Fate::Recover),
            grace_secs: inputs.grace.max(0) as u64,
            ..Default::default()
        }
    }

    /// What a run would do if no retention lock kept anything: `--dry-run`.
    pub fn preview(&self, inputs: &Inputs) -> PruneReport {
        let mut r = self.facts(inputs);
        r.dry_run = true;
        for (id, fate) in &self.fates {
            match fate {
                Fate::Delete => {
                    r.packs_deleted += 1;
                    r.bytes_deleted += inputs.present[id];
                }
                Fate::Repack => r.packs_repacked += 1,
                _ => {}
            }
        }
        r.removed = self.removals();
        r.marked = self.marks(inputs);
        r
    }
}

/// The latest mark of every condemned pack, over all index objects.
fn marks(indexes: &[(ObjectId, Index)]) -> HashMap<PackId, i64> {
    let mut out: HashMap<PackId, i64> = HashMap::new();
    for (_, ix) in indexes {
        for (id, at) in &ix.condemned {
            let t = out.entry(*id).or_insert(*at);
            *t = (*t).max(*at);
        }
    }
    out
}

/// Decide every pack's fate. A live pack none of whose blobs is used is
/// condemned, one whose unused share is above `max_unused` repacked (and
/// condemned); a condemned pack is recovered when used again, deleted once
/// past the grace period with no writer from before its mark, and waits
/// otherwise. A used blob only in missing packs stops prune.
pub fn decide(inputs: &Inputs, max_unused: f64) -> Result<PrunePlan> {
    let (packs, present, used) = (&inputs.packs, &inputs.present, &inputs.used);
    let marked = marks(&inputs.indexes);
    let chosen = choose(inputs, &marked);
    let placed: HashSet<BlobKey> = chosen.values().flatten().copied().collect();
    // A used blob only in missing packs: data is lost here; prune must not go on.
    let mut lost: Vec<String> = packs
        .iter()
        .filter(|(id, p)| {
            !present.contains_key(id)
                && p.blobs
                    .iter()
                    .any(|b| used.contains(&b.key()) && !placed.contains(&b.key()))
        })
        .map(|(id, _)| id.to_hex())
        .collect();
    if !lost.is_empty() {
        lost.sort();
        return Err(Error::Failed(format!(
            "prune stopped before deleting anything: pack {} is missing and holds data snapshots need; run `hcbackup repair` (or `hcbackup verify` to see what is affected)",
            lost.join(", pack ")
        )));
    }
    // When each pack was indexed (the latest index object listing it).
    let mut indexed: HashMap<PackId, i64> = HashMap::new();
    for (_, ix) in &inputs.indexes {
        for p in &ix.packs {
            let t = indexed.entry(p.id).or_insert(ix.written);
            *t = (*t).max(ix.written);
        }
    }
    let mut fates = BTreeMap::new();
    let mut bytes_unused_kept = 0;
    for (id, p) in packs {
        let used_here = chosen.get(id).is_some_and(|s| !s.is_empty());
        let fate = if !present.contains_key(id) {
            Fate::Forget
        } else if let Some(&at) = marked.get(id) {
            if used_here {
                Fate::Recover
            } else if inputs.now.saturating_sub(at) >= inputs.grace && !inputs.writers.predate(at) {
                Fate::Delete
            } else {
                Fate::Wait
            }
        } else if !used_here {
            if inputs.writers.may_own(indexed.get(id).copied()) {
                Fate::InFlight
            } else {
                Fate::Condemn
            }
        } else if unused_share(p, &chosen) > max_unused {
            Fate::Repack
        } else {
            bytes_unused_kept += p
                .blobs
                .iter()
                .filter(|b| !chosen[id].contains(&b.key()))
                .map(|b| b.length as u64)
                .sum::<u64>();
            Fate::Keep
        };
        fates.insert(*id, fate);
    }
    // Index objects naming a pack whose state changes, and the small ones
    // (a snapshot's each night) merged into full ones: the number of index
    // objects follows the repository's size, not its age.
    let small: Vec<ObjectId> = inputs
        .indexes
        .iter()
        .filter(|(_, ix)| ix.packs.len() < SMALL_INDEX)
        .map(|(id, _)| *id)
        .collect();
    let affected = inputs
        .indexes
        .iter()
        .filter(|(id, ix)| {
            ix.packs.iter().any(|p| fates[&p.id].rewrites_index())
                || (small.len() >= MERGE_AT && small.contains(id))
                || inputs.superseded.contains(id)
        })
        .map(|(id, _)| *id)
        .collect();
    let unindexed = fates
        .iter()
        .filter(|(id, f)| {
            matches!(f, Fate::Keep | Fate::Repack | Fate::Condemn) && !indexed.contains_key(id)
        })
        .map(|(id, _)| *id)
        .collect();
    Ok(PrunePlan {
        fates,
        chosen,
        marked,
        affected,
        unindexed,
        bytes_unused_kept,
    })
}

/// Which pack keeps each used blob: live packs before condemned ones, then the
/// most-used present packs first, so duplicates leave the emptier packs.
fn choose(inputs: &Inputs, marked: &HashMap<PackId, i64>) -> Chosen {
    let (packs, used) = (&inputs.packs, &inputs.used);
    let mut order: Vec<(&PackId, bool, u64)> = packs
        .iter()
        .filter(|(id, _)| inputs.present.contains_key(id))
        .map(|(id, p)| {
            let bytes = p
                .blobs
                .iter()
                .filter(|b| used.contains(&b.key()))
                .map(|b| b.length as u64)
                .sum();
            (id, marked.contains_key(id), bytes)
        })
        .collect();
    order.sort_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0)));
    let mut placed: HashSet<BlobKey> = HashSet::new();
    let mut chosen: Chosen = HashMap::new();
    for (id, _, _) in order {
        let set = chosen.entry(*id).or_default();
        for b in &packs[id].blobs {
            if used.contains(&b.key()) && placed.insert(b.key()) {
                set.insert(b.key());
            }
        }
    }
    chosen
}

/// The share of a pack's blob bytes that prune would not keep there.
pub fn unused_share(p: &IndexedPack, chosen: &Chosen) -> f64 {
    let total: u64 = p.blobs.iter().map(|b| b.length as u64).sum();
    if total == 0 {
        return 1.0;
    }
    let kept: u64 = chosen.get(&p.id).map_or(0, |set| {
        p.blobs
            .iter()
            .filter(|b| set.contains(&b.key()))
            .map(|b| b.length as u64)
            .sum()
    });
    (total - kept) as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Kind;
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

    /// A copy with `packs` (all present unless `missing`), listed by one
    /// index object each, and the blobs `used`; a grace period of a day, no
    /// writers running.
    fn inputs(packs: &[IndexedPack], missing: &[u8], used: &[u8]) -> Inputs {
        Inputs {
            location: "test".into(),
            snapshots: 1,
            used: used.iter().map(|b| (Kind::Data, [*b; 32])).collect(),
            indexes: packs
                .iter()
                .map(|p| (ObjectId([p.id.0[0] + 100; 32]), Index::of(vec![p.clone()])))
                .collect(),
            packs: packs.iter().map(|p| (p.id, p.clone())).collect(),
            present: packs
                .iter()
                .filter(|p| !missing.contains(&p.id.0[0]))
                .map(|p| (p.id, p.size))
                .collect(),
            now: NOW,
            grace: DAY,
            writers: Writers::default(),
            superseded: HashSet::new(),
        }
    }

    /// Mark pack `n` condemned at `at` in its index object.
    fn condemn(i: &mut Inputs, n: u8, at: i64) {
        let (_, ix) = i
            .indexes
            .iter_mut()
            .find(|(_, ix)| ix.packs.iter().any(|p| p.id.0[0] == n))
            .unwrap();
        ix.condemned.push((PackId([n; 32]), at));
    }

    fn fate(plan: &PrunePlan, n: u8) -> Fate {
        plan.fates[&PackId([n; 32])]
    }

    #[test]
    fn unused_packs_are_condemned_emptied_ones_repacked_full_ones_stay() {
        let i = inputs(
            &[
                pack(1, &[(1, 100), (2, 100)]), // all used
                pack(2, &[(3, 100)]),           // none used
                pack(3, &[(4, 100), (5, 100)]), // half used
                pack(4, &[(6, 950), (7, 50)]),  // 5% unused
            ],
            &[],
            &[1, 2, 4, 6],
        );
        let plan = decide(&i, 0.10).unwrap();
        assert_eq!(fate(&plan, 1), Fate::Keep);
        assert_eq!(fate(&plan, 2), Fate::Condemn);
        assert_eq!(fate(&plan, 3), Fate::Repack);
        assert_eq!(fate(&plan, 4), Fate::Keep);
        assert_eq!(plan.bytes_unused_kept, 50);
        assert_eq!(
            (
                plan.mark_of(&PackId([2; 32]), NOW),
                plan.mark_of(&PackId([1; 32]), NOW)
            ),
            (Some(NOW), None)
        );
        // The index objects of packs 2 and 3 are rewritten, with the marks.
        assert_eq!(
            plan.affected,
            vec![ObjectId([102; 32]), ObjectId([103; 32])]
        );
        // Nothing is deleted in the run that condemns.
        let r = plan.preview(&i);
        assert_eq!(
            (
                r.packs_deleted,
                r.packs_repacked,
                r.packs_condemned,
                r.bytes_deleted
            ),
            (0, 1, 2, 0)
        );
        assert_eq!(r.marked.len(), 2, "{:?}", r.marked);
        assert!(r.marked[1].reason.contains("50% of it was unused"));
    }

    #[test]
    fn a_condemned_pack_goes_after_the_grace_period_when_no_writer_predates_its_mark() {
        let mut i = inputs(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1]);
        condemn(&mut i, 2, NOW - DAY);
        assert_eq!(fate(&decide(&i, 0.1).unwrap(), 2), Fate::Delete);
        // Not yet: the grace period has a second to go.
        i.now = NOW - 1;
        assert_eq!(fate(&decide(&i, 0.1).unwrap(), 2), Fate::Wait);
        i.now = NOW;
        // A writer that started before the mark (or just after: the margin for
        // clocks) may still reference it.
        for start in [NOW - 2 * DAY, NOW - DAY + MARK_MARGIN, i64::MIN] {
            i.writers = Writers {
                live: 1,
                oldest_start: Some(start),
            };
            assert_eq!(fate(&decide(&i, 0.1).unwrap(), 2), Fate::Wait, "{start}");
        }
        // One that started after the mark read it: it never deduplicates there.
        i.writers = Writers {
            live: 3,
            oldest_start: Some(NOW - DAY + MARK_MARGIN + 1),
        };
        let plan = decide(&i, 0.1).unwrap();
        assert_eq!(fate(&plan, 2), Fate::Delete);
        let r = plan.preview(&i);
        assert_eq!(
            (r.packs_deleted, r.bytes_deleted, r.packs_condemned),
            (1, 100, 0)
        );
        assert_eq!(r.removed[0].object, pack_path(&PackId([2; 32])));
    }

    #[test]
    fn a_condemned_pack_a_snapshot_uses_again_is_recovered() {
        let mut i = inputs(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1, 2]);
        condemn(&mut i, 2, NOW - 2 * DAY);
        let plan = decide(&i, 0.1).unwrap();
        assert_eq!(fate(&plan, 2), Fate::Recover);
        assert_eq!(plan.mark_of(&PackId([2; 32]), NOW), None);
        assert_eq!(plan.affected, vec![ObjectId([102; 32])]);
    }

    #[test]
    fn a_blob_in_a_live_and_a_condemned_pack_stays_in_the_live_one() {
        // Pack 2 was repacked into pack 3; pack 2 is condemned.
        let mut i = inputs(
            &[pack(2, &[(1, 100), (2, 900)]), pack(3, &[(1, 100)])],
            &[],
            &[1],
        );
        condemn(&mut i, 2, NOW - 2 * DAY);
        let plan = decide(&i, 0.1).unwrap();
        assert_eq!(fate(&plan, 3), Fate::Keep);
        assert_eq!(fate(&plan, 2), Fate::Delete);
    }

    #[test]
    fn the_latest_mark_counts_and_waiting_marks_are_carried() {
        let mut i = inputs(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1]);
        condemn(&mut i, 2, NOW - 2 * DAY);
        // A second index object condemns it again, later.
        let mut again = Index::of(vec![pack(2, &[(2, 100)])]);
        again.condemned.push((PackId([2; 32]), NOW - 10));
        i.indexes.push((ObjectId([200; 32]), again));
        let plan = decide(&i, 0.1).unwrap();
        assert_eq!(fate(&plan, 2), Fate::Wait);
        assert_eq!(plan.mark_of(&PackId([2; 32]), NOW), Some(NOW - 10));
        assert!(plan.affected.is_empty(), "{:?}", plan.affected);
    }

    #[test]
    fn a_pack_indexed_since_a_running_writer_started_is_left_alone() {
        let mut i = inputs(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1]);
        i.indexes[1].1.written = NOW - 60;
        i.writers = Writers {
            live: 1,
            oldest_start: Some(NOW - 120),
        };
        assert_eq!(fate(&decide(&i, 0.1).unwrap(), 2), Fate::InFlight);
        // Indexed well before that writer started: nobody's in-flight pack.
        i.indexes[1].1.written = NOW - 121;
        assert_eq!(fate(&decide(&i, 0.1).unwrap(), 2), Fate::Condemn);
    }

    #[test]
    fn an_unindexed_unused_pack_is_left_alone_while_writers_run() {
        let mut i = inputs(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1]);
        i.indexes.retain(|(id, _)| id.0[0] == 101);
        i.writers = Writers {
            live: 1,
            oldest_start: Some(NOW),
        };
        let plan = decide(&i, 0.1).unwrap();
        assert_eq!(fate(&plan, 2), Fate::InFlight);
        assert!(plan.unindexed.is_empty() && plan.affected.is_empty());
        // With none running it is an interrupted run's: condemned, and indexed.
        i.writers = Writers::default();
        let plan = decide(&i, 0.1).unwrap();
        assert_eq!(fate(&plan, 2), Fate::Condemn);
        assert_eq!(plan.unindexed, vec![PackId([2; 32])]);
    }

    #[test]
    fn small_index_objects_are_merged_once_there_are_enough() {
        let packs: Vec<IndexedPack> = (1..MERGE_AT as u8).map(|n| pack(n, &[(n, 100)])).collect();
        let used: Vec<u8> = (1..MERGE_AT as u8).collect();
        let plan = decide(&inputs(&packs, &[], &used), 0.1).unwrap();
        assert!(plan.affected.is_empty());
        let packs: Vec<IndexedPack> = (1..=MERGE_AT as u8).map(|n| pack(n, &[(n, 100)])).collect();
        let used: Vec<u8> = (1..=MERGE_AT as u8).collect();
        let plan = decide(&inputs(&packs, &[], &used), 0.1).unwrap();
        assert_eq!(plan.affected.len(), MERGE_AT);
        assert_eq!(plan.packs_where(|f| f != Fate::Keep).count(), 0);
    }

    #[test]
    fn a_missing_pack_stops_prune_only_when_it_held_needed_data() {
        let needed = inputs(&[pack(1, &[(1, 100)])], &[1], &[1]);
        let e = decide(&needed, 0.10).unwrap_err().to_string();
        assert!(e.contains("stopped before deleting anything"), "{e}");
        // Held elsewhere too: the missing one is only forgotten.
        let copied = inputs(&[pack(1, &[(1, 100)]), pack(2, &[(1, 100)])], &[1], &[1]);
        let plan = decide(&copied, 0.10).unwrap();
        assert_eq!(fate(&plan, 1), Fate::Forget);
        assert_eq!(fate(&plan, 2), Fate::Keep);
        assert_eq!(plan.preview(&copied).packs_deleted, 0);
    }

    #[test]
    fn a_kept_pack_no_index_lists_is_indexed() {
        let mut i = inputs(&[pack(1, &[(1, 100)]), pack(2, &[(2, 100)])], &[], &[1, 2]);
        i.indexes.retain(|(id, _)| id.0[0] == 101);
        let plan = decide(&i, 0.10).unwrap();
        assert_eq!(plan.unindexed, vec![PackId([2; 32])]);
        assert!(plan.affected.is_empty());
        assert_eq!(plan.packs_where(|f| f != Fate::Keep).count(), 0);
    }
}
