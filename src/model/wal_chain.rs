//! The WAL chain from each base backup (issue #19, step 4): whether the
//! segments that make it consistent are archived, how far recovery can roll
//! forward from it without a hole, and so the copy's recovery window. A pure
//! function of the base backups and the records' names and times.
//!
//! Timelines: past the last segment of its timeline, the chain goes on along
//! the newest timeline whose history file is archived and that has the next
//! segment (a promoted server copies the segment it was promoted in to the
//! new timeline). History files are not read: a timeline forked from another
//! branch at the same position would be followed too (docs/decisions/008).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::wal::{kind_of, position, WalFile};

/// A good base backup, as the chain sees it.
#[derive(Clone, Debug)]
pub struct Base {
    /// The snapshot's id (hex).
    pub snapshot: String,
    /// Its first and last WAL segment.
    pub first: String,
    pub last: String,
    /// When it ended (RFC 3339): the earliest moment it recovers to.
    pub end_time: String,
}

impl Base {
    /// The good base backups among `snaps` (a failed one needs no WAL).
    pub fn of(snaps: &[crate::model::snapshot::SnapshotEntry]) -> Vec<Base> {
        snaps
            .iter()
            .filter_map(|e| {
                let p = e.snapshot.physical.as_ref().filter(|p| p.ok())?;
                Some(Base {
                    snapshot: e.id.to_hex(),
                    first: p.start_wal.clone(),
                    last: p.last_wal()?,
                    end_time: p.end_time.clone(),
                })
            })
            .collect()
    }
}

/// An archived file: its name and when it was archived (RFC 3339; may be
/// empty when not known: the window's `to` is then empty too).
#[derive(Clone, Debug)]
pub struct Archived {
    pub name: String,
    pub time: String,
    pub size: u64,
}

/// From when to when a copy can recover a cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Window {
    /// The end of the oldest base backup whose WAL reaches `to` without a hole.
    pub from: String,
    /// When the last segment recovery reaches without a hole was archived
    /// (what was written before it can be recovered).
    pub to: String,
    pub to_wal: String,
    /// Base backups inside the window.
    pub base_backups: u64,
}

impl Window {
    /// A window never ends before it starts: a base backup's last segment is
    /// archived before pg_basebackup reports its end, and recovery reaches
    /// that end at least.
    pub fn clamp(&mut self) {
        let t = crate::util::parse_rfc3339;
        if let (Some(f), Some(to)) = (t(&self.from), t(&self.to)) {
            if to < f {
                self.to = self.from.clone();
            }
        }
    }
}

/// What the chain says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chain {
    /// Base backups that cannot be made consistent: (snapshot, the first
    /// segment of its own that is missing).
    pub inconsistent: Vec<(String, String)>,
    /// For each base backup that can be made consistent: (snapshot, the last
    /// segment recovery reaches from it without a hole).
    pub reach: Vec<(String, String)>,
    /// The newest segment archived (by position, then timeline).
    pub newest: Option<String>,
    pub window: Option<Window>,
}

/// A segment: timeline and position.
type Seg = (u32, u64);

/// The chain of every base backup in `bases` through `archived`.
pub fn follow(bases: &[Base], archived: &[Archived]) -> Chain {
    let mut times: HashMap<Seg, &str> = HashMap::new();
    let mut histories = HashSet::new();
    let mut seg_size = 0;
    for a in archived {
        match kind_of(&a.name) {
            Some(WalFile::Segment) => {
                if let (Some(tl), Some(p)) = (timeline(&a.name), position(&a.name)) {
                    times.insert((tl, p), a.time.as_str());
                    seg_size = seg_size.max(a.size);
                }
            }
            Some(WalFile::History) => {
                histories.extend(timeline(&a.name));
            }
            _ => {}
        }
    }
    let per_log = match seg_size {
        s if s.is_power_of_two() && (1 << 20..=1 << 30).contains(&s) => (1u64 << 32) / s,
        _ => 256,
    };
    let next = |p: u64| match (p & 0xffff_ffff) + 1 {
        s if s == per_log => ((p >> 32) + 1) << 32,
        _ => p + 1,
    };
    let mut chain = Chain::default();
    let mut reached: Vec<(&Base, Seg)> = Vec::new();
    for b in bases {
        let (Some(tl), Some(first), Some(last)) =
            (timeline(&b.first), position(&b.first), position(&b.last))
        else {
            continue;
        };
        let mut p = first;
        let missing = loop {
            if !times.contains_key(&(tl, p)) {
                break Some(p);
            }
            if p >= last {
                break None;
            }
            p = next(p);
        };
        if let Some(p) = missing {
            chain.inconsistent.push((b.snapshot.clone(), name((tl, p))));
            continue;
        }
        let mut at = (tl, last);
        loop {
            let n = next(at.1);
            if times.contains_key(&(at.0, n)) {
                at = (at.0, n);
                continue;
            }
            match histories
                .iter()
                .filter(|t| **t > at.0 && times.contains_key(&(**t, n)))
                .max()
            {
                Some(t) => at = (*t, n),
                None => break,
            }
        }
        chain.reach.push((b.snapshot.clone(), name(at)));
        reached.push((b, at));
    }
    chain.newest = times
        .keys()
        .map(|(tl, p)| (*p, *tl))
        .max()
        .map(|(p, tl)| name((tl, p)));
    // The window is continuous: it starts at the oldest base backup whose
    // chain reaches as far as the furthest one (an older one whose chain
    // stops earlier, a held base backup, is an island of its own).
    let time = |s: &str| crate::util::parse_rfc3339(s);
    let furthest = reached.iter().map(|(_, at)| (at.1, at.0)).max();
    if let Some((p, tl)) = furthest {
        let end = (tl, p);
        let whole: Vec<&Base> = reached
            .iter()
            .filter(|(_, at)| *at == end)
            .map(|(b, _)| *b)
            .collect();
        let from = whole
            .iter()
            .filter_map(|b| time(&b.end_time).map(|t| (t, b)))
            .min_by_key(|(t, _)| *t);
        if let Some((_, from)) = from {
            let mut w = Window {
                from: from.end_time.clone(),
                to: times[&end].to_string(),
                to_wal: name(end),
                base_backups: whole.len() as u64,
            };
            w.clamp();
            chain.window = Some(w);
        }
    }
    chain
}

