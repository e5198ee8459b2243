//! `import-legacy FILE...`: the old script's backups become snapshots dated by
//! their names, so a clinic that migrates keeps its history, with dedup across it.
//!
//! - `db_backup_YYYY-MM-DD_HH-MM-SS.dump` (`pg_dump -F c`): checked with
//!   `pg_restore -l`, stored byte for byte as the snapshot's database dump (so
//!   `export --db-dump` gives the same file back).
//! - `files_backup_YYYY-MM-DD_HH-MM-SS.tar.gz` (`tar czf … -C uploads .`): streamed
//!   (never extracted to disk), each member stored as a file of the source folder
//!   with its mode, owner, mtime, symlink target; hard links as copies of their
//!   target. Files that did not change between days are stored once.
//!
//! Files with the same stamp make one snapshot (the seed's script stamped both of
//! a night alike). The stamp is read as this machine's local time, as `date`
//! wrote it. A stamp already imported (a snapshot tagged `legacy-import` at that
//! time) is skipped, so a rerun imports only what is new.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;

use super::archive::{Archiver, RepoStore};
use crate::chunker::{Chunker, DB_CHUNKS, FILE_CHUNKS};
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::model::snapshot::{DatabaseEntry, Snapshot, SnapshotEntry, Summary};
use crate::model::tree::{Node, Tree};

use super::tar_tree::file_node;
use crate::progress::Progress;
use crate::repo::{BlobWriter, Repository};

pub const TAG: &str = "legacy-import";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LegacyKind {
    Database,
    Files,
}

/// A legacy file recognised by its name.
#[derive(Clone, Debug)]
pub struct LegacyFile {
    pub path: PathBuf,
    pub kind: LegacyKind,
    /// `YYYY-MM-DD_HH-MM-SS` as in the name.
    pub stamp: String,
    pub time: OffsetDateTime,
}

/// Recognise `db_backup_<stamp>.dump` and `files_backup_<stamp>.tar.gz`.
pub fn recognise(path: &Path) -> Option<LegacyFile> {
    let name = path.file_name()?.to_str()?;
    let (kind, stamp) = if let Some(s) = name
        .strip_prefix("db_backup_")
        .and_then(|s| s.strip_suffix(".dump"))
    {
        (LegacyKind::Database, s)
    } else if let Some(s) = name
        .strip_prefix("files_backup_")
        .and_then(|s| s.strip_suffix(".tar.gz"))
    {
        (LegacyKind::Files, s)
    } else {
        return None;
    };
    Some(LegacyFile {
        path: path.to_path_buf(),
        kind,
        stamp: stamp.to_string(),
        time: stamp_time(stamp)?,
    })
}

/// `YYYY-MM-DD_HH-MM-SS` in this machine's local time (what `date` wrote), as UTC.
fn stamp_time(stamp: &str) -> Option<OffsetDateTime> {
    let p: Vec<i32> = stamp
        .split(['-', '_'])
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [y, mo, d, h, mi, s] = p[..] else {
        return None;
    };
    // Check the fields, then let mktime apply the local zone (and its DST).
    let date =
        time::Date::from_calendar_date(y, time::Month::try_from(mo as u8).ok()?, d as u8).ok()?;
    time::Time::from_hms(h as u8, mi as u8, s as u8).ok()?;
    // SAFETY: a zeroed tm is valid input; mktime only reads and normalises it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    tm.tm_isdst = -1;
    let t = unsafe { libc::mktime(&mut tm) };
    if t == -1 {
        return Some(date.with_hms(h as u8, mi as u8, s as u8).ok()?.assume_utc());
    }
    OffsetDateTime::from_unix_timestamp(t).ok()
}

pub struct ImportOptions {
    pub files: Vec<PathBuf>,
    /// The folder the tarballs hold (UPLOADS_DIR): recorded as the snapshot's source.
    pub source: Option<PathBuf>,
    /// The database the dumps are of (POSTGRES_*): recorded in the snapshot.
    pub database: Option<crate::config::PgTarget>,
}

