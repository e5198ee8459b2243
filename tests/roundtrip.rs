//! Round trips: a generated tree with every kind of entry restores identical, content
//! and metadata; partial restores; listing; the target-folder rules.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::tree::{chmod, generate};
use common::*;

#[test]
fn generated_tree_restores_identical_and_old_snapshots_stay_intact() {
    let env = Env::new();
    let src = env.path("uploads");
    generate(&src);
    let first = env.snapshot(&[&src]);
    assert_eq!(first["incomplete"], false);
    assert!(first["files"].as_u64().unwrap() >= 9);
    let keep = env.path("uploads-day1");
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&keep)
        .status()
        .unwrap()
        .success());

    // Day two: a new file, a changed file, a deleted file.
    write(&src.join("exams/new-exam.dcm"), &noise(9, 2 << 20));
    write(&src.join("prontuários/患者/ficha.txt"), &text(10, 12_000));
    fs::remove_file(src.join("empty.pdf")).unwrap();
    let second = env.snapshot(&[&src]);

    let privileged = |id: &str, into: &str| {
        let t = env.path(into);
        env.ok(&[
            "restore",
            id,
            "--target",
            t.to_str().unwrap(),
            "--restore-privileged",
        ]);
        t
    };
    let r1 = privileged(first["id"].as_str().unwrap(), "r1");
    assert_same_tree(&keep, &r1.join("uploads"));
    let r2 = privileged(&second["short_id"].as_str().unwrap()[..6], "r2");
    assert_same_tree(&src, &r2.join("uploads"));
    let latest = privileged("latest", "r3");
    assert_same_tree(&src, &latest.join("uploads"));
    // Without --restore-privileged the setuid bit stays off, and the run says so.
    let plain = env.json(&[
        "restore",
        "latest",
        "--target",
        env.path("r4").to_str().unwrap(),
    ]);
    assert_eq!(plain["setid_dropped"], 1);
    let mode = fs::metadata(env.path("r4/uploads/perms/setuid-tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);

    let list = env.json(&["snapshots"]);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![
            first["id"].as_str().unwrap(),
            second["id"].as_str().unwrap()
        ]
    );
    for field in ["time", "tags", "id"] {
        assert!(
            list[0].get(field).is_some(),
            "snapshots --json lacks {field}"
        );
    }
    chmod(&src.join("perms/readonly-dir"), 0o755);
    env.verified();
}

#[test]
fn include_globs_ls_and_target_rules() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(1, 100_000));
    write(&src.join("exams/sub/b.dcm"), &noise(2, 100_000));
    write(&src.join("records/c.txt"), &text(3, 5_000));
    let s = env.snapshot(&[&src]);
    let id = s["short_id"].as_str().unwrap();

    let t = env.path("partial");
    env.ok(&[
        "restore",
        id,
        "--target",
        t.to_str().unwrap(),
        "--include",
        "uploads/exams/**",
    ]);
    assert_eq!(
        fs::read(t.join("uploads/exams/sub/b.dcm")).unwrap(),
        noise(2, 100_000)
    );
    assert!(t.join("uploads/exams/a.dcm").exists());
    assert!(!t.join("uploads/records").exists());

    // A non-empty target is refused without --overwrite, and allowed with it.
    let o = env.run(&["restore", id, "--target", t.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    fs::write(t.join("uploads/exams/a.dcm"), b"stale").unwrap();
    env.ok(&[
        "restore",
        id,
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_same_tree(&src, &t.join("uploads"));

    let ls = env.ok(&["ls", id, "uploads/exams"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 4, "{ls}");
    assert!(lines[0].ends_with(" uploads/exams") && lines[0].starts_with('d'));
    assert!(ls.contains("uploads/exams/sub/b.dcm"));
    assert!(!ls.contains("records"));
    let all = env.json(&["ls", "latest"]);
    assert_eq!(all.as_array().unwrap().len(), 7);
    assert_eq!(
        env.run(&["ls", id, "uploads/nothing"]).status.code(),
        Some(2)
    );
    env.verified();
}

#[test]
fn several_sources_with_the_same_name_are_kept_apart() {
    let env = Env::new();
    let a = env.path("a/uploads");
    let b = env.path("b/uploads");
    write(&a.join("one.txt"), b"one");
    write(&b.join("two.txt"), b"two");
    let s = env.snapshot(&[&a, &b]);
    assert_eq!(s["sources"], serde_json::json!(["uploads", "uploads-2"]));
    let r = env.restore("latest", "r");
    assert_eq!(fs::read(r.join("uploads/one.txt")).unwrap(), b"one");
    assert_eq!(fs::read(r.join("uploads-2/two.txt")).unwrap(), b"two");
    env.verified();
}

#[test]
fn export_tar_is_what_stock_tar_extracts() {
    let env = Env::new();
    let src = env.path("uploads");
    generate(&src);
    env.ok(&[
        "snapshot",
        src.to_str().unwrap(),
        "--time",
        "2026-11-20T03:00:00Z",
    ]);
    let out = env.path("exports");
    fs::create_dir_all(&out).unwrap();
    env.ok(&["export", "latest", "--tar", out.to_str().unwrap()]);
    // The seed's name, from the snapshot's time.
    let file = out.join("files_backup_2026-11-20_03-00-00.tar.gz");
    assert!(
        file.exists(),
        "{:?}",
        fs::read_dir(&out).unwrap().collect::<Vec<_>>()
    );
    let into = env.path("extracted");
    fs::create_dir_all(&into).unwrap();
    let o = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&file)
        .arg("-C")
        .arg(&into)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Content, kinds, modes, owners and link targets exactly; mtimes to the second
    // (what tar keeps), and before 1970 not at all (tar's header has no sign here).
    // One folder: its contents at the top, as the seed's `tar -C uploads .`.
    let want = digest(&src);
    let got = digest(&into);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (path, w) in &want {
        let g = &got[path];
        let name = String::from_utf8_lossy(path);
        assert_eq!(
            (w.kind, w.mode, w.uid, w.gid, w.size, w.hash, &w.target),
            (g.kind, g.mode, g.uid, g.gid, g.size, g.hash, &g.target),
            "{name}"
        );
        if w.mtime.0 >= 0 && w.kind != "symlink" {
            assert_eq!(w.mtime.0, g.mtime.0, "mtime of {name}");
        }
    }
    // An existing file is not replaced without --overwrite.
    let o = env.run(&["export", "latest", "--tar", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    env.verified();
}
