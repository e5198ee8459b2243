//! The project's Google Drive v3 test server, on loopback, speaking the real HTTP
//! API so the production code path (google-drive3 and yup-oauth2) runs unchanged:
//!
//! - `POST /token`: the service-account JWT grant; the JWT's RS256 signature is
//!   checked against the test key's public half, and its `iss`, `aud` and scope.
//! - `GET /drive/v3/files` with `q` (`'id' in parents`, `name = '…'`, `mimeType
//!   = '…'`, `trashed = false`, joined by `and`), `pageSize`, `pageToken`,
//!   `orderBy=createdTime`, shared-drive parameters.
//! - `GET /drive/v3/files/ID` (metadata, or `alt=media` with `Range`), `DELETE`.
//! - `POST /drive/v3/files` (metadata only: folders).
//! - `POST /upload/drive/v3/files?uploadType=multipart` (multipart/related) and
//!   the resumable protocol (`uploadType=resumable`, session URI in `Location`,
//!   `Content-Range` chunks answered by 308 and `Range`, no token on chunks).
//!
//! Like Drive it answers errors as `{"error": {"code", "message", "errors":
//! [{"reason"}]}}`, sends `size` as a string, computes `md5Checksum`, hides
//! shared-drive items from requests without `supportsAllDrives=true`, and refuses
//! uploads by a service account into a My Drive folder (`storageQuotaExceeded`).
//! Knobs inject what is hard to provoke: rate limits, a corrupted upload.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine;
use md5::{Digest, Md5};

const FOLDER: &str = "application/vnd.google-apps.folder";

#[derive(Clone)]
struct Rec {
    id: String,
    name: String,
    parents: Vec<String>,
    mime: String,
    data: Vec<u8>,
    /// Set for items in a shared drive.
    drive: Option<String>,
    seq: u64,
    trashed: bool,
}

struct Session {
    meta: serde_json::Value,
    all_drives: bool,
    total: Option<u64>,
    data: Vec<u8>,
}

#[derive(Default)]
struct St {
    files: BTreeMap<String, Rec>,
    seq: u64,
    sessions: HashMap<String, Session>,
    tokens: HashSet<String>,
    public_key: Vec<u8>,
    email: String,
    /// Answer the next n API requests with 403 userRateLimitExceeded.
    rate_limit: u32,
    /// Store the next n uploads with one byte changed (and answer its md5).
    corrupt: u32,
    /// "METHOD path?query" of every request.
    log: Vec<String>,
    /// Shared drives where the service account is a Content manager: it may
    /// trash files but not delete them for good.
    content_manager: HashSet<String>,
}

pub struct DriveServer {
    /// `http://127.0.0.1:PORT/`, the API root (HCBACKUP_DRIVE_ROOT_URL).
    pub root_url: String,
    st: Arc<Mutex<St>>,
    private_pem: String,
}

struct Req {
    method: String,
    path: String,
    query: HashMap<String, String>,
    raw_query: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

struct Resp {
    code: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn json(code: u16, v: serde_json::Value) -> Resp {
    Resp {
        code,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: v.to_string().into_bytes(),
    }
}

fn error(code: u16, reason: &str, message: &str) -> Resp {
    json(
        code,
        serde_json::json!({"error": {"code": code, "message": message,
            "errors": [{"domain": "global", "reason": reason, "message": message}]}}),
    )
}

fn not_found(id: &str) -> Resp {
    error(404, "notFound", &format!("File not found: {id}."))
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn md5_hex(d: &[u8]) -> String {
    hex::encode(Md5::digest(d))
}

impl Rec {
    fn meta(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "kind": "drive#file", "id": self.id, "name": self.name,
            "mimeType": self.mime, "parents": self.parents,
        });
        if self.mime != FOLDER {
            v["size"] = self.data.len().to_string().into();
            v["md5Checksum"] = md5_hex(&self.data).into();
        }
        if let Some(d) = &self.drive {
            v["driveId"] = d.clone().into();
        }
        v
    }
}

impl DriveServer {
    pub fn start() -> DriveServer {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let public = dir.path().join("pub.der");
        let run = |args: &[&str]| {
            let o = std::process::Command::new("openssl")
                .args(args)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            key.to_str().unwrap(),
        ]);
        run(&[
            "rsa",
            "-in",
            key.to_str().unwrap(),
            "-RSAPublicKey_out",
            "-outform",
            "DER",
            "-out",
            public.to_str().unwrap(),
        ]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let root_url = format!("http://{}/", listener.local_addr().unwrap());
        let st = Arc::new(Mutex::new(St {
            public_key: std::fs::read(&public).unwrap(),
            email: "hcbackup-test@clinic-test.iam.gserviceaccount.com".into(),
            ..Default::default()
        }));
        let s = st.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        DriveServer {
            root_url,
            st,
            private_pem: std::fs::read_to_string(&key).unwrap(),
        }
    }

