//! A Google Drive destination: the repository's objects as files under one folder.
//!
//! Layout: an object `config` is a file `config` in the folder; `index/<id>` is a
//! file `<id>` in the subfolder `index`; `packs/ab/<id>` is a file named `ab/<id>`
//! in the subfolder `packs` (Drive allows `/` in names). One folder per object
//! kind keeps listings short: `snapshots` is listed without paging through packs.
//!
//! Drive names are not unique: two uploads of one name make two files. Objects
//! are content-named, so duplicates hold the same bytes; reads take the oldest
//! that works, `put` of an existing name with the same size and md5 sends nothing,
//! and a replaced object's older copies are deleted. Folder names are resolved
//! once and every duplicate folder is listed.
//!
//! Each upload is checked against the `md5Checksum` Drive computes; a mismatch
//! deletes the copy and is reported as transient, so the retry layer sends it
//! again. Credentials: a service account's JSON key (`GOOGLE_CREDENTIALS`, inline
//! or a path); its token lives in memory only. A folder in a shared drive is
//! supported (and needed: a service account has no storage quota of its own).

mod api;
mod error;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use google_drive3::{hyper_rustls, hyper_util, yup_oauth2, DriveHub};
use md5::{Digest, Md5};

use super::{Backend, StorageError, StorageResult};
use api::{quote, Api, Entry, FOLDER_MIME};

/// Where the Drive API is unless `HCBACKUP_DRIVE_ROOT_URL` says otherwise.
pub const GOOGLE_ROOT_URL: &str = "https://www.googleapis.com/";

#[derive(Clone)]
pub struct DriveConfig {
    /// The id of the folder that holds the repository.
    pub folder: String,
    /// `GOOGLE_CREDENTIALS`: the service account's JSON key, inline or a path.
    credentials: Option<String>,
    /// The API's root (`https://www.googleapis.com/`); tests point it at a local server.
    pub root_url: String,
    /// The longest one request may take before it is abandoned and retried.
    pub timeout: Duration,
}

impl std::fmt::Debug for DriveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveConfig")
            .field("folder", &self.folder)
            .field("root_url", &self.root_url)
            .finish_non_exhaustive()
    }
}

/// What the environment says about Drive, read once by `config` (through its
/// lookup): the credentials and API root every `drive://` location shares, and
/// the seed's mirror.
#[derive(Clone, Default)]
pub struct DriveEnv {
    /// GOOGLE_CREDENTIALS: the service account's JSON key, inline or a path.
    credentials: Option<String>,
    /// HCBACKUP_DRIVE_ROOT_URL (tests), ending in '/'.
    root_url: String,
    /// GOOGLE_DRIVE_BACKUP_FOLDER: the seed's mirror.
    pub seed_folder: Option<String>,
}

impl std::fmt::Debug for DriveEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriveEnv")
            .field("root_url", &self.root_url)
            .field("seed_folder", &self.seed_folder)
            .finish_non_exhaustive()
    }
}

impl DriveEnv {
    pub fn read(env: &dyn crate::config::lookup::Lookup) -> DriveEnv {
        let mut root_url = env
            .var("HCBACKUP_DRIVE_ROOT_URL")
            .unwrap_or_else(|| GOOGLE_ROOT_URL.into());
        if !root_url.ends_with('/') {
            root_url.push('/');
        }
        DriveEnv {
            credentials: env.var("GOOGLE_CREDENTIALS"),
            root_url,
            seed_folder: env
                .var("GOOGLE_DRIVE_BACKUP_FOLDER")
                .map(|f| f.trim().to_string()),
        }
    }
}

impl DriveConfig {
    /// A folder, the service account's key (JSON, or a path to it) and the API root.
    pub fn new(folder: &str, credentials: &str, root_url: &str) -> DriveConfig {
        DriveConfig {
            folder: folder.to_string(),
            credentials: Some(credentials.to_string()),
            root_url: format!("{}/", root_url.trim_end_matches('/')),
            timeout: crate::config::tuning::DEFAULT_CLOUD_TIMEOUT,
        }
    }

    /// `drive://FOLDER_ID`, with the credentials and API root of `env`.
    pub fn from_url(url: &str, env: &DriveEnv) -> Option<DriveConfig> {
        let id = url.strip_prefix("drive://")?.trim_matches('/');
        (!id.is_empty() && !id.contains('/')).then(|| DriveConfig::with_env(id, env))
    }