/// The timeline a segment or history file name starts with.
fn timeline(name: &str) -> Option<u32> {
    u32::from_str_radix(name.get(..8)?, 16).ok()
}

fn name((tl, p): Seg) -> String {
    format!("{tl:08X}{:08X}{:08X}", p >> 32, p & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(tl: u32, n: u64) -> String {
        format!("{tl:08X}{:08X}{:08X}", n >> 8, n & 0xff)
    }

    fn archived(names: &[String]) -> Vec<Archived> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Archived {
                name: n.clone(),
                time: format!("2026-12-01T10:{:02}:00Z", i),
                size: 16 << 20,
            })
            .collect()
    }

    fn base(id: &str, first: String, last: String, end: &str) -> Base {
        Base {
            snapshot: id.into(),
            first,
            last,
            end_time: end.into(),
        }
    }

    #[test]
    fn the_window_runs_from_the_oldest_whole_base_backup_to_the_first_hole() {
        // 0xFE..0x102 on timeline 1 (across a log boundary), 0x104 after a hole.
        let names: Vec<String> = [0xFE, 0xFF, 0x100, 0x101, 0x102, 0x104]
            .iter()
            .map(|n| seg(1, *n))
            .collect();
        let a = archived(&names);
        let b1 = base("b1", seg(1, 0xFE), seg(1, 0xFF), "2026-12-01T09:00:00Z");
        let c = follow(std::slice::from_ref(&b1), &a);
        assert!(c.inconsistent.is_empty());
        assert_eq!(c.reach, [("b1".to_string(), seg(1, 0x102))]);
        assert_eq!(c.newest, Some(seg(1, 0x104)));
        let w = c.window.unwrap();
        assert_eq!(w.from, "2026-12-01T09:00:00Z");
        assert_eq!(w.to_wal, seg(1, 0x102));
        assert_eq!(w.to, "2026-12-01T10:04:00Z");
        // A base backup whose own WAL has a hole cannot be made consistent.
        let b2 = base("b2", seg(1, 0x102), seg(1, 0x103), "2026-12-01T11:00:00Z");
        let c = follow(&[b1.clone(), b2], &a);
        assert_eq!(c.inconsistent, [("b2".to_string(), seg(1, 0x103))]);
        assert_eq!(c.window.unwrap().base_backups, 1);
        // A newer base backup past the hole starts the window: the older one
        // is an island.
        let b3 = base("b3", seg(1, 0x104), seg(1, 0x104), "2026-12-01T12:00:00Z");
        let w = follow(&[b1, b3], &a).window.unwrap();
        assert_eq!(
            (w.from.as_str(), w.to_wal.clone()),
            ("2026-12-01T12:00:00Z", seg(1, 0x104))
        );
        assert_eq!(w.base_backups, 1);
        // No base backup, no window.
        assert_eq!(follow(&[], &a).window, None);
    }

    #[test]
    fn the_chain_follows_a_promotion_onto_the_new_timeline() {
        let mut names = vec![seg(1, 1), seg(1, 2), format!("{}.partial", seg(1, 3))];
        names.extend([seg(2, 3), seg(2, 4)]);
        let b = base("b", seg(1, 1), seg(1, 1), "2026-12-01T09:00:00Z");
        // Without the history file the new timeline is not followed.
        let w = follow(std::slice::from_ref(&b), &archived(&names))
            .window
            .unwrap();
        assert_eq!(w.to_wal, seg(1, 2));
        names.push("00000002.history".into());
        let w = follow(&[b], &archived(&names)).window.unwrap();
        assert_eq!(w.to_wal, seg(2, 4));
    }
}
