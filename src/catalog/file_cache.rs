//! The file cache: per folder, what each file looked like when it was last read and
//! which chunks it was cut into, so an unchanged file is not read again.
//!
//! One row per folder, keyed by a keyed hash of the folder's path; inside, entries
//! keyed by a keyed hash of the file name (CBOR). No path or name is stored in the
//! clear. A row may name chunks that never became durable (a run killed before its
//! packs were written), so a hit is trusted only after `has_all_many` confirms that
//! every chunk is in the catalog; the check runs in one transaction per folder.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::Catalog;
use crate::error::Result;
use crate::id::ChunkId;

/// What the cache remembers about one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFile {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub dev: u64,
    pub content: Vec<ChunkId>,
}

impl CachedFile {
    /// Same file, same content: every field but the chunk list matches.
    pub fn same_stat(&self, other: &CachedFile) -> bool {
        (
            self.size,
            self.mtime_ns,
            self.ctime_ns,
            self.inode,
            self.dev,
        ) == (
            other.size,
            other.mtime_ns,
            other.ctime_ns,
            other.inode,
            other.dev,
        )
    }
}

/// A folder's cached files, by name key.
pub type DirCache = HashMap<[u8; 16], CachedFile>;

#[derive(Serialize, Deserialize)]
struct Row {
    entries: Vec<(serde_bytes::ByteArray<16>, CachedFile)>,
}

impl Catalog {
    /// The cached files of one folder (empty when unknown or undecodable).
    pub fn dir_cache(&self, key: &[u8; 32]) -> Result<DirCache> {
        let bytes: Option<Vec<u8>> = self.with(|c| {
            c.prepare_cached("SELECT entries FROM dir_cache WHERE key = ?1")?
                .query_row([&key[..]], |r| r.get(0))
                .optional()
        })?;
        let Some(bytes) = bytes else {
            return Ok(DirCache::new());
        };
        Ok(ciborium::from_reader::<Row, _>(&bytes[..])
            .map(|r| {
                r.entries
                    .into_iter()
                    .map(|(k, v)| (k.into_array(), v))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn put_dir_cache(&self, key: &[u8; 32], entries: &DirCache) -> Result<()> {
        let mut sorted: Vec<_> = entries
            .iter()
            .map(|(k, v)| (serde_bytes::ByteArray::new(*k), v.clone()))
            .collect();
        sorted.sort_by_key(|e| e.0);
        let mut bytes = Vec::new();
        ciborium::into_writer(&Row { entries: sorted }, &mut bytes).expect("cache row serializes");
        self.with(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO dir_cache(key, entries) VALUES (?1, ?2)")?
                .execute(params![&key[..], bytes])
                .map(|_| ())
        })
    }

    /// For each chunk list, whether every chunk is in a durable pack; one transaction.
    pub fn has_all_many(&self, lists: &[&[ChunkId]]) -> Result<Vec<bool>> {
        if lists.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(lists.len());
            {
                let mut st = tx.prepare_cached("SELECT 1 FROM blobs WHERE id = ?1 LIMIT 1")?;
                for ids in lists {
                    let mut all = true;
                    for id in ids.iter() {
                        if st.query_row([&id.0[..]], |_| Ok(())).optional()?.is_none() {
                            all = false;
                            break;
                        }
                    }
                    out.push(all);
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }
}
