//! WAL record decoder (the JSON inside a sealed `wal/` record) and the gap
//! finder over decoded records: never panic; a record round-trips.
#![no_main]
use hcbackup::model::wal::{gaps, WalRecord};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(r) = WalRecord::from_bytes(data) {
        assert_eq!(WalRecord::from_bytes(&r.to_bytes()).unwrap(), r);
        let mut other = r.clone();
        other.name = "000000010000000000000001".into();
        let found = gaps(&[r, other], 0);
        assert!(found.len() <= 100);
    }
});