    /// The seed's mirror: folder `GOOGLE_DRIVE_BACKUP_FOLDER`.
    pub fn seed(env: &DriveEnv) -> Option<DriveConfig> {
        env.seed_folder
            .as_deref()
            .map(|f| DriveConfig::with_env(f, env))
    }

    fn with_env(folder: &str, env: &DriveEnv) -> DriveConfig {
        DriveConfig {
            folder: folder.to_string(),
            credentials: env.credentials.clone(),
            root_url: env.root_url.clone(),
            timeout: crate::config::tuning::get().cloud_timeout,
        }
    }

    /// The service account key, read from `GOOGLE_CREDENTIALS`.
    fn service_account(&self) -> StorageResult<yup_oauth2::ServiceAccountKey> {
        let raw = self.credentials.as_deref().ok_or_else(|| {
            StorageError::Auth(
                "GOOGLE_CREDENTIALS is not set: give the service account's JSON key, inline or as a file path".into(),
            )
        })?;
        let text = if raw.trim_start().starts_with('{') {
            zeroize::Zeroizing::new(raw.to_string())
        } else {
            // The value is never shown: a key pasted in another form (base64,
            // quoted) would land in logs, alerts and the audit log.
            zeroize::Zeroizing::new(std::fs::read_to_string(raw.trim()).map_err(|e| {
                StorageError::Auth(format!(
                    "GOOGLE_CREDENTIALS is neither the service account's JSON key nor the path of a file that can be read ({}); the value is not shown",
                    e.kind()
                ))
            })?)
        };
        yup_oauth2::parse_service_account_key(text.as_bytes()).map_err(|e| {
            StorageError::Auth(format!(
                "GOOGLE_CREDENTIALS is not a service account's JSON key ({}); download one from the Google Cloud console",
                e.to_string().replace("Bad service account key: ", "")
            ))
        })
    }
}

/// What is known of the destination, filled in as it is used.
#[derive(Default)]
struct State {
    /// The root folder was found (and its shared drive, if any, noted).
    root_ok: bool,
    /// Subfolder name → its folder ids (more than one when Drive holds duplicates).
    folders: HashMap<String, Vec<String>>,
    /// Subfolder name → file name → copies, for folders listed in full.
    listings: HashMap<String, HashMap<String, Vec<Entry>>>,
}

pub struct DriveBackend {
    rt: tokio::runtime::Runtime,
    api: Api,
    cfg: DriveConfig,
    client_email: String,
    state: Mutex<State>,
    /// Held while a folder is created, so two threads do not make two.
    creating: Mutex<()>,
}

/// `packs/ab/cd` → ("packs", "ab/cd"); `config` → ("", "config").
fn split(path: &str) -> (&str, &str) {
    path.split_once('/').unwrap_or(("", path))
}

