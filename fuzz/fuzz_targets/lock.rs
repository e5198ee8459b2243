//! Lock decoder: the JSON inside a sealed lock (written by any process that
//! holds a password, so untrusted in shape): parse, and round-trip what parses.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(l) = serde_json::from_slice::<hcbackup::repo::LockInfo>(data) {
        let again: hcbackup::repo::LockInfo = serde_json::from_slice(&serde_json::to_vec(&l).unwrap()).unwrap();
        assert_eq!(again.pid, l.pid);
        assert_eq!(again.time, l.time);
    }
});
