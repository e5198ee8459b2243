//! The codec's decoder. Arbitrary sealed bytes must fail authentication; and,
//! to reach past it, arbitrary *bodies* sealed under the key (what a password
//! holder could write) must decode or fail cleanly: flags, lengths, padding,
//! zstd frames, size limits.
#![no_main]
use std::sync::OnceLock;

use hcbackup::crypto::{Kind, MasterKey};

static KEY: OnceLock<MasterKey> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = KEY.get_or_init(MasterKey::generate);
    let r = hcbackup::codec::decode(key, Kind::Data, &[0; 32], data, 1 << 20);
    assert!(r.is_err());
    let Some((&limit, body)) = data.split_first() else {
        return;
    };
    let max = (limit as usize) << 12;
    let sealed = key.seal(Kind::Tree, &[7; 32], body);
    if let Ok(plain) = hcbackup::codec::decode(key, Kind::Tree, &[7; 32], &sealed, max) {
        assert!(plain.len() <= max);
        // What decodes, encodes and decodes to the same plaintext.
        let again = hcbackup::codec::encode(key, Kind::Tree, &[7; 32], &plain);
        assert_eq!(hcbackup::codec::decode(key, Kind::Tree, &[7; 32], &again, max).unwrap(), plain);
    }
});
