//! Snapshot manifests: the last object a snapshot writes, and the only thing that
//! makes it exist. JSON inside the AEAD; its object id is the keyed hash of that JSON.

use serde::{Deserialize, Serialize};

use crate::id::{ObjectId, TreeId};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    /// Bytes of file content the sources held.
    pub bytes: u64,
    /// Bytes actually read (files not in the file cache).
    pub bytes_read: u64,
    /// Bytes of new blobs after dedup, compression and encryption.
    pub bytes_added: u64,
    pub blobs_added: u64,
    pub duration_secs: f64,
    /// Entries the snapshot's exclusion rules left out (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub excluded: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// RFC 3339, UTC unless `--time` said otherwise.
    pub time: String,
    pub host: String,
    pub user: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The source paths as given (lossy UTF-8 for display); the root tree holds one
    /// entry per source, named by `names`.
    pub paths: Vec<String>,
    pub names: Vec<String>,
    pub tree: TreeId,
    pub summary: Summary,
    /// Entries that could not be read (database failures are in `databases`).
    #[serde(default)]
    pub errors: Vec<String>,
    /// The databases dumped into this snapshot (empty for a files-only snapshot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseEntry>,
    /// When it was really made (RFC 3339), for a snapshot dated otherwise
    /// (`snapshot --time`, `import-legacy`): a backdated snapshot says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// For a snapshot whose tags `tag` changed: the id of the manifest it
    /// replaced first (hex; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// A physical base backup of a PostgreSQL cluster (`snapshot --physical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<PhysicalEntry>,
}

/// A physical base backup: where it came from, the WAL it needs (from
/// `start_lsn` to `stop_lsn` on `timeline`, archived by `wal-push`), and the
/// tree holding pg_basebackup's tar stream (`base.tar`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PhysicalEntry {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub label: String,
    pub start_lsn: String,
    pub stop_lsn: String,
    pub timeline: u32,
    /// The WAL file the backup starts in: recovery needs it and every later one.
    pub start_wal: String,
    pub start_time: String,
    /// When pg_basebackup ended (RFC 3339): recovery can stop only after it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end_time: String,
    pub bytes: u64,
    pub duration_secs: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeId>,
    /// Why it failed (the rest of the snapshot is saved; exit 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PhysicalEntry {
    /// The stream's name in its tree.
    pub const TAR_NAME: &'static str = "base.tar";

    pub fn ok(&self) -> bool {
        self.error.is_none() && self.tree.is_some()
    }

    /// The name of the last WAL segment recovery needs to make this base
    /// backup consistent.
    pub fn last_wal(&self) -> Option<String> {
        crate::model::wal::last_segment(&self.start_lsn, &self.start_wal, &self.stop_lsn)
    }
}

/// How far a snapshot's time may run ahead of the clock (another host's clock,
/// a slow NTP sync) before it counts as dated in the future.
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(10);

/// What a manifest records of a snapshot dated `time` and made at `now`: when it
/// was made, if that is not its date.
pub fn written(time: time::OffsetDateTime, now: time::OffsetDateTime) -> Option<String> {
    ((time - now).abs() > CLOCK_SKEW).then(|| crate::util::rfc3339(now))
}

/// How `format` starts for a dump brought in by `import-legacy`.
pub const IMPORTED_FORMAT: &str = "pg_dump -F c (imported";

/// One database of a snapshot: where it came from, what the server said about it in
/// the dump's own exported snapshot, and the tree holding the dump streams.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseEntry {
    pub db: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    #[serde(default)]
    pub server_version: String,
    #[serde(default)]
    pub encoding: String,
    /// The database's LC_COLLATE and LC_CTYPE, to create it alike on restore.
    #[serde(default)]
    pub collate: String,
    #[serde(default)]
    pub ctype: String,
    #[serde(default)]
    pub extensions: Vec<Extension>,
    /// Exact row counts of every table, read in the snapshot pg_dump dumped.
    #[serde(default)]
    pub tables: Vec<TableCount>,
    /// How the dump stream was made, e.g. "pg_dump -Fc -Z0".
    #[serde(default)]
    pub format: String,
    /// Tables whose rows the dump holds in primary-key order (see `pg::reorder`).
    #[serde(default)]
    pub rows_by_primary_key: u32,
    pub dump_bytes: u64,
    pub globals_bytes: u64,
    /// A tree with `DUMP_NAME` (pg_restore's custom format) and `GLOBALS_NAME`;
    /// absent when the dump failed.
    pub tree: Option<TreeId>,
    #[serde(default)]
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub duration_secs: f64,
}

impl DatabaseEntry {
    pub const DUMP_NAME: &'static str = "database.dump";
    pub const GLOBALS_NAME: &'static str = "globals.sql";

    pub fn ok(&self) -> bool {
        self.error.is_none() && self.tree.is_some()
    }

    /// A dump made by the old script and brought in by `import-legacy`: no row
    /// counts, no globals.
    pub fn imported(&self) -> bool {
        self.format.starts_with(IMPORTED_FORMAT)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    pub schema: String,
    pub table: String,
    pub rows: u64,
}

/// Which snapshots a command looks at (`--host`, `--tag`, `--path`, as restic):
/// each given list must match (any of its values); empty lists match all.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    /// Source paths as the snapshot records them (absolute).
    pub paths: Vec<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.tags.is_empty() && self.paths.is_empty()
    }

    pub fn matches(&self, s: &Snapshot) -> bool {
        fn any(want: &[String], have: &[String]) -> bool {
            want.is_empty() || have.iter().any(|h| want.contains(h))
        }
        any(&self.hosts, std::slice::from_ref(&s.host))
            && any(&self.tags, &s.tags)
            && any(&self.paths, &s.paths)
    }

    /// For messages: `--host a --tag b`.
    pub fn describe(&self) -> String {
        let flags = [
            ("--host", &self.hosts),
            ("--tag", &self.tags),
            ("--path", &self.paths),
        ];
        flags
            .iter()
            .flat_map(|(f, vs)| vs.iter().map(move |v| format!("{f} {v}")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The tag of a snapshot `restore --db` takes of a database just before it
/// replaces it: not a nightly backup, so never `latest` and kept apart by `forget`.
pub const SAFETY_DUMP_TAG: &str = "safety-dump";

impl Snapshot {
    /// Dated later than `now` (beyond the clock skew): a wrong clock or `--time`;
    /// never `latest`.
    pub fn in_future(&self, now: time::OffsetDateTime) -> bool {
        self.parsed_time().is_some_and(|t| t > now + CLOCK_SKEW)
    }

    /// A safety dump taken before a restore replaced a database.
    pub fn is_safety_dump(&self) -> bool {
        self.tags.iter().any(|t| t == SAFETY_DUMP_TAG)
    }

    /// A file could not be read, a database could not be dumped, or the base
    /// backup failed.
    pub fn incomplete(&self) -> bool {
        !self.errors.is_empty()
            || self.databases.iter().any(|d| d.error.is_some())
            || self.physical.as_ref().is_some_and(|p| p.error.is_some())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshot serializes")
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        let s: Snapshot =
            serde_json::from_slice(b).map_err(|e| format!("snapshot does not decode: {e}"))?;
        if s.version != 1 {
            return Err(format!("unknown snapshot version {}", s.version));
        }
        Ok(s)
    }

    pub fn parsed_time(&self) -> Option<time::OffsetDateTime> {
        crate::util::parse_rfc3339(&self.time)
    }
}

/// A snapshot together with its id.
#[derive(Clone, Debug)]
pub struct SnapshotEntry {
    pub id: ObjectId,
    pub snapshot: Snapshot,
}
