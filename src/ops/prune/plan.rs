//! Prune's decision, as a value: what happens to each pack and index object,
//! and why, computed from what the copy holds by a pure function. `--dry-run`
//! renders it; `execute` carries it out.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId};
use crate::model::index::IndexedPack;
use crate::pack::BlobKey;
use crate::storage::pack_path;

use super::{PruneReport, Removed};

/// What the copy holds, as prune read it.
#[derive(Debug, Default)]
pub struct Inputs {
    pub location: String,
    pub snapshots: u64,
    /// Every blob some snapshot needs.
    pub used: HashSet<BlobKey>,
    /// Every index object, decoded.
    pub indexes: Vec<(ObjectId, Vec<IndexedPack>)>,
    /// Every pack an index lists, and every pack no index lists whose own
    /// header was checked against its bytes.
    pub packs: HashMap<PackId, IndexedPack>,
    /// The packs present, with their sizes.
    pub present: HashMap<PackId, u64>,
}

/// What happens to a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Keep,
    Repack,
    Delete,
    /// Listed by an index but gone, holding nothing a snapshot needs.
    Forget,
}

/// Blobs chosen to stay, per pack: a used blob stored in several packs stays in
/// the one that is otherwise most used.
pub type Chosen = HashMap<PackId, HashSet<BlobKey>>;

/// Prune's decision.
#[derive(Debug)]
pub struct PrunePlan {
    /// Every known pack's fate, in id order.
    pub fates: BTreeMap<PackId, Fate>,
    pub chosen: Chosen,
    /// Index objects naming a pack that goes: rewritten without it.
    pub affected: Vec<ObjectId>,
    /// Kept packs no index lists: indexed by the new index objects.
    pub unindexed_kept: Vec<PackId>,
    /// Unused bytes left in packs below the repack threshold.
    pub bytes_unused_kept: u64,
}

impl PrunePlan {
    /// The packs that go (deleted, repacked, or already gone).
    pub fn going(&self) -> HashSet<PackId> {
        self.packs_where(|f| f != Fate::Keep).collect()
    }

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

    /// Every object the plan removes, and why: packs in id order, then index
    /// objects.
    pub fn removals(&self, inputs: &Inputs) -> Vec<Removed> {
        let mut out = Vec::new();
        for (id, fate) in &self.fates {
            let reason = match fate {
                Fate::Keep => continue,
                Fate::Delete => "no snapshot uses any of its data".to_string(),
                Fate::Forget => "already gone; nothing a snapshot needs was in it".to_string(),
                Fate::Repack => format!(
                    "repacked: {}% of it was unused",
                    (unused_share(&inputs.packs[id], &self.chosen) * 100.0).round()
                ),
            };
            out.push(Removed {
                object: pack_path(id),
                reason,
            });
        }
        for id in &self.affected {
            out.push(Removed {
                object: format!("index/{}", id.to_hex()),
                reason: "names packs that prune removes; replaced by a new index object".into(),
            });
        }
        out
    }

    /// The report's facts before anything is done.
    pub fn facts(&self, inputs: &Inputs) -> PruneReport {
        PruneReport {
            location: inputs.location.clone(),
            snapshots: inputs.snapshots,
            blobs_used: inputs.used.len() as u64,
            packs_before: inputs.present.len() as u64,
            bytes_before: inputs.present.values().sum(),
            bytes_unused_kept: self.bytes_unused_kept,
            ..Default::default()
        }
    }

    /// What a run would do if no retention lock kept anything: `--dry-run`.
    pub fn preview(&self, inputs: &Inputs) -> PruneReport {
        let mut r = self.facts(inputs);
        r.dry_run = true;
        for (id, fate) in &self.fates {
            match fate {
                Fate::Delete => r.packs_deleted += 1,
                Fate::Repack => r.packs_repacked += 1,
                _ => continue,
            }
            r.bytes_deleted += inputs.present[id];
        }
        r.removed = self.removals(inputs);
        r
    }
}

