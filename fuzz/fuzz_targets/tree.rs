//! Tree (CBOR) decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(t) = hcbackup::model::tree::Tree::from_bytes(data) {
        let again = hcbackup::model::tree::Tree::from_bytes(&t.to_bytes()).unwrap();
        assert_eq!(again, t);
    }
});
