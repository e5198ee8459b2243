//! An S3 (or S3-compatible) destination: objects under a prefix in a bucket.
//!
//! The SDK is async; each call runs on the backend's own small tokio runtime, so
//! the synchronous engine can use it from any thread. Credentials come from the
//! standard AWS chain (`AWS_ACCESS_KEY_ID`, profiles, …); `AWS_ENDPOINT_URL` names
//! an S3-compatible server, and then path-style addressing is used unless
//! `S3_FORCE_PATH_STYLE=false`. Every upload carries a SHA-256 checksum the server
//! verifies; objects larger than `MULTIPART_THRESHOLD` go up in parts. Server-side
//! encryption (SSE-S3, AES256) is asked for by default, on top of ours.
//! TLS: rustls with ring, the project's one TLS stack.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::primitives::DateTime as S3Time;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode, ServerSideEncryption, StorageClass,
};
use aws_sdk_s3::Client;

use super::{Backend, StorageError, StorageResult};

/// Objects above this go up in parts of `PART_SIZE`.
pub const MULTIPART_THRESHOLD: usize = 16 << 20;
pub const PART_SIZE: usize = 8 << 20;

#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    /// Prepended to every object name; "" or ending in '/'.
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: Option<bool>,
    /// Ask for SSE-S3 (AES256) on every object.
    pub sse: bool,
    pub storage_class: Option<String>,
    /// S3 Object Lock (opt-in; the bucket must have it enabled): new objects are
    /// retained this many days, in `lock_compliance` mode or else governance mode.
    pub lock_days: Option<u32>,
    pub lock_compliance: bool,
}

/// What the environment says about S3, read once by `config` (through its
/// lookup): the settings every `s3://` location shares, and the seed's mirror.
#[derive(Clone, Debug, Default)]
pub struct S3Env {
    /// S3_BACKUP_REGION, else AWS_REGION.
    pub region: Option<String>,
    /// AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL: an S3-compatible server.
    pub endpoint: Option<String>,
    /// S3_FORCE_PATH_STYLE.
    pub force_path_style: Option<bool>,
    /// S3_SSE (on unless `off`).
    pub sse: bool,
    /// S3_STORAGE_CLASS.
    pub storage_class: Option<String>,
    /// The seed's mirror: S3_BACKUP_BUCKET with S3_BACKUP_PREFIX and the
    /// S3_OBJECT_LOCK_* settings.
    pub seed: Option<S3Config>,
    /// AWS_SHARED_CREDENTIALS_FILE (the SDK reads the file itself): a path a
    /// point-in-time restore hands on to PostgreSQL's restore_command.
    pub credentials_file: Option<String>,
}

impl S3Env {
    /// From `env`; a malformed value is an error naming the variable.
    pub fn read(env: &dyn crate::config::lookup::Lookup) -> crate::Result<S3Env> {
        let sse = match env.var("S3_SSE") {
            None => true,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "off" | "false" | "0" | "no" => false,
                "on" | "true" | "1" | "yes" | "aes256" => true,
                _ => return Err(crate::Error::Config(format!("S3_SSE={v:?}: give off (no server-side encryption) or on (SSE-S3, the default)"))),
            },
        };
        let mut out = S3Env {
            region: env
                .var("S3_BACKUP_REGION")
                .or_else(|| env.var("AWS_REGION")),
            endpoint: env
                .var("AWS_ENDPOINT_URL_S3")
                .or_else(|| env.var("AWS_ENDPOINT_URL")),
            force_path_style: crate::config::lookup::switch(env, "S3_FORCE_PATH_STYLE")?,
            sse,
            storage_class: env.var("S3_STORAGE_CLASS").map(|c| c.trim().to_string()),
            seed: None,
            credentials_file: env.var("AWS_SHARED_CREDENTIALS_FILE"),
        };
        if let Some(bucket) = env.var("S3_BACKUP_BUCKET") {
            let prefix = env
                .var("S3_BACKUP_PREFIX")
                .unwrap_or_else(|| "backups/".into());
            let mut cfg = S3Config::new(bucket.trim(), &prefix, &out);
            if let Some(d) = env.var("S3_OBJECT_LOCK_DAYS") {
                cfg.lock_days = Some(
                    lock_days(&d)
                        .map_err(|e| crate::Error::Config(format!("S3_OBJECT_LOCK_DAYS: {e}")))?,
                );
            }
            if let Some(m) = env.var("S3_OBJECT_LOCK_MODE") {
                cfg.lock_compliance = lock_mode(m.trim())
                    .map_err(|e| crate::Error::Config(format!("S3_OBJECT_LOCK_MODE: {e}")))?;
                if cfg.lock_days.is_none() {
                    return Err(crate::Error::Config(
                        "S3_OBJECT_LOCK_MODE is set but S3_OBJECT_LOCK_DAYS is not: give the days too (a mode alone locks nothing)".into(),
                    ));
                }
            }
            out.seed = Some(cfg);
        }
        Ok(out)
    }
}

