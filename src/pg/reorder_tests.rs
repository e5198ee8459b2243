//! The table-of-contents rewrite against archives built here, field by field as
//! pg_dump writes them: what is added, where, and what is refused.

use super::*;

const INT: usize = 4;

/// One entry of a synthetic archive.
struct E<'a> {
    id: i64,
    desc: &'a str,
    section: i64,
    namespace: &'a str,
    tag: &'a str,
    deps: &'a [i64],
}

fn archive(version: (u8, u8), compression: i64, entries: &[E]) -> Vec<u8> {
    let mut b = b"PGDMP".to_vec();
    b.extend_from_slice(&[version.0, version.1, 0, INT as u8, 8, 1]);
    if version >= (1, 15) {
        b.push(compression as u8);
    } else {
        put_int(INT, &mut b, compression);
    }
    for v in [0, 0, 3, 1, 0, 126, 0] {
        put_int(INT, &mut b, v); // creation time
    }
    for s in ["clinic", "15.8", "15.8"] {
        put_str(INT, &mut b, Some(s.as_bytes()));
    }
    put_int(INT, &mut b, entries.len() as i64);
    for e in entries {
        put_int(INT, &mut b, e.id);
        put_int(INT, &mut b, 1);
        put_str(INT, &mut b, Some(b"1259"));
        put_str(INT, &mut b, Some(format!("{}", 16000 + e.id).as_bytes()));
        put_str(INT, &mut b, Some(e.tag.as_bytes()));
        put_str(INT, &mut b, Some(e.desc.as_bytes()));
        put_int(INT, &mut b, e.section);
        put_str(INT, &mut b, Some(b"CREATE ..."));
        put_str(INT, &mut b, None);
        put_str(INT, &mut b, None);
        put_str(INT, &mut b, Some(e.namespace.as_bytes()));
        put_str(INT, &mut b, None);
        put_str(INT, &mut b, Some(b"heap"));
        if version >= (1, 16) {
            put_int(INT, &mut b, b'r' as i64);
        }
        put_str(INT, &mut b, Some(b"clinic_owner"));
        put_str(INT, &mut b, Some(b"false"));
        for d in e.deps {
            put_str(INT, &mut b, Some(d.to_string().as_bytes()));
        }
        put_str(INT, &mut b, None);
        b.push(OFFSET_POS_NOT_SET);
        b.extend_from_slice(&[0; 8]);
    }
    b
}

fn keyed(schema: &str, table: &str) -> KeyedTable {
    KeyedTable {
        schema: schema.into(),
        table: table.into(),
        qualified: format!("{schema}.{table}"),
        columns: "id, name".into(),
        key: "id".into(),
    }
}

/// The clinic's dump: two tables, one's rows dumped by pg_dump, an index after.
fn clinic(version: (u8, u8)) -> Vec<u8> {
    archive(
        version,
        0,
        &[
            E {
                id: 200,
                desc: "TABLE",
                section: 2,
                namespace: "public",
                tag: "patients",
                deps: &[],
            },
            E {
                id: 201,
                desc: "TABLE",
                section: 2,
                namespace: "public",
                tag: "notes",
                deps: &[],
            },
            E {
                id: 310,
                desc: "TABLE DATA",
                section: 3,
                namespace: "public",
                tag: "notes",
                deps: &[201],
            },
            E {
                id: 400,
                desc: "INDEX",
                section: 4,
                namespace: "public",
                tag: "patients_name",
                deps: &[200],
            },
        ],
    )
}

/// An entry read back: id, desc, section, dependencies, copy statement.
type ReadBack = (i64, String, i64, Vec<String>, Option<String>);

