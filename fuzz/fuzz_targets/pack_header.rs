//! Pack header plaintext decoder, and locating a header in arbitrary pack bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = hcbackup::pack::decode_header(data) {
        assert_eq!(hcbackup::pack::encode_header(&entries), data);
    }
    if data.len() >= 4 {
        let t: [u8; 4] = data[data.len() - 4..].try_into().unwrap();
        let _ = hcbackup::pack::header_location(data.len() as u64, t);
    }
});