impl DriveBackend {
    pub fn new(cfg: DriveConfig) -> StorageResult<DriveBackend> {
        let key = cfg.service_account()?;
        let client_email = key.client_email.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StorageError::Permanent(format!("starting the Drive client: {e}")))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| {
                StorageError::Permanent(format!(
                    "no TLS root certificates for Google Drive ({e}); install ca-certificates"
                ))
            })?
            .https_or_http()
            .enable_http1()
            .build();
        let executor = hyper_util::rt::TokioExecutor::new();
        let client =
            hyper_util::client::legacy::Client::builder(executor.clone()).build(connector.clone());
        let token_client: hyper_util::client::legacy::Client<_, String> =
            hyper_util::client::legacy::Client::builder(executor).build(connector);
        let auth = rt
            .block_on(
                yup_oauth2::ServiceAccountAuthenticator::with_client(
                    key,
                    yup_oauth2::CustomHyperClientBuilder::from(token_client),
                )
                .build(),
            )
            .map_err(|e| StorageError::Auth(format!("GOOGLE_CREDENTIALS: {e}")))?;
        let mut hub = DriveHub::new(client, auth);
        hub.root_url(cfg.root_url.clone());
        hub.base_url(format!("{}drive/v3/", cfg.root_url));
        Ok(DriveBackend {
            rt,
            api: Api::new(hub, &cfg.root_url),
            cfg,
            client_email,
            state: Mutex::new(State::default()),
            creating: Mutex::new(()),
        })
    }

    /// Run one call on the backend's runtime, abandoned after the timeout.
    fn run<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = StorageResult<T>>,
    ) -> StorageResult<T> {
        let limit = self.cfg.timeout;
        self.rt.block_on(async {
            tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
                Err(StorageError::Transient(format!(
                    "Google Drive {what}: no answer within {} s",
                    limit.as_secs()
                )))
            })
        })
    }

    /// Check once that the folder exists, is a folder, and whether it is in a shared drive.
    fn ensure_root(&self) -> StorageResult<()> {
        if self.state.lock().unwrap().root_ok {
            return Ok(());
        }
        let id = &self.cfg.folder;
        let (is_folder, drive) = self.run("folder", self.api.describe(id)).map_err(|e| match e {
            StorageError::NotFound(_) => StorageError::Permanent(format!(
                "Google Drive folder {id} not found, or not shared with {}: share it with the service account, or check GOOGLE_DRIVE_BACKUP_FOLDER",
                self.client_email
            )),
            other => other,
        })?;
        if !is_folder {
            return Err(StorageError::Permanent(format!(
                "Google Drive {id} is a file, not a folder: check GOOGLE_DRIVE_BACKUP_FOLDER"
            )));
        }
        let _ = self.api.shared_drive.set(drive);
        self.state.lock().unwrap().root_ok = true;
        Ok(())
    }

    /// The folder ids of subfolder `dir` ("" is the root); created when `create`.
    fn folders(&self, dir: &str, create: bool) -> StorageResult<Vec<String>> {
        self.ensure_root()?;
        if dir.is_empty() {
            return Ok(vec![self.cfg.folder.clone()]);
        }
        if let Some(ids) = self.state.lock().unwrap().folders.get(dir) {
            return Ok(ids.clone());
        }
        let find = || {
            let q = format!(
                "{} in parents and name = {} and mimeType = {} and trashed = false",
                quote(&self.cfg.folder),
                quote(dir),
                quote(FOLDER_MIME)
            );
            self.run(dir, self.api.list(&q, dir))
                .map(|v| v.into_iter().map(|e| e.id).collect::<Vec<_>>())
        };
        let mut ids = find()?;
        if ids.is_empty() && create {
            let _guard = self.creating.lock().unwrap();
            if let Some(ids) = self.state.lock().unwrap().folders.get(dir) {
                return Ok(ids.clone());
            }
            ids = find()?;
            if ids.is_empty() {
                let e = self.run(dir, self.api.create_folder(&self.cfg.folder, dir))?;
                ids = vec![e.id];
            }
            self.state
                .lock()
                .unwrap()
                .folders
                .insert(dir.into(), ids.clone());
        } else if !ids.is_empty() {
            self.state
                .lock()
                .unwrap()
                .folders
                .insert(dir.into(), ids.clone());
        }
        Ok(ids)
    }

    /// The copies of object `path`, oldest first (none: not there).
    fn entries(&self, path: &str) -> StorageResult<Vec<Entry>> {
        let (dir, name) = split(path);
        if let Some(found) = self
            .state
            .lock()
            .unwrap()
            .listings
            .get(dir)
            .and_then(|l| l.get(name))
        {
            return Ok(found.clone());
        }
        let mut out = Vec::new();
        for folder in self.folders(dir, false)? {
            let q = format!(
                "{} in parents and name = {} and trashed = false",
                quote(&folder),
                quote(name)
            );
            out.extend(
                self.run(path, self.api.list(&q, path))?
                    .into_iter()
                    .filter(|e| !e.folder),
            );
        }
        Ok(out)
    }

    /// Remember (or forget, with an empty list) the copies of `path`.
    fn remember(&self, path: &str, copies: Vec<Entry>) {
        let (dir, name) = split(path);
        let mut st = self.state.lock().unwrap();
        if let Some(l) = st.listings.get_mut(dir) {
            if copies.is_empty() {
                l.remove(name);
            } else {
                l.insert(name.to_string(), copies);
            }
        }
    }

    /// Read `path` (or a range of it) from the first copy that answers.
    fn read(&self, path: &str, range: Option<(u64, u32)>) -> StorageResult<Vec<u8>> {
        for e in self.entries(path)? {
            if range.is_none() && e.size > super::MAX_GET {
                return Err(StorageError::Permanent(format!(
                    "{path} is larger than any object this program writes (someone changed the repository): refusing to read it"
                )));
            }
            if let Some((offset, len)) = range {
                if offset + len as u64 > e.size {
                    return Err(StorageError::Permanent(format!(
                        "{path}: shorter than expected (truncated?)"
                    )));
                }
            }
            match self.run(path, self.api.download(&e.id, range, path)) {
                // Deleted by someone else since it was listed: try the next copy.
                Err(StorageError::NotFound(_)) => continue,
                Err(other) => return Err(other),
                Ok(data) => {
                    let want = range.map_or(e.size, |(_, len)| len as u64);
                    if data.len() as u64 != want {
                        return Err(StorageError::Transient(format!(
                            "Google Drive {path}: {} bytes arrived of {want}",
                            data.len()
                        )));
                    }
                    return Ok(data);
                }
            }
        }
        // Every known copy is gone; forget them, so the next call asks Drive afresh.
        self.remember(path, Vec::new());
        Err(StorageError::NotFound(path.to_string()))
    }
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

