//! Which entries of a dump's table of contents restore some tables only
//! (`restore --db NEW --table T --schema S`, issue #19 step 7): each table
//! named, its rows, and what hangs on it (indexes, constraints, defaults,
//! triggers, comments, privileges, its sequences), with everything those need
//! (schemas, types, functions, extensions, sequences). A constraint or trigger
//! that reaches a table not restored (a foreign key to it) is left out and
//! named: it cannot be created without that table. Privileges are not
//! restored (the side database is for reading rows back; a role missing on
//! this server would fail the whole restore). Partitions and inheriting
//! tables come with the table they belong to.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::reorder::TocEntry;

/// What to restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// A table: `name` or `schema.name` (any schema when unqualified).
    Table {
        schema: Option<String>,
        name: String,
    },
    /// Every table of a schema.
    Schema(String),
}

impl Want {
    /// From `--table T` (`T` or `S.T`; either part may be double-quoted, as in
    /// SQL, to hold a dot: `"public.x".t`, `"a.b"`; `""` is a quote).
    pub fn table(spec: &str) -> Want {
        let parts = split_name(spec);
        match parts.as_slice() {
            [schema, name] if !schema.is_empty() && !name.is_empty() => Want::Table {
                schema: Some(schema.clone()),
                name: name.clone(),
            },
            [name] => Want::Table {
                schema: None,
                name: name.clone(),
            },
            _ => Want::Table {
                schema: None,
                name: spec.to_string(),
            },
        }
    }

    fn matches(&self, e: &TocEntry) -> bool {
        let ns = e.namespace.as_deref().unwrap_or_default();
        match self {
            Want::Table { schema, name } => {
                e.tag.as_deref() == Some(name.as_bytes())
                    && schema.as_ref().is_none_or(|s| ns == s.as_bytes())
            }
            Want::Schema(s) => ns == s.as_bytes(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Want::Table {
                schema: Some(s),
                name,
            } => format!("table {}.{}", quoted(s), quoted(name)),
            Want::Table { schema: None, name } => format!("table {}", quoted(name)),
            Want::Schema(s) => format!("schema {}", quoted(s)),
        }
    }
}

/// `spec` split at its dots outside double quotes, quotes taken off.
fn split_name(spec: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                parts.last_mut().expect("one").push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            c => parts.last_mut().expect("one").push(c),
        }
    }
    parts
}

