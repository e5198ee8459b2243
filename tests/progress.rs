//! Progress moves within a large file (issue #17): a long video reports its bytes
//! as they are read (snapshot) and written (restore), not once at its end.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
use hcbackup::ops::restore::{self, RestoreOptions};
use hcbackup::ops::snapshot::{self, SnapshotOptions};
use hcbackup::progress::Progress;
use hcbackup::repo::Repository;
use hcbackup::storage::LocalBackend;

/// What a progress heard: each `bytes_done`, and the bytes heard when each
/// file was done.
#[derive(Default)]
struct Heard {
    steps: Mutex<Vec<u64>>,
    done_at: Mutex<Vec<u64>>,
}

impl Progress for Heard {
    fn bytes_done(&self, bytes: u64) {
        self.steps.lock().unwrap().push(bytes);
    }
    fn file_done(&self, _path: &Path, _bytes: u64) {
        let so_far = self.steps.lock().unwrap().iter().sum();
        self.done_at.lock().unwrap().push(so_far);
    }
}

#[test]
fn progress_moves_within_a_large_file() {
    const SIZE: usize = 48 << 20;
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("consulta.mp4"), &noise(9, SIZE));
    let open = || {
        Repository::open(
            Arc::new(LocalBackend::new(&env.repo)),
            &mut || Ok(zeroize::Zeroizing::new(PASSWORD.to_string())),
            &env.cache,
        )
        .unwrap()
    };
    let repo = open();
    let heard = Heard::default();
    let opts = SnapshotOptions {
        paths: vec![src.clone()],
        tags: Vec::new(),
        time: None,
        databases: Vec::new(),
        exclusions: Default::default(),
        host: None,
        physical: None,
    };
    let entry = snapshot::run(&repo, &opts, &heard).unwrap();
    let steps = heard.steps.lock().unwrap().clone();
    assert!(
        steps.len() >= 4,
        "one step per read, not per file: {steps:?}"
    );
    assert_eq!(steps.iter().sum::<u64>(), SIZE as u64);
    assert_eq!(*heard.done_at.lock().unwrap(), [SIZE as u64]);

    let heard = Heard::default();
    let target = env.path("back");
    let ropts = RestoreOptions {
        target: target.clone(),
        includes: Vec::new(),
        overwrite: false,
        privileged: false,
    };
    restore::run(&repo, &entry, &ropts, &heard).unwrap();
    let steps = heard.steps.lock().unwrap().clone();
    assert!(steps.len() >= 4, "one step per chunk: {steps:?}");
    assert_eq!(steps.iter().sum::<u64>(), SIZE as u64);
    assert_same_tree(&src, &target.join("uploads"));
    drop(repo);
    env.verified();
}
