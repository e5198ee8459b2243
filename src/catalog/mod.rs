//! The catalog: a SQLite cache beside the repository (all SQL lives here).
//!
//! It knows which pack holds each blob, which index objects it has loaded, which
//! packs are not yet covered by an index object, and the file-metadata cache. It is
//! always rebuildable from the repository and holds no plaintext: file-cache rows are
//! keyed by a keyed hash of the path, never the path itself. One file per repository
//! id, WAL mode, so several processes may use it at once.

mod audit;
mod damage;
mod file_cache;
mod history;
mod holdings;
mod removals;
mod salvage;
mod schema;
pub mod scratch;
mod seen;
pub mod sizes;

pub use audit::AuditRow;
pub use file_cache::{
    decode_row as decode_dir_row, encode_row as encode_dir_row, CachedFile, DirCache, DirRow,
};
pub use history::RestoreTestRow;
pub use removals::Removal;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{BlobId, ObjectId, PackId};
use crate::model::index::{Index, IndexedPack};
use crate::pack::{BlobKey, PackEntry};

/// Where a blob is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
}

pub struct Catalog {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Catalog {
    pub fn open(path: &Path) -> Result<Catalog> {
        let path = &match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => {
                let dir = private_dir(dir)?;
                let path = dir.join(name);
                private_files(&path)?;
                path
            }
            _ => path.to_path_buf(),
        };
        let c = damage::open_checked(path)?;
        // hcbackup runs under umask 077 (main), so new files are private from the
        // start; catalogs made by earlier versions are made private here.
        use std::os::unix::fs::PermissionsExt;
        for p in [
            path.to_path_buf(),
            path.with_extension("sqlite-wal"),
            path.with_extension("sqlite-shm"),
        ] {
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
        }
        Ok(c)
    }

