//! Storage of opaque, immutable objects: the one interface every destination offers.
//!
//! Storage never sees a key or plaintext: it moves sealed bytes by name (`config`,
//! `keys/<id>`, `packs/ab/<id>`, `index/<id>`, `snapshots/<id>`, `locks/<id>`).
//! Backends translate their own failures into [`StorageError`] at the edge.

pub mod conformance;
pub mod counting;
#[cfg(feature = "cloud")]
mod drive;
mod local;
mod memory;
mod pack_cache;
mod retry;
#[cfg(feature = "cloud")]
mod s3;

#[cfg(feature = "cloud")]
pub use drive::{DriveBackend, DriveConfig, DriveEnv};
pub use local::{LocalBackend, MAX_GET};
pub use memory::MemoryBackend;
pub use pack_cache::PackCache;
pub use retry::{RetryPolicy, Retrying};
#[cfg(feature = "cloud")]
pub use s3::{S3Backend, S3Config, S3Env};

use std::fmt;

/// The shared error vocabulary of every backend.
#[derive(Debug)]
pub enum StorageError {
    NotFound(String),
    AlreadyExists(String),
    /// Worth retrying (timeouts, 5xx, resets).
    Transient(String),
    /// Will fail again (bad request, I/O error on the object).
    Permanent(String),
    /// Credentials refused.
    Auth(String),
    /// No space left at the destination.
    Full(String),
    /// The object is under a retention lock (S3 Object Lock) and may not be deleted yet.
    Retained(String),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::NotFound(s) => write!(f, "{s} not found"),
            StorageError::AlreadyExists(s) => write!(f, "{s} already exists"),
            StorageError::Transient(s) | StorageError::Permanent(s) => f.write_str(s),
            StorageError::Auth(s) => write!(f, "access denied: {s}"),
            StorageError::Full(s) => write!(f, "no space left writing {s}"),
            StorageError::Retained(s) => write!(f, "{s} is under a retention lock"),
        }
    }
}

impl std::error::Error for StorageError {}

impl From<StorageError> for crate::Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(s) => {
                crate::Error::missing(s, "the object is not in the repository")
            }
            StorageError::Full(s) => crate::Error::DiskFull(format!("writing {s}")),
            other => crate::Error::Failed(format!("storage: {other}")),
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Object storage. Contract for every implementation:
/// - `put` is atomic and durable: a reader sees the whole object or none of it, and
///   once `put` returns the object survives a crash. Putting an existing name with
///   the same bytes succeeds (objects are immutable and content-named).
/// - `get`/`get_range` return exactly the stored bytes or `NotFound`.
/// - `list(dir)` returns every object under `dir` (one level of fan-out folders
///   included) as (name relative to `dir`, size); temporary files are never listed,
///   and neither is any name not of the repository's own shape (`well_formed`).
/// - `delete` of a missing object is `NotFound`.
pub trait Backend: Send + Sync {
    /// Where this is, for messages.
    fn location(&self) -> String;
    /// Whether nothing can be written here (a USB disk mounted read-only): then
    /// no one can delete from it either, and reading needs no lock.
    fn read_only(&self) -> bool {
        false
    }
    fn put(&self, path: &str, data: &[u8]) -> StorageResult<()>;
    /// Write `path` only when nothing is there: false when something was (it
    /// is left as it is). A local folder does it atomically; elsewhere the
    /// path is checked first, so two writers of one path at the same moment
    /// can both write (documented where it matters: WAL records).
    fn put_new(&self, path: &str, data: &[u8]) -> StorageResult<bool> {
        match self.stat(path) {
            Ok(_) => Ok(false),
            Err(StorageError::NotFound(_)) => self.put(path, data).map(|()| true),
            Err(e) => Err(e),
        }
    }
    fn get(&self, path: &str) -> StorageResult<Vec<u8>>;
    fn get_range(&self, path: &str, offset: u64, len: u32) -> StorageResult<Vec<u8>>;
    fn stat(&self, path: &str) -> StorageResult<u64>;
    fn list(&self, dir: &str) -> StorageResult<Vec<(String, u64)>>;
    fn delete(&self, path: &str) -> StorageResult<()>;
    /// Entries under `dir` that are not objects at all (a link, a folder, a FIFO
    /// where a file belongs) or not of the repository's shape: `list` leaves them
    /// out, and where their mere presence matters (a lock someone turned into a
    /// link to hide it from a prune) the caller asks. Empty where storage has
    /// nothing but objects.
    fn list_foreign(&self, _dir: &str) -> StorageResult<Vec<String>> {
        Ok(Vec::new())
    }
    /// Remove partial writes left by crashed runs that are older than `age` (a
    /// no-op where writes are atomic by nature). Returns how many were removed.
    fn remove_stale_partials(&self, _age: std::time::Duration) -> StorageResult<usize> {
        Ok(0)
    }
    /// Create the folder layout where the backend has folders (a no-op elsewhere).
    fn create_layout(&self, _dirs: &[&str]) -> StorageResult<()> {
        Ok(())
    }
    /// Days a new object is locked against deletion (S3 Object Lock); `None` where
    /// objects are not locked.
    fn retention_days(&self) -> Option<u32> {
        None
    }
    /// Keep `path` locked until at least `until` (a no-op where nothing is locked).
    fn extend_retention(&self, _path: &str, _until: time::OffsetDateTime) -> StorageResult<()> {
        Ok(())
    }
}

/// Objects that are locked where the destination locks objects: all but locks and
/// legal holds, which are removed by design.
pub fn lockable(path: &str) -> bool {
    !(path.starts_with("locks/") || path.starts_with("holds/"))
}

/// Whether `name`, listed under `dir`, has the shape of an object this program
/// writes: 64 lower-case hex digits, and for packs `ab/ab…` (the fan-out folder
/// being the id's first two digits). A listing is storage's word and storage is
/// hostile: a name like `../../x` or `/etc/cron.d/x` must never reach a path.
pub fn well_formed(dir: &str, name: &str) -> bool {
    let hex64 =
        |s: &str| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match dir.trim_end_matches('/') {
        "packs" => name
            .split_once('/')
            .is_some_and(|(fan, id)| hex64(id) && fan == &id[..2]),
        _ => hex64(name),
    }
}

/// Keep the listed names of repository shape; say once which were dropped.
pub(crate) fn shaped(dir: &str, mut listing: Vec<(String, u64)>) -> Vec<(String, u64)> {
    let before = listing.len();
    let mut example = None;
    listing.retain(|(n, _)| {
        let ok = well_formed(dir, n);
        if !ok && example.is_none() {
            example = Some(crate::model::tree::escape(n.as_bytes()));
        }
        ok
    });
    if let Some(e) = example {
        tracing::warn!(
            "ignored {} object name(s) under {dir}/ that this program never writes (such as {e:?}): someone else wrote to the repository",
            before - listing.len()
        );
    }
    listing
}

/// The object path of a pack (`packs/ab/abcd…`).
pub fn pack_path(id: &crate::id::PackId) -> String {
    let h = id.to_hex();
    format!("packs/{}/{}", &h[..2], h)
}
