//! Key file parser and unwrapping (cheap KDF settings only, to keep runs fast).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(kf) = hcbackup::crypto::KeyFile::from_json(data) {
        if kf.kdf.m_kib <= 1024 && kf.kdf.t <= 2 {
            assert!(kf.unwrap_key(b"password", &[0; 32]).is_none());
        }
    }
});
