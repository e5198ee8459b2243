//! The checks of the monthly restore test, run on the restored temporary database:
//! row counts against the manifest, amcheck on every B-tree index, and the user's
//! own SQL checks.

use serde::Serialize;

use super::session::Session;
use super::tables::count_tables;
use crate::config::SqlCheck;
use crate::model::snapshot::TableCount;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// Skipped checks pass; the detail says why they were skipped.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: impl Into<String>, passed: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            passed,
            skipped: false,
            detail: detail.into(),
        }
    }
}

/// Every table of the manifest must have the same count in the restored database,
/// and the restored database must have no table the manifest does not list.
pub fn counts(s: &Session, expected: &[TableCount]) -> Vec<Check> {
    let got = match count_tables(s) {
        Ok(g) => g,
        Err(e) => return vec![Check::new("row counts", false, e.to_string())],
    };
    let mut out = Vec::new();
    for e in expected {
        let name = format!("rows {}.{}", e.schema, e.table);
        match got
            .iter()
            .find(|g| g.schema == e.schema && g.table == e.table)
        {
            Some(g) if g.rows == e.rows => {
                out.push(Check::new(name, true, format!("{} rows", g.rows)))
            }
            Some(g) => out.push(Check::new(
                name,
                false,
                format!(
                    "{} rows restored, {} recorded when the dump was taken",
                    g.rows, e.rows
                ),
            )),
            None => out.push(Check::new(
                name,
                false,
                "table missing from the restored database",
            )),
        }
    }
    for g in &got {
        if !expected
            .iter()
            .any(|e| e.schema == g.schema && e.table == g.table)
        {
            out.push(Check::new(
                format!("rows {}.{}", g.schema, g.table),
                false,
                "table restored but not recorded in the snapshot",
            ));
        }
    }
    out
}

/// `bt_index_check` on every B-tree index outside the system schemas. Needs the
/// amcheck extension; without the right to create it the check is skipped.
pub fn amcheck(s: &Session) -> Vec<Check> {
    if let Err(e) = s.batch("CREATE EXTENSION IF NOT EXISTS amcheck") {
        return vec![Check {
            name: "amcheck".into(),
            passed: true,
            skipped: true,
            detail: format!("skipped: amcheck is not available to this user ({e})"),
        }];
    }
    let sql = "SELECT c.oid::text, n.nspname || '.' || c.relname FROM pg_index i \
               JOIN pg_class c ON c.oid = i.indexrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
               JOIN pg_am a ON a.oid = c.relam \
               WHERE a.amname = 'btree' AND c.relpersistence <> 't' AND i.indisvalid \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 2";
    let indexes = match s.rows(sql) {
        Ok(r) => r,
        Err(e) => return vec![Check::new("amcheck", false, e.to_string())],
    };
    let mut bad = Vec::new();
    for r in &indexes {
        let (oid, name) = (
            r[0].clone().unwrap_or_default(),
            r[1].clone().unwrap_or_default(),
        );
        if let Err(e) = s.batch(&format!("SELECT bt_index_check({oid}::regclass, true)")) {
            bad.push(format!("{name}: {e}"));
        }
    }
    vec![if bad.is_empty() {
        Check::new(
            "amcheck",
            true,
            format!("{} B-tree indexes checked", indexes.len()),
        )
    } else {
        Check::new("amcheck", false, bad.join("; "))
    }]
}

/// The user's checks: the first column of the first row, as text, must equal `expect`.
pub fn user_checks(s: &Session, checks: &[SqlCheck]) -> Vec<Check> {
    checks
        .iter()
        .map(|c| {
            let name = c.name.clone().unwrap_or_else(|| c.query.clone());
            match s.value(&c.query) {
                Ok(v) => {
                    let got = v.unwrap_or_else(|| "NULL".into());
                    if got == c.expect {
                        Check::new(name, true, format!("returned {got:?}"))
                    } else {
                        Check::new(
                            name,
                            false,
                            format!("returned {got:?}, expected {:?}", c.expect),
                        )
                    }
                }
                Err(e) => Check::new(name, false, e.to_string()),
            }
        })
        .collect()
}
