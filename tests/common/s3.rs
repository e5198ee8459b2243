//! The S3 test server (moto) that scripts/services.sh starts: its endpoint and
//! fresh buckets. Included by path where the rest of `common` is not needed.
#![allow(dead_code)]

/// The test server's endpoint (HCBACKUP_TEST_S3_ENDPOINT).
pub fn endpoint() -> String {
    std::env::var("HCBACKUP_TEST_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!("HCBACKUP_TEST_S3_ENDPOINT is not set: run the tests with scripts/test.sh, which starts the S3 server")
    })
}

/// Create `bucket` on the test server.
pub fn create_bucket(bucket: &str) {
    let o = std::process::Command::new("curl")
        .args(["-fsS", "-X", "PUT", &format!("{}/{bucket}", endpoint())])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "creating bucket {bucket}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A unique bucket name starting with `prefix` (not created).
pub fn bucket_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// A new, empty bucket.
pub fn new_bucket(prefix: &str) -> String {
    let b = bucket_name(prefix);
    create_bucket(&b);
    b
}
