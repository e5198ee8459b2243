//! The storage contract (`hcbackup::storage::conformance`) on every backend.

use std::sync::Arc;

use hcbackup::storage::{conformance, Backend, LocalBackend, MemoryBackend, RetryPolicy, Retrying};

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
