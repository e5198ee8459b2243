//! Pack header plaintext decoder, and locating a header in arbitrary pack bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(h) = hcbackup::pack::decode_header(data) {
        match h.blobs_hash {
            Some(hash) => assert_eq!(hcbackup::pack::encode_header(&h.entries, &hash), data),
            // Format 1: the same entries after one version byte.
            None => assert_eq!(&hcbackup::pack::encode_header(&h.entries, &[0; 32])[33..], &data[1..]),
        }
    }
    if data.len() >= 4 {
        let t: [u8; 4] = data[data.len() - 4..].try_into().unwrap();
        let _ = hcbackup::pack::header_location(data.len() as u64, t);
    }
});
