//! The plaintext `config` object: format version and repository id, nothing secret.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::{Backend, StorageError};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepoConfig {
    pub version: u32,
    /// 64 hex digits; names the catalog file and binds key files to this repository.
    pub id: String,
    pub created: String,
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

    pub fn load(backend: &dyn Backend) -> Result<RepoConfig> {
        let bytes = match backend.get("config") {
            Ok(b) => b,
            Err(StorageError::NotFound(_)) => return Err(Error::NoRepository(backend.location())),
            Err(e) => return Err(e.into()),
        };
        let c: RepoConfig = serde_json::from_slice(&bytes).map_err(|e| {
            Error::corrupt(format!("config of {}", backend.location()), e.to_string())
        })?;
        if c.version != FORMAT_VERSION {
            return Err(Error::Failed(format!(
                "repository {} has format version {}; this hcbackup reads version {FORMAT_VERSION}: use a matching release",
                backend.location(),
                c.version
            )));
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
