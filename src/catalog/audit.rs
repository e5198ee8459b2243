//! The audit log's events as the catalog keeps them: the exact JSON that was
//! hashed and sealed, its id (the keyed hash), its place in the chain, and whether
//! the repository has its object yet. Not repository content in the cache sense:
//! `clear` leaves it alone, and it is compared with the repository's `audit/`.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::Catalog;
use crate::error::Result;

#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    pub id: [u8; 32],
    pub seq: u64,
    pub time: String,
    /// The event's JSON, byte for byte as hashed.
    pub event: String,
    /// The repository holds it as `audit/<id>`.
    pub stored: bool,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    let id: Vec<u8> = r.get(0)?;
    let mut a = [0u8; 32];
    if id.len() == 32 {
        a.copy_from_slice(&id);
    }
    Ok(AuditRow {
        id: a,
        seq: r.get::<_, i64>(1)? as u64,
        time: r.get(2)?,
        event: r.get(3)?,
        stored: r.get(4)?,
    })
}

const COLUMNS: &str = "SELECT id, seq, time, event, stored FROM audit";

impl Catalog {
    /// Append the next event: `make` gets the head (its seq and id, none for the
    /// first event) and returns the new row. One IMMEDIATE transaction, so two
    /// processes appending at once each chain to the other's event, never fork.
    pub fn append_audit(
        &self,
        make: impl FnOnce(Option<(u64, [u8; 32])>) -> AuditRow,
    ) -> Result<AuditRow> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let head = tx
                .query_row(&format!("{COLUMNS} ORDER BY seq DESC, id LIMIT 1"), [], row)
                .optional()?
                .map(|r| (r.seq, r.id));
            let new = make(head);
            insert(&tx, &new)?;
            tx.commit()?;
            Ok(new)
        })
    }

    /// Add events read from the repository (those already here are left alone).
    pub fn import_audit(&self, rows: &[AuditRow]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            for r in rows {
                insert(&tx, r)?;
            }
            tx.commit()
        })
    }

    /// Every event, in chain order; from `since` (an RFC 3339 time) when given.
    pub fn audit_rows(&self, since: Option<&str>) -> Result<Vec<AuditRow>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("{COLUMNS} WHERE time >= ?1 ORDER BY seq, id"))?;
            let rows = st.query_map([since.unwrap_or("")], row)?;
            rows.collect()
        })
    }

    /// Up to `limit` events before `before` (a seq; none: from the newest), newest
    /// first: for reading back only as far as needed.
    pub fn audit_rows_back(&self, before: Option<u64>, limit: u64) -> Result<Vec<AuditRow>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "{COLUMNS} WHERE seq < ?1 ORDER BY seq DESC, id LIMIT ?2"
            ))?;
            let rows = st.query_map(
                params![before.unwrap_or(i64::MAX as u64) as i64, limit as i64],
                row,
            )?;
            rows.collect()
        })
    }

    /// The events whose JSON matches `pattern` (SQL LIKE, no escapes), in chain
    /// order: a cheap filter before the events are parsed.
    fn events_like(&self, pattern: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut st =
                c.prepare_cached("SELECT event FROM audit WHERE event LIKE ?1 ORDER BY seq, id")?;
            let rows = st.query_map([pattern], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// What the audit log says of legal holds: per snapshot (hex id), whether the
    /// last successful hold event placed it (`true`, with its reason) or lifted
    /// it (`false`). A hold object can be deleted by anyone who can write the
    /// storage; the chained log says whether `hold remove` did it.
    pub fn holds_in_audit(&self) -> Result<std::collections::BTreeMap<String, (bool, String)>> {
        let events = self.events_like("%\"hold %")?;
        let mut out = std::collections::BTreeMap::new();
        for e in events {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&e) else {
                continue;
            };
            let (Some(op), Some(snap)) = (v["operation"].as_str(), v["snapshot"].as_str()) else {
                continue;
            };
            if v["result"] != "ok" {
                continue;
            }
            let reason = v["reason"].as_str().unwrap_or_default().to_string();
            match op {
                "hold add" => out.insert(snap.to_string(), (true, reason)),
                "hold remove" => out.insert(snap.to_string(), (false, reason)),
                _ => None,
            };
        }
        Ok(out)
    }

    /// When each snapshot (hex id) the log's snapshot events name was made.
    pub fn snapshot_times_in_audit(&self) -> Result<std::collections::HashMap<String, String>> {
        let events = self.events_like("%\"snapshot\":\"%")?;
        let mut out = std::collections::HashMap::new();
        for e in events {
            if let Ok(e) = crate::audit::Event::from_json(&e) {
                if let (true, Some(id)) = (e.operation == "snapshot", e.snapshot) {
                    out.insert(id, e.time);
                }
            }
        }
        Ok(out)
    }

    /// The snapshots (hex ids) that forget events of the log removed.
    pub fn forgotten_in_audit(&self) -> Result<std::collections::HashSet<String>> {
        let events = self.events_like("%\"forgotten\"%")?;
        let mut out = std::collections::HashSet::new();
        for e in events {
            if let Ok(e) = crate::audit::Event::from_json(&e) {
                out.extend(e.forgotten);
            }
        }
        Ok(out)
    }

    /// The furthest position (`model::wal::position`) before which forget
    /// events of the log removed WAL, if any did.
    pub fn wal_forgotten_before(&self) -> Result<Option<u64>> {
        let events = self.events_like("%\"wal_before\"%")?;
        Ok(events
            .iter()
            .filter_map(|e| crate::audit::Event::from_json(e).ok())
            .filter_map(|e| e.wal_before)
            .filter_map(|n| crate::model::wal::position(&n))
            .max())
    }

    /// The key files the log records as written: id → BLAKE3 (hex) of their bytes.
    pub fn key_files_in_audit(&self) -> Result<std::collections::HashMap<String, String>> {
        let events = self.events_like("%\"key_files\"%")?;
        let mut out = std::collections::HashMap::new();
        for e in events {
            let Ok(e) = crate::audit::Event::from_json(&e) else {
                continue;
            };
            for k in e.key_files {
                if let Some((id, hash)) = k.split_once(':') {
                    out.insert(id.to_string(), hash.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Key files the audit log records as removed here (`key remove`, `key
    /// passwd`): the first 8 hex digits of their ids. Only those are removed at
    /// the copies: anyone who can write the storage can delete a key file, and a
    /// mirror must not spread that to every copy.
    pub fn keys_removed_in_audit(&self) -> Result<std::collections::HashSet<String>> {
        let events = self.events_like("%\"key %")?;
        let mut out = std::collections::HashSet::new();
        for e in events {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&e) else {
                continue;
            };
            let op = v["operation"].as_str().unwrap_or_default();
            if v["result"] != "ok" || !(op == "key remove" || op == "key passwd") {
                continue;
            }
            // "key 1a2b3c4d removed", "password changed: key N replaces key 1a2b3c4d".
            let detail = v["detail"].as_str().unwrap_or_default();
            let gone = match op {
                "key remove" => detail
                    .strip_prefix("key ")
                    .and_then(|d| d.split(' ').next()),
                _ => detail.rsplit_once("replaces key ").map(|(_, k)| k),
            };
            if let Some(k) = gone.filter(|k| k.len() == 8) {
                out.insert(k.to_string());
            }
        }
        Ok(out)
    }

    pub fn audit_count(&self) -> Result<u64> {
        self.with(|c| {
            c.query_row("SELECT count(*) FROM audit", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }

    /// How many events here the repository holds.
    pub fn audit_stored_count(&self) -> Result<u64> {
        self.with(|c| {
            c.query_row("SELECT count(*) FROM audit WHERE stored = 1", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
        })
    }

    /// Events the repository does not hold yet (its write failed or was cut short).
    pub fn audit_unstored(&self) -> Result<Vec<AuditRow>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("{COLUMNS} WHERE stored = 0 ORDER BY seq"))?;
            let rows = st.query_map([], row)?;
            rows.collect()
        })
    }

    /// The ids of every event here.
    pub fn audit_ids(&self) -> Result<std::collections::HashSet<[u8; 32]>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id FROM audit")?;
            let rows = st.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            let mut out = std::collections::HashSet::new();
            for id in rows {
                if let Ok(a) = <[u8; 32]>::try_from(id?.as_slice()) {
                    out.insert(a);
                }
            }
            Ok(out)
        })
    }

    /// The newest event the repository holds (as this catalog knows): seq and id.
    pub fn audit_stored_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        self.with(|c| {
            c.query_row(
                &format!("{COLUMNS} WHERE stored = 1 ORDER BY seq DESC, id LIMIT 1"),
                [],
                row,
            )
            .optional()
            .map(|r| r.map(|r| (r.seq, r.id)))
        })
    }

    /// In one transaction: take in `taken` (events from the repository), and put
    /// `rebased` in place of `pending` (this catalog's unstored events, chained
    /// again after them).
    pub fn rebase_audit(
        &self,
        pending: &[AuditRow],
        taken: &[AuditRow],
        rebased: &[AuditRow],
    ) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for p in pending {
                tx.execute(
                    "DELETE FROM audit WHERE id = ?1 AND stored = 0",
                    [&p.id[..]],
                )?;
            }
            for r in taken.iter().chain(rebased) {
                insert(&tx, r)?;
            }
            tx.commit()
        })
    }

    pub fn mark_audit_stored(&self, id: &[u8; 32]) -> Result<()> {
        self.with(|c| {
            c.execute("UPDATE audit SET stored = 1 WHERE id = ?1", [&id[..]])
                .map(|_| ())
        })
    }
}

fn insert(tx: &rusqlite::Transaction<'_>, r: &AuditRow) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO audit(id, seq, time, event, stored) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![&r.id[..], r.seq as i64, r.time, r.event, r.stored],
    )
    .map(|_| ())
}
