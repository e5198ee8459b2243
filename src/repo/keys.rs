//! Creating a repository and managing its key files (one per password).

use std::path::Path;
use std::sync::Arc;

use rand::RngCore;

use super::config::{RepoConfig, FORMAT_VERSION};
use super::{Repository, DIRS};
use crate::catalog::Catalog;
use crate::crypto::{KdfParams, KeyFile, MasterKey};
use crate::error::{Error, Result};
use crate::storage::{Backend, StorageError};

/// A key file as `key list` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created: String,
    pub host: String,
    pub user: String,
    pub current: bool,
}

/// Try every key file with the password.
pub(super) fn unlock(
    backend: &dyn Backend,
    config: &RepoConfig,
    password: &[u8],
) -> Result<(MasterKey, String)> {
    let repo_id = config.id_bytes();
    let names = backend.list("keys")?;
    if names.is_empty() {
        return Err(Error::corrupt(
            format!("repository {}", backend.location()),
            "it has no key files",
        ));
    }
    for (name, _) in names {
        let bytes = backend.get(&format!("keys/{name}"))?;
        let Some(kf) = KeyFile::from_json(&bytes) else {
            tracing::warn!(key = %name, "key file does not parse; skipped");
            continue;
        };
        if let Some(k) = kf.unwrap_key(password, &repo_id) {
            return Ok((k, name));
        }
    }
    Err(Error::WrongPassword(backend.location()))
}

fn new_key_name() -> String {
    let mut r = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut r);
    hex::encode(r)
}

impl Repository {
    /// Create a repository: folders, a key file, and the config last (its presence
    /// is what makes a repository).
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        cache_dir: &Path,
    ) -> Result<Repository> {
        match backend.get("config") {
            Ok(_) => {
                return Err(Error::Failed(format!(
                    "a repository already exists at {}: use it, or choose another --repo",
                    backend.location()
                )))
            }
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if password.is_empty() {
            return Err(Error::Usage(
                "the password is empty: choose a real one".into(),
            ));
        }
        backend.create_layout(DIRS)?;
        let mut idb = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut idb);
        let config = RepoConfig {
            version: FORMAT_VERSION,
            id: hex::encode(idb),
            created: crate::util::rfc3339(crate::util::now()),
        };
        let key = MasterKey::generate();
        let kf = KeyFile::wrap(
            &key,
            password,
            &idb,
            KdfParams::for_new_key(),
            config.created.clone(),
        );
        let key_id = new_key_name();
        backend.put(&format!("keys/{key_id}"), &kf.to_json())?;
        backend.put(
            "config",
            &serde_json::to_vec_pretty(&config).expect("config serializes"),
        )?;
        let catalog = Arc::new(Catalog::open(&config.catalog_path(cache_dir))?);
        Ok(Repository {
            backend,
            config,
            key,
            key_id,
            catalog,
            lock_wait: std::time::Duration::ZERO,
        })
    }

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for (name, _) in self.backend.list("keys")? {
            let bytes = self.backend.get(&format!("keys/{name}"))?;
            let kf = KeyFile::from_json(&bytes)
                .ok_or_else(|| Error::corrupt(format!("key file {name}"), "does not parse"))?;
            out.push(KeyInfo {
                current: name == self.key_id,
                id: name,
                created: kf.created,
                host: kf.host,
                user: kf.user,
            });
        }
        Ok(out)
    }

    /// Wrap the master keys with another password; returns the new key file's id.
    pub fn add_key(&self, password: &[u8]) -> Result<String> {
        if password.is_empty() {
            return Err(Error::Usage(
                "the new password is empty: choose a real one".into(),
            ));
        }
        let kf = KeyFile::wrap(
            &self.key,
            password,
            &self.config.id_bytes(),
            KdfParams::for_new_key(),
            crate::util::rfc3339(crate::util::now()),
        );
        let name = new_key_name();
        self.backend.put(&format!("keys/{name}"), &kf.to_json())?;
        Ok(name)
    }

    /// Remove a key file by id prefix. The key in use and the last key are refused.
    pub fn remove_key(&self, prefix: &str) -> Result<String> {
        let keys = self.list_keys()?;
        let names: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        let name = crate::id::resolve_prefix(prefix, names.iter().copied())
            .map_err(|_| {
                Error::Usage(format!(
                    "no single key matches {prefix}: see `hcbackup key list`"
                ))
            })?
            .to_string();
        if name == self.key_id {
            return Err(Error::Usage(
                "that is the key you unlocked with: open with another password to remove it, or use `key passwd`".into(),
            ));
        }
        self.backend.delete(&format!("keys/{name}"))?;
        Ok(name)
    }

    /// Replace the current password: add the new key file, then remove the old one.
    pub fn change_password(&mut self, new_password: &[u8]) -> Result<String> {
        let new = self.add_key(new_password)?;
        let old = std::mem::replace(&mut self.key_id, new.clone());
        self.backend.delete(&format!("keys/{old}"))?;
        Ok(new)
    }
}
