//! Index object decoder: whatever decodes must encode back to the same bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(packs) = hcbackup::model::index::decode(data) {
        assert_eq!(hcbackup::model::index::encode(&packs), data);
    }
});
