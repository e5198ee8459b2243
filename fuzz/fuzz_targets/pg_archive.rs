//! pg_dump's custom-format archive header and table of contents, as the
//! reorder reader rewrites it (the archive comes from pg_dump, or from an old
//! backup being imported): never panic, never allocate what a length field
//! claims before the bytes are there.
#![no_main]
use hcbackup::pg::reorder::rewrite_toc;
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
});
