//! Audit event decoder, and the chain check over whatever rows it is given.
#![no_main]
use std::sync::OnceLock;

use hcbackup::audit::{check, Event};
use hcbackup::catalog::AuditRow;
use hcbackup::crypto::MasterKey;

static KEY: OnceLock<MasterKey> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Event::from_json(text);
    // Lines as events of a chain: half with their true ids, half with any id.
    let key = KEY.get_or_init(MasterKey::generate);
    let rows: Vec<AuditRow> = text
        .lines()
        .enumerate()
        .map(|(i, l)| AuditRow {
            id: if i % 2 == 0 { key.id_of(l.as_bytes()) } else { [i as u8; 32] },
            seq: i as u64 + 1,
            time: String::new(),
            event: l.to_string(),
            stored: true,
        })
        .collect();
    let _ = check(key, "genesis", &rows);
});
