//! Snapshot manifest (JSON) decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = hcbackup::model::snapshot::Snapshot::from_bytes(data) {
        let _ = hcbackup::model::snapshot::Snapshot::from_bytes(&s.to_bytes()).unwrap();
    }
});
