//! A repository held in memory: for tests and as the reference implementation of
//! the storage contract (`conformance` runs against it like every other backend).

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::{Backend, StorageError, StorageResult};

#[derive(Default)]
pub struct MemoryBackend {
    objects: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn put(&self, path: &str, data: &[u8]) -> StorageResult<()> {
        self.objects
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_string(), data.to_vec());
        Ok(())
    }

    fn get(&self, path: &str) -> StorageResult<Vec<u8>> {
        self.objects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
            .ok_or_else(|| StorageError::NotFound(path.to_string()))
    }

    fn get_range(&self, path: &str, offset: u64, len: u32) -> StorageResult<Vec<u8>> {
        let objects = self.objects.read().unwrap_or_else(|p| p.into_inner());
        let o = objects
            .get(path)
            .ok_or_else(|| StorageError::NotFound(path.to_string()))?;
        let end = offset
            .checked_add(len as u64)
            .filter(|e| *e <= o.len() as u64);
        match end {
            Some(end) => Ok(o[offset as usize..end as usize].to_vec()),
            None => Err(StorageError::Permanent(format!(
                "{path}: shorter than expected (truncated?)"
            ))),
        }
    }

    fn stat(&self, path: &str) -> StorageResult<u64> {
        self.objects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .map(|o| o.len() as u64)
            .ok_or_else(|| StorageError::NotFound(path.to_string()))
    }

    fn list(&self, dir: &str) -> StorageResult<Vec<(String, u64)>> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let listing = self
            .objects
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k[prefix.len()..].to_string(), v.len() as u64))
            .collect();
        Ok(super::shaped(dir, listing))
    }

    fn delete(&self, path: &str) -> StorageResult<()> {
        self.objects
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| StorageError::NotFound(path.to_string()))
    }
}
