//! History kept per copy: what `forget` and `prune` removed, and why; and which
//! pack `verify` last read when. Like restore tests this is not repository content:
//! `clear` leaves it alone.

use std::collections::HashMap;

use crate::id::PackId;

use rusqlite::params;

use super::Catalog;
use crate::error::Result;

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Removal {
    pub time: String,
    /// `local` or a destination's name.
    pub copy: String,
    pub operation: String,
    /// `snapshots/<id>`, `packs/<id>`, `index/<id>`.
    pub object: String,
    pub reason: String,
}

impl Catalog {
    /// The packs prune removed, as this catalog recorded it (object paths).
    pub fn removed_packs(&self) -> Result<std::collections::HashSet<String>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT object FROM removals WHERE operation = 'prune' AND object LIKE 'packs/%'",
            )?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect()
        })
    }

    pub fn record_removals(&self, rows: &[Removal]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(
                    "INSERT INTO removals(time, copy, operation, object, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for r in rows {
                    st.execute(params![r.time, r.copy, r.operation, r.object, r.reason])?;
                }
            }
            tx.commit()
        })
    }

    /// How many objects each copy's operations removed from `since`: (copy,
    /// operation, count), for the compliance report.
    pub fn removal_counts(&self, since: &str) -> Result<Vec<(String, String, u64)>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT copy, operation, count(*) FROM removals WHERE time >= ?1
                 GROUP BY copy, operation ORDER BY copy, operation",
            )?;
            let rows = st.query_map([since], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })?;
            rows.collect()
        })
    }

    /// The manifests `forget` removed from the primary repository here (object
    /// path → when): one that is back was put back by someone (a replay).
    pub fn forgotten_snapshots(&self) -> Result<std::collections::HashMap<String, String>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT object, time FROM removals WHERE operation = 'forget' AND copy = 'local' AND object LIKE 'snapshots/%'",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Removals recorded for `copy`, oldest first.
    pub fn removals(&self, copy: &str) -> Result<Vec<Removal>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT time, copy, operation, object, reason FROM removals WHERE copy = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([copy], |r| {
                Ok(Removal {
                    time: r.get(0)?,
                    copy: r.get(1)?,
                    operation: r.get(2)?,
                    object: r.get(3)?,
                    reason: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Record that `packs` of `location` were read back and found good at `time`.
    pub fn record_pack_reads(&self, location: &str, packs: &[PackId], time: &str) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(
                    "INSERT OR REPLACE INTO pack_reads(location, pack, time) VALUES (?1, ?2, ?3)",
                )?;
                for p in packs {
                    st.execute(params![location, &p.0[..], time])?;
                }
            }
            tx.commit()
        })
    }

    /// When each pack of `location` was last read back good (RFC 3339, UTC).
    pub fn pack_reads(&self, location: &str) -> Result<HashMap<PackId, String>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT pack, time FROM pack_reads WHERE location = ?1")?;
            let rows = st.query_map([location], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let (id, t) = row?;
                if let Some(id) = PackId::from_slice(&id) {
                    out.insert(id, t);
                }
            }
            Ok(out)
        })
    }
}