/// Each entry of `toc`.
fn entries(toc: &[u8]) -> Vec<ReadBack> {
    let mut src = toc;
    let mut a = Archive {
        src: &mut src,
        version: (0, 0),
        int_size: INT,
        off_size: 8,
    };
    let sink = &mut Vec::new();
    a.bytes(5, sink).unwrap();
    let v = a.bytes(3, sink).unwrap();
    a.version = (v[0], v[1]);
    a.bytes(3, sink).unwrap();
    if a.version >= (1, 15) {
        a.bytes(1, sink).unwrap();
    } else {
        a.int(sink).unwrap();
    }
    for _ in 0..7 {
        a.int(sink).unwrap();
    }
    for _ in 0..3 {
        a.string(sink).unwrap();
    }
    let text = |s: Option<Vec<u8>>| s.map(|s| String::from_utf8(s).unwrap());
    let n = a.int(sink).unwrap();
    (0..n)
        .map(|_| {
            let id = a.int(sink).unwrap();
            a.int(sink).unwrap();
            a.string(sink).unwrap();
            a.string(sink).unwrap();
            a.string(sink).unwrap();
            let desc = text(a.string(sink).unwrap()).unwrap();
            let section = a.int(sink).unwrap();
            a.string(sink).unwrap();
            a.string(sink).unwrap();
            let copy = text(a.string(sink).unwrap());
            for _ in 0..3 {
                a.string(sink).unwrap();
            }
            if a.version >= (1, 16) {
                a.int(sink).unwrap();
            }
            a.string(sink).unwrap();
            a.string(sink).unwrap();
            let mut deps = Vec::new();
            while let Some(d) = a.string(sink).unwrap() {
                deps.push(String::from_utf8(d).unwrap());
            }
            a.bytes(9, sink).unwrap();
            (id, desc, section, deps, copy)
        })
        .collect()
}

#[test]
fn without_keyed_tables_the_toc_is_unchanged() {
    for v in [(1, 14), (1, 15), (1, 16)] {
        let input = clinic(v);
        let toc = rewrite_toc(&mut input.as_slice(), &[]).unwrap();
        assert_eq!(toc.bytes, input, "version {v:?}");
        assert!(toc.ids.is_empty());
    }
}

#[test]
fn a_keyed_table_gets_its_data_entry_at_the_end_of_the_data_section() {
    for v in [(1, 14), (1, 16)] {
        let input = clinic(v);
        let toc = rewrite_toc(&mut input.as_slice(), &[keyed("public", "patients")]).unwrap();
        assert_eq!(toc.ids, [401], "a new id above every other");
        assert_eq!(toc.int_size, INT);
        let e = entries(&toc.bytes);
        let ids: Vec<i64> = e.iter().map(|e| e.0).collect();
        assert_eq!(
            ids,
            [200, 201, 310, 401, 400],
            "before the post-data section"
        );
        let (_, desc, section, deps, copy) = &e[3];
        assert_eq!((desc.as_str(), *section), ("TABLE DATA", SECTION_DATA));
        assert_eq!(deps, &["200"], "depends on its table");
        assert_eq!(
            copy.as_deref(),
            Some("COPY public.patients (id, name) FROM stdin;\n")
        );
    }
}

#[test]
fn what_cannot_be_rewritten_faithfully_is_refused() {
    let refused = |input: Vec<u8>, keyed: &[KeyedTable], says: &str| {
        let e = rewrite_toc(&mut input.as_slice(), keyed).err().expect(says);
        assert!(e.to_string().contains(says), "{e}, not {says}");
    };
    let patients = [keyed("public", "patients")];
    refused(
        b"PK\x03\x04 a zip file".to_vec(),
        &[],
        "not a custom-format archive",
    );
    refused(archive((1, 11), 0, &[]), &[], "version 1.11");
    refused(archive((1, 17), 0, &[]), &[], "version 1.17");
    refused(archive((1, 15), 9, &[]), &[], "compressed");
    refused(
        clinic((1, 16)),
        &[keyed("public", "prescriptions")],
        "not in pg_dump's archive",
    );
    // pg_dump dumped rows it was told to leave out: they would be restored twice.
    refused(
        clinic((1, 16)),
        &[keyed("public", "notes")],
        "told to leave out",
    );
    let whole = clinic((1, 16));
    for cut in [3, 20, whole.len() / 2, whole.len() - 1] {
        refused(whole[..cut].to_vec(), &patients, "ends in the middle");
    }
}

#[test]
fn a_length_that_lies_ends_at_the_input_not_in_an_allocation() {
    let mut b = archive((1, 16), 0, &[]);
    // The entry count, then a first entry whose tableoid claims 16 MiB.
    b.truncate(b.len() - (1 + INT));
    put_int(INT, &mut b, 1);
    put_int(INT, &mut b, 7);
    put_int(INT, &mut b, 1);
    b.push(0);
    b.extend_from_slice(&[0, 0, 0, 1]);
    let e = rewrite_toc(&mut b.as_slice(), &[]).err().unwrap();
    assert!(e.to_string().contains("ends in the middle"), "{e}");
}
