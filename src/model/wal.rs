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

/// The most gaps named (a long outage is one problem, not thousands).
const MAX_GAPS: usize = 100;

/// The segments missing between the first and the last archived segment of
/// each timeline: recovery cannot pass a gap.
pub fn gaps(records: &[WalRecord]) -> Vec<String> {
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
            gaps(&recs),
            [
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000002"
            ]
        );
        assert!(gaps(&recs[..1]).is_empty());
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
}