    /// The service account's JSON key, its token endpoint at `token_root` (the
    /// server itself, or a proxy in front of it).
    pub fn credentials_at(&self, token_root: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "clinic-test",
            "private_key_id": "0123456789abcdef",
            "private_key": self.private_pem,
            "client_email": self.st.lock().unwrap().email,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{token_root}token"),
        })
        .to_string()
    }

    pub fn credentials(&self) -> String {
        self.credentials_at(&self.root_url)
    }

    fn add(
        &self,
        name: &str,
        parent: Option<&str>,
        mime: &str,
        data: Vec<u8>,
        drive: Option<String>,
    ) -> String {
        let mut st = self.st.lock().unwrap();
        st.seq += 1;
        let id = format!("1{:010}x{}", st.seq, rand::random::<u32>());
        let rec = Rec {
            id: id.clone(),
            name: name.into(),
            parents: parent.map(|p| vec![p.to_string()]).unwrap_or_default(),
            mime: mime.into(),
            data,
            drive,
            seq: st.seq,
            trashed: false,
        };
        st.files.insert(id.clone(), rec);
        id
    }

    /// A folder in a new shared drive (the set-up a service account needs).
    pub fn shared_folder(&self, name: &str) -> String {
        let drive = format!("0A{:08x}", rand::random::<u32>());
        self.add(name, None, FOLDER, Vec::new(), Some(drive))
    }

    /// A folder in a shared drive where the service account is a Content manager.
    pub fn content_manager_folder(&self, name: &str) -> String {
        let id = self.shared_folder(name);
        let mut st = self.st.lock().unwrap();
        let drive = st.files[&id].drive.clone().unwrap();
        st.content_manager.insert(drive);
        id
    }

    /// Names of the trashed files directly in `parent`.
    pub fn trashed_in(&self, parent: &str) -> Vec<String> {
        let st = self.st.lock().unwrap();
        st.files
            .values()
            .filter(|r| r.trashed && r.parents.iter().any(|p| p == parent))
            .map(|r| r.name.clone())
            .collect()
    }

    /// A folder in a person's My Drive, shared with the service account.
    pub fn my_drive_folder(&self, name: &str) -> String {
        self.add(name, None, FOLDER, Vec::new(), None)
    }

    /// Put a file straight into the server (another writer's upload).
    pub fn add_file(&self, parent: &str, name: &str, data: &[u8]) -> String {
        let drive = self.st.lock().unwrap().files[parent].drive.clone();
        self.add(
            name,
            Some(parent),
            "application/octet-stream",
            data.to_vec(),
            drive,
        )
    }

    /// The id of subfolder `name` of `parent`.
    pub fn subfolder(&self, parent: &str, name: &str) -> Option<String> {
        let st = self.st.lock().unwrap();
        st.files
            .values()
            .find(|r| r.name == name && r.mime == FOLDER && r.parents.iter().any(|p| p == parent))
            .map(|r| r.id.clone())
    }

    /// (name, bytes) of every file directly in `parent`, oldest first.
    pub fn files_in(&self, parent: &str) -> Vec<(String, Vec<u8>)> {
        let st = self.st.lock().unwrap();
        let mut v: Vec<&Rec> = st
            .files
            .values()
            .filter(|r| !r.trashed && r.parents.iter().any(|p| p == parent))
            .collect();
        v.sort_by_key(|r| r.seq);
        v.into_iter()
            .map(|r| (r.name.clone(), r.data.clone()))
            .collect()
    }

    /// Every stored file's bytes, for scanning.
    pub fn all_bytes(&self) -> Vec<Vec<u8>> {
        self.st
            .lock()
            .unwrap()
            .files
            .values()
            .map(|r| r.data.clone())
            .collect()
    }

    /// Delete every file `name` in `parent` behind hcbackup's back; how many.
    pub fn remove(&self, parent: &str, name: &str) -> usize {
        let mut st = self.st.lock().unwrap();
        let before = st.files.len();
        st.files
            .retain(|_, r| !(r.name == name && r.parents.iter().any(|p| p == parent)));
        before - st.files.len()
    }

    pub fn rate_limit_next(&self, n: u32) {
        self.st.lock().unwrap().rate_limit = n;
    }

    pub fn corrupt_next_uploads(&self, n: u32) {
        self.st.lock().unwrap().corrupt = n;
    }

    /// The requests seen so far ("METHOD path?query").
    pub fn requests(&self) -> Vec<String> {
        self.st.lock().unwrap().log.clone()
    }
}

