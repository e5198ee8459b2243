//! Runs beside each other (issue #15): a snapshot reported saved restores, whatever
//! ran before or beside it, from this machine's catalog or another's; locks are
//! waited for by default; verify judges one consistent view.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use common::*;

/// Start `args` with `cache` as its catalog folder, paused at failpoint `pause`
/// (`name:SECS`), and return once it holds its lock.
fn start_paused(env: &Env, cache: &Path, pause: &str, args: &[&str]) -> Child {
    let child = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", cache)
        .env("HCBACKUP_TEST_PAUSE", pause)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lock(&env.repo);
    child
}

/// Start `args` with `cache` as its catalog folder and return once it has
/// reached the pause `pause` (`name:SECS[:N]`).
fn start_until_paused(env: &Env, cache: &Path, pause: &str, args: &[&str]) -> Child {
    let mut cmd = env.cmd();
    cmd.env("HCBACKUP_CACHE_DIR", cache).args(args);
    env.start_until_paused(cmd, pause)
}

/// A snapshot of `src` with the default lock wait (a nightly run's).
fn snapshot_waiting_by_default(env: &Env, src: &Path) -> std::process::Output {
    env.cmd()
        .env_remove("HCBACKUP_LOCK_WAIT")
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap()
}

fn finished_ok(child: Child) -> String {
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn uploads(env: &Env, seed: u64) -> PathBuf {
    let src = env.path("uploads");
    for i in 0..3 {
        write(
            &src.join(format!("exams/{seed}-{i}.dcm")),
            &noise(seed * 10 + i, 300_000),
        );
    }
    src
}

/// Issue #20: a prune on another machine condemns the packs of a forgotten
/// snapshot while this machine's snapshot runs. The snapshot never waits for
/// it, never deduplicates against what was condemned (it stores that data
/// again), and restores byte for byte after the prune deleted the packs.
#[test]
fn a_snapshot_beside_a_prune_never_reuses_what_it_condemned() {
    let env = Env::new();
    let other = env.path("other-machine-cache");
    let src = uploads(&env, 1);
    env.snapshot(&[&src]);
    // The next night the exams are away (moved aside, not changed): the second
    // snapshot of the folder holds only a note.
    let aside = env.path("aside");
    fs::rename(&src, &aside).unwrap();
    write(&src.join("note.txt"), &text(9, 1000));
    env.snapshot(&[&src]);
    // The other machine forgets the first snapshot and prunes; it pauses once
    // its first pass has condemned the exams' packs.
    let o = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &other)
        .args(["forget", "--keep-last", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let prune = start_until_paused(&env, &other, "prune-between-passes:4", &["--json", "prune"]);
    // The exams come back as they were: this catalog's file cache knows them.
    fs::remove_dir_all(&src).unwrap();
    fs::rename(&aside, &src).unwrap();
    let saved = env.snapshot(&[&src]);
    let mut prune = prune;
    assert!(
        prune.try_wait().unwrap().is_none(),
        "the prune ended before the snapshot it ran beside"
    );
    assert!(
        saved["bytes_added"].as_u64().unwrap() >= 900_000,
        "the condemned data was stored again: {saved}"
    );
    let o = prune.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        report[0]["prune"]["packs_deleted"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let r = env.restore(saved["id"].as_str().unwrap(), "restored");
    assert_same_tree(&src, &r.join("uploads"));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
    let o = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &other)
        .args(["verify", "--read-data"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}

/// Issue #20: a snapshot never waits for a prune (it runs while the prune
/// holds its lock); defect 9 still holds for what does lock it out (a retag):
/// the nightly snapshot waits by default, saying so, instead of exit 11.
#[test]
fn a_snapshot_never_waits_for_a_prune_and_waits_for_a_retag_by_default() {
    let env = Env::new();
    let src = uploads(&env, 2);
    env.snapshot(&[&src]);
    let prune = start_until_paused(&env, &env.cache, "prune-locked:30", &["prune"]);
    // A retag queued behind the prune holds up no snapshot either.
    let mut queued = env
        .cmd()
        .env("HCBACKUP_LOCK_WAIT", "60")
        .args(["tag", "latest", "--add", "queued"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    write(&src.join("new.txt"), &text(3, 5000));
    let o = snapshot_waiting_by_default(&env, &src);
    assert!(o.status.success(), "{}", out(&o));
    assert!(!out(&o).contains("waiting"), "{}", out(&o));
    let mut prune = prune;
    assert!(
        prune.try_wait().unwrap().is_none(),
        "the snapshot waited for the prune"
    );
    prune.kill().unwrap();
    let _ = prune.wait();
    assert!(queued.wait().unwrap().success(), "the queued retag");
    let tag = start_until_paused(
        &env,
        &env.cache,
        "tag-after-write:3",
        &["tag", "latest", "--add", "exams"],
    );
    write(&src.join("newer.txt"), &text(4, 5000));
    let o = snapshot_waiting_by_default(&env, &src);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("waiting for the repository lock held by tag"),
        "{}",
        out(&o)
    );
    finished_ok(tag);
    assert_eq!(env.snapshot_ids().len(), 3);
    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
    env.verified();
}

/// Defect 4: verify while a prune runs exits 11 with the lock's holder, like
/// every other command (not 1 with "1 PROBLEMS").
#[test]
fn verify_under_a_prune_exits_11() {
    let env = Env::new();
    let src = uploads(&env, 4);
    env.snapshot(&[&src]);
    let prune = start_until_paused(&env, &env.cache, "prune-locked:3", &["prune"]);
    let o = env.run(&["verify"]);
    assert_eq!(o.status.code(), Some(11), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("locked by prune"),
        "{}",
        out(&o)
    );
    finished_ok(prune);
    assert!(env.ok(&["verify"]).contains("no problems"));
}

/// Defect 2: verify lists the packs, then a snapshot beside it (shared locks
/// both) adds packs to the same catalog; verify must not call them missing nor
/// hand them to `repair` as damaged.
#[test]
fn verify_beside_a_snapshot_reports_nothing_missing() {
    let env = Env::new();
    let src = uploads(&env, 5);
    env.snapshot(&[&src]);
    let verify = start_paused(
        &env,
        &env.cache,
        "verify-after-list:4",
        &["--json", "verify", "--read-data"],
    );
    let more = env.path("more");
    write(&more.join("video.mp4"), &noise(6, 2 << 20));
    env.snapshot(&[&more]);
    let o = verify.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["problems"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["damaged"].as_array().unwrap().len(), 0, "{r}");
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

/// `audit verify` from the catalog in `cache`: the chain must hold.
fn audit_holds(env: &Env, cache: &Path) {
    let o = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", cache)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "audit chain broken from {cache:?}: {}",
        out(&o)
    );
}

/// Defect 3: two catalog folders (two machines) take turns, one after the other,
/// and an old copy of a catalog comes back: the audit chain stays one chain, in
/// the repository and in every catalog.
#[test]
fn catalogs_taking_turns_keep_one_audit_chain() {
    let env = Env::new();
    let other = env.path("other-machine-cache");
    let src = uploads(&env, 7);
    env.snapshot(&[&src]);
    let on_other = |args: &[&str]| {
        let o = env
            .cmd()
            .env("HCBACKUP_CACHE_DIR", &other)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out(&o));
    };
    on_other(&["verify"]);
    write(&src.join("day2.txt"), &text(8, 2000));
    env.snapshot(&[&src]);
    on_other(&["snapshots"]);
    on_other(&["verify"]);
    // An old copy of this machine's catalog comes back (restored from a backup).
    let catalog = env.catalog_file();
    let old = env.path("catalog-copy");
    fs::copy(&catalog, &old).unwrap();
    env.verified();
    on_other(&["verify"]);
    for ext in ["sqlite-wal", "sqlite-shm"] {
        let _ = fs::remove_file(catalog.with_extension(ext));
    }
    fs::copy(&old, &catalog).unwrap();
    env.verified();
    audit_holds(&env, &env.cache);
    audit_holds(&env, &other);
    // init, two snapshots, five verifies: every one in the chain, in order.
    let events = env.json(&["audit"]);
    let seqs: Vec<u64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<u64>>(), "{events}");
}

/// Defect 3, at once: commands from four catalog folders append at the same
/// moment; their turns make one chain.
#[test]
fn catalogs_appending_at_once_keep_one_audit_chain() {
    let env = Env::new();
    let src = uploads(&env, 9);
    env.snapshot(&[&src]);
    let caches: Vec<PathBuf> = (0..4).map(|i| env.path(&format!("cache-{i}"))).collect();
    for round in 0..3 {
        let children: Vec<Child> = caches
            .iter()
            .map(|c| {
                env.cmd()
                    .env("HCBACKUP_CACHE_DIR", c)
                    .args(["verify"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", out(&o));
        }
    }
    for c in caches.iter().chain([&env.cache]) {
        audit_holds(&env, c);
    }
    // init, the snapshot, twelve verifies.
    assert_eq!(
        fs::read_dir(env.repo.join("audit")).unwrap().count(),
        2 + 12
    );
}

/// Found by the fault campaign: a run killed after writing its audit event to
/// the repository but before marking it stored in its catalog; other machines
/// then appended after that event, and the next append here chained the event
/// again after its own head: two events with one number, the chain forked.
#[test]
fn an_event_stored_by_a_killed_run_is_not_chained_twice() {
    let env = Env::new();
    let other = env.path("other-machine");
    let src = uploads(&env, 1);
    env.snapshot(&[&src]);
    env.killed_at("audit-after-put", &["snapshot", src.to_str().unwrap()]);
    for _ in 0..2 {
        let o = env
            .cmd()
            .env("HCBACKUP_CACHE_DIR", &other)
            .args(["snapshot", src.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out(&o));
    }
    env.snapshot(&[&src]);
    for cache in [&env.cache, &other] {
        let o = env
            .cmd()
            .env("HCBACKUP_CACHE_DIR", cache)
            .args(["--json", "audit", "verify"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["events"], 6, "{v}");
    }
}

/// Issue #20: a restore that is running when its snapshot is forgotten and
/// pruned completes byte for byte: prune condemns the snapshot's packs but
/// deletes them only once the restore, which started before the mark, has
/// ended.
#[test]
fn a_restore_beside_a_forget_prune_of_its_snapshot_completes() {
    let env = Env::new();
    let src = uploads(&env, 4);
    let mut ids = Vec::new();
    for i in 0..2 {
        if i == 1 {
            fs::remove_dir_all(src.join("exams")).unwrap();
        }
        write(&src.join(format!("day-{i}.txt")), &text(5 + i, 4000));
        ids.push(env.snapshot(&[&src])["id"].as_str().unwrap().to_string());
    }
    let target = env.path("r");
    let restore = start_until_paused(
        &env,
        &env.cache,
        "restore-chunk:8:2",
        &[
            "restore",
            &ids[0][..8],
            "--target",
            target.to_str().unwrap(),
        ],
    );
    let pruned = env.json(&["forget", &ids[0][..8], "--prune"]);
    let p = &pruned[0]["prune"];
    assert!(p["packs_condemned"].as_u64().unwrap() >= 1, "{pruned}");
    assert_eq!(p["packs_deleted"], 0, "{pruned}");
    assert!(p["packs_waiting"].as_u64().unwrap() >= 1, "{pruned}");
    finished_ok(restore);
    assert!(target.join("uploads/exams/4-0.dcm").exists());
    // The restore wrote the first snapshot's files as they were.
    assert_eq!(
        fs::read(target.join("uploads/exams/4-2.dcm")).unwrap(),
        noise(42, 300_000)
    );
    // Now that it has ended, the next prune deletes what it waited for.
    let again = env.json(&["prune"]);
    assert!(
        again[0]["prune"]["packs_deleted"].as_u64().unwrap() >= 1,
        "{again}"
    );
    assert_eq!(again[0]["prune"]["packs_waiting"], 0, "{again}");
    assert_eq!(env.snapshot_ids(), [ids[1].clone()]);
    env.verified();
}

/// A restore that waited for a retag of its snapshot says the snapshot was
/// forgotten or retagged meanwhile (not "missing tree … restore from another
/// copy", which reads as damage).
#[test]
fn a_restore_that_waited_for_a_retag_of_its_snapshot_says_so() {
    let env = Env::new();
    let src = uploads(&env, 4);
    let id = env.snapshot(&[&src])["id"].as_str().unwrap().to_string();
    let tag = start_until_paused(
        &env,
        &env.cache,
        "tag-after-write:3",
        &["tag", &id[..8], "--add", "exams"],
    );
    let o = env
        .cmd()
        .env("HCBACKUP_LOCK_WAIT", "60")
        .args(["restore", &id[..8], "--target", "r"])
        .output()
        .unwrap();
    finished_ok(tag);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("was forgotten (or retagged) while"),
        "{}",
        out(&o)
    );
    assert!(!out(&o).contains("missing"), "{}", out(&o));
    env.verified();
}