/// `name` as SQL writes it: double-quoted unless a plain lower-case word.
fn quoted(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// An entry's `schema.name`, quoted as SQL writes it.
fn qualified(e: &TocEntry) -> String {
    format!("{}.{}", quoted(&text(&e.namespace)), quoted(&text(&e.tag)))
}

/// The entries that hang on a table and go with it.
const WITH_TABLE: &[&str] = &[
    "TABLE DATA",
    "INDEX",
    "INDEX ATTACH",
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "DEFAULT",
    "SEQUENCE OWNED BY",
    // An identity column's sequence.
    "SEQUENCE",
    // A partition attached to its parent.
    "TABLE ATTACH",
    "COMMENT",
    "SECURITY LABEL",
    "TRIGGER",
    "RULE",
    "POLICY",
    "ROW SECURITY",
    "STATISTICS",
];

/// Session settings pg_dump writes first: always kept.
const SETTINGS: &[&str] = &["ENCODING", "STDSTRINGS", "SEARCHPATH"];

/// The selection: dump ids in the archive's order, the tables (`schema.name`)
/// and what was left out and why.
#[derive(Debug, Default)]
pub struct Selection {
    pub ids: Vec<i64>,
    pub tables: Vec<String>,
    pub left_out: Vec<String>,
}

impl Selection {
    /// The list `pg_restore -L` reads: one dump id a line, in archive order.
    pub fn list(&self) -> String {
        self.ids.iter().map(|id| format!("{id};\n")).collect()
    }
}

fn text(b: &Option<Vec<u8>>) -> String {
    String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned()
}

/// Choose the entries of `entries` that restore `wants`; an error names a
/// want that matches no table, with the tables there are.
pub fn select(entries: &[TocEntry], wants: &[Want]) -> Result<Selection, String> {
    let by_id: HashMap<i64, &TocEntry> = entries.iter().map(|e| (e.id, e)).collect();
    let tables: Vec<&TocEntry> = entries.iter().filter(|e| e.desc_is("TABLE")).collect();
    let mut chosen: HashSet<i64> = HashSet::new();
    for w in wants {
        let found: Vec<i64> = tables
            .iter()
            .filter(|t| w.matches(t))
            .map(|t| t.id)
            .collect();
        if found.is_empty() {
            let names: BTreeSet<String> = tables.iter().map(|t| qualified(t)).collect();
            let some: Vec<String> = names.into_iter().take(20).collect();
            return Err(format!(
                "the dump holds no {} (its tables: {})",
                w.describe(),
                if some.is_empty() {
                    "none".into()
                } else {
                    some.join(", ")
                }
            ));
        }
        chosen.extend(found);
    }
    // A table's partitions and inheriting tables hold its rows: they come too.
    loop {
        let children: Vec<i64> = tables
            .iter()
            .filter(|t| !chosen.contains(&t.id) && t.deps.iter().any(|d| chosen.contains(d)))
            .map(|t| t.id)
            .collect();
        if children.is_empty() {
            break;
        }
        chosen.extend(children);
    }
    // Everything an entry needs, transitively (cycles and unknown ids end).
    let needs = |start: i64| -> HashSet<i64> {
        let mut seen = HashSet::new();
        let mut todo = vec![start];
        while let Some(id) = todo.pop() {
            if let Some(e) = by_id.get(&id) {
                for d in &e.deps {
                    if seen.insert(*d) {
                        todo.push(*d);
                    }
                }
            }
        }
        seen
    };
    let is_table = |id: &i64| by_id.get(id).is_some_and(|e| e.desc_is("TABLE"));
    // The tables whose definitions come: the chosen ones and those they need
    // (a partition's parent, an inheriting table's).
    let mut present = chosen.clone();
    for id in &chosen {
        present.extend(needs(*id).into_iter().filter(|d| is_table(d)));
    }
    let mut keep: HashSet<i64> = chosen.clone();
    let mut left_out = Vec::new();
    for e in entries {
        let on_chosen = e.deps.iter().any(|d| chosen.contains(d));
        if !on_chosen || !WITH_TABLE.iter().any(|d| e.desc_is(d)) {
            continue;
        }
        // A chosen table's rows always come; anything else only when it
        // reaches no table left behind (a foreign key to one cannot be made).
        let other = match e.desc_is("TABLE DATA") {
            true => None,
            false => needs(e.id)
                .into_iter()
                .find(|d| is_table(d) && !present.contains(d)),
        };
        match other {
            None => {
                keep.insert(e.id);
            }
            Some(t) => left_out.push(format!(
                "{} {} (it needs table {}, which is not restored)",
                text(&e.desc).to_lowercase(),
                text(&e.tag),
                qualified(by_id[&t])
            )),
        }
    }
    for id in keep.clone() {
        keep.extend(needs(id));
    }
    // The current value of each sequence kept.
    for e in entries.iter().filter(|e| e.desc_is("SEQUENCE SET")) {
        if e.deps.iter().any(|d| keep.contains(d)) {
            keep.insert(e.id);
        }
    }
    let ids = entries
        .iter()
        .filter(|e| keep.contains(&e.id) || SETTINGS.iter().any(|s| e.desc_is(s)))
        .map(|e| e.id)
        .collect();
    let mut names: Vec<String> = entries
        .iter()
        .filter(|e| chosen.contains(&e.id))
        .map(qualified)
        .collect();
    names.sort();
    Ok(Selection {
        ids,
        tables: names,
        left_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: i64, desc: &str, ns: &str, tag: &str, deps: &[i64]) -> TocEntry {
        TocEntry {
            raw: Vec::new(),
            id,
            section: 0,
            desc: Some(desc.as_bytes().to_vec()),
            tag: Some(tag.as_bytes().to_vec()),
            namespace: Some(ns.as_bytes().to_vec()),
            oid: None,
            owner: None,
            deps: deps.to_vec(),
        }
    }

    /// patients; prescriptions (a serial id, an index, a foreign key to
    /// patients, a check through a function); a view on both; audit.notes.
    fn clinic() -> Vec<TocEntry> {
        vec![
            e(1, "ENCODING", "", "ENCODING", &[]),
            e(2, "SCHEMA", "", "audit", &[]),
            e(3, "FUNCTION", "public", "dose_ok(integer)", &[]),
            e(10, "TABLE", "public", "patients", &[]),
            e(11, "TABLE", "public", "prescriptions", &[3]),
            e(12, "SEQUENCE", "public", "prescriptions_id_seq", &[]),
            e(
                13,
                "SEQUENCE OWNED BY",
                "public",
                "prescriptions_id_seq",
                &[12, 11],
            ),
            e(14, "DEFAULT", "public", "prescriptions id", &[11, 12]),
            e(15, "TABLE", "audit", "notes", &[2]),
            e(16, "VIEW", "public", "patient_drugs", &[10, 11]),
            e(20, "TABLE DATA", "public", "patients", &[10]),
            e(21, "TABLE DATA", "public", "prescriptions", &[11]),
            e(22, "SEQUENCE SET", "public", "prescriptions_id_seq", &[12]),
            e(23, "TABLE DATA", "audit", "notes", &[15]),
            e(30, "CONSTRAINT", "public", "patients_pkey", &[10]),
            e(31, "CONSTRAINT", "public", "prescriptions_pkey", &[11]),
            e(32, "INDEX", "public", "prescriptions_patient", &[11]),
            e(
                33,
                "FK CONSTRAINT",
                "public",
                "prescriptions_patient_fk",
                &[11, 30],
            ),
            e(34, "ACL", "public", "TABLE prescriptions", &[11]),
        ]
    }

    #[test]
    fn a_table_comes_with_what_hangs_on_it_and_what_it_needs() {
        let s = select(&clinic(), &[Want::table("prescriptions")]).unwrap();
        assert_eq!(s.ids, [1, 3, 11, 12, 13, 14, 21, 22, 31, 32]);
        assert_eq!(s.tables, ["public.prescriptions"]);
        assert_eq!(s.left_out.len(), 1, "{:?}", s.left_out);
        assert!(s.left_out[0].contains("prescriptions_patient_fk"));
        assert!(s.left_out[0].contains("public.patients"));
        assert_eq!(s.list(), "1;\n3;\n11;\n12;\n13;\n14;\n21;\n22;\n31;\n32;\n");
        // With the table it points to, the foreign key goes too.
        let s = select(
            &clinic(),
            &[Want::table("public.prescriptions"), Want::table("patients")],
        )
        .unwrap();
        assert!(s.ids.contains(&33) && s.ids.contains(&20) && s.left_out.is_empty());
        assert!(!s.ids.contains(&16), "a view is not a table's part");
    }

    #[test]
    fn partitions_inheriting_tables_and_identity_sequences_come_with_their_table() {
        let entries = vec![
            e(1, "SCHEMA", "", "public.x", &[]),
            e(10, "TABLE", "public", "meas", &[]),
            e(11, "TABLE", "public", "meas_2024", &[10]),
            e(12, "TABLE ATTACH", "public", "meas_2024", &[10, 11]),
            e(13, "SEQUENCE", "public", "meas_id_seq", &[10]),
            e(14, "TABLE", "public.x", "t", &[1]),
            e(15, "TABLE", "public", "x.t", &[]),
            e(20, "TABLE DATA", "public", "meas_2024", &[11]),
            e(21, "SEQUENCE SET", "public", "meas_id_seq", &[13]),
            e(22, "TABLE DATA", "public.x", "t", &[14]),
        ];
        let s = select(&entries, &[Want::table("meas")]).unwrap();
        assert_eq!(s.ids, [10, 11, 12, 13, 20, 21]);
        assert_eq!(s.tables, ["public.meas", "public.meas_2024"]);
        // A partition alone: its parent's definition, its own rows.
        let s = select(&entries, &[Want::table("meas_2024")]).unwrap();
        assert!(s.ids.contains(&10) && s.ids.contains(&20) && s.left_out.is_empty());
        // Quoted names reach a schema with a dot in it, and print quoted.
        let s = select(&entries, &[Want::table("\"public.x\".t")]).unwrap();
        assert_eq!(
            (s.ids.as_slice(), s.tables[0].as_str()),
            (&[1, 14, 22][..], "\"public.x\".t")
        );
        let s = select(&entries, &[Want::table("public.\"x.t\"")]).unwrap();
        assert_eq!(s.tables, ["public.\"x.t\""]);
    }

    #[test]
    fn a_schema_brings_its_tables_and_an_unknown_name_is_refused() {
        let s = select(&clinic(), &[Want::Schema("audit".into())]).unwrap();
        assert_eq!(s.ids, [1, 2, 15, 23]);
        let e = select(&clinic(), &[Want::table("audit.patients")]).unwrap_err();
        assert!(e.contains("no table audit.patients"), "{e}");
        assert!(e.contains("public.prescriptions"), "{e}");
        assert!(select(&clinic(), &[Want::table("x'; DROP TABLE patients")]).is_err());
    }
}
