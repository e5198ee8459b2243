//! Chunk list decoder (the list blobs of a database dump stream).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use hcbackup::model::chunk_list;
    if let Ok(ids) = chunk_list::from_bytes(data) {
        assert_eq!(chunk_list::to_bytes(&ids), data);
        assert_eq!(chunk_list::split(&ids).concat(), ids);
    }
});
