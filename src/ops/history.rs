//! The backup history a dashboard charts: per snapshot what it held, what it
//! added, and the running totals (stored size and dedup ratio over time).

use serde::Serialize;

use crate::error::Result;
use crate::repo::Repository;

#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub id: String,
    pub time: String,
    /// Bytes the snapshot holds (files and dumps).
    pub bytes: u64,
    /// Bytes it added after dedup, compression and encryption.
    pub added: u64,
    /// Sum of `added` so far: the repository's growth (before any prune).
    pub total_added: u64,
    /// Sum of `bytes` so far over `total_added`.
    pub dedup_ratio: f64,
    pub complete: bool,
}

/// The last `limit` snapshots, oldest first, with totals counted from the first.
pub fn run(repo: &Repository, limit: usize) -> Result<Vec<Point>> {
    let mut out = Vec::new();
    let (mut held, mut added) = (0u64, 0u64);
    for s in repo.snapshots()? {
        let bytes = super::status::snapshot_bytes(&s);
        held += bytes;
        added += s.snapshot.summary.bytes_added;
        out.push(Point {
            id: s.id.to_hex(),
            time: s.snapshot.time.clone(),
            bytes,
            added: s.snapshot.summary.bytes_added,
            total_added: added,
            dedup_ratio: if added == 0 {
                0.0
            } else {
                ((held as f64 / added as f64) * 100.0).round() / 100.0
            },
            complete: !s.snapshot.incomplete(),
        });
    }
    let skip = out.len().saturating_sub(limit);
    Ok(out.split_off(skip))
}
