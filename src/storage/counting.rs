//! Counting the requests a run makes to its storage, per kind and per folder,
//! for the scale measurements (issue #20): a listing costs one request per
//! page of `LIST_PAGE` names on S3 and Drive, whatever the backend here.
//! `HCBACKUP_REQUESTS_FILE` names a file the counts are written to, as JSON,
//! when the run ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Backend, StorageResult};

/// Names per listing page on S3 (ListObjectsV2) and Drive (files.list).
pub const LIST_PAGE: u64 = 1000;

/// The counts of one process, over every backend it opened.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Requests {
    /// Per folder listed: listings, names returned, and pages at `LIST_PAGE`.
    pub lists: BTreeMap<String, Listed>,
    pub gets: u64,
    pub ranged_gets: u64,
    pub puts: u64,
    pub stats: u64,
    pub deletes: u64,
    /// All of it, listings counted by the page.
    pub total: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Listed {
    pub calls: u64,
    pub names: u64,
    pub pages: u64,
}

static COUNTS: Mutex<Option<Requests>> = Mutex::new(None);

fn note(f: impl FnOnce(&mut Requests)) {
    let mut c = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let r = c.get_or_insert_with(Requests::default);
    f(r);
    r.total += 1;
}

/// What this process has asked of storage so far.
pub fn requests() -> Requests {
    COUNTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

/// Write the counts to `path` (the end of a run with HCBACKUP_REQUESTS_FILE).
pub fn write_requests(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::write(
        path,
        serde_json::to_vec_pretty(&requests()).expect("counts serialize"),
    )
}

/// A backend whose requests are counted.
pub struct Counting(pub Arc<dyn Backend>);

impl Backend for Counting {
    fn location(&self) -> String {
        self.0.location()
    }
    fn read_only(&self) -> bool {
        self.0.read_only()
    }
    fn put(&self, path: &str, data: &[u8]) -> StorageResult<()> {
        note(|r| r.puts += 1);
        self.0.put(path, data)
    }
    fn put_new(&self, path: &str, data: &[u8]) -> StorageResult<bool> {
        // Backends without an atomic one do a stat and a put through `self.0`.
        note(|r| r.puts += 1);
        self.0.put_new(path, data)
    }
    fn get(&self, path: &str) -> StorageResult<Vec<u8>> {
        note(|r| r.gets += 1);
        self.0.get(path)
    }
    fn get_range(&self, path: &str, offset: u64, len: u32) -> StorageResult<Vec<u8>> {
        note(|r| r.ranged_gets += 1);
        self.0.get_range(path, offset, len)
    }
    fn stat(&self, path: &str) -> StorageResult<u64> {
        note(|r| r.stats += 1);
        self.0.stat(path)
    }
    fn list(&self, dir: &str) -> StorageResult<Vec<(String, u64)>> {
        let out = self.0.list(dir)?;
        let names = out.len() as u64;
        let pages = names.div_ceil(LIST_PAGE).max(1);
        let mut c = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
        let r = c.get_or_insert_with(Requests::default);
        let l = r.lists.entry(dir.to_string()).or_default();
        l.calls += 1;
        l.names += names;
        l.pages += pages;
        r.total += pages;
        Ok(out)
    }
    fn delete(&self, path: &str) -> StorageResult<()> {
        note(|r| r.deletes += 1);
        self.0.delete(path)
    }
    fn list_foreign(&self, dir: &str) -> StorageResult<Vec<String>> {
        self.0.list_foreign(dir)
    }
    fn remove_stale_partials(&self, age: std::time::Duration) -> StorageResult<usize> {
        self.0.remove_stale_partials(age)
    }
    fn create_layout(&self, dirs: &[&str]) -> StorageResult<()> {
        self.0.create_layout(dirs)
    }
    fn retention_days(&self) -> Option<u32> {
        self.0.retention_days()
    }
    fn extend_retention(&self, path: &str, until: time::OffsetDateTime) -> StorageResult<()> {
        note(|_| {});
        self.0.extend_retention(path, until)
    }
}
