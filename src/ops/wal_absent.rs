//! The answer to recovery's timeline probe, kept fresh by `restore --start`
//! (issue #19). PostgreSQL asks `restore_command` for the next timeline's
//! history file when recovery starts and again when it ends (to pick the
//! timeline it promotes to): a name that is normally not archived, and a
//! `wal-fetch` that opens the repository only to say so costs a key unlock
//! each time. While the restore waits for recovery, its feeder (its
//! repository open) checks that name every tick and writes `NAME.absent` in
//! the spool with the time it checked; `wal-fetch` answers "not archived"
//! from a marker under `FRESH` old, checked like a spooled segment (this
//! user's private spool, a regular file, the same repository). That is the
//! same answer a fetch of its own gives a moment later: a history file
//! archived in between (another copy promoted from this archive in that
//! second) is the one race left, as it is for any fetch. A name found
//! archived loses its marker, and the probe moves to the next timeline.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags};

use super::wal_spool::{open_spool, our_file, source_of, spool_dir, trusted_parent};
use crate::model::wal::{kind_of, WalFile};
use crate::repo::Repository;

/// How long a marker holds (the feeder renews it every tenth of a second).
const FRESH: Duration = Duration::from_secs(1);

fn marker(name: &str) -> String {
    format!("{name}.absent")
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The history file recovery probes for first after `timeline`.
pub fn first_probe(timeline: u32) -> Option<String> {
    timeline.checked_add(1).map(|t| format!("{t:08X}.history"))
}

/// Check `probe` in `repo` and renew or drop its marker beside `dest`: the
/// name to check on the next tick.
pub fn refresh(
    repo: &Repository,
    probe: Option<String>,
    dest: &Path,
    source: &str,
) -> Option<String> {
    let name = probe?;
    // The time of the answer is when the check began.
    let asked = now_millis();
    match repo.wal(&name) {
        Ok(None) => {
            mark(dest, source, &name, asked);
            Some(name)
        }
        Ok(Some(_)) => {
            unmark(dest, &name);
            let t = u32::from_str_radix(name.get(..8)?, 16).ok()?;
            first_probe(t)
        }
        Err(_) => {
            // Cannot tell: no answer fetched ahead (a fetch of its own says
            // what is wrong).
            unmark(dest, &name);
            Some(name)
        }
    }
}

fn mark(dest: &Path, source: &str, name: &str, asked: u128) {
    let Some((_parent, dir)) = open_spool(dest, source) else {
        return;
    };
    let written = rustix::fs::openat(
        &dir,
        marker(name).as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(std::io::Error::from)
    .map(std::fs::File::from)
    .and_then(|mut f| std::io::Write::write_all(&mut f, asked.to_string().as_bytes()));
    if written.is_err() {
        unmark(dest, name);
    }
}

fn unmark(dest: &Path, name: &str) {
    if let Some(dir) = trusted_parent(dest).and_then(|p| spool_dir(&p)) {
        let _ = rustix::fs::unlinkat(&dir, marker(name).as_str(), AtFlags::empty());
    }
}

/// Whether the history file `name` was found not archived in the repository
/// `source` less than `FRESH` ago (a marker beside `dest`, `%p`).
pub fn known_absent(name: &str, dest: &Path, source: &str) -> bool {
    if kind_of(name) != Some(WalFile::History) {
        return false;
    }
    let Some(dir) = trusted_parent(dest).and_then(|p| spool_dir(&p)) else {
        return false;
    };
    let file = marker(name);
    if source_of(&dir).as_deref() != Some(source) || !our_file(&dir, &file) {
        return false;
    }
    let Ok(fd) = rustix::fs::openat(
        &dir,
        file.as_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let mut text = String::new();
    if std::io::Read::read_to_string(
        &mut std::io::Read::take(std::fs::File::from(fd), 64),
        &mut text,
    )
    .is_err()
    {
        return false;
    }
    let (Ok(at), now) = (text.trim().parse::<u128>(), now_millis()) else {
        return false;
    };
    at <= now && now - at < FRESH.as_millis()
}
