//! The plaintext `config` object, as any storage may hand it over: loading must
//! refuse what is malformed with an error, never panic, and accept only ids and
//! key checks of the right shape.
#![no_main]
use hcbackup::storage::{Backend, MemoryBackend};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let b = MemoryBackend::new();
    b.put("config", data).unwrap();
    if let Ok(c) = hcbackup::repo::RepoConfig::load(&b) {
        assert!(c.version >= 1 && c.version <= 2);
        assert_eq!(c.id_bytes().len(), 32);
        if c.version == 2 {
            assert_eq!(c.key_check.as_deref().map(str::len), Some(64));
        }
        let key = hcbackup::crypto::MasterKey::generate();
        let _ = c.key_matches(&key);
    }
});
