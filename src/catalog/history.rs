//! What happened, as opposed to what is stored: results of restore tests.
//! Unlike the rest of the catalog this cannot be rebuilt from the repository;
//! `clear` leaves it alone.

use rusqlite::{params, OptionalExtension};

use super::Catalog;
use crate::error::Result;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RestoreTestRow {
    pub time: String,
    pub snapshot: String,
    pub database: String,
    pub passed: bool,
    pub restore_secs: f64,
    /// The full report, as JSON.
    pub report: String,
}

/// A row of `SELECT time, snapshot, database, passed, restore_secs, report`.
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RestoreTestRow> {
    Ok(RestoreTestRow {
        time: r.get(0)?,
        snapshot: r.get(1)?,
        database: r.get(2)?,
        passed: r.get(3)?,
        restore_secs: r.get(4)?,
        report: r.get(5)?,
    })
}

impl Catalog {
    pub fn add_restore_test(&self, r: &RestoreTestRow) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO restore_tests(time, snapshot, database, passed, restore_secs, report)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    r.time,
                    r.snapshot,
                    r.database,
                    r.passed,
                    r.restore_secs,
                    r.report
                ],
            )
            .map(|_| ())
        })
    }

    /// Restore tests from `since` (RFC 3339), oldest first.
    pub fn restore_tests_since(&self, since: &str) -> Result<Vec<RestoreTestRow>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT time, snapshot, database, passed, restore_secs, report
                 FROM restore_tests WHERE time >= ?1 ORDER BY id",
            )?;
            let rows = st.query_map([since], row)?;
            rows.collect()
        })
    }

    /// The most recent restore test, if any.
    pub fn last_restore_test(&self) -> Result<Option<RestoreTestRow>> {
        self.with(|c| {
            c.query_row(
                "SELECT time, snapshot, database, passed, restore_secs, report
                 FROM restore_tests ORDER BY id DESC LIMIT 1",
                [],
                row,
            )
            .optional()
        })
    }
}
