//! `status`: how fresh the backups are, read from the repository's snapshots and
//! the catalog (restore tests, the audit log, what destinations hold) without
//! touching the network, so cron or a monitor can run it every few minutes.
//!
//! Stale (exit 2): the newest good snapshot of a source is older than `max_age`
//! (26 h: a nightly run plus slack), or the repository backs up a database and no
//! restore test passed within `max_test_age` (35 days: the monthly test plus
//! slack), or no snapshot exists at all.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::Event;
use crate::error::Result;
use crate::model::snapshot::SnapshotEntry;
use crate::repo::Repository;

pub struct StatusOptions {
    pub now: OffsetDateTime,
    pub max_age_hours: f64,
    pub max_test_age_days: f64,
    /// Destinations: name and the address the mirror record uses.
    pub destinations: Vec<(String, String)>,
    /// The RTO of the restore test (seconds).
    pub rto_secs: f64,
    /// The sources the settings back up (kind, name: UPLOADS_DIR, the POSTGRES_*
    /// databases): each must have a snapshot, and a source of a kind the settings
    /// name under another name (a moved folder) is not judged.
    pub configured: Vec<(String, String)>,
    /// Stale when the newest archived WAL segment is older than this (minutes),
    /// in a repository that holds WAL.
    pub max_wal_age_minutes: f64,
    /// A source that lost more than this share of its files or bytes in its newest
    /// snapshot is a problem (`ops::shrink`; 0: never).
    pub shrink_percent: u32,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SnapshotRef {
    pub id: String,
    pub time: String,
    pub age_hours: f64,
    /// When a backdated snapshot (`--time`, `import-legacy`) was really made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourceStatus {
    /// `files` or `database`.
    pub kind: String,
    /// The source path, or `db@host:port`.
    pub name: String,
    pub last_good: Option<SnapshotRef>,
    /// The newest snapshot that had this source, good or not.
    pub last: Option<SnapshotRef>,
    pub last_ok: bool,
    /// Bytes of the source in its newest good snapshot.
    pub bytes: u64,
    /// Its age counts for freshness (all but sources the settings replaced).
    pub judged: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct DestinationStatus {
    pub name: String,
    pub location: String,
    /// The last run that copied to it without failing (audit log).
    pub last_mirror: Option<String>,
    /// Snapshots of the repository it lacks (by the mirror's record); `None` when
    /// there is no record yet (never mirrored from this machine, or pruned since).
    pub snapshots_behind: Option<u64>,
    /// Age of the oldest snapshot it lacks: how far behind it is.
    pub lag_hours: Option<f64>,
    /// The snapshots it holds, by the mirror's record (`None` without one).
    pub window: Option<Window>,
}

/// A copy's recovery window: the snapshots it holds, oldest to newest.
#[derive(Clone, Debug, Serialize)]
pub struct Window {
    pub snapshots: u64,
    /// Times of the oldest and newest whose time is known (`None`: none is).
    pub oldest: Option<String>,
    pub newest: Option<String>,
    pub days: Option<f64>,
}

impl Window {
    /// To the second (the audit log's times are).
    fn of(snapshots: u64, times: Vec<OffsetDateTime>) -> Window {
        let mut times: Vec<OffsetDateTime> = times
            .into_iter()
            .map(|t| t.replace_nanosecond(0).unwrap_or(t))
            .collect();
        times.sort();
        let (first, last) = (times.first().copied(), times.last().copied());
        Window {
            snapshots,
            oldest: first.map(crate::util::rfc3339),
            newest: last.map(crate::util::rfc3339),
            days: first
                .zip(last)
                .map(|(a, b)| ((b - a).as_seconds_f64() / 86400.0 * 10.0).round() / 10.0),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct RestoreTestStatus {
    pub time: String,
    pub age_days: f64,
    pub snapshot: String,
    pub database: String,
    pub passed: bool,
    pub restore_secs: f64,
    pub rto_secs: f64,
    pub within_rto: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Every check passed: nothing is stale.
    pub fresh: bool,
    pub now: String,
    pub repository: String,
    pub snapshots: u64,
    pub last_snapshot: Option<SnapshotRef>,
    /// The primary's recovery window: its oldest and newest snapshot.
    pub window: Window,
    pub sources: Vec<SourceStatus>,
    /// Bytes of packs stored (after dedup, compression, encryption).
    pub stored_bytes: u64,
    /// Bytes the newest snapshot holds (files and dumps).
    pub latest_bytes: u64,
    /// Sum over every snapshot of what it holds, divided by what is stored.
    pub dedup_ratio: f64,
    pub destinations: Vec<DestinationStatus>,
    pub last_verify: Option<EventRef>,
    pub last_restore_test: Option<RestoreTestStatus>,
    /// The key epoch new objects are sealed in (`key rotate`), and about how many
    /// blobs were sealed in it (the catalog's count since the rotation).
    pub key_epoch: u32,
    pub blobs_in_epoch: u64,
    /// What makes it stale or needs a look, one line each.
    pub problems: Vec<String>,
    /// Risks that do not make it stale (no offsite copy), one line each.
    pub warnings: Vec<String>,
    pub max_age_hours: f64,
    pub max_restore_test_age_days: f64,
    /// Point-in-time recovery: the archived WAL (absent when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<super::status_wal::WalStatus>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventRef {
    pub time: String,
    pub result: String,
    pub destinations: Vec<String>,
    pub error: Option<String>,
}

/// Blobs sealed under one key after which `status` asks for `key rotate`: half of
/// AES-GCM's bound of 2^32 random nonces per key (docs/crypto.md).
pub const ROTATE_AFTER: u64 = 1 << 31;

fn hours(now: OffsetDateTime, t: OffsetDateTime) -> f64 {
    ((now - t).as_seconds_f64() / 3600.0 * 10.0).round() / 10.0
}

fn snap_ref(now: OffsetDateTime, s: &SnapshotEntry) -> SnapshotRef {
    SnapshotRef {
        id: s.id.to_hex(),
        time: s.snapshot.time.clone(),
        age_hours: s
            .snapshot
            .parsed_time()
            .map(|t| hours(now, t))
            .unwrap_or(f64::INFINITY),
        written: s.snapshot.written.clone(),
    }
}

/// The bytes a snapshot holds: files and database dumps.
pub fn snapshot_bytes(s: &SnapshotEntry) -> u64 {
    s.snapshot.summary.bytes
        + s.snapshot
            .databases
            .iter()
            .map(|d| d.dump_bytes + d.globals_bytes)
            .sum::<u64>()
}

pub fn run(repo: &Repository, events: &[Event], opts: &StatusOptions) -> Result<Status> {
    let now = opts.now;
    // Snapshots made after `now` (an injected time) are not seen yet.
    let all = repo.snapshots()?;
    let clock = crate::util::now();
    let mut problems: Vec<String> = all
        .iter()
        .filter(|s| s.snapshot.in_future(clock))
        .map(|s| {
            format!(
                "snapshot {} is dated {}, in the future (made on {} with a wrong clock or --time): it is not `latest` until then; check that host's clock",
                s.id.short(),
                s.snapshot.time,
                s.snapshot.host
            )
        })
        .collect();
    // Safety dumps (`restore --db`) are not backups the schedule made: a restore
    // must not hide that the nightly dumps stopped.
    let snaps: Vec<SnapshotEntry> = all
        .into_iter()
        .filter(|s| s.snapshot.parsed_time().is_some_and(|t| t <= now))
        .filter(|s| !s.snapshot.is_safety_dump())
        .collect();
    let mut sources = sources(&snaps, now);
    for (kind, name) in &opts.configured {
        // A database whose cluster has base backups here (the repository of
        // the WAL and base backups) is backed up by them.
        let in_cluster = |s: &SourceStatus| {
            kind == "database"
                && s.kind == "cluster"
                && name.split_once('@').is_some_and(|(_, at)| at == s.name)
        };
        if !sources
            .iter()
            .any(|s| (&s.kind == kind && &s.name == name) || in_cluster(s))
        {
            problems.push(format!(
                "{kind} {name}: no snapshot yet (the settings back it up)"
            ));
        }
    }
    // A source the settings replaced (the uploads folder moved: the settings name
    // another folder) ages without alarm; every other source is judged.
    for s in sources.iter_mut() {
        s.judged = opts
            .configured
            .iter()
            .any(|(k, n)| *k == s.kind && *n == s.name)
            || !opts.configured.iter().any(|(k, _)| *k == s.kind);
    }
    for s in sources.iter().filter(|s| s.judged) {
        match &s.last_good {
            None => problems.push(format!("{} {}: no good snapshot", s.kind, s.name)),
            Some(r) if r.age_hours > opts.max_age_hours => problems.push(format!(
                "{} {}: last good snapshot is {:.1} hours old (limit {})",
                s.kind, s.name, r.age_hours, opts.max_age_hours
            )),
            _ => {}
        }
        // Fresh but failing: the newest snapshot could not save it whole.
        if let (false, Some(last), Some(_)) = (s.last_ok, &s.last, &s.last_good) {
            problems.push(format!(
                "{} {}: the newest snapshot ({}) did not save it whole: see its errors in `hcbackup audit`",
                s.kind, s.name, last.time
            ));
        }
    }
    if snaps.is_empty() {
        problems.push("no snapshot yet".into());
    }
    problems.extend(super::shrink::warnings(&snaps, None, opts.shrink_percent));
    let stored_bytes = repo.catalog().pack_bytes()?;
    let total: u64 = snaps.iter().map(snapshot_bytes).sum();
    let destinations = destinations(repo, &snaps, events, opts)?;
    let last_verify = events
        .iter()
        .rev()
        .find(|e| e.operation == "verify")
        .map(|e| EventRef {
            time: e.time.clone(),
            result: e.result.clone(),
            destinations: e.destinations.clone(),
            error: e.error.clone(),
        });
    if let Some(v) = &last_verify {
        if v.result != "ok" {
            problems.push(format!(
                "the last verify ({}) failed: {}",
                v.time,
                v.error.as_deref().unwrap_or("see `hcbackup audit`")
            ));
        }
    }
    let last_restore_test = restore_test(repo, now, opts)?;
    let has_db = sources.iter().any(|s| s.kind == "database" && s.judged);
    if has_db {
        match &last_restore_test {
            None => {
                problems.push("no restore test yet: run `hcbackup verify --restore-test`".into())
            }
            Some(t) if !t.passed => problems.push(format!(
                "the last restore test ({}) FAILED: see `hcbackup audit`",
                t.time
            )),
            Some(t) if t.age_days > opts.max_test_age_days => problems.push(format!(
                "the last restore test is {:.0} days old (limit {})",
                t.age_days, opts.max_test_age_days
            )),
            _ => {}
        }
    }
    let blobs_in_epoch = repo.blobs_in_epoch()?;
    if blobs_in_epoch > ROTATE_AFTER {
        problems.push(format!(
            "about {blobs_in_epoch} objects are sealed under the current key, near AES-GCM's safe limit: run `hcbackup key rotate`"
        ));
    }
    let mut warnings: Vec<String> = offsite_warning(&opts.destinations).into_iter().collect();
    let wal = super::status_wal::run(repo, &snaps, now, opts.max_wal_age_minutes)?;
    if let Some(w) = &wal {
        problems.extend(w.problems.iter().cloned());
        warnings.extend(w.warnings.iter().cloned());
    }
    Ok(Status {
        fresh: problems.is_empty(),
        warnings,
        key_epoch: repo.key().epoch(),
        blobs_in_epoch,
        now: crate::util::rfc3339(now),
        repository: repo.backend().location(),
        snapshots: snaps.len() as u64,
        last_snapshot: snaps.last().map(|s| snap_ref(now, s)),
        window: Window::of(
            snaps.len() as u64,
            snaps
                .iter()
                .filter_map(|s| s.snapshot.parsed_time())
                .collect(),
        ),
        sources,
        stored_bytes,
        latest_bytes: snaps.last().map(snapshot_bytes).unwrap_or(0),
        dedup_ratio: if stored_bytes == 0 {
            0.0
        } else {
            ((total as f64 / stored_bytes as f64) * 100.0).round() / 100.0
        },
        destinations,
        last_verify,
        last_restore_test,
        problems,
        max_age_hours: opts.max_age_hours,
        max_restore_test_age_days: opts.max_test_age_days,
        wal,
    })
}

/// Each source (a path, a database) with its newest and newest good snapshot.
fn sources(snaps: &[SnapshotEntry], now: OffsetDateTime) -> Vec<SourceStatus> {
    let mut out: BTreeMap<(String, String), SourceStatus> = BTreeMap::new();
    for s in snaps {
        let mut seen = Vec::new();
        for p in &s.snapshot.paths {
            seen.push((
                "files".to_string(),
                p.clone(),
                s.snapshot.errors.is_empty(),
                s.snapshot.summary.bytes,
            ));
        }
        for d in &s.snapshot.databases {
            seen.push((
                "database".to_string(),
                format!("{}@{}:{}", d.db, d.host, d.port),
                d.ok(),
                d.dump_bytes,
            ));
        }
        // A base backup (`snapshot --physical`) holds the whole cluster.
        if let Some(p) = &s.snapshot.physical {
            seen.push((
                "cluster".to_string(),
                format!("{}:{}", p.host, p.port),
                p.ok(),
                p.bytes,
            ));
        }
        for (kind, name, ok, bytes) in seen {
            let e = out
                .entry((kind.clone(), name.clone()))
                .or_insert_with(|| SourceStatus {
                    kind,
                    name,
                    last_good: None,
                    last: None,
                    last_ok: false,
                    bytes: 0,
                    judged: true,
                });
            // Snapshots come oldest first: the last one seen wins.
            e.last = Some(snap_ref(now, s));
            e.last_ok = ok;
            if ok {
                e.last_good = Some(snap_ref(now, s));
                e.bytes = bytes;
            }
        }
    }
    out.into_values().collect()
}

fn destinations(
    repo: &Repository,
    snaps: &[SnapshotEntry],
    events: &[Event],
    opts: &StatusOptions,
) -> Result<Vec<DestinationStatus>> {
    let mut out = Vec::new();
    // The audit log's snapshot times, read once if any copy needs them.
    let mut logged = None;
    for (name, location) in &opts.destinations {
        let (behind, lag, window) = if repo.catalog().holdings_known(location)? {
            let there: HashSet<String> = repo
                .catalog()
                .holdings(location, "snapshots")?
                .into_keys()
                .collect();
            let window = window_of(repo, snaps, &there, &mut logged)?;
            let missing: Vec<&SnapshotEntry> = snaps
                .iter()
                .filter(|s| !there.contains(&s.id.to_hex()))
                .collect();
            let lag = missing
                .first()
                .and_then(|s| s.snapshot.parsed_time())
                .map(|t| hours(opts.now, t));
            (Some(missing.len() as u64), lag.or(Some(0.0)), Some(window))
        } else {
            (None, None, None)
        };
        let last_mirror = events
            .iter()
            .rev()
            .find(|e| mirrored_to(e, name))
            .map(|e| e.time.clone());
        out.push(DestinationStatus {
            name: name.clone(),
            location: location.clone(),
            last_mirror,
            snapshots_behind: behind,
            lag_hours: lag,
            window,
        });
    }
    Ok(out)
}

/// The window of a copy holding the snapshots `there` (hex ids): times from
/// the manifests here, and for those the primary no longer has (a copy keeps
/// longer), from the audit log's snapshot events.
fn window_of(
    repo: &Repository,
    snaps: &[SnapshotEntry],
    there: &HashSet<String>,
    logged: &mut Option<std::collections::HashMap<String, String>>,
) -> Result<Window> {
    let mut times = Vec::new();
    let mut here = HashSet::new();
    for s in snaps {
        let id = s.id.to_hex();
        if there.contains(&id) {
            times.extend(s.snapshot.parsed_time());
            here.insert(id);
        }
    }
    if here.len() < there.len() {
        let logged = match logged {
            Some(l) => l,
            None => logged.insert(repo.catalog().snapshot_times_in_audit()?),
        };
        times.extend(
            there
                .iter()
                .filter(|id| !here.contains(*id))
                .filter_map(|id| logged.get(id))
                .filter_map(|t| crate::util::parse_rfc3339(t)),
        );
    }
    Ok(Window::of(there.len() as u64, times))
}

/// A run that copied to destination `name` without failing there.
pub fn mirrored_to(e: &Event, name: &str) -> bool {
    (e.operation == "mirror" || e.operation == "snapshot")
        && e.destinations.iter().any(|d| d == name)
        && !e
            .error
            .as_deref()
            .unwrap_or("")
            .contains(&format!("mirror to {name}"))
}

/// Whether `events` (any order) hold what `run` looks for: the last verify and
/// the last mirror to each destination.
pub fn events_suffice(events: &[Event], destinations: &[(String, String)]) -> bool {
    events.iter().any(|e| e.operation == "verify")
        && destinations
            .iter()
            .all(|(name, _)| events.iter().any(|e| mirrored_to(e, name)))
}

fn restore_test(
    repo: &Repository,
    now: OffsetDateTime,
    opts: &StatusOptions,
) -> Result<Option<RestoreTestStatus>> {
    let Some(t) = repo.catalog().last_restore_test()? else {
        return Ok(None);
    };
    let age_days = crate::util::parse_rfc3339(&t.time)
        .map(|x| ((now - x).as_seconds_f64() / 86400.0 * 10.0).round() / 10.0)
        .unwrap_or(f64::INFINITY);
    let rto_secs = serde_json::from_str::<serde_json::Value>(&t.report)
        .ok()
        .and_then(|v| v["rto_secs"].as_f64())
        .unwrap_or(opts.rto_secs);
    Ok(Some(RestoreTestStatus {
        time: t.time,
        age_days,
        snapshot: t.snapshot,
        database: t.database,
        passed: t.passed,
        restore_secs: t.restore_secs,
        rto_secs,
        within_rto: t.restore_secs <= rto_secs,
    }))
}

/// 3-2-1 asks for a copy away from the clinic: none of the destinations is a
/// cloud bucket or folder (a USB disk sits in the same fire, flood or theft).
fn offsite_warning(destinations: &[(String, String)]) -> Option<String> {
    let offsite = |loc: &str| loc.starts_with("s3://") || loc.starts_with("drive://");
    if destinations.iter().any(|(_, loc)| offsite(loc)) {
        return None;
    }
    Some(format!(
        "no offsite copy: the backups are {} in this building (3-2-1 asks for one copy offsite); set S3_BACKUP_BUCKET or GOOGLE_DRIVE_BACKUP_FOLDER, or add a [[destination]] to hcbackup.toml",
        if destinations.is_empty() {
            "only on this server"
        } else {
            "on this server and local disks only"
        }
    ))
}
