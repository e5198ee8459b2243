//! The tables of a database, as a dump sees them: which ones pg_dump dumps,
//! their row counts inside the exported snapshot, and those whose rows can be
//! re-read in primary-key order (for `reorder`). Queries only; `dump` and
//! `reorder` both use them, and neither uses the other's.

use super::session::{ident, Session};
use crate::error::Result;
use crate::model::snapshot::TableCount;

/// Tables whose data pg_dump dumps: ordinary tables outside the system schemas and
/// not owned by an extension. Partitioned parents hold no rows of their own.
/// The FROM and WHERE of every query over those tables (`c` the table, `n` its schema).
macro_rules! dumped_tables {
    () => {
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                           AND d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY 1, 2"
    };
}

const TABLES_SQL: &str = concat!("SELECT n.nspname, c.relname", dumped_tables!());

/// Row counts of every table, by the session's current snapshot.
pub fn count_tables(s: &Session) -> Result<Vec<TableCount>> {
    let mut out = Vec::new();
    for r in s.rows(TABLES_SQL)? {
        let (schema, table) = (
            r[0].clone().unwrap_or_default(),
            r[1].clone().unwrap_or_default(),
        );
        let n = s
            .value(&format!(
                "SELECT count(*) FROM ONLY {}.{}",
                ident(&schema),
                ident(&table)
            ))?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        out.push(TableCount {
            schema,
            table,
            rows: n,
        });
    }
    Ok(out)
}

/// A table whose rows this reader supplies, in key order.
#[derive(Debug, Clone, Default)]
pub struct KeyedTable {
    pub schema: String,
    pub table: String,
    /// `schema.table` and the column list, quoted as pg_dump quotes them.
    pub qualified: String,
    pub columns: String,
    pub key: String,
}

impl KeyedTable {
    /// The pattern for `pg_dump --exclude-table-data` that names exactly this table.
    pub fn exclude_pattern(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        format!("{}.{}", q(&self.schema), q(&self.table))
    }
}

/// Tables with a primary key whose rows can be read in key order, with the
/// column list pg_dump's COPY would use (not dropped, not generated).
pub const KEYED_SQL: &str = concat!(
    "SELECT n.nspname, c.relname, \
       quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a \
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), \
       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = c.oid AND i.indisprimary)",
    dumped_tables!()
);

/// The keyed tables of the session's database (rows of `KEYED_SQL` with a key).
pub fn keyed_tables(s: &Session) -> crate::error::Result<Vec<KeyedTable>> {
    Ok(s.rows(KEYED_SQL)?
        .into_iter()
        .filter_map(|r| {
            let mut it = r.into_iter();
            Some(KeyedTable {
                schema: it.next()??,
                table: it.next()??,
                qualified: it.next()??,
                columns: it.next()??,
                key: it.next()??,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::KeyedTable;

    #[test]
    fn exclusion_patterns_quote_every_character() {
        let k = KeyedTable {
            schema: "public".into(),
            table: "Sala (2) \"A\"*".into(),
            qualified: String::new(),
            columns: String::new(),
            key: String::new(),
        };
        assert_eq!(k.exclude_pattern(), "\"public\".\"Sala (2) \"\"A\"\"*\"");
    }
}
