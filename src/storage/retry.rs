//! Retries with exponential backoff around any backend. Only `Transient` failures
//! (timeouts, resets, 5xx, rate limits) are retried; a missing object, refused
//! credentials or a full destination fail at once. Safe because every operation is
//! idempotent: objects are immutable and content-named.

use std::sync::Arc;
use std::time::Duration;

use super::{Backend, StorageError, StorageResult};

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// `tuning`'s attempts (6, or HCBACKUP_RETRIES).
    fn default() -> Self {
        RetryPolicy {
            attempts: crate::config::tuning::get().retries,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `n` (1-based retries), with up to 50% random jitter
    /// so that parallel transfers do not retry in step.
    fn delay(&self, n: u32) -> Duration {
        let base = self
            .first_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max_delay);
        let jitter = rand::random::<f64>() * 0.5;
        base.mul_f64(1.0 + jitter).min(self.max_delay)
    }
}

pub struct Retrying {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
}

impl Retrying {
    pub fn new(inner: Arc<dyn Backend>, policy: RetryPolicy) -> Self {
        Retrying { inner, policy }
    }

    fn run<T>(&self, what: &str, mut op: impl FnMut() -> StorageResult<T>) -> StorageResult<T> {
        let mut n = 0;
        loop {
            match op() {
                Err(StorageError::Transient(e)) if n + 1 < self.policy.attempts => {
                    n += 1;
                    let pause = self.policy.delay(n);
                    tracing::info!(
                        "{}: {what}: {e}; retry {n} in {:.1} s",
                        self.inner.location(),
                        pause.as_secs_f64()
                    );
                    std::thread::sleep(pause);
                }
                Err(StorageError::Transient(e)) => {
                    return Err(StorageError::Transient(format!(
                        "{e} (gave up after {} attempts)",
                        self.policy.attempts
                    )))
                }
                other => return other,
            }
        }
    }
}

impl Backend for Retrying {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn put(&self, path: &str, data: &[u8]) -> StorageResult<()> {
        self.run(path, || self.inner.put(path, data))
    }
    fn put_new(&self, path: &str, data: &[u8]) -> StorageResult<bool> {
        self.run(path, || self.inner.put_new(path, data))
    }
    fn get(&self, path: &str) -> StorageResult<Vec<u8>> {
        self.run(path, || self.inner.get(path))
    }
    fn get_range(&self, path: &str, offset: u64, len: u32) -> StorageResult<Vec<u8>> {
        self.run(path, || self.inner.get_range(path, offset, len))
    }
    fn stat(&self, path: &str) -> StorageResult<u64> {
        self.run(path, || self.inner.stat(path))
    }
    fn list(&self, dir: &str) -> StorageResult<Vec<(String, u64)>> {
        self.run(dir, || self.inner.list(dir))
    }
    fn delete(&self, path: &str) -> StorageResult<()> {
        self.run(path, || self.inner.delete(path))
    }
    fn list_foreign(&self, dir: &str) -> StorageResult<Vec<String>> {
        self.run(dir, || self.inner.list_foreign(dir))
    }
    fn remove_stale_partials(&self, age: Duration) -> StorageResult<usize> {
        self.run("partial writes", || self.inner.remove_stale_partials(age))
    }
    fn create_layout(&self, dirs: &[&str]) -> StorageResult<()> {
        self.run("layout", || self.inner.create_layout(dirs))
    }
    fn retention_days(&self) -> Option<u32> {
        self.inner.retention_days()
    }
    fn extend_retention(&self, path: &str, until: time::OffsetDateTime) -> StorageResult<()> {
        self.run(path, || self.inner.extend_retention(path, until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryBackend;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails the first `fail` calls with the given error, then passes through.
    struct Flaky {
        inner: MemoryBackend,
        fail: AtomicU32,
        transient: bool,
        calls: AtomicU32,
    }

    impl Backend for Flaky {
        fn location(&self) -> String {
            "flaky".into()
        }
        fn put(&self, p: &str, d: &[u8]) -> StorageResult<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                return Err(if self.transient {
                    StorageError::Transient("503 Slow Down".into())
                } else {
                    StorageError::Auth("403".into())
                });
            }
            self.inner.put(p, d)
        }
        fn get(&self, p: &str) -> StorageResult<Vec<u8>> {
            self.inner.get(p)
        }
        fn get_range(&self, p: &str, o: u64, l: u32) -> StorageResult<Vec<u8>> {
            self.inner.get_range(p, o, l)
        }
        fn stat(&self, p: &str) -> StorageResult<u64> {
            self.inner.stat(p)
        }
        fn list(&self, d: &str) -> StorageResult<Vec<(String, u64)>> {
            self.inner.list(d)
        }
        fn delete(&self, p: &str) -> StorageResult<()> {
            self.inner.delete(p)
        }
    }

    fn flaky(fail: u32, transient: bool) -> Arc<Flaky> {
        Arc::new(Flaky {
            inner: MemoryBackend::new(),
            fail: AtomicU32::new(fail),
            transient,
            calls: AtomicU32::new(0),
        })
    }

    const FAST: RetryPolicy = RetryPolicy {
        attempts: 4,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };

    #[test]
    fn transient_failures_are_retried_until_they_pass() {
        let f = flaky(3, true);
        let r = Retrying::new(f.clone(), FAST);
        r.put("index/a", b"x").unwrap();
        assert_eq!(f.calls.load(Ordering::SeqCst), 4);
        assert_eq!(r.get("index/a").unwrap(), b"x");
    }

    #[test]
    fn persistent_and_permanent_failures_are_not_hidden() {
        let f = flaky(10, true);
        let r = Retrying::new(f.clone(), FAST);
        let e = r.put("index/a", b"x").unwrap_err();
        assert!(e.to_string().contains("gave up after 4 attempts"), "{e}");
        assert_eq!(f.calls.load(Ordering::SeqCst), 4);
        let f = flaky(1, false);
        let r = Retrying::new(f.clone(), FAST);
        assert!(matches!(r.put("index/a", b"x"), Err(StorageError::Auth(_))));
        assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn delays_grow_and_stay_bounded() {
        let p = RetryPolicy::default();
        assert!(
            p.delay(1) >= Duration::from_millis(200) && p.delay(1) <= Duration::from_millis(300)
        );
        assert!(p.delay(3) >= Duration::from_millis(800));
        assert!(p.delay(30) <= Duration::from_secs(10));
    }
}
