//! The record of one file PostgreSQL archived (a WAL segment, a timeline's
//! history file, a backup label): sealed JSON (kind 9) at `wal/<id>`, where the
//! id is a keyed hash of the file's name, so a fetch finds it without a
//! listing and the storage never sees a name. The bytes themselves are an
//! ordinary tree of one file node, kept and checked like a snapshot's.

use serde::{Deserialize, Serialize};

use crate::id::TreeId;

/// The key-derivation domain of a record's id.
pub const ID_DOMAIN: &str = "wal name";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WalRecord {
    pub version: u32,
    /// The file's name as PostgreSQL gives it (`%f`).
    pub name: String,
    pub size: u64,
    /// BLAKE3 of the file's bytes, hex: a second push of the name must match.
    pub blake3: String,
    /// When and from where it was pushed.
    pub time: String,
    pub host: String,
    /// A tree with one file node named `name` that lists the chunks.
    pub tree: TreeId,
}

/// What kind of file a name is, or `None` when PostgreSQL never archives
/// such a name (the name comes from the command line: it must never be a path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalFile {
    /// `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, log, segment.
    Segment,
    /// `TTTTTTTT.history`.
    History,
    /// `TTTTTTTTXXXXXXXXYYYYYYYY.OOOOOOOO.backup`: a base backup's label.
    BackupLabel,
    /// `TTTTTTTTXXXXXXXXYYYYYYYY.partial`: the last segment of a timeline a
    /// promotion left.
    Partial,
}

/// The kind of file `name` is, when PostgreSQL archives such names.
pub fn kind_of(name: &str) -> Option<WalFile> {
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
    };
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        [seg] if hex(seg, 24) => Some(WalFile::Segment),
        [tl, "history"] if hex(tl, 8) => Some(WalFile::History),
        [seg, "partial"] if hex(seg, 24) => Some(WalFile::Partial),
        [seg, off, "backup"] if hex(seg, 24) && hex(off, 8) => Some(WalFile::BackupLabel),
        _ => None,
    }
}

/// The name of the WAL segment holding the byte before `stop` (an LSN
/// `X/Y`), on the timeline of `start_wal`, with the segment size that puts
/// `start` in `start_wal`.
pub fn last_segment(start: &str, start_wal: &str, stop: &str) -> Option<String> {
    let lsn = |s: &str| {
        let (hi, lo) = s.split_once('/')?;
        Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
    };
    let (start, stop) = (lsn(start)?, lsn(stop)?);
    if start_wal.len() != 24 || stop <= start {
        return None;
    }
    let tl = &start_wal[..8];
    let name = |size: u64, at: u64| {
        let per = (1u64 << 32) / size;
        let seg = at / size;
        format!("{tl}{:08X}{:08X}", seg / per, seg % per)
    };
    (20..=30)
        .map(|bits| 1u64 << bits)
        .find(|size| name(*size, start) == start_wal)
        .map(|size| name(size, stop - 1))
}

/// Where a segment, partial segment or backup label sits in the WAL: its log
/// and segment numbers as one number (`XXXXXXXXYYYYYYYY`), the same on every
/// timeline and for every segment size; `None` for a history file.
pub fn position(name: &str) -> Option<u64> {
    match kind_of(name)? {
        WalFile::History => None,
        _ => {
            let log = u64::from_str_radix(&name[8..16], 16).ok()?;
            let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
            Some((log << 32) | seg)
        }
    }
}

/// A kept base backup as WAL retention sees it: the positions of its first
/// and last segment, and whether it anchors the recovery window (kept by the
/// policy, not only by a legal hold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub first: u64,
    pub last: u64,
    pub anchor: bool,
}

/// What WAL retention removes of the archived `names`, given the base
/// backups that stay: everything before the oldest anchor, except what a
/// held base backup needs to become consistent (its first to its last
/// segment). History files stay (a few bytes each, and recovery follows
/// timelines through them). Nothing goes while no base backup anchors: WAL
/// archived before the first base backup is all there is.
pub fn removable<'a>(names: impl Iterator<Item = &'a str>, kept: &[Span]) -> Vec<&'a str> {
    let Some(cutoff) = kept.iter().filter(|s| s.anchor).map(|s| s.first).min() else {
        return Vec::new();
    };
    let needed = |p: u64| kept.iter().any(|s| (s.first..=s.last).contains(&p));
    names
        .filter(|n| position(n).is_some_and(|p| p < cutoff && !needed(p)))
        .collect()
}

/// The most gaps named (a long outage is one problem, not thousands).
const MAX_GAPS: usize = 100;

