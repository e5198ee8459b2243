//! The watcher of pg_basebackup's tar stream and the parsers of the members it
//! keeps: never panic, never change the bytes passing through, never keep
//! more than its bound.
#![no_main]
use std::io::Read;

use hcbackup::pg::basebackup::{parse_label, parse_manifest, TarWatch};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut w = TarWatch::new(data);
    let mut out = Vec::new();
    if w.read_to_end(&mut out).is_ok() {
        assert_eq!(out, data);
    }
    if let Some(l) = &w.label {
        let _ = parse_label(l);
    }
    if let Some(m) = &w.manifest {
        let _ = parse_manifest(m);
    }
    let _ = parse_label(data);
    let _ = parse_manifest(data);
});