fn read_req(r: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let (path, raw_query) = target.split_once('?').unwrap_or((&target, ""));
    let query = raw_query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Req {
        method,
        path: path.to_string(),
        query,
        raw_query: raw_query.to_string(),
        headers,
        body,
    })
}

fn serve(conn: TcpStream, st: &Mutex<St>) {
    let _ = conn.set_nodelay(true);
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some(req) = read_req(&mut r) {
        let resp = handle(&req, st);
        let reason = match resp.code {
            200 => "OK",
            204 => "No Content",
            206 => "Partial Content",
            308 => "Resume Incomplete",
            _ => "Error",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Length: {}\r\n",
            resp.code,
            resp.body.len()
        );
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        // One write: a head and body sent apart meet Nagle and delayed ACKs (40 ms).
        let mut out = head.into_bytes();
        out.extend_from_slice(&resp.body);
        if w.write_all(&out).is_err() {
            return;
        }
        if req
            .headers
            .get("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

fn all_drives(req: &Req) -> bool {
    req.query
        .get("supportsAllDrives")
        .is_some_and(|v| v == "true")
}

/// Is `id` visible (shared-drive items need supportsAllDrives=true)?
fn visible(st: &St, id: &str, all_drives: bool) -> bool {
    st.files
        .get(id)
        .is_some_and(|r| r.drive.is_none() || all_drives)
}

fn handle(req: &Req, st: &Mutex<St>) -> Resp {
    let mut st = st.lock().unwrap();
    st.log
        .push(format!("{} {}?{}", req.method, req.path, req.raw_query));
    if req.path == "/token" {
        return token(req, &mut st);
    }
    let session = req.query.get("upload_id").cloned();
    if session.is_none() {
        let bearer = req
            .headers
            .get("authorization")
            .and_then(|a| a.strip_prefix("Bearer "));
        if !bearer.is_some_and(|t| st.tokens.contains(t)) {
            return error(
                401,
                "authError",
                "Request had invalid authentication credentials.",
            );
        }
        if st.rate_limit > 0 {
            st.rate_limit -= 1;
            return error(403, "userRateLimitExceeded", "User rate limit exceeded.");
        }
    }
    let upload =
        req.path == "/upload/drive/v3/files" || req.path == "/resumable/upload/drive/v3/files";
    match (req.method.as_str(), req.path.as_str()) {
        (_, _) if upload && session.is_some() => chunk(req, &mut st, &session.unwrap()),
        ("POST", _) if upload => match req.query.get("uploadType").map(String::as_str) {
            Some("multipart") => multipart(req, &mut st),
            Some("resumable") => start_session(req, &mut st),
            other => error(
                400,
                "badRequest",
                &format!("uploadType {other:?} is not supported"),
            ),
        },
        ("GET", "/drive/v3/files") => list(req, &st),
        ("POST", "/drive/v3/files") => {
            let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
                return error(400, "parseError", "Parse Error");
            };
            create(&mut st, &meta, Vec::new(), all_drives(req))
        }
        (m, p) if p.starts_with("/drive/v3/files/") => {
            let id = &p["/drive/v3/files/".len()..];
            if !visible(&st, id, all_drives(req)) {
                return not_found(id);
            }
            match m {
                "GET" if req.query.get("alt").is_some_and(|a| a == "media") => {
                    media(req, &st.files[id])
                }
                "GET" => json(200, st.files[id].meta()),
                "DELETE" => {
                    let drive = st.files[id].drive.clone();
                    if drive.is_some_and(|d| st.content_manager.contains(&d)) {
                        return error(
                            403,
                            "insufficientFilePermissions",
                            "The user does not have sufficient permissions for this file.",
                        );
                    }
                    st.files.remove(id);
                    Resp {
                        code: 204,
                        headers: vec![],
                        body: vec![],
                    }
                }
                "PATCH" => {
                    let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
                        return error(400, "parseError", "Parse Error");
                    };
                    let r = st.files.get_mut(id).unwrap();
                    if let Some(t) = meta["trashed"].as_bool() {
                        r.trashed = t;
                    }
                    json(200, r.meta())
                }
                _ => error(405, "badRequest", "method not allowed"),
            }
        }
        _ => error(
            404,
            "notFound",
            &format!("no route {} {}", req.method, req.path),
        ),
    }
}

fn token(req: &Req, st: &mut St) -> Resp {
    let form: HashMap<String, String> = String::from_utf8_lossy(&req.body)
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (decode(k), decode(v))))
        .collect();
    let bad = |m: &str| {
        json(
            400,
            serde_json::json!({"error": "invalid_grant", "error_description": m}),
        )
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return bad("grant_type");
    }
    let Some(jwt) = form.get("assertion") else {
        return bad("no assertion");
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return bad("malformed JWT");
    }
    let b64 =
        |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('='));
    let (Ok(claims), Ok(sig)) = (b64(parts[1]), b64(parts[2])) else {
        return bad("base64");
    };
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &st.public_key,
    );
    if key
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .is_err()
    {
        return bad("Invalid JWT Signature.");
    }
    let c: serde_json::Value = serde_json::from_slice(&claims).unwrap_or_default();
    if c["iss"] != st.email.as_str() || !c["aud"].as_str().is_some_and(|a| a.ends_with("/token")) {
        return bad("iss/aud");
    }
    if !c["scope"]
        .as_str()
        .is_some_and(|s| s.contains("auth/drive"))
    {
        return bad("scope");
    }
    let t = format!("ya29.test-{:016x}", rand::random::<u64>());
    st.tokens.insert(t.clone());
    json(
        200,
        serde_json::json!({"access_token": t, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

/// Terms of a `q` expression joined by `and`.
fn matches(q: &str, r: &Rec) -> Result<bool, String> {
    for term in q.split(" and ") {
        let term = term.trim();
        let unq = |s: &str| -> Result<String, String> {
            let s = s.trim();
            let inner = s
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .ok_or(format!("bad literal {s}"))?;
            Ok(inner.replace("\\'", "'").replace("\\\\", "\\"))
        };
        let ok = if let Some(id) = term.strip_suffix(" in parents") {
            let id = unq(id)?;
            r.parents.contains(&id)
        } else if let Some(v) = term.strip_prefix("name = ") {
            r.name == unq(v)?
        } else if let Some(v) = term.strip_prefix("mimeType = ") {
            r.mime == unq(v)?
        } else if let Some(v) = term.strip_prefix("mimeType != ") {
            r.mime != unq(v)?
        } else if term == "trashed = false" {
            !r.trashed
        } else {
            return Err(format!("Invalid Value: {term}"));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn list(req: &Req, st: &St) -> Resp {
    let q = req.query.get("q").cloned().unwrap_or_default();
    let all_drives = req
        .query
        .get("includeItemsFromAllDrives")
        .is_some_and(|v| v == "true")
        && req
            .query
            .get("supportsAllDrives")
            .is_some_and(|v| v == "true");
    if req.query.get("corpora").is_some_and(|c| c == "drive") && !req.query.contains_key("driveId")
    {
        return error(
            400,
            "invalid",
            "The driveId parameter must be specified if and only if corpora is set to drive.",
        );
    }
    let mut hits = Vec::new();
    for r in st.files.values() {
        if r.drive.is_some() && !all_drives {
            continue;
        }
        if let Some(d) = req.query.get("driveId") {
            if r.drive.as_ref() != Some(d) {
                continue;
            }
        }
        match matches(&q, r) {
            Ok(true) => hits.push(r),
            Ok(false) => {}
            Err(m) => return error(400, "invalid", &m),
        }
    }
    hits.sort_by_key(|r| r.seq);
    let size: usize = req
        .query
        .get("pageSize")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let start: usize = req
        .query
        .get("pageToken")
        .and_then(|v| v.strip_prefix("p")?.parse().ok())
        .unwrap_or(0);
    let page: Vec<_> = hits
        .iter()
        .skip(start)
        .take(size)
        .map(|r| r.meta())
        .collect();
    let mut v =
        serde_json::json!({"kind": "drive#fileList", "incompleteSearch": false, "files": page});
    if start + size < hits.len() {
        v["nextPageToken"] = format!("p{}", start + size).into();
    }
    json(200, v)
}

fn media(req: &Req, r: &Rec) -> Resp {
    let d = &r.data;
    let Some(range) = req.headers.get("range") else {
        return Resp {
            code: 200,
            headers: vec![],
            body: d.clone(),
        };
    };
    let spec = range.strip_prefix("bytes=").unwrap_or("");
    let (a, b) = spec.split_once('-').unwrap_or(("", ""));
    let a: usize = a.parse().unwrap_or(usize::MAX);
    let b: usize = b.parse().unwrap_or(d.len().saturating_sub(1));
    if a >= d.len() || a > b {
        return error(
            416,
            "requestedRangeNotSatisfiable",
            "Request range not satisfiable",
        );
    }
    let b = b.min(d.len() - 1);
    Resp {
        code: 206,
        headers: vec![("Content-Range".into(), format!("bytes {a}-{b}/{}", d.len()))],
        body: d[a..=b].to_vec(),
    }
}

const NO_QUOTA: &str = "Service Accounts do not have storage quota. Leverage shared drives (https://developers.google.com/workspace/drive/api/guides/about-shareddrives), or use OAuth delegation instead.";

/// The parents of a new file and its shared drive, checked like Drive does: the
/// parent must be visible, and a service account can only store files in a
/// shared drive.
fn check_parent(
    st: &St,
    meta: &serde_json::Value,
    all_drives: bool,
) -> Result<(Vec<String>, Option<String>), Resp> {
    let parents: Vec<String> = meta["parents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let Some(parent) = parents.first() else {
        return Err(error(403, "storageQuotaExceeded", NO_QUOTA));
    };
    if !visible(st, parent, all_drives) {
        return Err(not_found(parent));
    }
    let drive = st.files[parent].drive.clone();
    if drive.is_none() && meta["mimeType"].as_str() != Some(FOLDER) {
        return Err(error(403, "storageQuotaExceeded", NO_QUOTA));
    }
    Ok((parents, drive))
}

/// Create a file from `meta` and `data`.
fn create(st: &mut St, meta: &serde_json::Value, mut data: Vec<u8>, all_drives: bool) -> Resp {
    let (parents, drive) = match check_parent(st, meta, all_drives) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mime = meta["mimeType"]
        .as_str()
        .unwrap_or("application/octet-stream")
        .to_string();
    if st.corrupt > 0 && !data.is_empty() {
        st.corrupt -= 1;
        data[0] ^= 0x55;
    }
    st.seq += 1;
    let id = format!("1{:010}x{}", st.seq, rand::random::<u32>());
    let rec = Rec {
        id: id.clone(),
        name: meta["name"].as_str().unwrap_or("Untitled").to_string(),
        parents,
        mime,
        data,
        drive,
        seq: st.seq,
        trashed: false,
    };
    let v = rec.meta();
    st.files.insert(id, rec);
    json(200, v)
}

fn multipart(req: &Req, st: &mut St) -> Resp {
    let ct = req.headers.get("content-type").cloned().unwrap_or_default();
    let Some(boundary) = ct
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
    else {
        return error(400, "badContent", "multipart without boundary");
    };
    let delim = format!("\r\n--{}", boundary.trim_matches('"'));
    let mut body = b"\r\n".to_vec();
    body.extend_from_slice(&req.body);
    // Parts lie between delimiters; each is "\r\nheaders\r\n\r\ndata".
    let mut cuts = Vec::new();
    let mut at = 0;
    while let Some(i) = find(&body[at..], delim.as_bytes()) {
        cuts.push(at + i);
        at += i + delim.len();
    }
    let bodies: Vec<&[u8]> = cuts
        .windows(2)
        .map(|w| &body[w[0] + delim.len()..w[1]])
        .filter_map(|p| find(p, b"\r\n\r\n").map(|i| &p[i + 4..]))
        .collect();
    if bodies.len() != 2 {
        return error(400, "badContent", "expected two parts");
    }
    let Ok(meta) = serde_json::from_slice::<serde_json::Value>(bodies[0]) else {
        return error(400, "parseError", "metadata part");
    };
    create(st, &meta, bodies[1].to_vec(), all_drives(req))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn start_session(req: &Req, st: &mut St) -> Resp {
    let meta: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    if let Err(r) = check_parent(st, &meta, all_drives(req)) {
        return r;
    }
    let id = format!("s{:016x}", rand::random::<u64>());
    let all_drives = all_drives(req);
    st.sessions.insert(
        id.clone(),
        Session {
            meta,
            all_drives,
            total: None,
            data: Vec::new(),
        },
    );
    let host = req.headers.get("host").cloned().unwrap_or_default();
    Resp {
        code: 200,
        headers: vec![(
            "Location".into(),
            format!("http://{host}/upload/drive/v3/files?uploadType=resumable&upload_id={id}"),
        )],
        body: vec![],
    }
}

fn chunk(req: &Req, st: &mut St, id: &str) -> Resp {
    let Some(s) = st.sessions.get_mut(id) else {
        return error(404, "notFound", "upload session not found");
    };
    let cr = req
        .headers
        .get("content-range")
        .cloned()
        .unwrap_or_default();
    let Some(spec) = cr.strip_prefix("bytes ") else {
        return error(400, "badRequest", "Content-Range");
    };
    let (range, total) = spec.split_once('/').unwrap_or((spec, "*"));
    let total: Option<u64> = total.parse().ok();
    if total.is_some() {
        s.total = total;
    }
    if range != "*" {
        let first: u64 = range
            .split('-')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        if first != s.data.len() as u64 {
            return error(
                400,
                "badRequest",
                "chunk does not start where the last ended",
            );
        }
        s.data.extend_from_slice(&req.body);
    }
    if s.total == Some(s.data.len() as u64) {
        let s = st.sessions.remove(id).unwrap();
        return create(st, &s.meta, s.data, s.all_drives);
    }
    let mut headers = vec![];
    if !s.data.is_empty() {
        headers.push(("Range".into(), format!("bytes=0-{}", s.data.len() - 1)));
    }
    Resp {
        code: 308,
        headers,
        body: vec![],
    }
}