impl S3Config {
    /// `s3://bucket/prefix` with the shared settings of `env`. Object Lock per
    /// URL: `?object_lock_days=N` and optionally `&object_lock_mode=compliance`.
    pub fn from_url(url: &str, env: &S3Env) -> Option<S3Config> {
        Self::parse_url(url, env).ok()
    }

    /// As `from_url`, or what is wrong with the URL, in a few words.
    pub fn parse_url(url: &str, env: &S3Env) -> Result<S3Config, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or("expected s3://BUCKET/PREFIX")?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, "backups/"));
        if bucket.is_empty() {
            return Err("no bucket: expected s3://BUCKET/PREFIX".into());
        }
        let mut cfg = S3Config::new(bucket, prefix, env);
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            match kv.split_once('=') {
                Some(("object_lock_days", d)) => cfg.lock_days = Some(lock_days(d)?),
                Some(("object_lock_mode", m)) => cfg.lock_compliance = lock_mode(m)?,
                _ => {
                    return Err(format!(
                        "unknown setting {kv:?}: the URL takes object_lock_days=N and object_lock_mode=compliance|governance"
                    ))
                }
            }
        }
        if query.contains("object_lock_mode=") && cfg.lock_days.is_none() {
            return Err(
                "object_lock_mode without object_lock_days locks nothing: give the days too".into(),
            );
        }
        Ok(cfg)
    }

    fn new(bucket: &str, prefix: &str, env: &S3Env) -> S3Config {
        let mut prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        S3Config {
            bucket: bucket.to_string(),
            prefix,
            region: env.region.clone(),
            endpoint: env.endpoint.clone(),
            force_path_style: env.force_path_style,
            sse: env.sse,
            storage_class: env.storage_class.clone(),
            lock_days: None,
            lock_compliance: false,
        }
    }
}

/// `compliance` → true, `governance` → false.
fn lock_mode(m: &str) -> Result<bool, String> {
    match m.to_ascii_lowercase().as_str() {
        "compliance" => Ok(true),
        "governance" => Ok(false),
        _ => Err(format!("{m:?}: give compliance or governance")),
    }
}

/// Days of Object Lock: a whole number above 0.
fn lock_days(d: &str) -> Result<u32, String> {
    d.trim()
        .parse()
        .ok()
        .filter(|n| (1..=36_500).contains(n))
        .ok_or_else(|| {
            format!(
                "object lock days {d:?}: give a whole number of days from 1 to 36500 (100 years)"
            )
        })
}

pub struct S3Backend {
    rt: tokio::runtime::Runtime,
    client: Client,
    cfg: S3Config,
}

