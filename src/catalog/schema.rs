//! The catalog's schema and its migrations, applied in order by `user_version`.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: blobs, packs, indexes, file cache.
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE indexes(id BLOB PRIMARY KEY) WITHOUT ROWID;
     CREATE TABLE packs(id BLOB PRIMARY KEY, size INTEGER NOT NULL, index_id BLOB) WITHOUT ROWID;
     CREATE INDEX packs_unindexed ON packs(index_id) WHERE index_id IS NULL;
     CREATE TABLE blobs(id BLOB NOT NULL, pack BLOB NOT NULL, kind INTEGER NOT NULL, offset INTEGER NOT NULL,
                        length INTEGER NOT NULL, raw_length INTEGER NOT NULL, PRIMARY KEY(id, pack)) WITHOUT ROWID;
     CREATE INDEX blobs_pack ON blobs(pack);
     CREATE TABLE file_cache(key BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                             ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, dev INTEGER NOT NULL,
                             content BLOB NOT NULL) WITHOUT ROWID;",
    // 2: the file cache per folder: one query per folder instead of two per file.
    "DROP TABLE file_cache;
     CREATE TABLE dir_cache(key BLOB PRIMARY KEY, entries BLOB NOT NULL) WITHOUT ROWID;",
    // 3: rows remember the run that wrote them; runs that completed are trusted.
    "ALTER TABLE dir_cache ADD COLUMN run INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE cache_runs(run INTEGER PRIMARY KEY, generation INTEGER NOT NULL);",
    // 4: folder rows move from CBOR to a fixed binary layout.
    "DELETE FROM dir_cache; DELETE FROM cache_runs;",
    // 5: results of restore tests (`verify --restore-test`).
    "CREATE TABLE restore_tests(id INTEGER PRIMARY KEY, time TEXT NOT NULL, snapshot TEXT NOT NULL,
                                database TEXT NOT NULL, passed INTEGER NOT NULL,
                                restore_secs REAL NOT NULL, report TEXT NOT NULL);",
    // 6: what each mirror destination holds (`mirror`, `mirror --full-check`).
    "CREATE TABLE mirror_objects(location TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
                                 PRIMARY KEY(location, path)) WITHOUT ROWID;",
    // 7: what forget and prune removed, and why; which packs `verify` read when.
    "CREATE TABLE removals(id INTEGER PRIMARY KEY, time TEXT NOT NULL, copy TEXT NOT NULL,
                           operation TEXT NOT NULL, object TEXT NOT NULL, reason TEXT NOT NULL);
     CREATE TABLE pack_reads(location TEXT NOT NULL, pack BLOB NOT NULL, time TEXT NOT NULL,
                             PRIMARY KEY(location, pack)) WITHOUT ROWID;",
    // 8: the audit log's copy of its events (`audit`), chained by keyed hash.
    "CREATE TABLE audit(id BLOB PRIMARY KEY, seq INTEGER NOT NULL, time TEXT NOT NULL,
                        event TEXT NOT NULL, stored INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
     CREATE INDEX audit_seq ON audit(seq);",
    // 9: folder rows (kilobytes each) move out of a WITHOUT ROWID table, where every
    // key comparison of a lookup read a whole overflowing row (about twelve row
    // reads per folder), into a rowid table whose key index is small; `run` before
    // the entries and indexed, so finding the live runs reads no entries.
    "CREATE TABLE dir_cache_rows(key BLOB NOT NULL UNIQUE, run INTEGER NOT NULL, entries BLOB NOT NULL);
     INSERT INTO dir_cache_rows(key, run, entries) SELECT key, run, entries FROM dir_cache;
     DROP TABLE dir_cache;
     ALTER TABLE dir_cache_rows RENAME TO dir_cache;
     CREATE INDEX dir_cache_run ON dir_cache(run);",
    // 10: a blob is its kind and its id: a data chunk whose bytes are a tree's
    // encoding is another blob than the tree (issue #14), so the kind joins the key.
    "CREATE TABLE blobs_by_kind(id BLOB NOT NULL, kind INTEGER NOT NULL, pack BLOB NOT NULL,
                                offset INTEGER NOT NULL, length INTEGER NOT NULL, raw_length INTEGER NOT NULL,
                                PRIMARY KEY(id, kind, pack)) WITHOUT ROWID;
     INSERT INTO blobs_by_kind(id, kind, pack, offset, length, raw_length)
         SELECT id, kind, pack, offset, length, raw_length FROM blobs;
     DROP TABLE blobs;
     ALTER TABLE blobs_by_kind RENAME TO blobs;
     CREATE INDEX blobs_pack ON blobs(pack);",
    // 11: packs found only by their header that failed the check (a decoy, or
    // junk): not read again on every run while their size stays the same.
    "CREATE TABLE refused_packs(id BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;",
    // 12: the snapshot manifests this machine has seen (and their times): one that
    // is gone without a forget here was hidden or deleted behind its back.
    "CREATE TABLE seen_snapshots(id BLOB PRIMARY KEY, time TEXT NOT NULL) WITHOUT ROWID;",
    // 13: the WAL records this machine has seen (and their file names): one
    // that is gone was deleted behind its back (no command removes one yet).
    "CREATE TABLE seen_wal(id BLOB PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID;",
    // 14: packs a prune condemned (index objects of version 2), per index object
    // that says so: their blobs are read but never deduplicated against.
    "CREATE TABLE condemned(pack BLOB NOT NULL, index_id BLOB NOT NULL, marked_at INTEGER NOT NULL,
                            PRIMARY KEY(pack, index_id)) WITHOUT ROWID;",
    // 15: when this catalog first saw each condemnation: a mark counts from
    // then at the latest, so an old index object put back by someone with
    // access to the storage cannot make a prune delete at once.
    "CREATE TABLE marks_seen(index_id BLOB NOT NULL, pack BLOB NOT NULL, seen_at INTEGER NOT NULL,
                             PRIMARY KEY(index_id, pack)) WITHOUT ROWID;",
    // 16: manifests read back (authenticated plaintext), so that a nightly run's
    // look at every snapshot (shrink warnings) reads none it read before.
    "CREATE TABLE manifest_cache(id BLOB PRIMARY KEY, plain BLOB NOT NULL) WITHOUT ROWID;",
    // 17: index objects a loaded one replaces (version 2 `supersedes`): dropped
    // without a reload of the whole index once gone; their marks never count.
    "CREATE TABLE superseded(id BLOB PRIMARY KEY) WITHOUT ROWID;",
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Apply the migrations up to version `last`.
fn migrate_to(conn: &mut Connection, last: usize) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(120))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // A fixed page cache (32 MiB) whatever the repository size: memory stays bounded.
    conn.pragma_update(None, "cache_size", -32768)?;
    loop {
        // IMMEDIATE: two processes opening a new catalog at once migrate it once.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let Some(m) = MIGRATIONS[..last].get(version) else {
            return Ok(());
        };
        tx.execute_batch(m)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{CachedFile, Catalog, DirCache};
    use crate::id::ChunkId;

    #[test]
    fn folder_rows_survive_the_move_to_a_rowid_table() {
        // A catalog of version 8 keeps its file cache: no full re-read after an upgrade.
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c.sqlite");
        let mut files = DirCache::new();
        files.insert(
            [1; 16],
            CachedFile {
                size: 10,
                mtime_ns: 20,
                ctime_ns: 30,
                inode: 40,
                dev: 50,
                content: vec![ChunkId([9; 32])],
            },
        );
        {
            let mut conn = Connection::open(&path).unwrap();
            migrate_to(&mut conn, 8).unwrap();
            conn.execute(
                "INSERT INTO dir_cache(key, entries, run) VALUES (?1, ?2, 42)",
                rusqlite::params![&[7u8; 32][..], super::super::file_cache::encode_row(&files)],
            )
            .unwrap();
        }
        let c = Catalog::open(&path).unwrap();
        let row = c.dir_cache(&[7; 32]).unwrap();
        assert_eq!((row.run, row.files), (42, files));
        // Keys stay unique: a second put replaces the row.
        c.put_dir_cache(&[7; 32], &DirCache::new(), 43).unwrap();
        assert_eq!(c.dir_cache(&[7; 32]).unwrap().run, 43);
        c.with(|c| {
            let n: i64 = c.query_row("SELECT count(*) FROM dir_cache", [], |r| r.get(0))?;
            assert_eq!(n, 1);
            Ok(())
        })
        .unwrap();
    }
}