/// Decide every pack's fate: a pack none of whose blobs is used is deleted, one
/// whose unused share is above `max_unused` repacked, a blob stored twice kept
/// in one pack only. A used blob only in missing packs stops prune.
pub fn decide(inputs: &Inputs, max_unused: f64) -> Result<PrunePlan> {
    let (packs, present, used) = (&inputs.packs, &inputs.present, &inputs.used);
    let chosen = choose(inputs);
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
    let mut fates = BTreeMap::new();
    let mut bytes_unused_kept = 0;
    for (id, p) in packs {
        let fate = if !present.contains_key(id) {
            Fate::Forget
        } else if chosen.get(id).is_none_or(|s| s.is_empty()) {
            Fate::Delete
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
    let indexed: HashSet<PackId> = inputs
        .indexes
        .iter()
        .flat_map(|(_, l)| l.iter().map(|p| p.id))
        .collect();
    let affected = inputs
        .indexes
        .iter()
        .filter(|(_, l)| l.iter().any(|p| fates[&p.id] != Fate::Keep))
        .map(|(id, _)| *id)
        .collect();
    let unindexed_kept = fates
        .iter()
        .filter(|(id, f)| **f == Fate::Keep && !indexed.contains(id))
        .map(|(id, _)| *id)
        .collect();
    Ok(PrunePlan {
        fates,
        chosen,
        affected,
        unindexed_kept,
        bytes_unused_kept,
    })
}

/// Which pack keeps each used blob: the most-used present packs first, so
/// duplicates leave the emptier packs.
fn choose(inputs: &Inputs) -> Chosen {
    let (packs, used) = (&inputs.packs, &inputs.used);
    let mut order: Vec<(&PackId, u64)> = packs
        .iter()
        .filter(|(id, _)| inputs.present.contains_key(id))
        .map(|(id, p)| {
            let bytes = p
                .blobs
                .iter()
                .filter(|b| used.contains(&b.key()))
                .map(|b| b.length as u64)
                .sum();
            (id, bytes)
        })
        .collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut placed: HashSet<BlobKey> = HashSet::new();
    let mut chosen: Chosen = HashMap::new();
    for (id, _) in order {
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
    /// index object each, and the blobs `used`.
    fn inputs(packs: &[IndexedPack], missing: &[u8], used: &[u8]) -> Inputs {
        Inputs {
            location: "test".into(),
            snapshots: 1,
            used: used.iter().map(|b| (Kind::Data, [*b; 32])).collect(),
            indexes: packs
                .iter()
                .map(|p| (ObjectId([p.id.0[0] + 100; 32]), vec![p.clone()]))
                .collect(),
            packs: packs.iter().map(|p| (p.id, p.clone())).collect(),
            present: packs
                .iter()
                .filter(|p| !missing.contains(&p.id.0[0]))
                .map(|p| (p.id, p.size))
                .collect(),
        }
    }

    fn fate(plan: &PrunePlan, n: u8) -> Fate {
        plan.fates[&PackId([n; 32])]
    }

    #[test]
    fn unused_packs_go_emptied_ones_are_repacked_full_ones_stay() {
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
        assert_eq!(fate(&plan, 2), Fate::Delete);
        assert_eq!(fate(&plan, 3), Fate::Repack);
        assert_eq!(fate(&plan, 4), Fate::Keep);
        assert_eq!(plan.bytes_unused_kept, 50);
        // The index objects of packs 2 and 3 are rewritten.
        assert_eq!(
            plan.affected,
            vec![ObjectId([102; 32]), ObjectId([103; 32])]
        );
        let r = plan.preview(&i);
        assert_eq!(
            (r.packs_deleted, r.packs_repacked, r.bytes_deleted),
            (1, 1, 300)
        );
        assert_eq!(r.removed.len(), 4, "{:?}", r.removed);
        assert!(r.removed[1].reason.contains("50% of it was unused"));
    }

    #[test]
    fn a_blob_stored_twice_stays_in_the_fuller_pack() {
        let i = inputs(
            &[pack(1, &[(1, 100)]), pack(2, &[(1, 100), (2, 300)])],
            &[],
            &[1, 2],
        );
        let plan = decide(&i, 0.10).unwrap();
        assert_eq!(fate(&plan, 1), Fate::Delete);
        assert_eq!(fate(&plan, 2), Fate::Keep);
        assert!(plan.chosen[&PackId([2; 32])].contains(&(Kind::Data, [1; 32])));
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
        assert_eq!(plan.unindexed_kept, vec![PackId([2; 32])]);
        assert!(plan.affected.is_empty());
        assert!(plan.going().is_empty());
    }
}
