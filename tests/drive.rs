//! The Google Drive backend against the project's Drive v3 test server
//! (`tests/common/drive.rs`): the storage contract, and what is particular to
//! Drive — duplicate names, md5 checks, rate limits, shared drives, credentials.

use std::sync::Arc;

use hcbackup::storage::{
    conformance, Backend, DriveBackend, DriveConfig, RetryPolicy, Retrying, StorageError,
};

#[path = "common/drive.rs"]
mod drive;
use drive::DriveServer;

fn backend(server: &DriveServer, folder: &str) -> DriveBackend {
    DriveBackend::new(DriveConfig::new(
        folder,
        &server.credentials(),
        &server.root_url,
    ))
    .unwrap()
}

#[test]
fn drive_backend_keeps_the_contract() {
    let server = DriveServer::start();
    let folder = server.shared_folder("clinic-backups");
    conformance::run(&backend(&server, &folder));

    // The layout a person sees in Drive: one subfolder per object kind.
    let packs = server.subfolder(&folder, "packs").expect("a packs folder");
    let names: Vec<String> = server
        .files_in(&packs)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    // Drive keeps every file, the two planted by the contract among them; the
    // backend lists only the two of repository shape (checked by `conformance`).
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.iter().any(|n| n == "cd/not-a-pack"));
    assert!(
        names
            .iter()
            .filter(|n| n.starts_with("ab/ab") || n.starts_with("cd/cd"))
            .count()
            == 2
    );
    assert!(server
        .files_in(&folder)
        .iter()
        .any(|(n, d)| n == "config" && d == b"{}"));
    // Small objects go up in one multipart request, large ones resumable.
    let log = server.requests();
    assert!(log.iter().any(|r| r.contains("uploadType=multipart")));
    assert!(
        log.iter().filter(|r| r.contains("upload_id=")).count() >= 3,
        "a 17 MiB object in 8 MiB chunks"
    );
    // Every listing page asks for shared-drive items and pages through 1,100 keys.
    assert!(log
        .iter()
        .any(|r| r.starts_with("GET /drive/v3/files?") && r.contains("pageToken=")));
}

#[test]
fn duplicate_names_are_read_once_and_replaced() {
    let server = DriveServer::start();
    let folder = server.shared_folder("dups");
    let b = backend(&server, &folder);
    b.create_layout(&["index"]).unwrap();
    let index = server.subfolder(&folder, "index").unwrap();
    // Two writers uploaded the same content-named object.
    let aa = "aa".repeat(32);
    let path = format!("index/{aa}");
    server.add_file(&index, &aa, b"same bytes");
    server.add_file(&index, &aa, b"same bytes");
    assert_eq!(b.list("index").unwrap(), vec![(aa.clone(), 10)]);
    assert_eq!(b.get(&path).unwrap(), b"same bytes");
    // Putting the same bytes again sends nothing.
    let before = server.requests().len();
    b.put(&path, b"same bytes").unwrap();
    assert!(!server.requests()[before..]
        .iter()
        .any(|r| r.contains("upload")));
    // New bytes replace every older copy.
    b.put(&path, b"new").unwrap();
    assert_eq!(server.files_in(&index), vec![(aa.clone(), b"new".to_vec())]);
    b.delete(&path).unwrap();
    assert!(server.files_in(&index).is_empty());
}

#[test]
fn a_copy_whose_md5_differs_is_removed_and_sent_again() {
    let server = DriveServer::start();
    let folder = server.shared_folder("md5");
    let raw = backend(&server, &folder);
    raw.create_layout(&["packs"]).unwrap();
    server.corrupt_next_uploads(1);
    let e = raw.put("packs/ab/x", b"pack bytes").unwrap_err();
    assert!(matches!(e, StorageError::Transient(_)), "{e:?}");
    assert!(e.to_string().contains("does not match"), "{e}");
    let packs = server.subfolder(&folder, "packs").unwrap();
    assert!(
        server.files_in(&packs).is_empty(),
        "the bad copy is deleted"
    );

    // Through the retry layer the put succeeds, large (resumable) ones too.
    let b = Retrying::new(Arc::new(raw), RetryPolicy::default());
    server.corrupt_next_uploads(1);
    let big: Vec<u8> = (0..9u32 << 20).map(|i| (i % 253) as u8).collect();
    b.put("packs/cd/big", &big).unwrap();
    assert_eq!(
        server.files_in(&packs),
        vec![("cd/big".to_string(), big.clone())]
    );
    assert_eq!(b.get("packs/cd/big").unwrap(), big);
}

