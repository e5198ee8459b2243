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
}

/// The snapshot to restore for `target`: with `latest` and a time, the newest
/// snapshot with a base backup made before that time; otherwise `spec`, which
/// must hold a base backup.
pub fn choose(repo: &Repository, spec: &str, target: &Target) -> Result<SnapshotEntry> {
    let has_base =
        |s: &crate::model::snapshot::Snapshot| s.physical.as_ref().is_some_and(PhysicalEntry::ok);
    let found = match (spec, target) {
        ("latest", Target::Time(limit)) => repo.find_snapshot_with("latest", |s| {
            has_base(s) && s.parsed_time().is_some_and(|st| st <= *limit)
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
    new_folder(pgdata)?;
    let _lock = repo.lock(false, "restore")?;
    super::restore_job::still_there(repo, snap)?;
    let tree = repo.load_tree(p.tree.expect("ok"))?;
    let node = tree
        .nodes
        .iter()
        .find(|n| n.name.as_slice() == PhysicalEntry::TAR_NAME.as_bytes())
        .ok_or_else(|| Error::corrupt("base backup tree", "it holds no base.tar"))?;
    let mut reader = super::database::ChunkReader::new(repo, node)?;
    let mut archive = tar::Archive::new(&mut reader);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    let unpacked = archive.unpack(pgdata);
    if let Some(e) = reader.take_error() {
        return Err(e);
    }
    unpacked.map_err(|e| Error::io_path("laying out the base backup in", pgdata, e))?;
    write_recovery(pgdata, &restore_command, target)?;
    Ok(Restored {
        snapshot: snap.id.to_hex(),
        pgdata: pgdata.to_path_buf(),
        bytes: p.bytes,
        start_lsn: p.start_lsn.clone(),
        timeline: p.timeline,
        target: describe(target),
    })
}

fn describe(t: &Target) -> String {
    match t {
        Target::Latest => "the end of the archived WAL".into(),
        Target::Time(t) => format!("time {}", postgres_time(*t)),
        Target::Lsn(s) => format!("LSN {s}"),
        Target::Xid(s) => format!("transaction {s}"),
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

/// A string in postgresql.conf's single quotes.
fn conf_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn write_recovery(pgdata: &Path, restore_command: &str, target: &Target) -> Result<()> {
    let mut conf = format!(
        "\n# Written by hcbackup restore --pgdata: recovery from the repository.\nrestore_command = {}\nrecovery_target_action = 'promote'\n",
        conf_quote(restore_command)
    );
    let (key, value) = match target {
        Target::Latest => ("", String::new()),
        Target::Time(t) => ("recovery_target_time", postgres_time(*t)),
        Target::Lsn(l) => ("recovery_target_lsn", l.clone()),
        Target::Xid(x) => ("recovery_target_xid", x.clone()),
    };
    if !key.is_empty() {
        if value.contains(['\n', '\r', '\0']) {
            return Err(Error::Usage(
                "the recovery target holds a line break".into(),
            ));
        }
        conf.push_str(&format!(
            "{key} = {}\nrecovery_target_inclusive = off\n",
            conf_quote(&value)
        ));
    }
    let auto = pgdata.join("postgresql.auto.conf");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&auto)
        .map_err(|e| Error::io_path("writing", &auto, e))?;
    f.write_all(conf.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io_path("writing", &auto, e))?;
    let signal = pgdata.join("recovery.signal");
    std::fs::File::create(&signal)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io_path("writing", &signal, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "HCBACKUP_PASSWORD_FILE='/etc/hcbackup/pw' '/usr/local/bin/hcbackup' --repo '/srv/it'\\''s here' wal-fetch %f %p"
        );
        assert_eq!(conf_quote("a'b"), "'a''b'");
        let bad = Fetcher {
            repo: "/srv/a\nb".into(),
            ..f
        };
        assert!(restore_command(&bad).is_err());
    }
}
