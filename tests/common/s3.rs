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

/// A new, empty bucket with S3 Object Lock enabled (and so versioning).
pub fn new_locked_bucket(prefix: &str) -> String {
    let b = bucket_name(prefix);
    let o = std::process::Command::new("curl")
        .args([
            "-fsS",
            "-X",
            "PUT",
            "-H",
            "x-amz-bucket-object-lock-enabled: true",
            &format!("{}/{b}", endpoint()),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "creating locked bucket {b}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    b
}

/// A request to the test server signed with the tests' AWS_* credentials: method,
/// path and query; the body (with the headers first for HEAD).
pub fn raw(method: &str, path_and_query: &str) -> String {
    let user = format!(
        "{}:{}",
        std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default()
    );
    let mut c = std::process::Command::new("curl");
    c.args([
        "-sS",
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        &user,
    ]);
    if method == "HEAD" {
        c.arg("-I");
    } else {
        c.args(["-X", method]);
    }
    let o = c
        .arg(format!("{}/{path_and_query}", endpoint()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every key under `prefix` (one listing page, enough for tests).
pub fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let xml = raw("GET", &format!("{bucket}?list-type=2&prefix={prefix}"));
    xml.split("<Key>")
        .skip(1)
        .filter_map(|s| s.split("</Key>").next())
        .map(str::to_string)
        .collect()
}