    pub(super) fn open_once(path: &Path) -> Result<Catalog> {
        let conn = Connection::open(path).map_err(|e| sql(path, e))?;
        let c = Catalog {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        };
        c.with(schema::migrate)?;
        Ok(c)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| sql(&self.path, e))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
        })
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
                [key, value],
            )
            .map(|_| ())
        })
    }

    /// Note that process `pid` of this machine starts a run that writes packs.
    /// True when a run noted so before died without ending: packs it wrote
    /// may be in the repository and not here (killed between the two).
    pub fn begin_writing(&self, pid: u32) -> Result<bool> {
        let noted: Vec<String> = self.with(|c| {
            let mut st = c.prepare("SELECT key FROM meta WHERE key LIKE 'writing.%'")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect()
        })?;
        let dead: Vec<&String> = noted
            .iter()
            .filter(|k| {
                k.strip_prefix("writing.")
                    .and_then(|p| p.parse().ok())
                    .is_none_or(|p| !crate::util::pid_alive(p))
            })
            .collect();
        self.with(|c| {
            let tx = c.transaction()?;
            for k in &dead {
                tx.execute("DELETE FROM meta WHERE key = ?1", [k])?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, '1')",
                [format!("writing.{pid}")],
            )?;
            tx.commit()
        })?;
        Ok(!dead.is_empty())
    }

    /// The run of `pid` ended (whether it saved anything or not).
    pub fn end_writing(&self, pid: u32) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM meta WHERE key = ?1",
                [format!("writing.{pid}")],
            )
            .map(|_| ())
        })
    }

    /// Index objects already loaded.
    pub fn loaded_indexes(&self) -> Result<Vec<ObjectId>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id FROM indexes")?;
            let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            rows.map(|r| r.map(|b| ObjectId::from_slice(&b).unwrap_or(ObjectId([0; 32]))))
                .collect()
        })
    }

    /// Record an index object, the packs it covers and those it condemns, in one
    /// transaction. A condemnation makes cached files be checked again (their
    /// chunks may be only in a condemned pack), and is noted as seen now
    /// (`marks_seen`) unless it was seen before.
    pub fn add_index(&self, id: &ObjectId, index: &Index) -> Result<()> {
        self.add_index_seen(id, index, crate::util::now().unix_timestamp())
    }

    /// `add_index` for an index object this machine's prune wrote: its marks
    /// were visible since the times they carry (a mark carried over from an
    /// older object keeps its time), not since now.
    pub fn add_own_index(&self, id: &ObjectId, index: &Index) -> Result<()> {
        self.add_index_seen(id, index, i64::MIN)
    }

    fn add_index_seen(&self, id: &ObjectId, index: &Index, now: i64) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("INSERT OR IGNORE INTO indexes(id) VALUES (?1)", [&id.0[..]])?;
            for p in &index.packs {
                insert_pack(&tx, p, Some(id))?;
            }
            for (pack, at) in &index.condemned {
                tx.execute(
                    "INSERT OR REPLACE INTO condemned(pack, index_id, marked_at) VALUES (?1, ?2, ?3)",
                    params![&pack.0[..], &id.0[..], at],
                )?;
                // A mark carried over from an object this one replaces was
                // seen when that one was: a rewrite by another machine's prune
                // does not start its clock again.
                let inherited: Option<i64> = index
                    .supersedes
                    .iter()
                    .filter_map(|old| {
                        tx.query_row(
                            "SELECT seen_at FROM marks_seen WHERE index_id = ?1 AND pack = ?2",
                            params![&old.0[..], &pack.0[..]],
                            |r| r.get(0),
                        )
                        .optional()
                        .ok()
                        .flatten()
                    })
                    .min();
                tx.execute(
                    "INSERT OR IGNORE INTO marks_seen(index_id, pack, seen_at) VALUES (?1, ?2, ?3)",
                    params![&id.0[..], &pack.0[..], inherited.unwrap_or(now).max(*at)],
                )?;
            }
            if !index.condemned.is_empty() {
                file_cache::bump_generation(&tx)?;
            }
            tx.commit()
        })
    }

    /// Drop index object `id`, which a loaded one replaces (a prune's rewrite)
    /// and which is gone from the repository: the packs it listed that no
    /// loaded object lists since (the ones the prune deleted) go with it.
    /// Noted, so that prune never believes its marks if it is put back.
    pub fn supersede(&self, id: &ObjectId) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            let gone = tx.execute(
                "DELETE FROM blobs WHERE pack IN (SELECT id FROM packs WHERE index_id = ?1)",
                [&id.0[..]],
            )?;
            tx.execute("DELETE FROM packs WHERE index_id = ?1", [&id.0[..]])?;
            tx.execute("DELETE FROM condemned WHERE index_id = ?1", [&id.0[..]])?;
            tx.execute("DELETE FROM indexes WHERE id = ?1", [&id.0[..]])?;
            tx.execute(
                "INSERT OR IGNORE INTO superseded(id) VALUES (?1)",
                [&id.0[..]],
            )?;
            if gone > 0 {
                file_cache::bump_generation(&tx)?;
            }
            tx.commit()
        })
    }

    /// Note that index object `id` was replaced (this machine's prune did it).
    pub fn note_superseded(&self, id: &ObjectId) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO superseded(id) VALUES (?1)",
                [&id.0[..]],
            )
            .map(|_| ())
        })
    }

    /// The index objects a loaded one replaced.
    pub fn superseded(&self) -> Result<std::collections::HashSet<ObjectId>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id FROM superseded")?;
            let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            rows.map(|r| r.map(|b| ObjectId::from_slice(&b).unwrap_or(ObjectId([0; 32]))))
                .collect()
        })
    }

    /// When this catalog first saw each condemnation (index object, pack).
    pub fn marks_seen(&self) -> Result<std::collections::HashMap<(ObjectId, PackId), i64>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT index_id, pack, seen_at FROM marks_seen")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            rows.map(|r| {
                r.map(|(i, p, t)| {
                    let i = ObjectId::from_slice(&i).unwrap_or(ObjectId([0; 32]));
                    ((i, PackId::from_slice(&p).unwrap_or(PackId([0; 32]))), t)
                })
            })
            .collect()
        })
    }

    /// Forget when marks of index objects no longer in the repository were
    /// seen (`present`: the index objects there now).
    pub fn keep_marks_seen(&self, present: &std::collections::HashSet<ObjectId>) -> Result<()> {
        let gone: Vec<ObjectId> = self
            .marks_seen()?
            .into_keys()
            .map(|(i, _)| i)
            .filter(|i| !present.contains(i))
            .collect();
        self.with(|c| {
            let tx = c.transaction()?;
            for i in &gone {
                tx.execute("DELETE FROM marks_seen WHERE index_id = ?1", [&i.0[..]])?;
            }
            tx.commit()
        })
    }

    /// The packs some loaded index object condemns, with the latest time one did.
    pub fn condemned(&self) -> Result<std::collections::HashMap<PackId, i64>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT pack, max(marked_at) FROM condemned GROUP BY pack")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|r| r.map(|(p, t)| (PackId::from_slice(&p).unwrap_or(PackId([0; 32])), t)))
                .collect()
        })
    }

    /// Record a durable pack that no index object covers yet.
    pub fn add_unindexed_pack(&self, pack: &IndexedPack) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            insert_pack(&tx, pack, None)?;
            tx.commit()
        })
    }

    /// Every pack the catalog knows, with its size.
    /// Bytes of all packs the catalog knows.
    pub fn pack_bytes(&self) -> Result<u64> {
        self.with(|c| {
            c.query_row("SELECT coalesce(sum(size), 0) FROM packs", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
        })
    }

    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        self.packs_where("")
    }

    /// The packs no index object covers yet, with their sizes (not their blobs).
    pub fn unindexed_pack_sizes(&self) -> Result<Vec<(PackId, u64)>> {
        self.packs_where("WHERE index_id IS NULL")
    }

    /// The size of pack `id`, if the catalog knows it.
    pub fn pack_size(&self, id: &PackId) -> Result<Option<u64>> {
        self.with(|c| {
            c.prepare_cached("SELECT size FROM packs WHERE id = ?1")?
                .query_row([&id.0[..]], |r| r.get::<_, i64>(0))
                .optional()
                .map(|o| o.map(|s| s as u64))
        })
    }

    /// How many packs the catalog knows.
    pub fn pack_count(&self) -> Result<u64> {
        self.with(|c| {
            c.query_row("SELECT count(*) FROM packs", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }

    fn packs_where(&self, filter: &str) -> Result<Vec<(PackId, u64)>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT id, size FROM packs {filter} ORDER BY id"))?;
            let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
            rows.map(|r| {
                r.map(|(id, size)| {
                    (
                        PackId::from_slice(&id).unwrap_or(PackId([0; 32])),
                        size as u64,
                    )
                })
            })
            .collect()
        })
    }

    pub fn has_pack(&self, id: &PackId) -> Result<bool> {
        self.with(|c| {
            c.query_row("SELECT 1 FROM packs WHERE id = ?1", [&id.0[..]], |_| Ok(()))
                .optional()
                .map(|o| o.is_some())
        })
    }

    /// Packs no index object covers yet, with their blobs.
    pub fn unindexed_packs(&self) -> Result<Vec<IndexedPack>> {
        self.with(|c| {
            let ids: Vec<(Vec<u8>, i64)> = {
                let mut st = c.prepare("SELECT id, size FROM packs WHERE index_id IS NULL ORDER BY id")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::with_capacity(ids.len());
            let mut st = c.prepare("SELECT kind, id, offset, length, raw_length FROM blobs WHERE pack = ?1 ORDER BY offset")?;
            for (id, size) in ids {
                let blobs = st
                    .query_map([&id], |r| {
                        Ok(PackEntry {
                            kind: Kind::from_u8(r.get::<_, u8>(0)?).unwrap_or(Kind::Data),
                            id: r.get::<_, Vec<u8>>(1)?.try_into().unwrap_or([0; 32]),
                            offset: r.get::<_, i64>(2)? as u64,
                            length: r.get(3)?,
                            raw_length: r.get(4)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.push(IndexedPack { id: PackId::from_slice(&id).unwrap_or(PackId([0; 32])), size: size as u64, blobs });
            }
            Ok(out)
        })
    }

    /// Whether pack `id` of `size` bytes was checked and refused before.
    pub fn pack_refused(&self, id: &PackId, size: u64) -> Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM refused_packs WHERE id = ?1 AND size = ?2",
                params![&id.0[..], size as i64],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
        })
    }

    pub fn refuse_pack(&self, id: &PackId, size: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO refused_packs(id, size) VALUES (?1, ?2)",
                params![&id.0[..], size as i64],
            )
            .map(|_| ())
        })
    }

    /// Forget that index object `id` covers its packs (it is being replaced): they
    /// count as unindexed again, so the next `write_index` covers them.
    pub fn forget_index(&self, id: &ObjectId) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE packs SET index_id = NULL WHERE index_id = ?1",
                [&id.0[..]],
            )?;
            tx.execute("DELETE FROM indexes WHERE id = ?1", [&id.0[..]])?;
            tx.execute("DELETE FROM condemned WHERE index_id = ?1", [&id.0[..]])?;
            tx.commit()
        })
    }

    /// Packs listed but gone from the repository are forgotten with their blobs.
    pub fn remove_pack(&self, id: &PackId) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM blobs WHERE pack = ?1", [&id.0[..]])?;
            tx.execute("DELETE FROM packs WHERE id = ?1", [&id.0[..]])?;
            tx.execute("DELETE FROM condemned WHERE pack = ?1", [&id.0[..]])?;
            file_cache::bump_generation(&tx)?;
            tx.commit()
        })
    }

    /// One place holding blob `id` of `kind`: a pack an index object lists first.
    pub fn lookup(&self, kind: Kind, id: &BlobId) -> Result<Option<Location>> {
        Ok(self.locations(kind, id)?.into_iter().next())
    }

    /// Every place holding blob `id` of `kind`, those in packs an index object lists
    /// first and condemned packs last: a read that fails to authenticate in one
    /// tries the next.
    pub fn locations(&self, kind: Kind, id: &BlobId) -> Result<Vec<Location>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT b.pack, b.offset, b.length, b.raw_length FROM blobs b
                 JOIN packs p ON p.id = b.pack
                 WHERE b.id = ?1 AND b.kind = ?2
                 ORDER BY EXISTS (SELECT 1 FROM condemned c WHERE c.pack = b.pack), p.index_id IS NULL",
            )?;
            let rows = st.query_map(params![&id.0[..], kind as u8], |r| {
                Ok(Location {
                    pack: PackId::from_slice(&r.get::<_, Vec<u8>>(0)?).unwrap_or(PackId([0; 32])),
                    offset: r.get::<_, i64>(1)? as u64,
                    length: r.get(2)?,
                    raw_length: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The blobs the catalog places in pack `id`.
    pub fn pack_blob_ids(&self, id: &PackId) -> Result<Vec<BlobKey>> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT kind, id FROM blobs WHERE pack = ?1")?;
            let rows = st.query_map([&id.0[..]], |r| {
                Ok((r.get::<_, u8>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            rows.map(|r| {
                r.map(|(k, b)| {
                    (
                        Kind::from_u8(k).unwrap_or(Kind::Data),
                        b.try_into().unwrap_or([0; 32]),
                    )
                })
            })
            .collect()
        })
    }

    /// Whether a pack that an index object lists holds blob `id` of `kind`.
    pub fn has_indexed_blob(&self, kind: Kind, id: &BlobId) -> Result<bool> {
        self.with(|c| {
            c.prepare_cached(
                "SELECT 1 FROM blobs b JOIN packs p ON p.id = b.pack
                 WHERE b.id = ?1 AND b.kind = ?2 AND p.index_id IS NOT NULL LIMIT 1",
            )?
            .query_row(params![&id.0[..], kind as u8], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
        })
    }

    /// Whether any pack the catalog knows holds blob `id` of `kind`, condemned
    /// or not (the question of `verify`: can it be read?).
    pub fn has_stored_blob(&self, kind: Kind, id: &BlobId) -> Result<bool> {
        self.with(|c| {
            c.prepare_cached("SELECT 1 FROM blobs WHERE id = ?1 AND kind = ?2 LIMIT 1")?
                .query_row(params![&id.0[..], kind as u8], |_| Ok(()))
                .optional()
                .map(|o| o.is_some())
        })
    }

    /// Whether a durable pack no prune condemned holds blob `id` of `kind` (the
    /// dedup question).
    pub fn has_blob(&self, kind: Kind, id: &BlobId) -> Result<bool> {
        Ok(self.live_pack_of(kind, id)?.is_some())
    }

    /// A durable pack no prune condemned that holds blob `id` of `kind`.
    pub fn live_pack_of(&self, kind: Kind, id: &BlobId) -> Result<Option<PackId>> {
        self.with(|c| {
            c.prepare_cached(LIVE_PACK_OF)?
                .query_row(params![&id.0[..], kind as u8], |r| r.get::<_, Vec<u8>>(0))
                .optional()
                .map(|o| o.and_then(|p| PackId::from_slice(&p)))
        })
    }

    /// Forget everything the repository can tell again (for a rebuild).
    pub fn clear(&self) -> Result<()> {
        self.with(|c| {
            c.execute_batch(
                "DELETE FROM blobs; DELETE FROM packs; DELETE FROM indexes; DELETE FROM condemned; DELETE FROM marks_seen; DELETE FROM manifest_cache; DELETE FROM superseded; DELETE FROM dir_cache; DELETE FROM cache_runs; DELETE FROM seen_snapshots; DELETE FROM seen_wal;",
            )?;
            file_cache::bump_generation(c)
        })
    }

    /// Forget every index object, and the packs and blobs they list, but keep
    /// the file cache (its rows are checked against the blobs before they are
    /// trusted again) and the packs no index lists yet (a snapshot running on
    /// this machine beside a prune has its packs here until it indexes them):
    /// for a prune, or index objects removed by one elsewhere, followed by a
    /// reload.
    pub fn clear_index(&self) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute_batch(
                "DELETE FROM blobs WHERE pack IN (SELECT id FROM packs WHERE index_id IS NOT NULL);
                 DELETE FROM packs WHERE index_id IS NOT NULL;
                 DELETE FROM indexes; DELETE FROM condemned;",
            )?;
            file_cache::bump_generation(&tx)?;
            tx.commit()
        })
    }

    pub fn counts(&self) -> Result<(u64, u64, u64)> {
        self.with(|c| {
            let q = |s: &str| c.query_row(s, [], |r| r.get::<_, i64>(0)).map(|v| v as u64);
            Ok((
                q("SELECT count(*) FROM indexes")?,
                q("SELECT count(*) FROM packs")?,
                q("SELECT count(*) FROM blobs")?,
            ))
        })
    }
}

/// The catalog steers what a snapshot stores and what restore reads (file-cache
/// rows name the chunks of unchanged files), so nobody else may change it. Its
/// folder is opened without following anyone else's link (made 0700 when new),
/// must be ours and not writable by others, and so must every folder above it be
/// (root's or ours, writable by others only when sticky, like /tmp): then nobody
/// can swap a folder on the way between this check and SQLite's open. Returns
/// the folder's physical path, which SQLite then opens (no link left to follow).
fn private_dir(dir: &Path) -> Result<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let refuse = |p: &Path, why: String| {
        Error::Config(format!(
            "the cache folder {} {why}: it steers what backups store, so only a private one is used; set HCBACKUP_CACHE_DIR to a folder of your own (mode 0700)",
            p.display()
        ))
    };
    let fd = crate::trusted_path::open_dir(dir, true).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied if e.raw_os_error().is_none() => {
            refuse(dir, format!("cannot be used ({e})"))
        }
        _ => Error::io_path("opening the cache folder", dir, e),
    })?;
    let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| Error::io_path("resolving the cache folder", dir, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io_path("inspecting", dir, e.into()))?;
    if st.st_uid != me {
        return Err(refuse(dir, format!("belongs to uid {}", st.st_uid)));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(refuse(
            dir,
            format!(
                "can be written by others (mode {:04o})",
                st.st_mode & 0o7777
            ),
        ));
    }
    for up in real.ancestors().skip(1) {
        let m = std::fs::symlink_metadata(up).map_err(|e| Error::io_path("inspecting", up, e))?;
        let sticky = m.mode() & 0o1000 != 0;
        if (m.uid() != me && m.uid() != 0) || (m.mode() & 0o022 != 0 && !sticky) {
            return Err(refuse(
                dir,
                format!(
                    "lies in {}, which others can change (uid {}, mode {:04o})",
                    up.display(),
                    m.uid(),
                    m.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(real)
}

/// The catalog's files: ours (else refused), made private when ours but open.
fn private_files(db: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    for f in [
        db.to_path_buf(),
        db.with_extension("sqlite-wal"),
        db.with_extension("sqlite-shm"),
    ] {
        let m = match std::fs::symlink_metadata(&f) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io_path("inspecting", &f, e)),
        };
        if m.uid() != me || !m.file_type().is_file() {
            return Err(Error::Config(format!(
                "the catalog file {} belongs to uid {} (or is not a plain file): it steers what backups store; remove it (it is rebuilt) or set HCBACKUP_CACHE_DIR to a folder of your own",
                f.display(),
                m.uid()
            )));
        }
        if m.mode() & 0o077 != 0 {
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io_path("making private", &f, e))?;
        }
    }
    Ok(())
}

/// Whether blob (?1, kind ?2) is in a pack no index object condemns: a
/// snapshot never deduplicates against a condemned pack, which a prune may
/// delete once the snapshots running at its mark have ended.
pub(crate) const HAS_LIVE_BLOB: &str = "SELECT 1 FROM blobs b WHERE b.id = ?1 AND b.kind = ?2
     AND NOT EXISTS (SELECT 1 FROM condemned c WHERE c.pack = b.pack) LIMIT 1";
const LIVE_PACK_OF: &str = "SELECT b.pack FROM blobs b WHERE b.id = ?1 AND b.kind = ?2
     AND NOT EXISTS (SELECT 1 FROM condemned c WHERE c.pack = b.pack) LIMIT 1";

fn insert_pack(
    tx: &rusqlite::Transaction<'_>,
    p: &IndexedPack,
    index: Option<&ObjectId>,
) -> rusqlite::Result<()> {
    let idx = index.map(|i| i.0.to_vec());
    tx.prepare_cached(
        "INSERT INTO packs(id, size, index_id) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET index_id = coalesce(excluded.index_id, packs.index_id)",
    )?
    .execute(params![&p.id.0[..], p.size as i64, idx])?;
    let mut st = tx.prepare_cached(
        "INSERT OR IGNORE INTO blobs(id, pack, kind, offset, length, raw_length) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for b in &p.blobs {
        st.execute(params![
            &b.id[..],
            &p.id.0[..],
            b.kind as u8,
            b.offset as i64,
            b.length,
            b.raw_length
        ])?;
    }
    Ok(())
}

fn sql(path: &Path, e: rusqlite::Error) -> Error {
    if damage::is_damage(&e) {
        // Met while working: the next open sets the file aside whatever its check says.
        let _ = std::fs::File::create(damage::flag(path));
        return Error::CatalogDamaged {
            path: path.display().to_string(),
            source: e,
        };
    }
    // A full disk is not a damaged catalog: say "free space", never "delete it"
    // (which would lose the restore-test history and what else it keeps).
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        let full = f.code == rusqlite::ErrorCode::DiskFull
            || (f.code == rusqlite::ErrorCode::SystemIoFailure && nearly_full(path));
        if full {
            return Error::DiskFull(format!("writing the catalog {}", path.display()));
        }
    }
    Error::Catalog {
        path: path.display().to_string(),
        source: e,
    }
}

/// Whether the file system holding `path` has (almost) no room left: SQLite
/// reports some writes that hit a full disk as a plain I/O error.
fn nearly_full(path: &Path) -> bool {
    let dir = path.parent().unwrap_or(path);
    rustix::fs::statvfs(dir).is_ok_and(|s| s.f_bavail.saturating_mul(s.f_frsize) < 1 << 20)
}
