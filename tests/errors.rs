//! Bad inputs: each gives one clear line, the contract's exit code, and leaves every
//! earlier snapshot intact.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use common::*;
use hcbackup::repo::Repository;
use hcbackup::storage::LocalBackend;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn missing_repository_wrong_password_and_double_init() {
    let env = Env::uninit();
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(10));
    assert!(stderr(&o).contains("hcbackup init"));
    assert_eq!(stderr(&o).lines().count(), 1);
    env.ok(&["init"]);
    let o = env.run(&["init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"));
    let o = env
        .cmd()
        .env("HCBACKUP_PASSWORD", "wrong")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12));
    assert!(stderr(&o).contains("wrong password"));
    // No password source and no terminal: say how to give one.
    let o = env
        .cmd()
        .env_remove("HCBACKUP_PASSWORD")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("HCBACKUP_PASSWORD_FILE"));
    // No repository named at all.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hcbackup"))
        .env_remove("BACKUP_DIR")
        .env_remove("HCBACKUP_REPO")
        .current_dir(env.dir.path())
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("BACKUP_DIR"));
    // An unknown command or flag is a usage error.
    assert_eq!(env.run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(env.run(&["snapshot", "--nonsense"]).status.code(), Some(2));
}

#[test]
fn malformed_configuration_is_named_with_its_line() {
    let env = Env::new();
    fs::write(
        env.path("hcbackup.toml"),
        "uploads_dir = \"/x\"\nupload_dir = \"/typo\"\n",
    )
    .unwrap();
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("hcbackup.toml line 2") && e.contains("upload_dir"),
        "{e}"
    );
    fs::write(env.path("hcbackup.toml"), "uploads_dir = [\n").unwrap();
    assert_eq!(env.run(&["snapshots"]).status.code(), Some(1));
    fs::remove_file(env.path("hcbackup.toml")).unwrap();
    fs::write(
        env.path(".env"),
        "POSTGRES_PASSWORD=senha_segura\nTHIS IS NOT A LINE\n",
    )
    .unwrap();
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(".env") && !stderr(&o).contains("senha_segura"));
    fs::remove_file(env.path(".env")).unwrap();
    // A good .env and toml are used: UPLOADS_DIR from .env, repository from the flag.
    let up = env.path("up");
    write(&up.join("f.txt"), b"from dotenv");
    fs::write(env.path(".env"), format!("UPLOADS_DIR={}\n", up.display())).unwrap();
    let s = env.json(&["snapshot"]);
    assert_eq!(s["files"], 1);
    assert_eq!(
        env.run(&["snapshot", "--time", "yesterday"]).status.code(),
        Some(2)
    );
    assert_eq!(
        env.run(&["snapshot", "/nonexistent/uploads"]).status.code(),
        Some(2)
    );
    // A malformed Object Lock setting is named, never read as "no lock".
    let o = env
        .cmd()
        .env("S3_BACKUP_BUCKET", "clinic")
        .env("S3_OBJECT_LOCK_DAYS", "ten")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("S3_OBJECT_LOCK_DAYS"), "{}", stderr(&o));
    let o = env
        .cmd()
        .env("S3_BACKUP_BUCKET", "clinic")
        .env("S3_OBJECT_LOCK_MODE", "strict")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("compliance or governance"),
        "{}",
        stderr(&o)
    );
    for (url, says) in [
        ("s3://clinic/b?object_lock_days=x", "object lock days"),
        ("s3://clinic/b?lock=1", "unknown setting"),
        ("s3:///b", "no bucket"),
    ] {
        let o = env
            .cmd_repo(std::ffi::OsStr::new(url))
            .arg("snapshots")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{url}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{url}: {}", stderr(&o));
    }
}

