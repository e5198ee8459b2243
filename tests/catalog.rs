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
    env.verified();
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

/// A restore test from an earlier month in the catalog at `path` (its row as
/// `verify --restore-test` writes it): history only the catalog holds.
fn add_restore_test(path: &std::path::Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute(
        "INSERT INTO restore_tests(time, snapshot, database, passed, restore_secs, report)
         VALUES ('2026-11-01T03:00:00Z', 'abcd', 'healthcare', 1, 12.5, '{}')",
        [],
    )
    .unwrap();
}

/// The page `table`'s b-tree starts at, and the page size, of the catalog at
/// `path` (its journal folded into the file first).
fn root_page(path: &std::path::Path, table: &str) -> (u64, u64) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let size: u64 = c
        .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64;
    let root: u64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = ?1",
            [table],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64;
    (root, size)
}

/// Overwrite page `page` (from 1) of the file with `fill`.
fn damage_page(path: &std::path::Path, page: u64, size: u64, fill: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&fill[..size as usize], (page - 1) * size)
        .unwrap();
}

/// Issue #15, item 5: a damaged catalog (garbage or zeros in the middle of the
/// file, in the blob locations, the audit pages or the restore-test history, a
/// truncated file, a damaged header) no longer stops the nightly snapshot:
/// found at open, set aside, rebuilt from the repository, and what only it
/// holds (restore-test history, mirror record, pack reads, seen manifests, the
/// key's fingerprint) saved from it where its pages are whole.
#[test]
fn a_damaged_catalog_is_set_aside_rebuilt_and_keeps_what_only_it_holds() {
    let env = Env::new();
    env.usb_destination();
    let src = env.path("uploads");
    for i in 0..300 {
        write(&src.join(format!("records/{i}.txt")), &text(i, 4000));
    }
    write(&src.join("exams/a.dcm"), &noise(1, 3 << 20));
    env.snapshot(&[&src]);
    env.ok(&["mirror"]);
    env.verified();
    let cat = env.catalog_file();
    add_restore_test(&cat);
    let (_, page) = root_page(&cat, "blobs");
    let healthy = fs::read(&cat).unwrap();
    let garbage = noise(99, 65536);
    let zeros = vec![0u8; 65536];
    let pages = healthy.len() as u64 / page;
    type Damage<'a> = Box<dyn Fn() + 'a>;
    let kinds: Vec<(&str, Damage)> = vec![
        (
            "garbage in the blob locations",
            Box::new(|| {
                let (root, size) = root_page(&cat, "blobs");
                damage_page(&cat, root, size, &garbage)
            }),
        ),
        (
            "garbage in the audit pages",
            Box::new(|| {
                let (root, size) = root_page(&cat, "audit");
                damage_page(&cat, root, size, &garbage)
            }),
        ),
        (
            "zeros in the middle",
            Box::new(|| damage_page(&cat, pages / 2, page, &zeros)),
        ),
        (
            "garbage in the restore tests",
            Box::new(|| {
                let (root, size) = root_page(&cat, "restore_tests");
                damage_page(&cat, root, size, &garbage)
            }),
        ),
        (
            "a truncated file",
            Box::new(|| {
                let f = fs::OpenOptions::new().write(true).open(&cat).unwrap();
                f.set_len(pages / 2 * page).unwrap();
            }),
        ),
        (
            "a damaged header",
            Box::new(|| damage_page(&cat, 1, 100, &garbage)),
        ),
    ];
    let mut round = 0;
    for (what, damage) in &kinds {
        for ext in ["sqlite-wal", "sqlite-shm"] {
            let _ = fs::remove_file(cat.with_extension(ext));
        }
        fs::write(&cat, &healthy).unwrap();
        damage();
        round += 1;
        write(
            &src.join(format!("new/{round}.txt")),
            &text(500 + round, 2000),
        );
        let o = env.run(&["--json", "snapshot", src.to_str().unwrap()]);
        assert!(o.status.success(), "{what}: {}", out(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("is damaged") && err.contains("rebuilding"),
            "{what}: {err}"
        );
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            s["bytes_added"].as_u64().unwrap() < 100_000,
            "{what}: the rebuilt catalog did not dedup: {s}"
        );
        let r = env.restore("latest", &format!("r{round}"));
        assert_same_tree(&src, &r.join("uploads"));
        let v: serde_json::Value =
            serde_json::from_slice(&env.run(&["--json", "audit", "verify"]).stdout).unwrap();
        assert_eq!(v["ok"], true, "{what}: {v}");
        // What only the catalog held, unless its own pages were hit.
        let status = env.json(&["status"]);
        let kept = !matches!(
            *what,
            "garbage in the restore tests" | "a damaged header" | "a truncated file"
        );
        if kept {
            assert_eq!(
                status["last_restore_test"]["time"], "2026-11-01T03:00:00Z",
                "{what}: {err}"
            );
            assert!(err.contains("restore_tests 1 rows"), "{what}: {err}");
        }
        // The next command finds a sound catalog: no warning.
        let o = env.run(&["snapshots"]);
        assert!(o.status.success());
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("damaged"),
            "{what}"
        );
    }
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

/// Found by attack: a run killed while it set a damaged catalog aside, or an
/// empty catalog file, made the next open start afresh, losing what only the
/// catalog held (the key fingerprint among it) without a word.
#[test]
fn a_set_aside_cut_short_or_an_empty_catalog_loses_nothing_silently() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), &text(1, 3000));
    env.snapshot(&[&src]);
    let cat = env.catalog_file();
    add_restore_test(&cat);
    // Damage met mid-run (the flag), then the set-aside killed half-way.
    fs::write(cat.with_extension("sqlite-damaged"), b"").unwrap();
    env.killed_at("catalog-after-aside", &["snapshots"]);
    let o = env.run(&["--json", "status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cut short") && err.contains("restore_tests 1 rows"),
        "{err}"
    );
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["last_restore_test"]["time"], "2026-11-01T03:00:00Z");
    // An empty file: damaged, said so, and the lost key record named.
    fs::write(&cat, b"").unwrap();
    let o = env.run(&["snapshots"]);
    assert!(o.status.success(), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the file is empty"), "{err}");
    assert!(
        err.contains("record of the repository's keys was lost"),
        "{err}"
    );
    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
}
