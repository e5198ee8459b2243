//! Pack header plaintext decoder, and locating a header in arbitrary pack bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(h) = hcbackup::pack::decode_header(data) {
        match h.blobs_hash {
            // Format 2 (zero padding tolerated): what decodes encodes to the same.
            Some(hash) => {
                let again = hcbackup::pack::encode_header(&h.entries, &hash);
                assert_eq!(hcbackup::pack::decode_header(&again).unwrap(), h);
            }
            // Format 1: the same entries after one version byte.
            None => {
                let mut v1 = vec![1u8];
                v1.extend_from_slice(&hcbackup::pack::encode_header(&h.entries, &[0; 32])[33..33 + 4 + h.entries.len() * 41]);
                assert_eq!(v1, data);
            }
        }
    }
    if data.len() >= 4 {
        let t: [u8; 4] = data[data.len() - 4..].try_into().unwrap();
        let _ = hcbackup::pack::header_location(data.len() as u64, t);
    }
});
