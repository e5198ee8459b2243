//! The storage contract (`hcbackup::storage::conformance`) on every backend.

use std::sync::Arc;

use hcbackup::storage::{
    conformance, Backend, LocalBackend, MemoryBackend, PackCache, RetryPolicy, Retrying, S3Backend,
    S3Config, StorageError,
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

#[test]
fn the_pack_cache_keeps_the_contract_and_fetches_a_pack_once() {
    conformance::run(&PackCache::new(Arc::new(MemoryBackend::new())));

    /// Counts whole-object reads.
    struct Counting(MemoryBackend, std::sync::atomic::AtomicUsize);
    impl Backend for Counting {
        fn location(&self) -> String {
            self.0.location()
        }
        fn put(&self, p: &str, d: &[u8]) -> hcbackup::storage::StorageResult<()> {
            self.0.put(p, d)
        }
        fn get(&self, p: &str) -> hcbackup::storage::StorageResult<Vec<u8>> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.get(p)
        }
        fn get_range(&self, p: &str, o: u64, l: u32) -> hcbackup::storage::StorageResult<Vec<u8>> {
            panic!("a range of {p} ({o}+{l}) went to the destination")
        }
        fn stat(&self, p: &str) -> hcbackup::storage::StorageResult<u64> {
            self.0.stat(p)
        }
        fn list(&self, d: &str) -> hcbackup::storage::StorageResult<Vec<(String, u64)>> {
            self.0.list(d)
        }
        fn delete(&self, p: &str) -> hcbackup::storage::StorageResult<()> {
            self.0.delete(p)
        }
    }
    let inner = Arc::new(Counting(MemoryBackend::new(), Default::default()));
    let packs: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 1 << 20]).collect();
    for (i, p) in packs.iter().enumerate() {
        inner.put(&format!("packs/0{i}/p{i}"), p).unwrap();
    }
    // Room for two packs: 64 reads of each of two packs, from 8 threads, fetch each once.
    let cache = PackCache::with_limit(inner.clone(), 2 << 20);
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let cache = &cache;
            s.spawn(move || {
                for k in 0..16u32 {
                    let i = ((t + k) % 2) as usize;
                    let off = (k * 4096) as u64;
                    assert_eq!(
                        cache
                            .get_range(&format!("packs/0{i}/p{i}"), off, 100)
                            .unwrap(),
                        vec![i as u8; 100]
                    );
                }
            });
        }
    });
    assert_eq!(inner.1.load(std::sync::atomic::Ordering::SeqCst), 2);
    // A third pack evicts the least recently used; a range past the end is an error.
    let reads = || inner.1.load(std::sync::atomic::Ordering::SeqCst);
    cache.get_range("packs/00/p0", 0, 1).unwrap();
    cache.get_range("packs/02/p2", 0, 1).unwrap();
    assert_eq!(reads(), 3);
    cache.get_range("packs/00/p0", 0, 1).unwrap();
    assert_eq!(reads(), 3, "p0 was used last and stays");
    cache.get_range("packs/01/p1", 0, 1).unwrap();
    assert_eq!(reads(), 4, "p1 was evicted");
    assert!(cache.get_range("packs/00/p0", (1 << 20) - 1, 2).is_err());
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
        lock_days: None,
        lock_compliance: false,
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

/// A repository in memory (and its catalog folder), to mirror from.
fn memory_repo() -> (
    Arc<MemoryBackend>,
    hcbackup::repo::Repository,
    tempfile::TempDir,
) {
    let mem = Arc::new(MemoryBackend::new());
    let cache = tempfile::tempdir().unwrap();
    let repo = hcbackup::repo::Repository::init(mem.clone(), b"a password", cache.path()).unwrap();
    (mem, repo, cache)
}

#[test]
fn a_mirror_never_mixes_into_another_repository() {
    let (_a, repo, _cache) = memory_repo();
    let b = MemoryBackend::new();
    b.put("config", b"{\"id\":\"b\"}").unwrap();
    let e = hcbackup::ops::mirror::run(&repo, &b, "b").unwrap_err();
    assert!(e.to_string().contains("holds another repository"), "{e}");
    assert!(b.list("keys").unwrap().is_empty());
}

#[test]
fn a_damaged_local_pack_is_not_mirrored_and_stops_later_folders() {
    let (a, repo, _cache) = memory_repo();
    let b = MemoryBackend::new();
    let good = b"a pack's bytes";
    let name = blake3::hash(good).to_hex().to_string();
    a.put(&format!("packs/{}/{name}", &name[..2]), good)
        .unwrap();
    a.put(&format!("packs/00/{}", "0".repeat(64)), b"damaged")
        .unwrap();
    a.put(&format!("index/{}", "1".repeat(64)), b"index")
        .unwrap();
    a.put(&format!("snapshots/{}", "2".repeat(64)), b"snapshot")
        .unwrap();
    let r = hcbackup::ops::mirror::run(&repo, &b, "b").unwrap();
    assert_eq!(r.failures.len(), 1, "{r:?}");
    assert!(r.failures[0].contains("damaged"), "{r:?}");
    assert_eq!(b.list("packs").unwrap().len(), 1);
    assert!(b.list("index").unwrap().is_empty() && b.list("snapshots").unwrap().is_empty());
}
