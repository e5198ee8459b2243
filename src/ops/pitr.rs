//! `restore SNAPSHOT --pgdata DIR [--to-time T | --to-lsn L | --to-xid X]`:
//! lays out a base backup in a new data folder and writes the recovery
//! settings (`restore_command = hcbackup wal-fetch %f %p`, the target,
//! `recovery.signal`), so that starting PostgreSQL on it replays the archived
//! WAL up to the target and promotes (issue #19, step 3).
//!
//! The folder must be new (or empty and this user's): nobody else can have
//! planted anything in it. The tar comes from the repository, authenticated
//! chunk by chunk; members that would land outside the folder are refused.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::snapshot::{PhysicalEntry, SnapshotEntry};
use crate::repo::Repository;

/// Where recovery stops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The end of the archived WAL.
    Latest,
    /// `recovery_target_time`.
    Time(time::OffsetDateTime),
    Lsn(String),
    Xid(String),
    /// `recovery_target_name`: a restore point (`pg_create_restore_point`),
    /// as the monthly PITR restore test sets one.
    Name(String),
}

impl Target {
    /// `--to-lsn`: a WAL position as PostgreSQL writes it (`0/3000060`).
    pub fn lsn(s: &str) -> Result<Target> {
        let hex = |p: &str| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit());
        match s.split_once('/') {
            Some((a, b)) if hex(a) && hex(b) => Ok(Target::Lsn(s.to_string())),
            _ => Err(Error::Usage(format!(
                "--to-lsn {s:?}: give a WAL position as PostgreSQL writes it, such as 0/3000060"
            ))),
        }
    }

    /// Whether `record`'s segment is where recovery to this target reaches
    /// the target: the first archived after the moment, or the one holding
    /// the position (recovery reads on to the next transaction, so a segment
    /// or two after it may be needed too). False where the WAL cannot tell
    /// (a transaction id, a restore point, the end).
    pub fn stops_in(&self, record: &crate::model::wal::WalRecord) -> bool {
        let Some(at) = crate::model::wal::position(&record.name) else {
            return false;
        };
        match self {
            Target::Time(limit) => {
                crate::util::parse_rfc3339(&record.time).is_some_and(|t| t > *limit)
            }
            Target::Lsn(lsn) => {
                let Some((hi, lo)) = lsn.split_once('/') else {
                    return false;
                };
                let (Ok(hi), Ok(lo)) = (u64::from_str_radix(hi, 16), u64::from_str_radix(lo, 16))
                else {
                    return false;
                };
                record.size > 0 && at >= ((hi << 32) | (lo / record.size))
            }
            _ => false,
        }
    }

    /// `--to-xid`: a transaction id (digits).
    pub fn xid(s: &str) -> Result<Target> {
        if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Target::Xid(s.to_string()))
        } else {
            Err(Error::Usage(format!(
                "--to-xid {s:?}: give a transaction id, such as 7312"
            )))
        }
    }
}

/// How the restored server fetches WAL: the program, the repository and the
/// settings `wal-fetch` needs (never the password itself).
pub struct Fetcher {
    pub exe: PathBuf,
    pub repo: String,
    /// Variables set on the command line, e.g. HCBACKUP_PASSWORD_FILE.
    pub env: Vec<(String, String)>,
}

/// `t` as recovery_target_time takes it: UTC, microseconds, `+00:00`
/// (PostgreSQL refuses zone abbreviations there, `Z` among them).
pub fn postgres_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    crate::util::format_time(
        t,
        time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]+00:00"
        ),
    )
}

/// What was laid out.
#[derive(Debug, serde::Serialize)]
pub struct Restored {
    pub snapshot: String,
    pub pgdata: PathBuf,
    pub bytes: u64,
    pub start_lsn: String,
    pub timeline: u32,
    pub target: String,
    /// `--start`: the server recovered on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<super::pitr_start::Started>,
    /// Where fetching WAL ahead goes on (`--start` feeds it while recovering).
    #[serde(skip)]
    pub ahead: Option<super::wal_spool::Ahead>,
}

