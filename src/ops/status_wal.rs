//! `status` of point-in-time recovery (issue #19, step 4): the newest WAL
//! segment archived and its age, and the recovery window. Cheap enough to run
//! every few minutes: the records' names come from the catalog
//! (`Repository::wal_names`) and only the newest record, and the one the
//! window ends at, are read.

use serde::Serialize;
use time::OffsetDateTime;

use crate::error::Result;
use crate::model::snapshot::SnapshotEntry;
use crate::model::wal::{kind_of, position, WalFile};
use crate::model::wal_chain::{follow, Archived, Base, Window};
use crate::repo::Repository;

#[derive(Clone, Debug, Serialize)]
pub struct WalStatus {
    /// Files archived (`wal-push`).
    pub files: u64,
    /// The newest segment archived, and when.
    pub last_archived: String,
    pub last_archived_time: String,
    pub age_minutes: f64,
    pub max_age_minutes: f64,
    /// From when to when the cluster can be recovered (`restore --pgdata`).
    pub recovery_window: Option<Window>,
    /// What makes the status stale, and what needs a look (also in the
    /// status's own lists).
    #[serde(skip)]
    pub problems: Vec<String>,
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The WAL status of `repo` given its snapshots, or `None` when it holds no
/// WAL. Stale when the newest segment is older than `max_age_minutes`, or a
/// base backup's own WAL is missing.
pub fn run(
    repo: &Repository,
    snaps: &[SnapshotEntry],
    now: OffsetDateTime,
    max_age_minutes: f64,
) -> Result<Option<WalStatus>> {
    let names = repo.wal_names()?;
    let newest = names
        .iter()
        .filter(|n| kind_of(n) == Some(WalFile::Segment))
        .max_by_key(|n| (position(n), n.get(..8).map(str::to_string)));
    let Some(newest) = newest else {
        return Ok(None);
    };
    let Some(record) = repo.wal(newest)? else {
        return Ok(None);
    };
    let age = crate::util::parse_rfc3339(&record.time)
        .map(|t| (now - t).as_seconds_f64() / 60.0)
        .unwrap_or(f64::INFINITY);
    let age_minutes = (age * 10.0).round() / 10.0;
    let archived: Vec<Archived> = names
        .iter()
        .map(|n| Archived {
            name: n.clone(),
            time: if n == newest {
                record.time.clone()
            } else {
                String::new()
            },
            size: record.size,
        })
        .collect();
    let chain = follow(&Base::of(snaps), &archived);
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if age > max_age_minutes {
        problems.push(format!(
            "WAL: the newest segment archived ({newest}) is {age_minutes:.0} minutes old (limit {max_age_minutes}): is PostgreSQL's archive_command failing? See the server log"
        ));
    }
    for (snap, seg) in &chain.inconsistent {
        problems.push(format!(
            "WAL: the base backup of snapshot {} cannot be made consistent: {seg} is not archived; run `hcbackup verify`",
            &snap[..8.min(snap.len())]
        ));
    }
    let mut window = chain.window;
    match window.as_mut() {
        None => warnings.push(
            "WAL is archived but no base backup can use it: take one with `hcbackup snapshot --physical`".into(),
        ),
        Some(w) if w.to.is_empty() => {
            w.to = repo.wal(&w.to_wal)?.map(|r| r.time).unwrap_or_default();
            w.clamp();
        }
        Some(_) => {}
    }
    Ok(Some(WalStatus {
        files: names.len() as u64,
        last_archived: newest.clone(),
        last_archived_time: record.time,
        age_minutes,
        max_age_minutes,
        recovery_window: window,
        problems,
        warnings,
    }))
}