#[test]
fn rate_limits_are_retried() {
    let server = DriveServer::start();
    let folder = server.shared_folder("rate");
    let raw = backend(&server, &folder);
    raw.create_layout(&["snapshots"]).unwrap();
    server.rate_limit_next(1);
    let e = raw.get("snapshots/x").unwrap_err();
    assert!(
        matches!(e, StorageError::Transient(_)),
        "403 userRateLimitExceeded is transient: {e:?}"
    );
    let b = Retrying::new(Arc::new(raw), RetryPolicy::default());
    server.rate_limit_next(3);
    b.put("snapshots/x", b"s").unwrap();
    assert_eq!(b.get("snapshots/x").unwrap(), b"s");
}

#[test]
fn a_my_drive_folder_says_to_use_a_shared_drive() {
    let server = DriveServer::start();
    let folder = server.my_drive_folder("personal");
    let e = backend(&server, &folder).put("index/a", b"x").unwrap_err();
    assert!(matches!(e, StorageError::Permanent(_)), "{e:?}");
    assert!(e.to_string().contains("shared drive"), "{e}");
}

#[test]
fn a_folder_that_is_not_there_or_not_shared_is_named() {
    let server = DriveServer::start();
    let e = backend(&server, "1NoSuchFolder")
        .list("snapshots")
        .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("1NoSuchFolder") && m.contains("not shared with hcbackup-test@"),
        "{m}"
    );
}

#[test]
fn bad_credentials_are_an_auth_error() {
    let server = DriveServer::start();
    let folder = server.shared_folder("auth");
    // A key the server does not know (another server's), and a key that is not one.
    let other = DriveServer::start();
    let b = DriveBackend::new(DriveConfig::new(
        &folder,
        &other.credentials_at(&server.root_url),
        &server.root_url,
    ))
    .unwrap();
    let e = b.list("index").unwrap_err();
    assert!(matches!(e, StorageError::Auth(_)), "{e:?}");
    assert!(e.to_string().contains("GOOGLE_CREDENTIALS"), "{e}");
    let e = DriveBackend::new(DriveConfig::new(
        &folder,
        "{\"type\": \"service_account\"}",
        &server.root_url,
    ))
    .err()
    .unwrap();
    assert!(e.to_string().contains("not a service account"), "{e}");
    // A path works as well as inline JSON.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sa.json");
    std::fs::write(&key, server.credentials()).unwrap();
    let b = DriveBackend::new(DriveConfig::new(
        &folder,
        key.to_str().unwrap(),
        &server.root_url,
    ))
    .unwrap();
    b.put("config", b"{}").unwrap();
}

#[test]
fn a_content_manager_cannot_delete_for_good_so_objects_go_to_the_trash() {
    let server = DriveServer::start();
    let folder = server.content_manager_folder("content-manager");
    let b = backend(&server, &folder);
    b.put("index/aa", b"old").unwrap();
    b.put("index/aa", b"new").unwrap();
    let index = server.subfolder(&folder, "index").unwrap();
    assert_eq!(
        server.files_in(&index),
        vec![("aa".to_string(), b"new".to_vec())]
    );
    assert_eq!(server.trashed_in(&index), vec!["aa".to_string()]);
    b.delete("index/aa").unwrap();
    assert!(b.list("index").unwrap().is_empty());
    assert!(matches!(b.get("index/aa"), Err(StorageError::NotFound(_))));
    assert_eq!(server.trashed_in(&index).len(), 2);
}