/// The snapshot to restore for `target`: with `latest` and a time, the newest
/// snapshot with a base backup made before that time; otherwise `spec`, which
/// must hold a base backup.
pub fn choose(repo: &Repository, spec: &str, target: &Target) -> Result<SnapshotEntry> {
    let has_base =
        |s: &crate::model::snapshot::Snapshot| s.physical.as_ref().is_some_and(PhysicalEntry::ok);
    let found = match (spec, target) {
        // Recovery can stop only after the base backup's end: the newest
        // that ended before the moment.
        ("latest", Target::Time(limit)) => repo.find_snapshot_with("latest", |s| {
            let end = s
                .physical
                .as_ref()
                .and_then(|p| crate::util::parse_rfc3339(&p.end_time))
                .or_else(|| s.parsed_time());
            has_base(s) && end.is_some_and(|e| e <= *limit)
        }),
        _ => repo.find_snapshot_with(spec, has_base),
    };
    found.map_err(|_| {
        Error::Usage(format!(
            "no snapshot {spec} with a base backup{}: take one with `hcbackup snapshot --physical` (WAL archiving must be on before it)",
            if let Target::Time(t) = target { format!(" made before {}", postgres_time(*t)) } else { String::new() }
        ))
    })
}

/// Lay out `snap`'s base backup in `pgdata` and write the recovery settings.
pub fn restore(
    repo: &Repository,
    snap: &SnapshotEntry,
    pgdata: &Path,
    target: &Target,
    fetcher: &Fetcher,
) -> Result<Restored> {
    let p = snap
        .snapshot
        .physical
        .as_ref()
        .filter(|p| p.ok())
        .ok_or_else(|| {
            Error::Usage(format!("snapshot {} holds no base backup", snap.id.short()))
        })?;
    let restore_command = restore_command(fetcher)?;
    check_chain(repo, snap)?;
    new_folder(pgdata)?;
    let laid_out = (|| -> Result<Option<super::wal_spool::Ahead>> {
        let _lock = repo.lock(false, "restore")?;
        super::restore_job::still_there(repo, snap)?;
        let tree = repo.load_tree(p.tree.expect("ok"))?;
        let node = tree
            .nodes
            .iter()
            .find(|n| n.name.as_slice() == PhysicalEntry::TAR_NAME.as_bytes())
            .ok_or_else(|| Error::corrupt("base backup tree", "it holds no base.tar"))?;
        // The first segments recovery asks for, so that its first fetches
        // need no unlock of their own: fetched while the base backup is laid
        // out, on the other core.
        let pg_wal = pgdata.join("pg_wal");
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&pg_wal)
            .map_err(|e| Error::io_path("creating", &pg_wal, e))?;
        let (unpacked, ahead) = std::thread::scope(|s| {
            let ahead = s.spawn(|| {
                super::wal_spool::prefill(repo, &p.start_wal, &pg_wal, &fetcher.repo, &|r| {
                    target.stops_in(r)
                })
            });
            let unpacked = super::database::read_stream(repo, node, |r| unpack(r, pgdata));
            (unpacked, ahead.join())
        });
        match unpacked? {
            (_, Some(e)) => return Err(e),
            (unpacked, None) => unpacked?,
        }
        write_recovery(pgdata, &restore_command, target)?;
        Ok(ahead.unwrap_or(None))
    })();
    let ahead = match laid_out {
        Ok(ahead) => ahead,
        Err(e) => {
            // Half a data folder is worse than none: emptied (it is this
            // run's, private), so the same command can run again.
            empty(pgdata);
            return Err(e);
        }
    };
    Ok(Restored {
        snapshot: snap.id.to_hex(),
        pgdata: pgdata.to_path_buf(),
        bytes: p.bytes,
        start_lsn: p.start_lsn.clone(),
        timeline: p.timeline,
        target: describe(target),
        started: None,
        ahead,
    })
}

