//! pg_dump's custom-format archive header and table of contents, as the
//! reorder reader rewrites it (the archive comes from pg_dump, or from an old
//! backup being imported): never panic, never allocate what a length field
//! claims before the bytes are there; and the table selection of
//! `restore --table` over what it read (a dump read back from the repository).
#![no_main]
use hcbackup::pg::reorder::{read_toc, rewrite_toc};
use hcbackup::pg::select::{select, Want};
use hcbackup::pg::tables::KeyedTable;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let keyed = [KeyedTable {
        schema: "public".into(),
        table: "patients".into(),
        qualified: "public.patients".into(),
        columns: "id, name".into(),
        key: "id".into(),
    }];
    let mut src = data;
    if let Ok(toc) = rewrite_toc(&mut src, &keyed) {
        assert_eq!(toc.ids.len(), 1);
        assert!(toc.bytes.starts_with(b"PGDMP"));
    }
    let mut src = data;
    let _ = rewrite_toc(&mut src, &[]);
    let mut src = data;
    if let Ok(toc) = read_toc(&mut src) {
        let wants = [Want::table("patients"), Want::Schema("audit".into())];
        if let Ok(s) = select(&toc.entries, &wants) {
            assert!(s.ids.iter().all(|id| toc.entries.iter().any(|e| e.id == *id)));
        }
    }
});
