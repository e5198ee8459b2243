//! What each mirror destination holds, as far as this machine has seen: the
//! objects `mirror` copied there or found in its listing. A nightly mirror reads
//! this instead of listing the destination; `mirror --full-check` lists it and
//! replaces the record. Keyed by the destination's location (`s3://bucket/prefix`,
//! `drive://id`), so pointing a name elsewhere starts afresh. Like restore tests,
//! this is not repository content and `clear` leaves it alone.

use std::collections::HashMap;

use rusqlite::params;

use super::Catalog;
use crate::error::Result;

impl Catalog {
    /// Whether anything is recorded for `location`.
    pub fn holdings_known(&self, location: &str) -> Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM mirror_objects WHERE location = ?1)",
                [location],
                |r| r.get(0),
            )
        })
    }

    /// The objects recorded in folder `dir` of `location` (name → size).
    pub fn holdings(&self, location: &str, dir: &str) -> Result<HashMap<String, u64>> {
        let prefix = format!("{dir}/");
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT path, size FROM mirror_objects WHERE location = ?1 AND substr(path, 1, ?3) = ?2",
            )?;
            let rows = st.query_map(params![location, prefix, prefix.len() as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            rows.map(|r| r.map(|(p, s)| (p[prefix.len()..].to_string(), s as u64)))
                .collect()
        })
    }

    /// Replace the record of folder `dir` of `location` with a fresh listing.
    pub fn set_holdings(&self, location: &str, dir: &str, listing: &[(String, u64)]) -> Result<()> {
        let prefix = format!("{dir}/");
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM mirror_objects WHERE location = ?1 AND substr(path, 1, ?3) = ?2",
                params![location, prefix, prefix.len() as i64],
            )?;
            {
                let mut ins = tx.prepare(
                    "INSERT OR REPLACE INTO mirror_objects(location, path, size) VALUES (?1, ?2, ?3)",
                )?;
                for (n, s) in listing {
                    ins.execute(params![location, format!("{prefix}{n}"), *s as i64])?;
                }
            }
            tx.commit()
        })
    }

    /// Record objects copied to `location`.
    pub fn add_holdings(&self, location: &str, objects: &[(String, u64)]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut ins = tx.prepare(
                    "INSERT OR REPLACE INTO mirror_objects(location, path, size) VALUES (?1, ?2, ?3)",
                )?;
                for (p, s) in objects {
                    ins.execute(params![location, p, *s as i64])?;
                }
            }
            tx.commit()
        })
    }

    /// Objects removed from `location` (by forget there).
    pub fn remove_holdings(&self, location: &str, paths: &[String]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut del =
                    tx.prepare("DELETE FROM mirror_objects WHERE location = ?1 AND path = ?2")?;
                for p in paths {
                    del.execute(params![location, p])?;
                }
            }
            tx.commit()
        })
    }

    /// Forget everything recorded for `location`.
    pub fn forget_holdings(&self, location: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM mirror_objects WHERE location = ?1", [location])
                .map(|_| ())
        })
    }
}