/// Before anything is laid out: the base backup's own WAL must be archived
/// in this copy (else the server could never open it); a hole after it is
/// said on stderr (recovery stops there, and with no target PostgreSQL
/// would open at that older point as if it were the end).
fn check_chain(repo: &Repository, snap: &SnapshotEntry) -> Result<()> {
    use crate::model::wal_chain::{follow, Archived, Base};
    let bases = Base::of(std::slice::from_ref(snap));
    let Some(base) = bases.first() else {
        return Ok(());
    };
    // The segment size, from the base backup's first segment.
    let size = match repo.wal(&base.first)? {
        Some(r) => r.size,
        None => {
            return Err(Error::Failed(format!(
                "the base backup of snapshot {} cannot be made consistent: its WAL segment {} is not archived in {}; run `hcbackup repair` (or restore another snapshot)",
                snap.id.short(),
                base.first,
                repo.backend().location()
            )))
        }
    };
    let archived: Vec<Archived> = repo
        .wal_names()?
        .into_iter()
        .map(|name| Archived {
            name,
            time: String::new(),
            size,
        })
        .collect();
    let chain = follow(&bases, &archived);
    if let Some((_, seg)) = chain.inconsistent.first() {
        return Err(Error::Failed(format!(
            "the base backup of snapshot {} cannot be made consistent: its WAL segment {seg} is not archived in {}; run `hcbackup repair` (or restore another snapshot)",
            snap.id.short(),
            repo.backend().location()
        )));
    }
    if let (Some((_, reach)), Some(newest)) = (chain.reach.first(), chain.newest.as_ref()) {
        if reach != newest {
            tracing::warn!(
                "recovery from snapshot {} can roll forward only to WAL segment {reach}: the one after it is missing, and the WAL archived after it (up to {newest}) cannot be used; `hcbackup verify` names the gap and `hcbackup repair` brings it back from a copy",
                snap.id.short()
            );
        }
    }
    Ok(())
}

/// Unpack the tar into `pgdata`: folders and regular files only (a data
/// folder has no links, devices or FIFOs: a snapshot written by a compromised
/// machine could otherwise plant a link that a later write follows out of the
/// folder), without setuid, setgid or sticky bits.
fn unpack(reader: &mut dyn std::io::Read, pgdata: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(false);
    let bad = |why: String| Error::corrupt("the base backup's tar", why);
    let entries = archive
        .entries()
        .map_err(|e| Error::io_path("laying out the base backup in", pgdata, e))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::io_path("laying out the base backup in", pgdata, e))?;
        // The member's path as `unpack_in` lays it out: a leading `/` or
        // `./` dropped.
        let laid: PathBuf = entry
            .path()
            .unwrap_or_default()
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect();
        if in_spool(&laid) {
            // pg_basebackup -X none sends no WAL: this would pass for WAL
            // fetched ahead, unchecked.
            return Err(bad(format!(
                "it carries pg_wal/{}, which only a restore writes",
                super::wal_spool::SPOOL
            )));
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            let name = entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(bad(format!(
                "{name:?} is a {kind:?}, not a file or folder; nothing of it is laid out further"
            )));
        }
        let inside = entry
            .unpack_in(pgdata)
            .map_err(|e| Error::io_path("laying out the base backup in", pgdata, e))?;
        if !inside {
            return Err(bad("a member would land outside the folder".into()));
        }
        if kind.is_file() {
            start_writeback(&pgdata.join(laid));
        }
    }
    Ok(())
}

/// Start writing `path`'s pages to disk, not waiting for it: the server
/// fsyncs the whole data folder when it starts, and finds them written
/// (the disk works while the rest is decoded).
fn start_writeback(path: &Path) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        // SAFETY: an open descriptor; the call only queues writeback.
        unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
}

/// Whether a member's (normalised) path is in, or is, `pg_wal`'s spool of
/// WAL fetched ahead.
fn in_spool(path: &Path) -> bool {
    let mut parts = path.components();
    parts.next().is_some_and(|c| c.as_os_str() == "pg_wal")
        && parts
            .next()
            .is_some_and(|c| c.as_os_str() == super::wal_spool::SPOOL)
}

/// Remove what is in `pgdata` (folders and files this run laid out; a link
/// is removed, never followed).
fn empty(pgdata: &Path) {
    if let Ok(entries) = std::fs::read_dir(pgdata) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                _ => std::fs::remove_file(&p),
            };
        }
    }
}

fn describe(t: &Target) -> String {
    match t {
        Target::Latest => "the end of the archived WAL".into(),
        Target::Time(t) => format!("time {}", postgres_time(*t)),
        Target::Lsn(s) => format!("LSN {s}"),
        Target::Xid(s) => format!("transaction {s}"),
        Target::Name(s) => format!("restore point {s}"),
    }
}