#[test]
fn unreadable_entries_are_listed_and_the_rest_is_saved() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("ok/good.pdf"), &noise(1, 100_000));
    write(&src.join("bad/locked.pdf"), b"locked");
    write(&src.join("closed/inside.pdf"), b"inside");
    fs::set_permissions(
        src.join("bad/locked.pdf"),
        fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    fs::set_permissions(src.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = env.cmd();
    if is_root() {
        // Root reads everything: run as nobody, who owns the test folder.
        assert!(std::process::Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(env.dir.path())
            .status()
            .unwrap()
            .success());
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_hcbackup"),
        ]);
        c.env("HCBACKUP_PASSWORD", PASSWORD)
            .env("HCBACKUP_CACHE_DIR", &env.cache)
            .env("HCBACKUP_TEST_KDF", "1")
            .env("HOME", env.dir.path());
        c.current_dir(env.dir.path()).arg("--repo").arg(&env.repo);
        cmd = c;
    }
    let o = cmd
        .args(["--json", "snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("bad/locked.pdf") && e.contains("closed"), "{e}");
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["incomplete"], true);
    assert_eq!(s["errors"].as_array().unwrap().len(), 2);
    fs::set_permissions(src.join("closed"), fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        // The cache (and the folders above it) is private to whoever uses it:
        // root's again.
        assert!(std::process::Command::new("chown")
            .args(["-R", "0:0"])
            .arg(env.dir.path())
            .status()
            .unwrap()
            .success());
    }
    let list = env.json(&["ls", "latest"]);
    let paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"uploads/ok/good.pdf"));
    assert!(!paths.contains(&"uploads/bad/locked.pdf"));
    assert!(env.ok(&["snapshots"]).contains("(incomplete)"));
    env.verified();
}

#[test]
fn lock_held_by_a_live_process_and_stale_locks() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"a");
    let backend = Arc::new(LocalBackend::new(&env.repo));
    let repo = Repository::open(
        backend,
        &mut || Ok(zeroize::Zeroizing::new(PASSWORD.to_string())),
        &env.cache,
    )
    .unwrap();
    {
        let _guard = repo.lock(true, "prune").unwrap();
        let o = env.run(&["snapshot", src.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(11));
        assert!(stderr(&o).contains("locked by prune"), "{}", stderr(&o));
    }
    env.snapshot(&[&src]);
    // A killed run leaves a lock; the next exclusive lock finds it stale and removes it.
    let o = env
        .cmd()
        .env("HCBACKUP_FAILPOINT", "before-index")
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(fs::read_dir(env.repo.join("locks")).unwrap().count(), 1);
    let guard = repo
        .lock(true, "prune")
        .expect("stale lock was not cleared");
    drop(guard);
    assert_eq!(fs::read_dir(env.repo.join("locks")).unwrap().count(), 0);
}

