//! The file cache: per folder, what each file looked like when it was last read and
//! which chunks it was cut into, so an unchanged file is not read again.
//!
//! One row per folder, keyed by a keyed hash of the folder's path; inside, entries
//! keyed by a keyed hash of the file name (CBOR). No path or name is stored in the
//! clear.
//!
//! A row may name chunks that never became durable (a run killed before its packs
//! were written). Each row records the run that wrote it; a run is recorded as
//! complete, with the catalog's blob generation, only after its packs and index are
//! durable. Rows of a complete run whose generation is still current are trusted
//! as they are; any other row is trusted only after `has_all_many` finds every chunk
//! in the catalog (one transaction per folder). The generation goes up whenever
//! blobs leave the catalog (`clear`, `remove_pack`, and prune when it comes), so
//! no trusted row can name a chunk that is gone.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use super::Catalog;
use crate::error::Result;
use crate::id::ChunkId;

/// What the cache remembers about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A folder's row: its files and the run that wrote it.
#[derive(Debug, Default)]
pub struct DirRow {
    pub files: DirCache,
    pub run: i64,
}

pub(super) fn bump_generation(c: &rusqlite::Connection) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO meta(key, value) VALUES ('cache_generation', '1')
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        [],
    )
    .map(|_| ())
}

/// Row bytes: u8 version (1) ‖ u32 n ‖ n × (name key[16] ‖ u64 size ‖ i64 mtime ‖
/// i64 ctime ‖ u64 inode ‖ u64 dev ‖ u32 chunks ‖ chunks × id[32]), little-endian.
/// A fixed layout: a no-change run decodes every row, and CBOR cost far more.
pub fn encode_row(entries: &DirCache) -> Vec<u8> {
    let mut keys: Vec<&[u8; 16]> = entries.keys().collect();
    keys.sort();
    let mut out = Vec::with_capacity(5 + entries.len() * 90);
    out.push(1);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for k in keys {
        let f = &entries[k];
        out.extend_from_slice(k);
        for v in [f.size, f.mtime_ns as u64, f.ctime_ns as u64, f.inode, f.dev] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(f.content.len() as u32).to_le_bytes());
        for c in &f.content {
            out.extend_from_slice(&c.0);
        }
    }
    out
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (a, rest) = b.split_at(n);
    *b = rest;
    Some(a)
}

fn take_u64(b: &mut &[u8]) -> Option<u64> {
    take(b, 8).map(|x| u64::from_le_bytes(x.try_into().unwrap()))
}

pub fn decode_row(mut b: &[u8]) -> Option<DirCache> {
    if take(&mut b, 1)? != [1] {
        return None;
    }
    let n = u32::from_le_bytes(take(&mut b, 4)?.try_into().unwrap()) as usize;
    let mut out = DirCache::with_capacity(n.min(b.len() / 60));
    for _ in 0..n {
        let k: [u8; 16] = take(&mut b, 16)?.try_into().unwrap();
        let size = take_u64(&mut b)?;
        let mtime_ns = take_u64(&mut b)? as i64;
        let ctime_ns = take_u64(&mut b)? as i64;
        let inode = take_u64(&mut b)?;
        let dev = take_u64(&mut b)?;
        let m = u32::from_le_bytes(take(&mut b, 4)?.try_into().unwrap()) as usize;
        let ids = take(&mut b, m.checked_mul(32)?)?;
        let content = ids
            .chunks_exact(32)
            .map(|c| ChunkId(c.try_into().unwrap()))
            .collect();
        out.insert(
            k,
            CachedFile {
                size,
                mtime_ns,
                ctime_ns,
                inode,
                dev,
                content,
            },
        );
    }
    b.is_empty().then_some(out)
}

impl Catalog {
    /// The cached files of one folder (empty when unknown or undecodable).
    pub fn dir_cache(&self, key: &[u8; 32]) -> Result<DirRow> {
        // Decoded where SQLite holds the row: no copy of its bytes.
        let row = self.with(|c| {
            c.prepare_cached("SELECT run, entries FROM dir_cache WHERE key = ?1")?
                .query_row([&key[..]], |r| {
                    let files = decode_row(r.get_ref(1)?.as_blob()?).unwrap_or_default();
                    Ok(DirRow {
                        files,
                        run: r.get(0)?,
                    })
                })
                .optional()
        })?;
        Ok(row.unwrap_or_default())
    }

