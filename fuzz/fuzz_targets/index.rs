//! Index object decoder: whatever decodes encodes back to the same bytes
//! (version 2), or to a version 2 object that decodes to the same content
//! (version 1).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(ix) = hcbackup::model::index::decode(data) {
        let again = hcbackup::model::index::encode(&ix);
        if data[0] == 2 {
            assert_eq!(again, data);
        } else {
            assert_eq!(hcbackup::model::index::decode(&again).unwrap(), ix);
        }
    }
});
