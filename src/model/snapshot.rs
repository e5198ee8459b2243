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
    /// Entries that could not be read; non-empty means the snapshot is incomplete.
    #[serde(default)]
    pub errors: Vec<String>,
}

impl Snapshot {
    pub fn incomplete(&self) -> bool {
        !self.errors.is_empty()
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