#[derive(Debug, Default, Serialize)]
pub struct Imported {
    pub stamp: String,
    pub files: Vec<String>,
    pub snapshot: Option<String>,
    pub time: String,
    pub bytes: u64,
    pub bytes_added: u64,
    /// Why it was not imported (already there).
    pub skipped: Option<String>,
    pub error: Option<String>,
}

/// Import every file given; one snapshot per stamp, oldest first. A file that
/// fails is reported in its entry; the others go on.
pub fn run(
    repo: &Repository,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<Vec<Imported>> {
    let mut groups: BTreeMap<(OffsetDateTime, String), Vec<LegacyFile>> = BTreeMap::new();
    for f in &opts.files {
        let l = recognise(f).ok_or_else(|| {
            Error::Usage(format!(
                "{}: not a legacy backup name (db_backup_YYYY-MM-DD_HH-MM-SS.dump or files_backup_YYYY-MM-DD_HH-MM-SS.tar.gz)",
                f.display()
            ))
        })?;
        if l.kind == LegacyKind::Files && opts.source.is_none() {
            return Err(Error::Usage(
                "importing files_backup_*.tar.gz needs the folder they are of: set UPLOADS_DIR or pass --source DIR".into(),
            ));
        }
        groups.entry((l.time, l.stamp.clone())).or_default().push(l);
    }
    let _lock = repo.lock(false, "import-legacy")?;
    let done: Vec<String> = repo
        .snapshots()?
        .into_iter()
        .filter(|s| s.snapshot.tags.iter().any(|t| t == TAG))
        .map(|s| s.snapshot.time)
        .collect();
    let mut out = Vec::new();
    for ((time, stamp), mut files) in groups {
        files.sort_by_key(|f| f.kind);
        let mut r = Imported {
            stamp: stamp.clone(),
            files: files.iter().map(|f| f.path.display().to_string()).collect(),
            time: crate::util::rfc3339(time),
            ..Default::default()
        };
        if done.contains(&r.time) {
            r.skipped = Some("already imported".into());
        } else {
            match one(repo, opts, time, &files, progress) {
                Ok(e) => {
                    r.snapshot = Some(e.id.to_hex());
                    r.bytes = super::status::snapshot_bytes(&e);
                    r.bytes_added = e.snapshot.summary.bytes_added;
                }
                Err(e) => r.error = Some(e.to_string()),
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// One snapshot from the files of one stamp.
fn one(
    repo: &Repository,
    opts: &ImportOptions,
    time: OffsetDateTime,
    files: &[LegacyFile],
    progress: &dyn Progress,
) -> Result<SnapshotEntry> {
    let started = Instant::now();
    let writer = BlobWriter::new(repo);
    let store = RepoStore {
        repo,
        writer: &writer,
    };
    let arch = Archiver::new(
        &store,
        Chunker::new(FILE_CHUNKS, repo.key().gear_table()),
        progress,
        (rand::random::<u64>() >> 1) as i64 | 1,
        Default::default(),
    );
    let mut databases = Vec::new();
    let mut nodes = Vec::new();
    let mut paths = Vec::new();
    let mut names = Vec::new();
    let (mut file_count, mut dirs, mut bytes) = (0u64, 0u64, 0u64);
    let built = (|| -> Result<TreeId> {
        for f in files {
            match f.kind {
                LegacyKind::Database => databases.push(dump(&arch, repo, f, opts)?),
                LegacyKind::Files => {
                    let source = opts.source.as_ref().expect("checked");
                    let name = crate::source::fs::source_name(source);
                    let t = super::tar_tree::read(&arch, &f.path, &name)?;
                    file_count += t.files;
                    dirs += t.dirs;
                    bytes += t.bytes;
                    nodes.push(t.root);
                    paths.push(source.display().to_string());
                    names.push(String::from_utf8_lossy(&name).into_owned());
                }
            }
        }
        arch.store_tree(Tree::new(nodes))
    })();
    let root = writer.flush_after(built)?;
    repo.write_index()?;
    let w = writer.stats();
    let snapshot = Snapshot {
        version: 1,
        time: crate::util::rfc3339(time),
        host: crate::util::hostname(),
        user: crate::util::username(),
        tags: vec![TAG.to_string()],
        written: crate::model::snapshot::written(time, crate::util::now()),
        original: None,
        physical: None,
        paths,
        names,
        tree: root,
        summary: Summary {
            files: file_count,
            dirs,
            bytes,
            bytes_read: bytes,
            bytes_added: w.bytes_added,
            blobs_added: w.blobs_added,
            duration_secs: started.elapsed().as_secs_f64(),
            excluded: 0,
        },
        errors: Vec::new(),
        databases,
    };
    let id = repo.write_snapshot(&snapshot)?;
    Ok(SnapshotEntry { id, snapshot })
}

/// A `pg_dump -F c` file as the snapshot's database dump, byte for byte.
fn dump(
    arch: &Archiver,
    repo: &Repository,
    f: &LegacyFile,
    opts: &ImportOptions,
) -> Result<DatabaseEntry> {
    let toc = toc(&f.path)?;
    let header = |key: &str| {
        toc.lines()
            .find_map(|l| l.trim_start_matches(';').trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    let target = opts.database.as_ref();
    let mut entry = DatabaseEntry {
        db: header("dbname:")
            .or_else(|| target.map(|t| t.db.clone()))
            .unwrap_or_default(),
        host: target.map(|t| t.host.clone()).unwrap_or_default(),
        port: target.map(|t| t.port).unwrap_or(5432),
        user: target.map(|t| t.user.clone()).unwrap_or_default(),
        server_version: header("Dumped from database version:").unwrap_or_default(),
        encoding: header("Encoding:").unwrap_or_default(),
        format: format!(
            "{} from {})",
            crate::model::snapshot::IMPORTED_FORMAT,
            file_name(&f.path)
        ),
        ..Default::default()
    };
    let file = std::fs::File::open(&f.path).map_err(|e| Error::io_path("reading", &f.path, e))?;
    let size_hint = file.metadata().map(|m| m.len()).ok();
    let chunker = Chunker::new(DB_CHUNKS, repo.key().gear_table());
    let (content, size) = arch
        .chunk_stream(&chunker, file, size_hint)?
        .map_err(|e| Error::io_path("reading", &f.path, e))?;
    let lists = arch.store_lists(&content)?;
    entry.dump_bytes = size;
    let node = file_node(DatabaseEntry::DUMP_NAME.as_bytes(), 0o600, size, f.time);
    entry.tree = Some(arch.store_tree(Tree::new(vec![Node { lists, ..node }]))?);
    Ok(entry)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `pg_restore -l`: proves the file is a custom-format dump and names its database.
fn toc(path: &Path) -> Result<String> {
    let mut c = crate::pg::tools::plain("pg_restore");
    c.arg("-l").arg(path).stdin(std::process::Stdio::null());
    let out = c.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Failed("pg_restore not found on PATH: install the PostgreSQL client programs (apt install postgresql-client) or set HCBACKUP_PG_BIN".into())
        } else {
            Error::io("starting pg_restore", e)
        }
    })?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "{}: not a dump pg_restore reads ({}); was it made with pg_dump -F c?",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_stamps() {
        let f = recognise(Path::new("/b/db_backup_2024-01-15_03-00-00.dump")).unwrap();
        assert_eq!(f.kind, LegacyKind::Database);
        assert_eq!(f.stamp, "2024-01-15_03-00-00");
        let f = recognise(Path::new("files_backup_2024-01-15_03-00-00.tar.gz")).unwrap();
        assert_eq!(f.kind, LegacyKind::Files);
        assert!(recognise(Path::new("files_backup_2024-13-15_03-00-00.tar.gz")).is_none());
        assert!(recognise(Path::new("files_backup_2024-01-15.tar.gz")).is_none());
        assert!(recognise(Path::new("other.dump")).is_none());
    }
}
