//! Sets of blob ids too large to hold in memory (issue #20: a command's memory
//! must not grow with the repository): a table in a scratch SQLite file beside
//! the catalog, deleted when the set is dropped, filled in batches. It holds
//! keyed hashes, as the catalog does; never file names or content.

use std::collections::HashSet;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::pack::BlobKey;

/// Ids kept in memory before they are written to the file at once.
const BATCH: usize = 64 * 1024;
/// A scratch file's page cache (KiB).
const CACHE_KIB: i64 = 8 * 1024;

pub(crate) fn sql(e: rusqlite::Error) -> Error {
    Error::Failed(format!(
        "scratch file beside the catalog: {e}; free space on the catalog's disk, or set HCBACKUP_CACHE_DIR to a folder on a larger one"
    ))
}

/// Scratch files are named `.scratch-PID-…`: one whose process is gone (killed)
/// is removed by the next run.
const PREFIX: &str = ".scratch-";

/// Remove the scratch files in `dir` of processes that are gone.
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !crate::util::pid_alive(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A scratch SQLite file in a folder (the catalog's), deleted when dropped:
/// no journal, no sync, a small page cache.
pub struct Scratch {
    pub conn: Connection,
    /// Always `Some` until dropped.
    file: Option<tempfile::NamedTempFile>,
    path: std::path::PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            if let Err(e) = f.close() {
                tracing::warn!(
                    "could not remove the scratch file {}: {e} (the next run removes it)",
                    self.path.display()
                );
            }
        }
    }
}

impl Scratch {
    pub fn new(dir: &Path) -> Result<Scratch> {
        remove_stale(dir);
        let prefix = format!("{PREFIX}{}-", std::process::id());
        let file = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".sqlite")
            .tempfile_in(dir)
            .map_err(|e| {
                Error::Failed(format!(
                    "cannot make a scratch file in {}: {e}; free space there, or set HCBACKUP_CACHE_DIR to a writable folder",
                    dir.display()
                ))
            })?;
        let conn = Connection::open(file.path()).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "OFF")
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "OFF")
            .map_err(sql)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(sql)?;
        conn.pragma_update(None, "temp_store", "FILE")
            .map_err(sql)?;
        let path = file.path().to_path_buf();
        Ok(Scratch {
            conn,
            file: Some(file),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A set of blob keys in a table of a scratch file, written in batches.
pub struct KeyTable {
    table: &'static str,
    pending: HashSet<BlobKey>,
}

impl KeyTable {
    /// Make table `table` in `conn`.
    pub fn create(conn: &Connection, table: &'static str) -> Result<KeyTable> {
        conn.execute_batch(&format!(
            "CREATE TABLE {table}(kind INTEGER NOT NULL, id BLOB NOT NULL,
                                  PRIMARY KEY(kind, id)) WITHOUT ROWID;"
        ))
        .map_err(sql)?;
        Ok(KeyTable {
            table,
            pending: HashSet::new(),
        })
    }

    /// Add `key`; true when it was not in the set.
    pub fn insert(&mut self, conn: &mut Connection, key: BlobKey) -> Result<bool> {
        if self.contains(conn, &key)? {
            return Ok(false);
        }
        self.add(conn, key)?;
        Ok(true)
    }

    /// Add `key`, without asking whether it was there.
    pub fn add(&mut self, conn: &mut Connection, key: BlobKey) -> Result<()> {
        self.pending.insert(key);
        if self.pending.len() >= BATCH {
            self.flush(conn)?;
        }
        Ok(())
    }

    pub fn contains(&self, conn: &Connection, key: &BlobKey) -> Result<bool> {
        if self.pending.contains(key) {
            return Ok(true);
        }
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT 1 FROM {} WHERE kind = ?1 AND id = ?2",
                self.table
            ))
            .map_err(sql)?;
        let hit = st
            .query_row(params![key.0 as i64, &key.1[..]], |_| Ok(()))
            .optional()
            .map_err(sql)?;
        Ok(hit.is_some())
    }

    /// Write the keys held in memory to the table.
    pub fn flush(&mut self, conn: &mut Connection) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let tx = conn.transaction().map_err(sql)?;
        {
            let mut st = tx
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO {}(kind, id) VALUES (?1, ?2)",
                    self.table
                ))
                .map_err(sql)?;
            for (kind, id) in self.pending.drain() {
                st.execute(params![kind as i64, &id[..]]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// How many keys the set holds.
    pub fn count(&mut self, conn: &mut Connection) -> Result<u64> {
        self.flush(conn)?;
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {}", self.table), [], |r| {
                r.get(0)
            })
            .map_err(sql)?;
        Ok(n as u64)
    }

    /// Every key, in (kind, id) order, to `f`.
    pub fn for_each(
        &mut self,
        conn: &mut Connection,
        mut f: impl FnMut(BlobKey) -> Result<()>,
    ) -> Result<()> {
        self.flush(conn)?;
        let mut st = conn
            .prepare(&format!(
                "SELECT kind, id FROM {} ORDER BY kind, id",
                self.table
            ))
            .map_err(sql)?;
        let mut rows = st.query([]).map_err(sql)?;
        while let Some(row) = rows.next().map_err(sql)? {
            let kind: i64 = row.get(0).map_err(sql)?;
            let id: Vec<u8> = row.get(1).map_err(sql)?;
            let (Some(kind), Ok(id)) = (Kind::from_u8(kind as u8), <[u8; 32]>::try_from(id)) else {
                continue;
            };
            f((kind, id))?;
        }
        Ok(())
    }
}

