//! A file-cache row of the catalog (a cache that may be damaged on disk): decode
//! never panics or over-allocates, and what decodes encodes back the same.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(row) = hcbackup::catalog::decode_dir_row(data) {
        let again = hcbackup::catalog::encode_dir_row(&row);
        assert_eq!(hcbackup::catalog::decode_dir_row(&again), Some(row));
    }
});
