//! Many writers on one repository and a prune that never stops them (issue
//! #20): prune condemns first and deletes after the grace period, never while
//! a writer that started before the mark runs, and recovers what a snapshot
//! written meanwhile uses.

mod common;

use std::fs;

use common::*;

/// `args` with the variable `var` set to `value`; it must succeed.
fn ok_with(
    env: &Env,
    var: &str,
    value: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
) -> std::process::Output {
    let o = env.cmd().env(var, value).args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", out(&o));
    o
}

/// `prune --json` with a grace period of `grace` seconds; its report.
fn prune(env: &Env, grace: &str) -> serde_json::Value {
    let o = ok_with(
        env,
        "HCBACKUP_PRUNE_GRACE_SECS",
        grace,
        &["--json", "prune"],
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    doc[0]["prune"].clone()
}

/// The newest snapshot restores to what `src` holds, and the data reads back.
fn latest_restores_and_verifies(env: &Env, src: &std::path::Path) {
    let r = env.restore("latest", "r");
    assert_same_tree(src, &r.join(src.file_name().unwrap()));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

fn count(r: &serde_json::Value, field: &str) -> u64 {
    r[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {r}"))
}

/// A snapshot of an exam, then one without it that forgets the first: the
/// exam's packs are used by nothing. Returns the folder.
fn exam_no_longer_used(env: &Env) -> std::path::PathBuf {
    let src = env.path("uploads");
    write(&src.join("exam.dcm"), &noise(1, 2 << 20));
    env.snapshot(&[&src]);
    fs::remove_file(src.join("exam.dcm")).unwrap();
    write(&src.join("note.txt"), &text(2, 3000));
    env.snapshot(&[&src]);
    env.ok(&["forget", "--keep-last", "1"]);
    src
}

#[test]
fn prune_condemns_first_and_deletes_after_the_grace_period() {
    let env = Env::new();
    let src = exam_no_longer_used(&env);
    let packs = pack_files(&env.repo).len();
    // By default a day passes between the mark and the deletion.
    let o = env
        .cmd()
        .env_remove("HCBACKUP_PRUNE_GRACE_SECS")
        .args(["--json", "prune", "--dry-run"])
        .output()
        .unwrap();
    let dry: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(dry[0]["prune"]["grace_secs"], 86_400, "{dry}");
    let first = prune(&env, "3");
    assert!(count(&first, "packs_condemned") >= 1, "{first}");
    assert_eq!(count(&first, "packs_deleted"), 0, "{first}");
    assert!(
        first["marked"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no snapshot uses"),
        "{first}"
    );
    assert_eq!(
        pack_files(&env.repo).len(),
        packs,
        "a pack went at the mark"
    );
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
    // The exam comes back: it is stored again, not taken from the condemned pack.
    write(&src.join("exam.dcm"), &noise(1, 2 << 20));
    let again = env.snapshot(&[&src]);
    assert!(
        count(&again, "bytes_added") >= 2 << 20,
        "deduplicated against a condemned pack: {again}"
    );
    // Within the grace period nothing goes.
    let second = prune(&env, "3");
    assert_eq!(count(&second, "packs_deleted"), 0, "{second}");
    assert!(count(&second, "packs_waiting") >= 1, "{second}");
    std::thread::sleep(std::time::Duration::from_secs(4));
    let third = prune(&env, "3");
    assert!(count(&third, "packs_deleted") >= 1, "{third}");
    assert_eq!(count(&third, "packs_waiting"), 0, "{third}");
    assert!(count(&third, "bytes_deleted") >= 2 << 20, "{third}");
    latest_restores_and_verifies(&env, &src);
}

/// A snapshot that deduplicated against a pack before a prune condemned it,
/// and runs longer than the grace period: the pack is not deleted while it
/// runs, and once its manifest uses the pack, the next prune recovers it.
#[test]
fn a_pack_a_running_snapshot_uses_is_kept_and_recovered() {
    let env = Env::new();
    exam_no_longer_used(&env);
    // The same exam under another folder: read, and deduplicated against the
    // pack nothing uses yet.
    let other = env.path("pacs");
    let writer = writer_paused(&env, "pacs", "0");
    let first = prune(&env, "2");
    assert!(count(&first, "packs_condemned") >= 1, "{first}");
    // Past the grace period, but the writer started before the mark.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let second = prune(&env, "2");
    assert_eq!(count(&second, "packs_deleted"), 0, "{second}");
    assert!(count(&second, "packs_waiting") >= 1, "{second}");
    let o = writer.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let saved: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        count(&saved, "bytes_added") < 1 << 20,
        "the writer did not deduplicate: {saved}"
    );
    let third = prune(&env, "2");
    assert!(count(&third, "packs_recovered") >= 1, "{third}");
    // What goes is the forgotten snapshot's trees, not the exam.
    assert!(count(&third, "bytes_deleted") < 1 << 20, "{third}");
    // Recovered means live: later snapshots deduplicate against it again, and
    // later prunes leave it.
    let fourth = prune(&env, "0");
    assert_eq!(count(&fourth, "packs_deleted"), 0, "{fourth}");
    let r = env.restore(&saved["id"].as_str().unwrap()[..8], "r");
    assert_same_tree(&other, &r.join("pacs"));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

/// Forget and prune hold the maintenance lock: two at once do not run, and
/// neither waits for a snapshot.
#[test]
fn one_maintainer_at_a_time() {
    let env = Env::new();
    exam_no_longer_used(&env);
    let mut cmd = env.cmd();
    cmd.args(["prune"]);
    let first = env.start_until_paused(cmd, "prune-locked:5");
    let o = env.run(&["prune"]);
    assert_eq!(o.status.code(), Some(11), "{}", out(&o));
    assert!(out(&o).contains("locked by prune"), "{}", out(&o));
    let o = env.run(&["forget", "--keep-last", "1"]);
    assert_eq!(o.status.code(), Some(11), "{}", out(&o));
    let more = env.path("more");
    write(&more.join("a.pdf"), &noise(5, 100_000));
    env.snapshot(&[&more]);
    let o = first.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    env.verified();
}

/// The index objects of the repository, by name.
fn index_names(env: &Env) -> std::collections::BTreeSet<String> {
    fs::read_dir(env.repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// A snapshot of `folder` holding the exam again, paused before its index
/// (it has deduplicated against the exam's pack), with its clock `offset`
/// seconds ahead.
fn writer_paused(env: &Env, folder: &str, offset: &str) -> std::process::Child {
    let dir = env.path(folder);
    write(&dir.join("exam.dcm"), &noise(1, 2 << 20));
    snapshot_paused(env, &dir, offset, "before-index:10")
}

/// A snapshot of `dir` paused at `pause`, its clock `offset` seconds ahead.
/// Index objects and locks carry whole seconds: it starts in a second after
/// anything written before (a pack indexed in the second a writer started
/// may be that writer's, and prune leaves it alone).
fn snapshot_paused(
    env: &Env,
    dir: &std::path::Path,
    offset: &str,
    pause: &str,
) -> std::process::Child {
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut cmd = env.cmd();
    cmd.env("HCBACKUP_TEST_CLOCK_OFFSET_SECS", offset).args([
        "--json",
        "snapshot",
        dir.to_str().unwrap(),
    ]);
    env.start_until_paused(cmd, pause)
}

/// Attack: someone with access to the storage puts back an old index object
/// whose mark a later prune lifted (the pack was recovered). An hour later a
/// snapshot deduplicates against that pack; a prune must not take the old
/// mark's time for its own and delete the pack under the snapshot.
#[test]
fn an_old_mark_put_back_does_not_delete_a_pack_in_use() {
    let env = Env::new();
    exam_no_longer_used(&env);
    // A prune condemns the exam's pack while a snapshot that uses it runs;
    // the next one recovers it. The attacker keeps the marking index object.
    let w1 = writer_paused(&env, "pacs", "0");
    let before = index_names(&env);
    let first = prune(&env, "2");
    // Another machine, which only takes snapshots, sees the mark.
    let b = env.path("cache-b");
    let on_b = |args: &[&str]| {
        ok_with(&env, "HCBACKUP_CACHE_DIR", &b, args);
    };
    on_b(&["snapshots"]);
    assert!(count(&first, "packs_condemned") >= 1, "{first}");
    let marking: Vec<String> = index_names(&env).difference(&before).cloned().collect();
    let kept: Vec<(String, Vec<u8>)> = marking
        .iter()
        .map(|n| (n.clone(), fs::read(env.repo.join("index").join(n)).unwrap()))
        .collect();
    let o = w1.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let w1_id = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = prune(&env, "2");
    assert!(count(&second, "packs_recovered") >= 1, "{second}");
    on_b(&["snapshots"]);
    // The pack is unused again, and live: nothing marks it.
    env.ok(&["forget", &w1_id[..8]]);
    // An hour later a snapshot deduplicates against it; the old mark comes back.
    let w2 = writer_paused(&env, "pacs-2", "3600");
    for (name, bytes) in &kept {
        fs::write(env.repo.join("index").join(name), bytes).unwrap();
    }
    // Neither this machine's prune nor the other machine's (which saw the old
    // mark once, and never pruned) takes the old mark's time.
    // An hour later, from `cache`: what the prune deletes (`args` adds
    // --dry-run or nothing).
    let later = |cache: &std::path::Path, args: &[&str]| -> u64 {
        let o = env
            .cmd()
            .env("HCBACKUP_CACHE_DIR", cache)
            .env("HCBACKUP_PRUNE_GRACE_SECS", "2")
            .env("HCBACKUP_TEST_CLOCK_OFFSET_SECS", "3600")
            .args(["--json", "prune"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        count(&r[0]["prune"], "bytes_deleted")
    };
    for cache in [&env.cache, &b] {
        assert!(
            later(cache, &["--dry-run"]) < 1 << 20,
            "{cache:?} would delete the exam's pack under a running snapshot"
        );
    }
    assert!(
        later(&b, &[]) < 1 << 20,
        "the exam's pack was deleted under a running snapshot"
    );
    let o = w2.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let saved: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = env.restore(&saved["id"].as_str().unwrap()[..8], "r");
    assert_same_tree(&env.path("pacs-2"), &r.join("pacs-2"));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

/// The storage requests of `args`, as `HCBACKUP_REQUESTS_FILE` reports them.
fn requests(env: &Env, args: &[&str]) -> serde_json::Value {
    let file = env.path("requests.json");
    ok_with(env, "HCBACKUP_REQUESTS_FILE", &file, args);
    serde_json::from_slice(&fs::read(&file).unwrap()).unwrap()
}

/// Issue #20: a nightly snapshot's requests do not grow with the repository's
/// age. Forty days of new exams (a new index object and new packs each night),
/// with retention and a prune after each stretch, cost the nightly snapshot of an
/// unchanged folder the same reads, writes and listed names as ten days did
/// (the audit log's listing aside: it grows with the events, item 5).
#[test]
fn a_nightly_snapshots_requests_do_not_grow_with_the_repository() {
    let env = Env::new();
    let uploads = env.path("uploads");
    write(&uploads.join("record.pdf"), &noise(3, 200_000));
    let exams = env.path("exams");
    let mut day = 0;
    let mut nights = |env: &Env, n: u64| {
        for _ in 0..n {
            day += 1;
            write(
                &exams.join(format!("day-{day}.dcm")),
                &noise(100 + day, 200_000),
            );
            env.snapshot(&[&exams]);
        }
        env.ok(&["forget", "--keep-last", "1", "--prune"]);
    };
    // One snapshot of each folder is kept: the measured one is the second.
    let nightly = |env: &Env, n: u64| {
        write(&uploads.join(format!("note-{n}.txt")), &text(n, 500));
        requests(env, &["snapshot", uploads.to_str().unwrap()])
    };
    env.snapshot(&[&uploads]);
    nights(&env, 10);
    let young = nightly(&env, 1);
    nights(&env, 30);
    let old = nightly(&env, 2);
    for field in ["gets", "ranged_gets", "puts", "stats", "deletes"] {
        assert_eq!(young[field], old[field], "{field}: {young} then {old}");
    }
    for dir in ["index", "snapshots", "locks", "keys"] {
        assert_eq!(
            young["lists"][dir], old["lists"][dir],
            "listing {dir}/: {young} then {old}"
        );
    }
    assert!(old["lists"]["packs"].is_null(), "packs listed: {old}");
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

/// A pack a running snapshot deduplicated against is deleted by hand (or by
/// anyone working without the lock) before its manifest: the run saves
/// nothing and says so, and the next run stores that data again.
#[test]
fn a_pack_deleted_under_a_snapshot_saves_nothing_and_the_rerun_stores_it() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exam.dcm"), &noise(1, 2 << 20));
    env.snapshot(&[&src]);
    let pack = pack_files(&env.repo).pop().unwrap();
    let other = env.path("pacs");
    write(&other.join("exam.dcm"), &noise(1, 2 << 20));
    let writer = snapshot_paused(&env, &other, "0", "before-index:3");
    fs::remove_file(&pack).unwrap();
    let o = writer.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("left the repository while it ran"),
        "{}",
        out(&o)
    );
    assert_eq!(env.snapshot_ids().len(), 1, "a snapshot was saved");
    let again = env.snapshot(&[&other]);
    assert!(count(&again, "bytes_added") >= 2 << 20, "{again}");
    let r = env.restore(&again["id"].as_str().unwrap()[..8], "r");
    assert_same_tree(&other, &r.join("pacs"));
}

/// A snapshot killed after writing its packs, before its index: a prune on the
/// same machine condemns and deletes those packs (nothing uses them); the
/// next snapshot of the same data must not take them for present.
#[test]
fn packs_of_a_killed_run_that_a_prune_deleted_are_not_reused() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.pdf"), &noise(1, 100_000));
    env.snapshot(&[&src]);
    write(&src.join("exam.dcm"), &noise(2, 2 << 20));
    env.killed_at("before-index", &["snapshot", src.to_str().unwrap()]);
    let pruned = prune(&env, "0");
    assert!(count(&pruned, "packs_deleted") >= 1, "{pruned}");
    let saved = env.snapshot(&[&src]);
    assert!(count(&saved, "bytes_added") >= 2 << 20, "{saved}");
    latest_restores_and_verifies(&env, &src);
}

/// Found by an attack: prunes from two machines in turn, each rewriting the
/// index object that holds a mark (it merges small ones), made the other count
/// the mark from when it saw the new object: nothing was ever freed. A mark
/// carried over keeps the time it was first seen.
#[test]
fn prunes_from_two_machines_in_turn_free_space() {
    let env = Env::new();
    let b = env.path("cache-b");
    let mut n = 0;
    let mut folders = |env: &Env, k: u64| {
        for _ in 0..k {
            n += 1;
            let dir = env.path(&format!("f-{n}"));
            write(&dir.join("a.bin"), &noise(500 + n, 100_000));
            env.snapshot(&[&dir]);
        }
    };
    folders(&env, 9);
    let first = env.snapshot_ids()[0].clone();
    env.ok(&["forget", &first[..8]]);
    let marked = prune(&env, "3");
    assert!(count(&marked, "packs_condemned") >= 1, "{marked}");
    let mut deleted = 0;
    for turn in 0..4 {
        // Eight new small index objects: each prune rewrites the one holding
        // the mark.
        folders(&env, 8);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let cache = if turn % 2 == 0 { &b } else { &env.cache };
        let o = env
            .cmd()
            .env("HCBACKUP_CACHE_DIR", cache)
            .env("HCBACKUP_PRUNE_GRACE_SECS", "3")
            .args(["--json", "prune"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out(&o));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(count(&r[0]["prune"], "indexes_deleted") >= 1, "{r}");
        deleted += count(&r[0]["prune"], "packs_deleted");
    }
    assert!(
        deleted >= 1,
        "prunes in turn never freed the forgotten snapshot's packs"
    );
    env.verified();
}

/// Found by an attack: a prune that merged small index objects took in the one
/// a running snapshot had just written (before its manifest) and left that
/// snapshot's packs out of the merged object: the snapshot was "saved" with
/// data no index listed.
#[test]
fn a_merge_keeps_the_packs_of_a_snapshot_still_running() {
    let env = Env::new();
    for n in 0..8 {
        let dir = env.path(&format!("f-{n}"));
        write(&dir.join("a.bin"), &noise(700 + n, 50_000));
        env.snapshot(&[&dir]);
    }
    let src = env.path("uploads");
    write(&src.join("exam.dcm"), &noise(9, 1 << 20));
    let writer = snapshot_paused(&env, &src, "0", "after-index:4");
    let merged = prune(&env, "0");
    assert!(count(&merged, "indexes_deleted") >= 9, "{merged}");
    let o = writer.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    // From a new catalog too: the index alone says where its data is.
    let fresh = env.path("fresh-cache");
    let v = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &fresh)
        .args(["verify", "--read-data"])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", out(&v));
    latest_restores_and_verifies(&env, &src);
    let again = prune(&env, "0");
    assert_eq!(count(&again, "packs_deleted"), 0, "{again}");
}
