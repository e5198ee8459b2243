//! A source that suddenly shrank: an uploads folder whose disk was not mounted,
//! a folder emptied by mistake or by ransomware, a database whose tables were
//! dropped. The snapshot of it is a faithful copy of the damage, and once the
//! retention rolls past the last good one, the good data is gone: so `snapshot`
//! warns (and alerts), and `status`, `report` and the dashboard list it, whenever
//! a source's newest snapshot holds less than (100 − percent)% of the files or
//! bytes of the one before. Tiny sources are not judged (a test folder of three
//! files), and 0 turns the check off (`HCBACKUP_SHRINK_PERCENT`).

use std::collections::BTreeMap;

use crate::model::snapshot::{Snapshot, SnapshotEntry};

/// The default: warn when a source loses more than half its files or bytes.
pub const DEFAULT_PERCENT: u32 = 50;
/// Below this many files, or bytes, a source's count or size is not judged.
const MIN_FILES: u64 = 20;
const MIN_BYTES: u64 = 1 << 20;

/// What a snapshot holds of one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Files (none for a database).
    pub files: Option<u64>,
    pub bytes: u64,
}

/// A source as `status` names it: (`files`, path) or (`database`, `db@host:port`).
pub type SourceKey = (String, String);

/// The sources of a snapshot and what it holds of each. Files are counted per
/// snapshot (a snapshot of several folders counts them together).
pub fn sizes(s: &Snapshot) -> Vec<(SourceKey, Size)> {
    let files = Size {
        files: Some(s.summary.files),
        bytes: s.summary.bytes,
    };
    let good_files = s.errors.is_empty();
    s.paths
        .iter()
        .filter(|_| good_files)
        .map(|p| (("files".to_string(), p.clone()), files))
        .chain(s.databases.iter().filter(|d| d.ok()).map(|d| {
            let key = (
                "database".to_string(),
                format!("{}@{}:{}", d.db, d.host, d.port),
            );
            (
                key,
                Size {
                    files: None,
                    bytes: d.dump_bytes,
                },
            )
        }))
        .collect()
}

fn dropped(before: u64, now: u64, min: u64, percent: u32) -> bool {
    before >= min && (now as u128) * 100 < (before as u128) * (100 - percent.min(100)) as u128
}

/// The warning for `key` when `now` holds less than (100 − percent)% of `before`.
pub fn shrank(key: &SourceKey, before: Size, now: Size, percent: u32) -> Option<String> {
    if percent == 0 {
        return None;
    }
    let files = matches!((before.files, now.files), (Some(b), Some(n)) if dropped(b, n, MIN_FILES, percent));
    if !files && !dropped(before.bytes, now.bytes, MIN_BYTES, percent) {
        return None;
    }
    let size = |s: Size| match s.files {
        Some(f) => format!("{f} files, {}", crate::util::human_bytes(s.bytes)),
        None => crate::util::human_bytes(s.bytes),
    };
    Some(format!(
        "{} {} shrank from {} to {} since the snapshot before (more than {percent}% less): check that it is mounted and whole before the good snapshots age out",
        key.0,
        key.1,
        size(before),
        size(now)
    ))
}

/// For each source of `newest` (or of every source when `None`): a warning
/// when its newest snapshot in `snaps` (oldest first) shrank against the one
/// before it. Safety dumps (`restore --db`) take no part.
pub fn warnings(snaps: &[SnapshotEntry], only: Option<&Snapshot>, percent: u32) -> Vec<String> {
    let mut last: BTreeMap<SourceKey, (Option<Size>, Size)> = BTreeMap::new();
    for e in snaps.iter().filter(|e| !e.snapshot.is_safety_dump()) {
        for (key, size) in sizes(&e.snapshot) {
            let slot = last.entry(key).or_insert((None, size));
            *slot = (Some(slot.1), size);
        }
    }
    let wanted: Option<Vec<SourceKey>> =
        only.map(|s| sizes(s).into_iter().map(|(k, _)| k).collect());
    last.into_iter()
        .filter(|(k, _)| wanted.as_ref().is_none_or(|w| w.contains(k)))
        .filter_map(|(k, (before, now))| shrank(&k, before?, now, percent))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SourceKey {
        ("files".into(), "/srv/uploads".into())
    }

    fn files(n: u64, bytes: u64) -> Size {
        Size {
            files: Some(n),
            bytes,
        }
    }

    #[test]
    fn an_emptied_folder_is_named_and_a_small_change_is_not() {
        let w = shrank(&key(), files(110, 5 << 30), files(0, 0), 50).unwrap();
        assert!(w.contains("110 files") && w.contains("0 files"), "{w}");
        assert!(shrank(&key(), files(110, 5 << 30), files(100, 4 << 30), 50).is_none());
        // Half the files gone is not more than half.
        assert!(shrank(&key(), files(100, 0), files(50, 0), 50).is_none());
        assert!(shrank(&key(), files(100, 0), files(49, 0), 50).is_some());
        // Bytes alone count too: the same files, truncated.
        assert!(shrank(&key(), files(100, 10 << 20), files(100, 1 << 20), 50).is_some());
    }

    #[test]
    fn tiny_sources_and_a_zero_threshold_are_not_judged() {
        assert!(shrank(&key(), files(3, 1000), files(0, 0), 50).is_none());
        assert!(shrank(&key(), files(1000, 5 << 30), files(0, 0), 0).is_none());
        let db = ("database".to_string(), "clinic@db:5432".to_string());
        let dump = |b| Size {
            files: None,
            bytes: b,
        };
        assert!(shrank(&db, dump(100 << 20), dump(10 << 20), 50)
            .unwrap()
            .contains("database clinic@db:5432"));
        assert!(shrank(&db, dump(100 << 20), dump(10 << 20), 95).is_none());
    }
}