/// The segments missing between the first and the last archived segment of
/// each timeline, at or after position `from` (before it, forget removed WAL
/// on purpose): recovery cannot pass a gap.
pub fn gaps(records: &[WalRecord], from: u64) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut by_tl: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut seg_size = 0u64;
    for r in records
        .iter()
        .filter(|r| kind_of(&r.name) == Some(WalFile::Segment))
    {
        seg_size = seg_size.max(r.size);
        let n = &r.name;
        if let (Ok(tl), Ok(log), Ok(seg)) = (
            u32::from_str_radix(&n[..8], 16),
            u64::from_str_radix(&n[8..16], 16),
            u64::from_str_radix(&n[16..], 16),
        ) {
            by_tl.entry(tl).or_default().push((log << 32) | seg);
        }
    }
    // Segments per log file: 4 GiB over the segment size (16 MiB: 256).
    let per_log = match seg_size {
        s if s.is_power_of_two() && (1 << 20..=1 << 30).contains(&s) => (1u64 << 32) / s,
        _ => return Vec::new(),
    };
    let number = |v: u64| (v >> 32) * per_log + (v & 0xffff_ffff);
    let name = |tl: u32, n: u64| format!("{tl:08X}{:08X}{:08X}", n / per_log, n % per_log);
    let mut out = Vec::new();
    for (tl, mut segs) in by_tl {
        segs.sort_unstable();
        let nums: Vec<u64> = segs.into_iter().map(number).collect();
        for w in nums.windows(2) {
            for missing in w[0] + 1..w[1] {
                if (((missing / per_log) << 32) | (missing % per_log)) < from {
                    continue;
                }
                if out.len() == MAX_GAPS {
                    return out;
                }
                out.push(name(tl, missing));
            }
        }
    }
    out
}

impl WalRecord {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record serializes")
    }

    /// A record from authenticated bytes; checked, since a bug must not turn
    /// a damaged repository into a wrong file.
    pub fn from_bytes(b: &[u8]) -> Result<WalRecord, String> {
        let r: WalRecord =
            serde_json::from_slice(b).map_err(|e| format!("WAL record does not decode: {e}"))?;
        if r.version != 1 {
            return Err(format!("unknown WAL record version {}", r.version));
        }
        if kind_of(&r.name).is_none() {
            return Err(format!(
                "WAL record of a name PostgreSQL never archives: {:?}",
                r.name
            ));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str) -> WalRecord {
        WalRecord {
            version: 1,
            name: name.into(),
            size: 16 << 20,
            blake3: String::new(),
            time: String::new(),
            host: String::new(),
            tree: TreeId([0; 32]),
        }
    }

    #[test]
    fn gaps_are_the_segments_missing_inside_each_timeline() {
        let names = [
            "0000000100000000000000FE",
            "000000010000000100000001",
            "000000010000000100000003",
            "00000002.history",
            "000000020000000100000003",
            "000000020000000100000004",
        ];
        let recs: Vec<WalRecord> = names.iter().map(|n| rec(n)).collect();
        assert_eq!(
            gaps(&recs, 0),
            [
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000002"
            ]
        );
        assert!(gaps(&recs[..1], 0).is_empty());
        // Before a forget's cut, holes are WAL removed on purpose.
        assert_eq!(gaps(&recs, (1 << 32) | 1), ["000000010000000100000002"]);
    }

    #[test]
    fn names_postgresql_archives_and_nothing_else() {
        assert_eq!(kind_of("000000010000000000000003"), Some(WalFile::Segment));
        assert_eq!(kind_of("00000002.history"), Some(WalFile::History));
        assert_eq!(
            kind_of("000000010000000000000002.00000028.backup"),
            Some(WalFile::BackupLabel)
        );
        assert_eq!(
            kind_of("000000010000000000000009.partial"),
            Some(WalFile::Partial)
        );
        for bad in [
            "",
            "00000001000000000000000",
            "0000000100000000000000030",
            "000000010000000000000003/",
            "../00000001000000000000003",
            "00000001000000000000000a",
            "00000002.history.x",
            "0000000g.history",
            "RECOVERYHISTORY",
            "000000010000000000000002.backup",
        ] {
            assert_eq!(kind_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_last_segment_is_found_with_the_segment_size_the_start_implies() {
        // 16 MiB segments.
        assert_eq!(
            last_segment("0/2000028", "000000010000000000000002", "0/2000100").as_deref(),
            Some("000000010000000000000002")
        );
        assert_eq!(
            last_segment("0/2000028", "000000010000000000000002", "1/5000000").as_deref(),
            Some("000000010000000100000004")
        );
        // 64 MiB segments, timeline 3.
        assert_eq!(
            last_segment("0/8000028", "000000030000000000000002", "0/C000010").as_deref(),
            Some("000000030000000000000003")
        );
        assert_eq!(last_segment("x", "000000010000000000000002", "0/1"), None);
        assert_eq!(last_segment("0/2000028", "short", "0/3000000"), None);
    }

    #[test]
    fn wal_before_the_oldest_anchor_goes_but_a_held_base_backup_keeps_its_own() {
        let names = [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000002.00000028.backup",
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005.partial",
            "00000002.history",
            "000000020000000000000005",
            "000000020000000000000009",
        ];
        let held = Span {
            first: 2,
            last: 3,
            anchor: false,
        };
        let anchor = Span {
            first: 5,
            last: 5,
            anchor: true,
        };
        assert_eq!(
            removable(names.iter().copied(), &[held, anchor]),
            ["000000010000000000000001", "000000010000000000000004"]
        );
        // Without an anchor nothing goes, whatever is held.
        assert!(removable(names.iter().copied(), &[held]).is_empty());
        assert!(removable(names.iter().copied(), &[]).is_empty());
        // The oldest anchor counts, wherever it is listed.
        let older = Span {
            first: 3,
            last: 4,
            anchor: true,
        };
        assert_eq!(
            removable(names.iter().copied(), &[anchor, older]),
            [
                "000000010000000000000001",
                "000000010000000000000002",
                "000000010000000000000002.00000028.backup"
            ]
        );
        assert_eq!(position("00000002.history"), None);
        assert_eq!(position("000000030000000A000000FF"), Some((10 << 32) | 255));
    }
}