/// `pgdata` made new and private, or an empty folder of this user's.
fn new_folder(pgdata: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::symlink_metadata(pgdata) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .mode(0o700)
            .create(pgdata)
            .map_err(|e| Error::io_path("creating", pgdata, e)),
        Ok(m) if m.is_dir()
            && m.uid() == unsafe { libc::geteuid() }
            && std::fs::read_dir(pgdata).is_ok_and(|mut d| d.next().is_none()) =>
        {
            std::fs::set_permissions(pgdata, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| Error::io_path("making private", pgdata, e))
        }
        Ok(_) => Err(Error::Usage(format!(
            "--pgdata {}: give a new folder (or an empty one of your own); a base backup is never laid over anything",
            pgdata.display()
        ))),
        Err(e) => Err(Error::io_path("checking", pgdata, e)),
    }
}

/// A word for `sh`, in single quotes.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The restore_command line (`%f %p` left for PostgreSQL).
fn restore_command(f: &Fetcher) -> Result<String> {
    let mut words: Vec<String> = f
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", sh_quote(v)))
        .collect();
    words.push(sh_quote(&f.exe.to_string_lossy()));
    words.push("--repo".into());
    words.push(sh_quote(&f.repo));
    words.push("wal-fetch %f %p".into());
    let line = words.join(" ");
    if line.contains(['\n', '\r', '\0']) {
        return Err(Error::Usage(
            "a setting of the restore_command holds a line break: give paths without one".into(),
        ));
    }
    Ok(line)
}

/// A string in postgresql.conf's single quotes (where a backslash escapes).
pub(crate) fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// Settings a base backup may carry from a server that was itself recovered
/// (PostgreSQL never removes them): left in force they would stop this
/// recovery at the old target, or refuse to start ("multiple recovery targets").
const RECOVERY_KEYS: &[&str] = &["restore_command", "recovery_target", "recovery_end_command"];

/// The recovery targets (at most one may be set).
const OTHER_TARGETS: &[&str] = &[
    "recovery_target",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
];

