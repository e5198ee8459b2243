//! Legal hold decoder (the JSON inside a sealed hold): parse and round-trip.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(h) = serde_json::from_slice::<hcbackup::repo::Hold>(data) {
        let again: hcbackup::repo::Hold = serde_json::from_slice(&serde_json::to_vec(&h).unwrap()).unwrap();
        assert_eq!(again, h);
    }
});