impl S3Backend {
    pub fn new(cfg: S3Config) -> StorageResult<S3Backend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| StorageError::Permanent(format!("starting the S3 client: {e}")))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
        if let Some(r) = &cfg.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(e) = &cfg.endpoint {
            loader = loader.endpoint_url(e);
        }
        let shared = rt.block_on(loader.load());
        let mut b = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            b = b.region(aws_config::Region::new("us-east-1"));
        }
        b = b.force_path_style(cfg.force_path_style.unwrap_or(cfg.endpoint.is_some()));
        // One retry layer, ours (`storage::Retrying`), with one policy for every backend.
        b = b.retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
        // A server that stops answering is a transient failure, not a hang.
        b = b.timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .operation_attempt_timeout(crate::config::tuning::get().cloud_timeout)
                .build(),
        );
        let client = Client::from_conf(b.build());
        Ok(S3Backend { rt, client, cfg })
    }

    fn key(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.prefix)
    }

    fn head(
        &self,
        path: &str,
    ) -> StorageResult<aws_sdk_s3::operation::head_object::HeadObjectOutput> {
        self.rt
            .block_on(
                self.client
                    .head_object()
                    .bucket(&self.cfg.bucket)
                    .key(self.key(path))
                    .send(),
            )
            .map_err(|e| self.err(path, e))
    }

    /// The repository path of an object key.
    fn path_of(&self, key: &str) -> String {
        key.strip_prefix(&self.cfg.prefix)
            .unwrap_or(key)
            .to_string()
    }

    /// The lock a new object at `path` gets: mode and retain-until date.
    fn lock_for(&self, path: &str) -> Option<(ObjectLockMode, S3Time)> {
        let days = self.cfg.lock_days?;
        if !super::lockable(path) {
            return None;
        }
        let mode = if self.cfg.lock_compliance {
            ObjectLockMode::Compliance
        } else {
            ObjectLockMode::Governance
        };
        let until = time::OffsetDateTime::now_utc() + time::Duration::days(days as i64);
        Some((mode, S3Time::from_secs(until.unix_timestamp())))
    }

    fn err<E>(
        &self,
        what: &str,
        e: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let code = e.code().map(str::to_string);
        let msg = format!(
            "s3://{}/{}: {}",
            self.cfg.bucket,
            self.key(what),
            DisplayErrorContext(&e)
        );
        match (&e, status, code.as_deref()) {
            (
                SdkError::TimeoutError(_)
                | SdkError::DispatchFailure(_)
                | SdkError::ResponseError(_),
                ..,
            ) => StorageError::Transient(msg),
            (_, _, Some("NoSuchBucket")) => StorageError::Permanent(format!(
                "bucket {} does not exist: create it, or check S3_BACKUP_BUCKET",
                self.cfg.bucket
            )),
            (_, Some(404), _) | (_, _, Some("NoSuchKey" | "NotFound")) => {
                StorageError::NotFound(what.to_string())
            }
            (_, Some(401 | 403), _) => StorageError::Auth(format!(
                "{msg}; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
            )),
            (_, Some(429 | 500..=599), _)
            | (
                _,
                _,
                Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable"),
            ) => StorageError::Transient(msg),
            _ => StorageError::Permanent(msg),
        }
    }

    /// GetObject, whole or a `bytes=a-b` range, with the body read to the end.
    fn fetch(&self, path: &str, range: Option<String>) -> StorageResult<Vec<u8>> {
        self.rt.block_on(async {
            let r = self
                .client
                .get_object()
                .bucket(&self.cfg.bucket)
                .key(self.key(path))
                .set_range(range)
                .send()
                .await
                .map_err(|e| self.err(path, e))?;
            if r.content_length().unwrap_or(0) as u64 > super::MAX_GET {
                return Err(StorageError::Permanent(format!(
                    "{path} is larger than any object this program writes (someone changed the repository): refusing to read it"
                )));
            }
            let body =
                r.body.collect().await.map_err(|e| {
                    StorageError::Transient(format!("{path}: reading the body: {e}"))
                })?;
            Ok(body.into_bytes().to_vec())
        })
    }

    async fn put_multipart(&self, key: &str, data: &[u8]) -> Result<(), (String, StorageError)> {
        let c = &self.client;
        let mut create = c
            .create_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256);
        if self.cfg.sse {
            create = create.server_side_encryption(ServerSideEncryption::Aes256);
        }
        if let Some(s) = &self.cfg.storage_class {
            create = create.storage_class(StorageClass::from(s.as_str()));
        }
        if let Some((mode, until)) = self.lock_for(&self.path_of(key)) {
            create = create
                .object_lock_mode(mode)
                .object_lock_retain_until_date(until);
        }
        let up = create
            .send()
            .await
            .map_err(|e| (key.to_string(), self.err(key, e)))?;
        let id = up.upload_id().unwrap_or_default().to_string();
        let result = async {
            let mut parts = Vec::new();
            for (i, part) in data.chunks(PART_SIZE).enumerate() {
                let n = i as i32 + 1;
                let r = c
                    .upload_part()
                    .bucket(&self.cfg.bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .body(ByteStream::from(part.to_vec()))
                    .send()
                    .await
                    .map_err(|e| self.err(key, e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(r.e_tag().map(str::to_string))
                        .set_checksum_sha256(r.checksum_sha256().map(str::to_string))
                        .build(),
                );
            }
            c.complete_multipart_upload()
                .bucket(&self.cfg.bucket)
                .key(key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.err(key, e))?;
            Ok::<(), StorageError>(())
        }
        .await;
        if let Err(e) = result {
            let _ = c
                .abort_multipart_upload()
                .bucket(&self.cfg.bucket)
                .key(key)
                .upload_id(&id)
                .send()
                .await;
            return Err((key.to_string(), e));
        }
        Ok(())
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.cfg.bucket, self.cfg.prefix)
    }

    fn put(&self, path: &str, data: &[u8]) -> StorageResult<()> {
        let key = self.key(path);
        if data.len() > MULTIPART_THRESHOLD {
            return self
                .rt
                .block_on(self.put_multipart(&key, data))
                .map_err(|(_, e)| e);
        }
        let mut req = self
            .client
            .put_object()
            .bucket(&self.cfg.bucket)
            .key(&key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(data.to_vec()));
        if self.cfg.sse {
            req = req.server_side_encryption(ServerSideEncryption::Aes256);
        }
        if let Some(s) = &self.cfg.storage_class {
            req = req.storage_class(StorageClass::from(s.as_str()));
        }
        if let Some((mode, until)) = self.lock_for(path) {
            req = req
                .object_lock_mode(mode)
                .object_lock_retain_until_date(until);
        }
        self.rt
            .block_on(req.send())
            .map(|_| ())
            .map_err(|e| self.err(path, e))
    }

    fn get(&self, path: &str) -> StorageResult<Vec<u8>> {
        self.fetch(path, None)
    }

    fn get_range(&self, path: &str, offset: u64, len: u32) -> StorageResult<Vec<u8>> {
        if len == 0 {
            self.stat(path)?;
            return Ok(Vec::new());
        }
        let range = format!("bytes={}-{}", offset, offset + len as u64 - 1);
        let short =
            || StorageError::Permanent(format!("{path}: shorter than expected (truncated?)"));
        let data = self.fetch(path, Some(range)).map_err(|e| match e {
            // 416: the range starts past the end.
            StorageError::Permanent(m) if m.contains("InvalidRange") => short(),
            other => other,
        })?;
        if data.len() != len as usize {
            return Err(short());
        }
        Ok(data)
    }

    fn stat(&self, path: &str) -> StorageResult<u64> {
        let r = self.head(path)?;
        Ok(r.content_length().unwrap_or(0).max(0) as u64)
    }

    fn list(&self, dir: &str) -> StorageResult<Vec<(String, u64)>> {
        let prefix = self.key(&format!("{}/", dir.trim_end_matches('/')));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let r = self
                .rt
                .block_on(
                    self.client
                        .list_objects_v2()
                        .bucket(&self.cfg.bucket)
                        .prefix(&prefix)
                        .set_continuation_token(token.clone())
                        .send(),
                )
                .map_err(|e| self.err(dir, e))?;
            for o in r.contents() {
                if let Some(k) = o.key().and_then(|k| k.strip_prefix(&prefix)) {
                    out.push((k.to_string(), o.size().unwrap_or(0).max(0) as u64));
                }
            }
            match r.next_continuation_token() {
                Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort();
        Ok(super::shaped(dir, out))
    }

    fn delete(&self, path: &str) -> StorageResult<()> {
        // S3 deletes a missing key without complaint; the contract says NotFound.
        let head = self.head(path)?;
        // A locked object is never deleted: in a versioned bucket a plain delete would
        // "succeed" by hiding it behind a delete marker, freeing nothing.
        if let Some(until) = head.object_lock_retain_until_date() {
            if until.secs() > time::OffsetDateTime::now_utc().unix_timestamp() {
                return Err(StorageError::Retained(format!("{path} (until {until})")));
            }
        }
        // Delete the version itself, so a versioned bucket frees the space too.
        self.rt
            .block_on(
                self.client
                    .delete_object()
                    .bucket(&self.cfg.bucket)
                    .key(self.key(path))
                    .set_version_id(head.version_id().map(str::to_string))
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| self.err(path, e))
    }

    fn retention_days(&self) -> Option<u32> {
        self.cfg.lock_days
    }

    fn extend_retention(&self, path: &str, until: time::OffsetDateTime) -> StorageResult<()> {
        let Some((mode, _)) = self.lock_for(path) else {
            return Ok(());
        };
        let mode = match mode {
            ObjectLockMode::Compliance => ObjectLockRetentionMode::Compliance,
            _ => ObjectLockRetentionMode::Governance,
        };
        let retention = ObjectLockRetention::builder()
            .mode(mode)
            .retain_until_date(S3Time::from_secs(until.unix_timestamp()))
            .build();
        self.rt
            .block_on(
                self.client
                    .put_object_retention()
                    .bucket(&self.cfg.bucket)
                    .key(self.key(path))
                    .retention(retention)
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| self.err(path, e))
    }
}
