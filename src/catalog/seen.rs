//! The snapshot manifests this machine has seen, with their times. A manifest
//! that leaves the repository other than by this machine's `forget` was hidden
//! or deleted by someone with access to the storage (or forgotten from another
//! machine): `Repository::snapshots_checked` names it, so `restore latest` does
//! not silently fall back to an older snapshot, `verify` reports it (and `repair`
//! brings it back from a copy), and `prune` does not delete its data.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use super::Catalog;
use crate::error::Result;
use crate::id::ObjectId;

impl Catalog {
    /// Remember manifests read back: (id, time).
    pub fn see_snapshots<'a>(
        &self,
        seen: impl Iterator<Item = (&'a ObjectId, &'a str)>,
    ) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR IGNORE INTO seen_snapshots(id, time) VALUES (?1, ?2)",
                )?;
                for (id, time) in seen {
                    st.execute(params![&id.0[..], time])?;
                }
            }
            tx.commit()
        })
    }

    /// Forget a manifest removed on purpose (`forget`).
    pub fn unsee_snapshot(&self, id: &ObjectId) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM seen_snapshots WHERE id = ?1", [&id.0[..]])?;
            c.execute("DELETE FROM manifest_cache WHERE id = ?1", [&id.0[..]])
                .map(|_| ())
        })
    }

    /// The plaintext of manifest `id`, when it was read back (or written) here.
    pub fn cached_manifest(&self, id: &ObjectId) -> Result<Option<Vec<u8>>> {
        self.with(|c| {
            c.prepare_cached("SELECT plain FROM manifest_cache WHERE id = ?1")?
                .query_row([&id.0[..]], |r| r.get(0))
                .optional()
        })
    }

    /// Keep the authenticated plaintext of manifest `id`.
    pub fn cache_manifest(&self, id: &ObjectId, plain: &[u8]) -> Result<()> {
        self.with(|c| {
            c.prepare_cached("INSERT OR IGNORE INTO manifest_cache(id, plain) VALUES (?1, ?2)")?
                .execute(params![&id.0[..], plain])
                .map(|_| ())
        })
    }

    /// Every manifest seen, with its time.
    pub fn seen_snapshots(&self) -> Result<HashMap<ObjectId, String>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, time FROM seen_snapshots")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let (id, time) = row?;
                if let Ok(id) = <[u8; 32]>::try_from(id.as_slice()) {
                    out.insert(ObjectId(id), time);
                }
            }
            Ok(out)
        })
    }

    /// Remember WAL records read back or written: (id, file name).
    pub fn see_wal<'a>(&self, seen: impl Iterator<Item = (ObjectId, &'a str)>) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st =
                    tx.prepare_cached("INSERT OR IGNORE INTO seen_wal(id, name) VALUES (?1, ?2)")?;
                for (id, name) in seen {
                    st.execute(params![&id.0[..], name])?;
                }
            }
            tx.commit()
        })
    }

    /// Forget a WAL record removed on purpose (`forget`).
    pub fn unsee_wal(&self, id: &ObjectId) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM seen_wal WHERE id = ?1", [&id.0[..]])
                .map(|_| ())
        })
    }

    /// Every WAL record seen, with its file name.
    pub fn seen_wal(&self) -> Result<HashMap<ObjectId, String>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, name FROM seen_wal")?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let (id, name) = row?;
                if let Ok(id) = <[u8; 32]>::try_from(id.as_slice()) {
                    out.insert(ObjectId(id), name);
                }
            }
            Ok(out)
        })
    }
}