/// `text` with every line that sets a recovery setting commented out.
fn without_recovery_settings(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let key = line
            .trim_start()
            .split(['=', ' ', '\t'])
            .next()
            .unwrap_or("");
        if RECOVERY_KEYS.iter().any(|k| key.starts_with(k)) {
            out.push_str("# (commented out by hcbackup restore) ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn write_recovery(pgdata: &Path, restore_command: &str, target: &Target) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut conf = format!(
        "\n# Written by hcbackup restore --pgdata: recovery from the repository.\nrestore_command = {}\nrecovery_target_action = 'promote'\n",
        conf_quote(restore_command)
    );
    // What wal-fetch fetched ahead and recovery did not need goes when it
    // ends (run in the data folder; a link there is removed, not followed).
    conf.push_str(&format!(
        "recovery_end_command = 'rm -rf -- pg_wal/{}'\n",
        super::wal_spool::SPOOL
    ));
    let (key, value) = match target {
        Target::Latest => ("", String::new()),
        Target::Time(t) => ("recovery_target_time", postgres_time(*t)),
        Target::Lsn(l) => ("recovery_target_lsn", l.clone()),
        Target::Xid(x) => ("recovery_target_xid", x.clone()),
        Target::Name(n) => ("recovery_target_name", n.clone()),
    };
    // Every recovery setting is given here (this file is read last, so it
    // wins): one left in postgresql.conf or an included file, where
    // PostgreSQL's manual puts them, would otherwise stop this recovery
    // early or delay it, and a restore "to the end" would promote short.
    for k in OTHER_TARGETS.iter().filter(|k| **k != key) {
        conf.push_str(&format!("{k} = ''\n"));
    }
    conf.push_str(
        "recovery_target_timeline = 'latest'\nrecovery_min_apply_delay = 0\narchive_cleanup_command = ''\nprimary_conninfo = ''\n",
    );
    if !key.is_empty() {
        conf.push_str(&format!(
            "{key} = {}\nrecovery_target_inclusive = off\n",
            conf_quote(&value)
        ));
    }
    let auto = pgdata.join("postgresql.auto.conf");
    let old = match std::fs::symlink_metadata(&auto) {
        Ok(m) if m.is_file() => {
            std::fs::read_to_string(&auto).map_err(|e| Error::io_path("reading", &auto, e))?
        }
        Ok(_) => {
            return Err(Error::corrupt(
                "the base backup",
                "postgresql.auto.conf is not a file",
            ))
        }
        Err(_) => String::new(),
    };
    let text = without_recovery_settings(&old) + &conf;
    // Written anew beside it, never through a link, then renamed over it.
    let tmp = pgdata.join("postgresql.auto.conf.hcbackup");
    let write = |p: &Path, bytes: &[u8]| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(p)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write(&tmp, text.as_bytes()).map_err(|e| Error::io_path("writing", &tmp, e))?;
    std::fs::rename(&tmp, &auto).map_err(|e| Error::io_path("writing", &auto, e))?;
    // A base backup of a standby carries its standby.signal: it would make
    // the copy wait for more WAL for ever instead of promoting.
    let standby = pgdata.join("standby.signal");
    if std::fs::symlink_metadata(&standby).is_ok() {
        std::fs::remove_file(&standby).map_err(|e| Error::io_path("removing", &standby, e))?;
    }
    let signal = pgdata.join("recovery.signal");
    match std::fs::symlink_metadata(&signal) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::corrupt(
            "the base backup",
            "recovery.signal is not a file",
        )),
        Err(_) => write(&signal, b"").map_err(|e| Error::io_path("writing", &signal, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_recovery_settings_are_commented_out_and_the_rest_kept() {
        let old = "work_mem = '64MB'\nrestore_command = 'old'\n  recovery_target_time = '2026-01-01'\nrecovery_target_action='promote'\nrestore_command_x = 1\n";
        let new = without_recovery_settings(old);
        assert!(new.starts_with("work_mem = '64MB'\n"));
        assert_eq!(
            new.matches("# (commented out by hcbackup restore)").count(),
            4,
            "{new}"
        );
    }

    #[test]
    fn the_segment_recovery_stops_in_is_told_by_its_time_or_position() {
        let record = |name: &str, time: &str| crate::model::wal::WalRecord {
            version: 1,
            name: name.into(),
            size: 16 << 20,
            blake3: String::new(),
            time: time.into(),
            host: String::new(),
            tree: crate::id::TreeId([0; 32]),
        };
        let at = Target::Time(crate::util::parse_rfc3339("2026-12-01T14:05:00Z").unwrap());
        assert!(!at.stops_in(&record("000000010000000000000013", "2026-12-01T14:04:59Z")));
        assert!(at.stops_in(&record("000000010000000000000014", "2026-12-01T14:05:01Z")));
        let lsn = Target::lsn("1/15000060").unwrap();
        assert!(!lsn.stops_in(&record("000000010000000100000014", "")));
        assert!(lsn.stops_in(&record("000000010000000100000015", "")));
        assert!(!lsn.stops_in(&record("000000010000000000000016", "")));
        assert!(!Target::Latest.stops_in(&record("000000010000000100000015", "")));
    }

    #[test]
    fn lsns_and_xids_are_checked_before_anything_is_laid_out() {
        assert!(Target::lsn("0/3000060").is_ok() && Target::lsn("1A/FF").is_ok());
        for bad in ["garbage", "0/1' #", "0/", "/1", "0/1/2", "0/123456789"] {
            assert!(Target::lsn(bad).is_err(), "{bad}");
        }
        assert!(Target::xid("7312").is_ok());
        for bad in ["", "12a", "1\nx", r"123\"] {
            assert!(Target::xid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_target_time_is_written_as_postgresql_reads_it() {
        let t = crate::util::parse_when("2026-12-01T14:05:00.25-03:00").unwrap();
        assert_eq!(postgres_time(t), "2026-12-01 17:05:00.250000+00:00");
    }

    #[test]
    fn the_restore_command_quotes_every_word() {
        let f = Fetcher {
            exe: "/usr/local/bin/hcbackup".into(),
            repo: "/srv/it's here".into(),
            env: vec![("HCBACKUP_PASSWORD_FILE".into(), "/etc/hcbackup/pw".into())],
        };
        assert_eq!(
            restore_command(&f).unwrap(),
            r"HCBACKUP_PASSWORD_FILE='/etc/hcbackup/pw' '/usr/local/bin/hcbackup' --repo '/srv/it'\''s here' wal-fetch %f %p"
        );
        // In postgresql.conf a backslash escapes: doubled; quotes doubled.
        assert_eq!(conf_quote(r"a\b'c"), r"'a\\b''c'");
        let bad = Fetcher {
            repo: "/srv/a\nb".into(),
            ..f
        };
        assert!(restore_command(&bad).is_err());
    }
}
