//! A damaged catalog: set aside, and what the repository cannot give back saved
//! from it into the new one.
//!
//! Most of the catalog is a cache of the repository (blob locations, index
//! objects, the file cache) and is simply rebuilt. A few tables are not: the
//! restore-test history, what each copy holds and what was removed and why, when
//! `verify` last read each pack, the manifests this machine has seen (which
//! detect one hidden behind its back), the key's fingerprint and epoch (`meta`),
//! and audit events not yet in the repository. Their rows are read from the
//! damaged file — forward until the damage, then backward from the end until the
//! damage, so a damaged page in the middle of a table loses only its own rows —
//! and written into the fresh catalog.

use std::path::Path;

use rusqlite::{types::Value, Connection, OpenFlags};

/// The tables saved, each with the rows to keep (`None`: all).
const KEPT: &[(&str, Option<&str>)] = &[
    ("meta", None),
    ("restore_tests", None),
    ("mirror_objects", None),
    ("removals", None),
    ("pack_reads", None),
    ("seen_snapshots", None),
    ("seen_wal", None),
    ("refused_packs", None),
    // Events the repository holds come back from it (`AuditLog::sync`); only
    // those that never reached it live nowhere else.
    ("audit", Some("stored = 0")),
];

/// What was saved from one table.
#[derive(Debug)]
pub struct Saved {
    pub table: &'static str,
    pub rows: usize,
    /// Every row could be read (no damage in the table's pages).
    pub complete: bool,
}

/// Copy the kept tables' rows from the damaged catalog `from` into `to` (a
/// fresh catalog of the current schema). Never fails: what cannot be read is
/// reported as not complete.
pub fn salvage(from: &Path, to: &mut Connection) -> Vec<Saved> {
    let old = match Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(c) => c,
        Err(_) => {
            return KEPT
                .iter()
                .map(|(t, _)| Saved {
                    table: t,
                    rows: 0,
                    complete: false,
                })
                .collect()
        }
    };
    KEPT.iter()
        .map(|(table, filter)| {
            let (rows, complete) = match columns(to, table) {
                Ok(cols) => copy_table(&old, to, table, &cols, *filter),
                Err(_) => (0, false),
            };
            Saved {
                table,
                rows,
                complete,
            }
        })
        .collect()
}

/// The columns of `table` in the new catalog, and which of them form its key
/// (the order to read in).
struct Columns {
    all: Vec<String>,
    key: Vec<String>,
    rowid: bool,
}

fn columns(c: &Connection, table: &str) -> rusqlite::Result<Columns> {
    let mut st = c.prepare(&format!("PRAGMA table_info({table})"))?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))?;
    let mut all = Vec::new();
    let mut key = Vec::new();
    for r in rows {
        let (name, pk) = r?;
        if pk > 0 {
            key.push((pk, name.clone()));
        }
        all.push(name);
    }
    key.sort();
    let without_rowid: bool = c
        .query_row(
            "SELECT sql LIKE '%WITHOUT ROWID%' FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap_or(true);
    Ok(Columns {
        all,
        key: key.into_iter().map(|(_, n)| n).collect(),
        rowid: !without_rowid,
    })
}

/// Copy the rows of one table; returns how many, and whether all could be read.
fn copy_table(
    old: &Connection,
    to: &mut Connection,
    table: &str,
    cols: &Columns,
    filter: Option<&str>,
) -> (usize, bool) {
    let order: Vec<String> = if cols.rowid {
        vec!["rowid".into()]
    } else {
        cols.key.clone()
    };
    let select = |dir: &str| {
        format!(
            "SELECT {} FROM {table} {} ORDER BY {}",
            cols.all.join(", "),
            filter.map(|f| format!("WHERE {f}")).unwrap_or_default(),
            order
                .iter()
                .map(|c| format!("{c} {dir}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let (mut rows, complete) = read_rows(old, &select("ASC"), cols.all.len());
    if !complete {
        rows.extend(read_rows(old, &select("DESC"), cols.all.len()).0);
    }
    let insert = format!(
        "INSERT OR IGNORE INTO {table}({}) VALUES ({})",
        cols.all.join(", "),
        vec!["?"; cols.all.len()].join(", ")
    );
    let written = (|| -> rusqlite::Result<usize> {
        let tx = to.transaction()?;
        let mut n = 0;
        {
            let mut st = tx.prepare(&insert)?;
            for r in &rows {
                n += st.execute(rusqlite::params_from_iter(r.iter()))?;
            }
        }
        tx.commit()?;
        Ok(n)
    })();
    match written {
        Ok(n) => (n, complete),
        Err(_) => (0, false),
    }
}

/// The rows a query returns until the first error; whether it ran to the end.
fn read_rows(c: &Connection, sql: &str, width: usize) -> (Vec<Vec<Value>>, bool) {
    let mut out = Vec::new();
    let Ok(mut st) = c.prepare(sql) else {
        return (out, false);
    };
    let Ok(mut rows) = st.query([]) else {
        return (out, false);
    };
    loop {
        match rows.next() {
            Ok(Some(r)) => {
                let row: rusqlite::Result<Vec<Value>> = (0..width).map(|i| r.get(i)).collect();
                match row {
                    Ok(row) => out.push(row),
                    Err(_) => return (out, false),
                }
            }
            Ok(None) => return (out, true),
            Err(_) => return (out, false),
        }
    }
}