impl Backend for DriveBackend {
    fn location(&self) -> String {
        format!("drive://{}", self.cfg.folder)
    }

    fn put(&self, path: &str, data: &[u8]) -> StorageResult<()> {
        let (dir, name) = split(path);
        let parent = self.folders(dir, true)?[0].clone();
        let existing = self.entries(path)?;
        let md5 = md5_hex(data);
        if existing
            .iter()
            .any(|e| e.size == data.len() as u64 && e.md5.as_deref() == Some(md5.as_str()))
        {
            return Ok(());
        }
        let new = self.run(path, self.api.upload(&parent, name, data, path))?;
        if new.md5.as_deref() != Some(md5.as_str()) || new.size != data.len() as u64 {
            let _ = self.run(path, self.api.delete(&new.id, path));
            return Err(StorageError::Transient(format!(
                "Google Drive {path}: the stored copy does not match what was sent (md5 {}, size {}; expected {md5}, {}); it was removed and will be sent again",
                new.md5.as_deref().unwrap_or("missing"),
                new.size,
                data.len()
            )));
        }
        for old in &existing {
            match self.run(path, self.api.delete(&old.id, path)) {
                Ok(()) | Err(StorageError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.remember(path, vec![new]);
        Ok(())
    }

    fn get(&self, path: &str) -> StorageResult<Vec<u8>> {
        self.read(path, None)
    }

    fn get_range(&self, path: &str, offset: u64, len: u32) -> StorageResult<Vec<u8>> {
        if len == 0 {
            self.stat(path)?;
            return Ok(Vec::new());
        }
        self.read(path, Some((offset, len)))
    }

    fn stat(&self, path: &str) -> StorageResult<u64> {
        self.entries(path)?
            .first()
            .map(|e| e.size)
            .ok_or_else(|| StorageError::NotFound(path.to_string()))
    }

    fn list(&self, dir: &str) -> StorageResult<Vec<(String, u64)>> {
        let dir = dir.trim_end_matches('/');
        let mut listing: HashMap<String, Vec<Entry>> = HashMap::new();
        for folder in self.folders(dir, false)? {
            let q = format!("{} in parents and trashed = false", quote(&folder));
            for e in self.run(dir, self.api.list(&q, dir))? {
                if !e.folder {
                    listing.entry(e.name.clone()).or_default().push(e);
                }
            }
        }
        let mut out: Vec<(String, u64)> = listing
            .iter()
            .map(|(name, copies)| (name.clone(), copies[0].size))
            .collect();
        out.sort();
        let out = super::shaped(dir, out);
        if !dir.is_empty() {
            self.state
                .lock()
                .unwrap()
                .listings
                .insert(dir.to_string(), listing);
        }
        Ok(out)
    }

    fn delete(&self, path: &str) -> StorageResult<()> {
        let copies = self.entries(path)?;
        if copies.is_empty() {
            return Err(StorageError::NotFound(path.to_string()));
        }
        for e in &copies {
            match self.run(path, self.api.delete(&e.id, path)) {
                Ok(()) | Err(StorageError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        self.remember(path, Vec::new());
        Ok(())
    }

    fn create_layout(&self, dirs: &[&str]) -> StorageResult<()> {
        for d in dirs {
            self.folders(d, true)?;
        }
        Ok(())
    }
}
