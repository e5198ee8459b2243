//! The catalog is a cache: missing, damaged or stale, it is rebuilt from the repository.

mod common;

use std::fs;

use common::*;

#[test]
fn missing_damaged_or_rebuilt_catalog_loses_nothing() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(1, 5 << 20));
    write(&src.join("records/b.txt"), &text(2, 100_000));
    let first = env.snapshot(&[&src]);

    // Deleted: the next command rebuilds it; the next snapshot re-reads but adds nothing.
    fs::remove_dir_all(&env.cache).unwrap();
    let again = env.snapshot(&[&src]);
    assert_eq!(again["bytes_added"], 0);
    assert_eq!(again["bytes_read"], first["bytes"]);
    let r = env.restore(first["id"].as_str().unwrap(), "r1");
    assert_same_tree(&src, &r.join("uploads"));

    // Damaged: set aside with a warning, rebuilt.
    let f = env.catalog_file();
    for ext in ["sqlite-wal", "sqlite-shm"] {
        let _ = fs::remove_file(f.with_extension(ext));
    }
    fs::write(&f, b"this is not a database at all, just garbage bytes ..........................................").unwrap();
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        env.path("r2").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("damaged"));
    assert_same_tree(&src, &env.path("r2/uploads"));

    // Explicit rebuild reports what it found.
    let counts = env.json(&["catalog", "rebuild"]);
    assert!(counts["indexes"].as_u64().unwrap() >= 1);
    assert!(counts["packs"].as_u64().unwrap() >= 2);
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

#[test]
fn a_catalog_follows_index_objects_written_elsewhere() {
    // Two machines (two caches) write to one repository: each sees the other's data.
    let env = Env::new();
    let other_cache = env.path("other-cache");
    let src = env.path("uploads");
    write(&src.join("a.bin"), &noise(3, 3 << 20));
    env.snapshot(&[&src]);
    let o = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &other_cache)
        .args(["--json", "snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        s["bytes_added"], 0,
        "the second machine stored data the repository had"
    );
    write(&src.join("b.bin"), &noise(4, 1 << 20));
    let o = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &other_cache)
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
}

/// A copy opened with `--repo` on the clinic's own machine (the repository's
/// disk died; the USB copy is at hand) uses the copy's catalog, not the
/// primary's: an older snapshot the primary's prune removed the packs of, and a
/// newest snapshot the copy never received, raise no false "replay" or "hidden"
/// alarm there.
#[test]
fn a_copy_opened_with_repo_on_the_same_machine_has_its_own_catalog() {
    let env = Env::new();
    let usb = env.usb_destination();
    let src = env.path("uploads");
    write(&src.join("a.txt"), &text(31, 5000));
    let old = env.snapshot(&[&src])["id"].as_str().unwrap().to_string();
    write(&src.join("a.txt"), &text(32, 5000));
    env.snapshot(&[&src]);
    // The primary prunes the first snapshot away; the copy keeps it (its own policy).
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    write(&src.join("b.txt"), &text(33, 5000));
    env.ok(&["snapshot", "--no-mirror", src.to_str().unwrap()]);
    let on_usb = |args: &[&str]| env.cmd_repo(usb.as_os_str()).args(args).output().unwrap();
    let t = env.path("old-from-usb");
    let o = on_usb(&["restore", &old[..8], "--target", t.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(fs::read(t.join("uploads/a.txt")).unwrap(), text(31, 5000));
    let t = env.path("latest-from-usb");
    let o = on_usb(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(fs::read(t.join("uploads/a.txt")).unwrap(), text(32, 5000));
    let o = on_usb(&["verify", "--read-data"]);
    assert!(o.status.success(), "{}", out(&o));
    // And the primary still uses its own catalog (nothing re-read).
    let again = env.snapshot(&[&src]);
    assert_eq!(again["bytes_read"], 0, "{again}");
}