/// A set of blob keys on disk, in a scratch file of its own.
pub struct BlobSet {
    scratch: Scratch,
    keys: KeyTable,
}

impl BlobSet {
    /// An empty set in a scratch file in `dir` (the catalog's folder).
    pub fn new(dir: &Path) -> Result<BlobSet> {
        let scratch = Scratch::new(dir)?;
        let keys = KeyTable::create(&scratch.conn, "keys")?;
        Ok(BlobSet { scratch, keys })
    }

    /// Add `key`; true when it was not in the set.
    pub fn insert(&mut self, key: BlobKey) -> Result<bool> {
        self.keys.insert(&mut self.scratch.conn, key)
    }

    /// Add `key`, without asking whether it was there (faster).
    pub fn add(&mut self, key: BlobKey) -> Result<()> {
        self.keys.add(&mut self.scratch.conn, key)
    }

    pub fn contains(&self, key: &BlobKey) -> Result<bool> {
        self.keys.contains(&self.scratch.conn, key)
    }

    pub fn count(&mut self) -> Result<u64> {
        self.keys.count(&mut self.scratch.conn)
    }

    pub fn for_each(&mut self, f: impl FnMut(BlobKey) -> Result<()>) -> Result<()> {
        self.keys.for_each(&mut self.scratch.conn, f)
    }

    /// The scratch file, every key written to it (its table is `keys`): for
    /// another connection to attach.
    pub fn written(&mut self) -> Result<&Path> {
        self.keys.flush(&mut self.scratch.conn)?;
        Ok(self.scratch.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_larger_than_a_batch_answers_like_a_hash_set() {
        let d = tempfile::tempdir().unwrap();
        let mut s = BlobSet::new(d.path()).unwrap();
        let key = |n: u32| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&n.to_le_bytes());
            (if n % 3 == 0 { Kind::Tree } else { Kind::Data }, id)
        };
        let n = BATCH as u32 + 1000;
        for i in 0..n {
            assert!(s.insert(key(i)).unwrap());
        }
        for i in (0..n).step_by(997) {
            assert!(!s.insert(key(i)).unwrap(), "{i} was already in");
            assert!(s.contains(&key(i)).unwrap());
        }
        assert!(!s.contains(&key(n + 1)).unwrap());
        assert_eq!(s.count().unwrap(), n as u64);
        let mut seen = 0u64;
        let mut last = None;
        s.for_each(|k| {
            assert!(last < Some(k), "in order");
            last = Some(k);
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, n as u64);
        let file = s.scratch.path().to_path_buf();
        drop(s);
        assert!(!file.exists(), "the scratch file goes with the set");
    }

    #[test]
    fn a_killed_runs_scratch_file_is_removed_by_the_next_one() {
        let d = tempfile::tempdir().unwrap();
        // No process has this number (above the kernel's pid_max).
        let stale = d.path().join(format!("{PREFIX}4194305-abc.sqlite"));
        let live = d
            .path()
            .join(format!("{PREFIX}{}-def.sqlite", std::process::id()));
        let other = d.path().join("catalog.sqlite");
        for f in [&stale, &live, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        let _s = Scratch::new(d.path()).unwrap();
        assert!(!stale.exists());
        assert!(live.exists() && other.exists());
    }
}