#[test]
fn two_snapshots_at_once_corrupt_nothing() {
    let env = Env::new();
    let a = env.path("a/uploads");
    let b = env.path("b/records");
    for i in 0..3 {
        write(&a.join(format!("v{i}.mp4")), &noise(i, 10 << 20));
        write(&b.join(format!("r{i}.txt")), &text(i, 3 << 20));
    }
    write(&b.join("shared.mp4"), &noise(0, 10 << 20)); // same data as a/v0.mp4
    let children: Vec<_> = [&a, &b]
        .iter()
        .map(|p| {
            env.cmd()
                .args(["--json", "snapshot", p.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<serde_json::Value> = children
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success());
            serde_json::from_slice(&o.stdout).unwrap()
        })
        .collect();
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
    let ra = env.restore(outs[0]["id"].as_str().unwrap(), "ra");
    assert_same_tree(&a, &ra.join("uploads"));
    let rb = env.restore(outs[1]["id"].as_str().unwrap(), "rb");
    assert_same_tree(&b, &rb.join("records"));
}

#[test]
fn a_repository_on_a_file_system_without_direct_io_is_written_buffered() {
    // ramfs refuses O_DIRECT (after creating the file): packs go through the cache.
    let env = Env::uninit();
    let _u = common::mount_ramfs(&env.repo);
    env.ok(&["init"]);
    let src = env.path("uploads");
    write(&src.join("exam.dcm"), &noise(7, 6 << 20));
    write(&src.join("note.txt"), b"retorno em 30 dias");
    env.snapshot(&[&src]);
    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
    let packs = common::pack_files(&env.repo);
    assert!(
        packs
            .iter()
            .any(|p| fs::metadata(p).unwrap().len() > 1 << 20),
        "a pack above the O_DIRECT size was written"
    );
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_earlier_snapshots() {
    let env = Env::uninit();
    let _u = common::mount_tmpfs(&env.repo, "3m");
    env.ok(&["init"]);
    let src = env.path("uploads");
    write(&src.join("small.txt"), b"fits");
    let first = env.snapshot(&[&src]);
    write(&src.join("big.mp4"), &noise(5, 8 << 20));
    let o = env.run(&["snapshot", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("disk full") && e.contains("free space"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    let list = env.json(&["snapshots"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], first["id"]);
    fs::remove_file(src.join("big.mp4")).unwrap();
    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
    // No temporary file is left behind.
    let mut stack = vec![env.repo.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            assert!(
                !p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".tmp-"),
                "left {}",
                p.display()
            );
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    env.verified();
}

/// The pid of a process that has ended (to name a temporary file a killed run left).
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// Issue #15, item 7: a killed run's half-written file is what fills the disk.
/// The next snapshot removes it at once (its name says which process of this host
/// wrote it, and that process is gone), instead of failing "disk full" on the
/// tool's own leftover for an hour; `prune` removes another host's after the hour.
#[test]
fn leftovers_of_killed_runs_do_not_fill_the_disk() {
    let env = Env::uninit();
    let _u = common::mount_tmpfs(&env.repo, "12m");
    env.ok(&["init"]);
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"first");
    env.snapshot(&[&src]);
    let host = hcbackup::util::hostname();
    let tag = &blake3::hash(host.as_bytes()).to_hex()[..8];
    let fan = env.repo.join("packs/ab");
    fs::create_dir_all(&fan).unwrap();
    let ours = fan.join(format!(".tmp-{tag}-{}-0011223344556677", dead_pid()));
    fs::write(&ours, noise(7, 10 << 20)).unwrap();
    write(&src.join("scan.dcm"), &noise(8, 2 << 20));
    let saved = env.snapshot(&[&src]);
    assert!(!ours.exists(), "the killed run's leftover is still there");
    let r = env.restore(saved["id"].as_str().unwrap(), "r");
    assert_same_tree(&src, &r.join("uploads"));

    // Another host's leftover, two hours old: prune removes it.
    let theirs = fan.join(".tmp-00000000-1-8899aabbccddeeff");
    fs::write(&theirs, b"half a pack").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    fs::File::options()
        .write(true)
        .open(&theirs)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    env.ok(&["prune"]);
    assert!(!theirs.exists(), "prune left another host's old leftover");
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

/// Issue #15, item 6: the disk under the catalog is full. The error says "disk
/// full … free space", not "delete it" (which would lose the catalog's restore
/// tests and history); once there is room, the next snapshot works.
#[test]
fn a_full_disk_under_the_catalog_says_free_space() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"first");
    env.snapshot(&[&src]);
    let disk = env.path("small-disk");
    let _u = common::mount_tmpfs(&disk, "1m");
    let cache = disk.join("cache");
    let run = |args: &[&str]| {
        env.cmd()
            .env("HCBACKUP_CACHE_DIR", &cache)
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["snapshots"]);
    assert!(o.status.success(), "{}", out(&o));
    // Fill the disk to the last block.
    let filler = disk.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    while std::io::Write::write_all(&mut f, &[7u8; 4096]).is_ok() {}
    drop(f);
    for i in 0..200 {
        write(&src.join(format!("records/{i}.txt")), &text(i, 3000));
    }
    let o = run(&["snapshot", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("disk full") && e.contains("free space"), "{e}");
    assert!(!e.contains("delete it"), "{e}");
    fs::remove_file(&filler).unwrap();
    let o = run(&["snapshot", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
    // The disk fills while a snapshot runs: its audit event, which the catalog
    // can no longer take, goes to the repository, in the one chain.
    for i in 0..200 {
        write(&src.join(format!("more/{i}.txt")), &text(1000 + i, 3000));
    }
    let child = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &cache)
        .env("HCBACKUP_TEST_PAUSE", "archive-before-open:2:1")
        .args(["snapshot", src.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let mut f = fs::File::create(&filler).unwrap();
    while std::io::Write::write_all(&mut f, &[7u8; 4096]).is_ok() {}
    drop(f);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("disk full") && e.contains("to the repository alone"),
        "{e}"
    );
    fs::remove_file(&filler).unwrap();
    let results: Vec<String> = env
        .json(&["audit"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "snapshot")
        .map(|e| e["result"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(results, ["ok", "ok", "failed"]);
    let v: serde_json::Value =
        serde_json::from_slice(&env.run(&["--json", "audit", "verify"]).stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}
