//! Whole-pack reads for remote destinations.
//!
//! The engine reads one blob at a time (`get_range` of a few KiB to a few MiB).
//! On a local disk that is a `pread`; on S3 or Drive every call is a round trip,
//! and a database dump of 2–32 KiB chunks would cost thousands of them per pack.
//! This decorator answers a range of a pack from the whole pack, fetched once
//! and kept in a small least-recently-used set bounded in bytes. Packs are
//! sealed ciphertext, so nothing readable is held beyond what the engine asks for.
//! Callers that want the same pack at once wait for one download. Everything
//! else passes straight through.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::{Backend, StorageError, StorageResult};

type Cell = Arc<Mutex<Option<Arc<Vec<u8>>>>>;

#[derive(Default)]
struct State {
    cells: HashMap<String, Cell>,
    /// Loaded packs, least recently used first, with their sizes.
    order: VecDeque<(String, usize)>,
    bytes: usize,
}

pub struct PackCache {
    inner: Arc<dyn Backend>,
    limit: usize,
    st: Mutex<State>,
}

impl PackCache {
    pub fn new(inner: Arc<dyn Backend>) -> PackCache {
        PackCache::with_limit(inner, crate::config::tuning::get().pack_cache)
    }

    pub fn with_limit(inner: Arc<dyn Backend>, limit: usize) -> PackCache {
        PackCache {
            inner,
            limit,
            st: Mutex::new(State::default()),
        }
    }

    /// The whole pack, from memory or fetched (once, however many ask).
    fn pack(&self, path: &str) -> StorageResult<Arc<Vec<u8>>> {
        let cell = {
            let mut st = self.st.lock().unwrap();
            if let Some(i) = st.order.iter().position(|(p, _)| p == path) {
                let e = st.order.remove(i).expect("a position in range");
                st.order.push_back(e);
            }
            st.cells.entry(path.to_string()).or_default().clone()
        };
        let mut slot = cell.lock().unwrap();
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        // On failure the slot stays empty and the next caller tries again.
        let data = Arc::new(self.inner.get(path)?);
        *slot = Some(data.clone());
        drop(slot);
        let mut st = self.st.lock().unwrap();
        st.order.push_back((path.to_string(), data.len()));
        st.bytes += data.len();
        while st.bytes > self.limit && st.order.len() > 1 {
            let (p, n) = st.order.pop_front().expect("not empty");
            st.bytes -= n;
            st.cells.remove(&p);
        }
        Ok(data)
    }
}

impl Backend for PackCache {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn put(&self, path: &str, data: &[u8]) -> StorageResult<()> {
        self.inner.put(path, data)
    }
    fn put_new(&self, path: &str, data: &[u8]) -> StorageResult<bool> {
        self.inner.put_new(path, data)
    }
    fn get(&self, path: &str) -> StorageResult<Vec<u8>> {
        self.inner.get(path)
    }
    fn get_range(&self, path: &str, offset: u64, len: u32) -> StorageResult<Vec<u8>> {
        if !path.starts_with("packs/") {
            return self.inner.get_range(path, offset, len);
        }
        let pack = self.pack(path)?;
        let end = offset
            .checked_add(len as u64)
            .filter(|e| *e <= pack.len() as u64);
        match end {
            Some(end) => Ok(pack[offset as usize..end as usize].to_vec()),
            None => Err(StorageError::Permanent(format!(
                "{path}: shorter than expected (truncated?)"
            ))),
        }
    }
    fn stat(&self, path: &str) -> StorageResult<u64> {
        self.inner.stat(path)
    }
    fn list(&self, dir: &str) -> StorageResult<Vec<(String, u64)>> {
        self.inner.list(dir)
    }
    fn list_foreign(&self, dir: &str) -> StorageResult<Vec<String>> {
        self.inner.list_foreign(dir)
    }
    fn delete(&self, path: &str) -> StorageResult<()> {
        let r = self.inner.delete(path);
        let mut st = self.st.lock().unwrap();
        if st.cells.remove(path).is_some() {
            if let Some(i) = st.order.iter().position(|(p, _)| p == path) {
                let (_, n) = st.order.remove(i).expect("a position in range");
                st.bytes -= n;
            }
        }
        r
    }
    fn remove_stale_partials(&self, age: std::time::Duration) -> StorageResult<usize> {
        self.inner.remove_stale_partials(age)
    }
    fn create_layout(&self, dirs: &[&str]) -> StorageResult<()> {
        self.inner.create_layout(dirs)
    }
    fn retention_days(&self) -> Option<u32> {
        self.inner.retention_days()
    }
    fn extend_retention(&self, path: &str, until: time::OffsetDateTime) -> StorageResult<()> {
        self.inner.extend_retention(path, until)
    }
}
