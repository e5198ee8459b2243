//! The plaintext `config` object: format version, repository id, the key epoch
//! new objects are sealed in, and a check value that ties it all to the master
//! key set (`MasterKey::check_value`). Nothing secret.

use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::storage::{Backend, StorageError};

/// Format 2 (issue #14): padded objects, pack headers bound to their blobs, the
/// key check in `config`, key epochs. Format 1 repositories open, and are
/// upgraded in place (their config rewritten) the first time a password opens them.
pub const FORMAT_VERSION: u32 = 2;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RepoConfig {
    pub version: u32,
    /// 64 hex digits; names the catalog file and binds key files to this repository.
    pub id: String,
    pub created: String,
    /// Format 2: hex of `MasterKey::check_value(id, created, key_epoch)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
    /// Format 2: the key epoch new objects are sealed in (`key rotate`).
    #[serde(default)]
    pub key_epoch: u32,
}

impl RepoConfig {
    /// The primary repository's catalog in the cache folder (one per repository id).
    pub fn catalog_path(&self, cache_dir: &std::path::Path) -> std::path::PathBuf {
        cache_dir.join(format!("{}.sqlite", self.id))
    }

    /// The catalog of a destination's copy: its own file, since each copy has its
    /// own retention and so, after a prune, its own index objects.
    pub fn copy_catalog_path(
        &self,
        cache_dir: &std::path::Path,
        location: &str,
    ) -> std::path::PathBuf {
        let h = blake3::hash(location.as_bytes()).to_hex();
        cache_dir.join(format!("{}.{}.sqlite", self.id, &h[..16]))
    }

    pub fn id_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        hex::decode_to_slice(&self.id, &mut b).expect("validated on load");
        b
    }

    /// A format-2 config for `key`.
    pub fn new_v2(id: String, created: String, key: &MasterKey, epoch: u32) -> RepoConfig {
        let mut c = RepoConfig {
            version: FORMAT_VERSION,
            id,
            created,
            key_check: None,
            key_epoch: epoch,
        };
        c.key_check = Some(hex::encode(key.check_value(
            &c.id_bytes(),
            &c.created,
            epoch,
        )));
        c
    }

    /// Whether `key` is the key set this config was written for (format 2; format
    /// 1 has no check value and is checked against an object instead). Constant time.
    pub fn key_matches(&self, key: &MasterKey) -> Option<bool> {
        let want = self.key_check.as_deref()?;
        let got =
            blake3::Hash::from(key.check_value(&self.id_bytes(), &self.created, self.key_epoch));
        Some(blake3::Hash::from_hex(want).is_ok_and(|w| w == got))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("config serializes")
    }

    pub fn load(backend: &dyn Backend) -> Result<RepoConfig> {
        let bytes = match backend.get("config") {
            Ok(b) => b,
            Err(StorageError::NotFound(_)) => return Err(Error::NoRepository(backend.location())),
            Err(e) => return Err(e.into()),
        };
        if bytes.len() > 64 * 1024 {
            return Err(Error::corrupt(
                format!("config of {}", backend.location()),
                "larger than any config hcbackup writes",
            ));
        }
        let c: RepoConfig = serde_json::from_slice(&bytes).map_err(|e| {
            Error::corrupt(format!("config of {}", backend.location()), e.to_string())
        })?;
        if c.version == 0 || c.version > FORMAT_VERSION {
            return Err(Error::Failed(format!(
                "repository {} has format version {}; this hcbackup reads versions 1 to {FORMAT_VERSION}: use a newer release",
                backend.location(),
                c.version
            )));
        }
        let check_ok = c
            .key_check
            .as_deref()
            .is_some_and(|k| k.len() == 64 && hex::decode(k).is_ok());
        if c.version >= 2 && !check_ok {
            return Err(Error::corrupt(
                format!("config of {}", backend.location()),
                "its key check is missing or malformed",
            ));
        }
        if c.id.len() != 64 || hex::decode(&c.id).is_err() {
            return Err(Error::corrupt(
                format!("config of {}", backend.location()),
                "bad repository id",
            ));
        }
        Ok(c)
    }
}
