//! The Drive v3 calls hcbackup makes, through google-drive3's hub.
//!
//! Uploads, listings, downloads and deletes are google-drive3's own calls. Two
//! requests are built here on the hub's HTTP client and token, because the
//! generated API has no way to express them: creating a folder (its `files.create`
//! always uploads media) and a ranged download (it sets no `Range` header).

use std::io::Cursor;

use google_drive3::api::{File, Scope};
use google_drive3::common;
use google_drive3::{hyper, hyper_rustls, hyper_util, DriveHub};
use http_body_util::BodyExt;

use super::error::{classify, from_status};
use crate::storage::{StorageError, StorageResult};

pub type Connector =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
const FIELDS: &str = "id,name,size,md5Checksum,mimeType";
const LIST_FIELDS: &str = "nextPageToken,files(id,name,size,md5Checksum,mimeType)";
/// Objects up to this size go up in one multipart request; larger ones resumable,
/// in google-drive3's 8 MiB chunks.
pub const SIMPLE_MAX: usize = 5 << 20;

/// One file (or folder) as Drive lists it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: String,
    pub name: String,
    pub size: u64,
    pub md5: Option<String>,
    pub folder: bool,
}

impl Entry {
    fn from_file(f: File) -> Option<Entry> {
        Some(Entry {
            id: f.id?,
            name: f.name.unwrap_or_default(),
            size: f.size.unwrap_or(0).max(0) as u64,
            md5: f.md5_checksum,
            folder: f.mime_type.as_deref() == Some(FOLDER_MIME),
        })
    }
}

/// Quote a value for a `q` expression.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub struct Api {
    pub hub: DriveHub<Connector>,
    /// The same as the hub's (its field is private): `{root}drive/v3/`.
    base_url: String,
    /// Set when the folder lives in a shared drive: listings then search that drive.
    pub shared_drive: std::sync::OnceLock<Option<String>>,
}

impl Api {
    pub fn new(hub: DriveHub<Connector>, root_url: &str) -> Api {
        Api {
            hub,
            base_url: format!("{root_url}drive/v3/"),
            shared_drive: std::sync::OnceLock::new(),
        }
    }

    async fn token(&self) -> StorageResult<String> {
        match self.hub.auth.get_token(&[Scope::Full.as_ref()]).await {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(StorageError::Auth(
                "no Google access token; check GOOGLE_CREDENTIALS".into(),
            )),
            Err(e) => Err(classify("token", common::Error::MissingToken(e))),
        }
    }

    /// A folder's (or file's) id, kind and shared drive, or NotFound.
    pub async fn describe(&self, id: &str) -> StorageResult<(bool, Option<String>)> {
        let (_, f) = self
            .hub
            .files()
            .get(id)
            .supports_all_drives(true)
            .param("fields", "id,mimeType,driveId")
            .doit()
            .await
            .map_err(|e| classify(id, e))?;
        Ok((f.mime_type.as_deref() == Some(FOLDER_MIME), f.drive_id))
    }

    /// Every file matching `q`, through all pages, oldest first.
    pub async fn list(&self, q: &str, what: &str) -> StorageResult<Vec<Entry>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = self
                .hub
                .files()
                .list()
                .q(q)
                .page_size(1000)
                .order_by("createdTime")
                .supports_all_drives(true)
                .include_items_from_all_drives(true)
                .param("fields", LIST_FIELDS);
            if let Some(Some(d)) = self.shared_drive.get() {
                call = call.corpora("drive").drive_id(d);
            }
            if let Some(t) = &token {
                call = call.page_token(t);
            }
            let (_, page) = call.doit().await.map_err(|e| classify(what, e))?;
            out.extend(
                page.files
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(Entry::from_file),
            );
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// Upload `data` as a new file `name` in `parent`.
    pub async fn upload(
        &self,
        parent: &str,
        name: &str,
        data: &[u8],
        what: &str,
    ) -> StorageResult<Entry> {
        let meta = File {
            name: Some(name.to_string()),
            parents: Some(vec![parent.to_string()]),
            ..Default::default()
        };
        let call = self
            .hub
            .files()
            .create(meta)
            .supports_all_drives(true)
            .param("fields", FIELDS);
        let mime: mime::Mime = "application/octet-stream"
            .parse()
            .expect("a valid mime type");
        let r = if data.len() <= SIMPLE_MAX {
            call.upload(Cursor::new(data), mime).await
        } else {
            call.upload_resumable(Cursor::new(data), mime).await
        };
        let (_, f) = r.map_err(|e| classify(what, e))?;
        Entry::from_file(f).ok_or_else(|| {
            StorageError::Transient(format!("Google Drive {what}: the upload answer has no id"))
        })
    }