    pub fn put_dir_cache(&self, key: &[u8; 32], entries: &DirCache, run: i64) -> Result<()> {
        let bytes = encode_row(entries);
        self.with(|c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO dir_cache(key, entries, run) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![&key[..], bytes, run])
            .map(|_| ())
        })
    }

    /// The current blob generation (see the module docs).
    pub fn cache_generation(&self) -> Result<i64> {
        Ok(self
            .meta("cache_generation")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Runs whose rows are trusted without a chunk check: complete, same generation.
    pub fn trusted_runs(&self) -> Result<std::collections::HashSet<i64>> {
        let generation = self.cache_generation()?;
        self.with(|c| {
            let mut st = c.prepare("SELECT run FROM cache_runs WHERE generation = ?1")?;
            let rows = st.query_map([generation], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Record a run as complete: its packs and index are durable. `generation` is
    /// the one read when the run started.
    pub fn complete_run(&self, run: i64, generation: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO cache_runs(run, generation) VALUES (?1, ?2)",
                params![run, generation],
            )?;
            // Runs no row names any more are forgotten.
            c.execute(
                "DELETE FROM cache_runs WHERE run NOT IN (SELECT DISTINCT run FROM dir_cache)",
                [],
            )
            .map(|_| ())
        })
    }

    /// For each chunk list, whether every chunk is a data blob in a durable pack;
    /// one transaction.
    pub fn has_all_many(&self, lists: &[&[ChunkId]]) -> Result<Vec<bool>> {
        if lists.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(lists.len());
            {
                let mut st = tx.prepare_cached(super::HAS_LIVE_BLOB)?;
                for ids in lists {
                    let mut all = true;
                    for id in ids.iter() {
                        let data = crate::crypto::Kind::Data as u8;
                        if st
                            .query_row(params![&id.0[..], data], |_| Ok(()))
                            .optional()?
                            .is_none()
                        {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::PackId;

    #[test]
    fn rows_are_trusted_only_from_complete_runs_of_the_current_generation() {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::open(&d.path().join("c.sqlite")).unwrap();
        let mut files = DirCache::new();
        files.insert(
            [1; 16],
            CachedFile {
                size: 1,
                mtime_ns: 2,
                ctime_ns: 3,
                inode: 4,
                dev: 5,
                content: vec![ChunkId([9; 32])],
            },
        );
        c.put_dir_cache(&[7; 32], &files, 42).unwrap();
        c.put_dir_cache(&[8; 32], &files, 43).unwrap();
        let g = c.cache_generation().unwrap();
        assert!(c.trusted_runs().unwrap().is_empty(), "no run has completed");
        c.complete_run(42, g).unwrap();
        assert_eq!(c.trusted_runs().unwrap(), [42].into_iter().collect());
        let row = c.dir_cache(&[7; 32]).unwrap();
        assert_eq!((row.run, row.files), (42, files.clone()));
        // Blobs leaving the catalog end all trust.
        c.remove_pack(&PackId([3; 32])).unwrap();
        assert!(c.cache_generation().unwrap() > g);
        assert!(c.trusted_runs().unwrap().is_empty());
        // A run that started before the change is not trusted after it.
        c.complete_run(43, g).unwrap();
        assert!(c.trusted_runs().unwrap().is_empty());
        // Rows survive a round trip; damaged rows read as empty.
        let bytes = encode_row(&files);
        assert_eq!(decode_row(&bytes).unwrap(), files);
        for cut in 0..bytes.len() {
            assert!(decode_row(&bytes[..cut]).is_none());
        }
        // clear() forgets rows and runs.
        c.complete_run(43, c.cache_generation().unwrap()).unwrap();
        assert_eq!(c.trusted_runs().unwrap().len(), 1);
        c.clear().unwrap();
        assert!(c.trusted_runs().unwrap().is_empty());
        assert!(c.dir_cache(&[7; 32]).unwrap().files.is_empty());
    }
}
