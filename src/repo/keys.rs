//! Creating a repository and managing its key files (one per password).

use std::path::Path;
use std::sync::Arc;

use rand::RngCore;

use super::config::RepoConfig;
use super::{Repository, DIRS};
use crate::catalog::Catalog;
use crate::crypto::{KdfParams, KeyFile, Kind, MasterKey};
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

/// Largest key file read.
pub(crate) const MAX_KEY_FILE: u64 = 64 * 1024;

/// Catalog meta: the blob count when this machine last rotated the key.
const BLOBS_AT_ROTATION: &str = "blobs_at_rotation";

/// Password attempts (Argon2id runs) one open may make. Key files come from the
/// storage, which is hostile: a flood of planted ones must not cost an hour.
pub const MAX_KEY_ATTEMPTS: usize = 16;

/// Unlock the master key set with `password`: the key file this machine used
/// last (`preferred`) first, then the others, at most `MAX_KEY_ATTEMPTS`. A key
/// file is accepted only if its KDF settings are sane and the key set it holds is
/// this repository's: it must reproduce `config`'s check value (format 2), or
/// open an object already in the repository (format 1). A file that opens with
/// the password but holds other keys was planted: it is reported and skipped.
pub(super) fn unlock(
    backend: &dyn Backend,
    config: &RepoConfig,
    password: &[u8],
    preferred: Option<&str>,
) -> Result<(MasterKey, String, Vec<u8>)> {
    let repo_id = config.id_bytes();
    let mut names: Vec<String> = Vec::new();
    for (n, size) in backend.list("keys")? {
        // A key file is a few hundred bytes of JSON.
        if size > MAX_KEY_FILE {
            tracing::warn!(
                "key file keys/{n} is {size} bytes, no key file of ours: skipped (planted?)"
            );
        } else {
            names.push(n);
        }
    }
    if names.is_empty() {
        return Err(Error::corrupt(
            format!("repository {}", backend.location()),
            "it has no key files",
        ));
    }
    if let Some(i) = preferred.and_then(|p| names.iter().position(|n| n.starts_with(p))) {
        let first = names.remove(i);
        names.insert(0, first);
    }
    let mut attempts = 0;
    // Key files that open with the password but do not match `config`.
    let mut mismatched: Vec<&str> = Vec::new();
    for name in &names {
        let bytes = match backend.get(&format!("keys/{name}")) {
            Ok(b) => b,
            Err(StorageError::NotFound(_)) => continue, // removed meanwhile
            Err(e) => return Err(e.into()),
        };
        let Some(kf) = KeyFile::from_json(&bytes) else {
            tracing::warn!("key file keys/{name} does not parse; skipped");
            continue;
        };
        if let Some(why) = kf.kdf_refused() {
            tracing::warn!("key file keys/{name} skipped: {why} (planted by someone with access to the storage?)");
            continue;
        }
        if attempts == MAX_KEY_ATTEMPTS {
            return Err(Error::Failed(format!(
                "tried {MAX_KEY_ATTEMPTS} of the {} key files of {} without success: the password is wrong, or someone planted key files there; check `keys/` (hcbackup writes one file per password), or set HCBACKUP_KEY_ID to your key file's id (`hcbackup key list` shows it)",
                names.len(),
                backend.location()
            )));
        }
        attempts += 1;
        let Some(k) = kf.unwrap_key(password, &repo_id) else {
            continue;
        };
        if key_belongs(backend, config, &k)? {
            for m in &mismatched {
                tracing::warn!(
                    "key file keys/{m} opens with this password but holds keys that are not this repository's (planted?): ignored; remove it with `hcbackup key remove {}`",
                    &m[..8.min(m.len())]
                );
            }
            return Ok((k, name.clone(), bytes));
        }
        mismatched.push(name);
    }
    if !mismatched.is_empty() {
        // The password opens key files, but none matches `config`: either they
        // were all planted, or `config` itself was changed.
        return Err(Error::Failed(format!(
            "the password opens key file(s) {} of {}, but the repository's config does not match them: someone changed `config` (or planted those key files); restore `config` from another copy, and check `keys/`",
            mismatched.iter().map(|m| &m[..8.min(m.len())]).collect::<Vec<_>>().join(", "),
            backend.location()
        )));
    }
    Err(Error::WrongPassword(backend.location()))
}

