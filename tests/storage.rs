//! The storage contract (`hcbackup::storage::conformance`) on every backend.

use std::sync::Arc;

use hcbackup::storage::{
    conformance, Backend, LocalBackend, MemoryBackend, RetryPolicy, Retrying, S3Backend, S3Config,
    StorageError,
};

#[test]
fn memory_backend_keeps_the_contract() {
    conformance::run(&MemoryBackend::new());
}

#[test]
fn local_backend_keeps_the_contract() {
    let d = tempfile::tempdir().unwrap();
    conformance::run(&LocalBackend::new(d.path().join("repo")));
}

#[test]
fn the_retry_decorator_keeps_the_contract() {
    let inner: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    conformance::run(&Retrying::new(inner, RetryPolicy::default()));
}

#[path = "common/s3.rs"]
mod s3test;

/// A fresh bucket on the S3 test server, with the endpoint.
fn s3_bucket() -> (String, String) {
    (s3test::endpoint(), s3test::new_bucket("hcb"))
}

fn s3(endpoint: &str, bucket: &str) -> S3Backend {
    S3Backend::new(S3Config {
        bucket: bucket.to_string(),
        prefix: "backups/".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_string()),
        force_path_style: None,
        sse: true,
        storage_class: None,
    })
    .unwrap()
}

#[test]
fn s3_backend_keeps_the_contract() {
    let (endpoint, bucket) = s3_bucket();
    conformance::run(&s3(&endpoint, &bucket));
}

#[test]
fn a_missing_bucket_is_named_and_not_retried() {
    let (endpoint, _) = s3_bucket();
    let b = s3(&endpoint, "hcb-no-such-bucket");
    let e = b.put("index/a", b"x").unwrap_err();
    assert!(matches!(e, StorageError::Permanent(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("bucket hcb-no-such-bucket does not exist"),
        "{e}"
    );
}

#[test]
fn an_unreachable_s3_server_is_a_transient_failure() {
    let b = s3("http://127.0.0.1:1", "anything");
    let e = b.get("config").unwrap_err();
    assert!(matches!(e, StorageError::Transient(_)), "{e:?}");
}

#[test]
fn a_mirror_never_mixes_into_another_repository() {
    let a = MemoryBackend::new();
    let b = MemoryBackend::new();
    a.put("config", b"{\"id\":\"a\"}").unwrap();
    a.put("packs/ab/x", b"not a real pack").unwrap();
    b.put("config", b"{\"id\":\"b\"}").unwrap();
    let e = hcbackup::ops::mirror::run(&a, &b, "b").unwrap_err();
    assert!(e.to_string().contains("holds another repository"), "{e}");
    assert!(b.list("packs").unwrap().is_empty());
}

#[test]
fn a_damaged_local_pack_is_not_mirrored_and_stops_later_folders() {
    let a = MemoryBackend::new();
    let b = MemoryBackend::new();
    a.put("config", b"{}").unwrap();
    let good = b"a pack's bytes";
    let name = blake3::hash(good).to_hex().to_string();
    a.put(&format!("packs/{}/{name}", &name[..2]), good)
        .unwrap();
    a.put(
        &format!("packs/{}/{}", &name[..2], "0".repeat(64)),
        b"damaged",
    )
    .unwrap();
    a.put("index/i1", b"index").unwrap();
    a.put("snapshots/s1", b"snapshot").unwrap();
    let r = hcbackup::ops::mirror::run(&a, &b, "b").unwrap();
    assert_eq!(r.failures.len(), 1, "{r:?}");
    assert!(r.failures[0].contains("damaged"), "{r:?}");
    assert_eq!(b.list("packs").unwrap().len(), 1);
    assert!(b.list("index").unwrap().is_empty() && b.list("snapshots").unwrap().is_empty());
}
