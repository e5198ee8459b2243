//! The codec's decoder on arbitrary sealed bytes: authentication must reject them.
#![no_main]
use std::sync::OnceLock;

static KEY: OnceLock<hcbackup::crypto::MasterKey> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = KEY.get_or_init(hcbackup::crypto::MasterKey::generate);
    let r = hcbackup::codec::decode(key, hcbackup::crypto::Kind::Data, &[0; 32], data, 1 << 20);
    assert!(r.is_err());
});