    /// Create folder `name` in `parent` (a metadata-only `files.create`).
    pub async fn create_folder(&self, parent: &str, name: &str) -> StorageResult<Entry> {
        let body = serde_json::json!({
            "name": name,
            "mimeType": FOLDER_MIME,
            "parents": [parent],
        })
        .to_string();
        let url = format!(
            "{}files?supportsAllDrives=true&fields={}",
            self.base_url,
            FIELDS.replace(',', "%2C")
        );
        let req = hyper::Request::post(url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(common::to_body(Some(body)));
        let bytes = self.send(req, name).await?;
        let f: File = serde_json::from_slice(&bytes).map_err(|e| {
            StorageError::Transient(format!(
                "Google Drive folder {name}: unreadable answer: {e}"
            ))
        })?;
        Entry::from_file(f).ok_or_else(|| {
            StorageError::Transient(format!("Google Drive folder {name}: the answer has no id"))
        })
    }

    /// A file's bytes, all of them or `len` from `offset`.
    pub async fn download(
        &self,
        id: &str,
        range: Option<(u64, u32)>,
        what: &str,
    ) -> StorageResult<Vec<u8>> {
        if let Some((offset, len)) = range {
            let url = format!(
                "{}files/{id}?alt=media&supportsAllDrives=true",
                self.base_url
            );
            let req = hyper::Request::get(url)
                .header(
                    hyper::header::RANGE,
                    format!("bytes={}-{}", offset, offset + len as u64 - 1),
                )
                .body(common::to_body::<String>(None));
            return self.send(req, what).await;
        }
        let (resp, _) = self
            .hub
            .files()
            .get(id)
            .supports_all_drives(true)
            .param("alt", "media")
            .doit()
            .await
            .map_err(|e| classify(what, e))?;
        read_body(resp.into_body(), what).await
    }

    /// Delete for good; where that is refused (in a shared drive only a Manager
    /// may), move to the trash instead, which a Content manager may do (Drive
    /// empties a shared drive's trash after 30 days).
    pub async fn delete(&self, id: &str, what: &str) -> StorageResult<()> {
        let r = self
            .hub
            .files()
            .delete(id)
            .supports_all_drives(true)
            .doit()
            .await
            .map(|_| ())
            .map_err(|e| classify(what, e));
        let Err(StorageError::Auth(refused)) = r else {
            return r;
        };
        let trash = File {
            trashed: Some(true),
            ..Default::default()
        };
        self.hub
            .files()
            .update(trash, id)
            .supports_all_drives(true)
            .param("fields", "id,trashed")
            .doit_without_upload()
            .await
            .map(|_| ())
            .map_err(|e| match classify(what, e) {
                StorageError::Auth(_) => StorageError::Auth(refused),
                other => other,
            })
    }

    /// Send a request built here, with the hub's token and client; the body of a
    /// success, or the error in the storage vocabulary.
    async fn send(
        &self,
        req: Result<hyper::Request<common::Body>, hyper::http::Error>,
        what: &str,
    ) -> StorageResult<Vec<u8>> {
        let token = self.token().await?;
        let mut req =
            req.map_err(|e| StorageError::Permanent(format!("Google Drive {what}: {e}")))?;
        let auth = format!("Bearer {token}").parse().map_err(|_| {
            StorageError::Auth("the Google access token is not a valid header".into())
        })?;
        req.headers_mut().insert(hyper::header::AUTHORIZATION, auth);
        let resp = self
            .hub
            .client
            .request(req)
            .await
            .map_err(|e| classify(what, common::Error::HttpError(e)))?;
        let status = resp.status();
        let bytes = read_body(resp.into_body(), what).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(v) if v["error"].is_object() => classify(what, common::Error::BadRequest(v)),
            _ => from_status(what, status.as_u16(), "", ""),
        })
    }
}

/// The whole body; a connection cut before its end is an error, never short data.
async fn read_body<B>(body: B, what: &str) -> StorageResult<Vec<u8>>
where
    B: hyper::body::Body,
    B::Error: std::fmt::Display,
{
    body.collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .map_err(|e| StorageError::Transient(format!("Google Drive {what}: reading the body: {e}")))
}