/// Whether `key` is the repository's key set: by `config`'s check value, or (a
/// format-1 config has none) by the objects already there: it must open more
/// than half of a random sample of up to 16 index objects and manifests. One
/// damaged object does not lock the owner out, and someone who rolls `config`
/// back to format 1 and plants objects of their own (with a key file for their
/// key under a guessed password) must outnumber the repository's own objects.
/// An empty format-1 repository has nothing to check against.
fn key_belongs(backend: &dyn Backend, config: &RepoConfig, key: &MasterKey) -> Result<bool> {
    if let Some(ok) = config.key_matches(key) {
        return Ok(ok);
    }
    use rand::seq::SliceRandom;
    let mut objects: Vec<(&str, Kind, String)> = Vec::new();
    for (dir, kind) in [("index", Kind::Index), ("snapshots", Kind::Snapshot)] {
        objects.extend(backend.list(dir)?.into_iter().map(|(n, _)| (dir, kind, n)));
    }
    objects.shuffle(&mut rand::rngs::OsRng);
    let (mut tried, mut opened) = (0, 0);
    for (dir, kind, name) in objects.into_iter().take(16) {
        let id = crate::id::ObjectId::from_hex(&name).expect("listings are well formed");
        let sealed = match backend.get(&format!("{dir}/{name}")) {
            Ok(b) => b,
            Err(StorageError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        tried += 1;
        if crate::codec::decode(key, kind, &id.0, &sealed, 512 << 20)
            .is_ok_and(|p| key.id_of(&p) == id.0)
        {
            opened += 1;
        }
    }
    Ok(tried == 0 || opened * 2 > tried)
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
        let key = MasterKey::generate();
        let config = RepoConfig::new_v2(
            hex::encode(idb),
            crate::util::rfc3339(crate::util::now()),
            &key,
            0,
        );
        let kf = KeyFile::wrap(
            &key,
            password,
            &idb,
            KdfParams::for_new_key(),
            config.created.clone(),
        );
        let key_id = new_key_name();
        let key_file = kf.to_json();
        backend.put(&format!("keys/{key_id}"), &key_file)?;
        backend.put("config", &config.to_json())?;
        let catalog = Arc::new(Catalog::open(&config.catalog_path(cache_dir))?);
        catalog.set_meta(super::LOCATION, &backend.location())?;
        catalog.set_meta(
            super::KEY_FINGERPRINT,
            &super::key_fingerprint(&key, &config),
        )?;
        Ok(Repository {
            backend,
            config,
            key,
            key_id,
            key_file,
            catalog,
            lock_wait: std::time::Duration::ZERO,
            no_lock: false,
            lock_lost: Arc::default(),
            reused: Default::default(),
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
    /// Returns the new key file's id and bytes.
    pub fn add_key(&self, password: &[u8]) -> Result<(String, Vec<u8>)> {
        self.write_key_file(password)
    }

    /// Write a key file for `password`: its id and bytes.
    fn write_key_file(&self, password: &[u8]) -> Result<(String, Vec<u8>)> {
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
        let bytes = kf.to_json();
        self.backend.put(&format!("keys/{name}"), &bytes)?;
        Ok((name, bytes))
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

    /// Seal new objects under a new key (the next epoch's): the config is rewritten
    /// with the new epoch and its check value; every earlier epoch stays readable
    /// with the same passwords. Returns the new epoch.
    pub fn rotate_key(&mut self) -> Result<u32> {
        let epoch = self.key.epoch() + 1;
        if epoch > crate::crypto::MAX_EPOCH {
            return Err(Error::Failed(
                "the repository has used every key epoch".into(),
            ));
        }
        let config = RepoConfig::new_v2(
            self.config.id.clone(),
            self.config.created.clone(),
            &self.key,
            epoch,
        );
        self.backend.put("config", &config.to_json())?;
        self.key.set_epoch(epoch);
        self.config = config;
        self.catalog
            .set_meta(super::KEY_EPOCH, &epoch.to_string())?;
        let (_, _, blobs) = self.catalog.counts()?;
        self.catalog
            .set_meta(BLOBS_AT_ROTATION, &blobs.to_string())?;
        Ok(epoch)
    }

    /// About how many blobs were sealed under the current key: the catalog's
    /// blobs since the last `key rotate` this machine made (all of them before).
    pub fn blobs_in_epoch(&self) -> Result<u64> {
        let (_, _, blobs) = self.catalog.counts()?;
        let at: u64 = self
            .catalog
            .meta(BLOBS_AT_ROTATION)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(blobs.saturating_sub(at))
    }

    /// The key file this repository was opened with.
    pub fn key_file(&self) -> &str {
        &self.key_id
    }

    /// That key file's bytes as they opened (or were written): what `mirror`
    /// copies, whatever the storage holds under its name by then.
    pub fn key_file_bytes(&self) -> &[u8] {
        &self.key_file
    }

    /// Replace the current password: add the new key file, then remove the old one.
    pub fn change_password(&mut self, new_password: &[u8]) -> Result<String> {
        let (new, bytes) = self.write_key_file(new_password)?;
        self.key_file = bytes;
        let old = std::mem::replace(&mut self.key_id, new.clone());
        self.backend.delete(&format!("keys/{old}"))?;
        Ok(new)
    }
}
