//! The audit log: every operation appends an event chained by keyed hash, in the
//! catalog and in the repository; `audit verify` finds any event changed, removed or
//! moved, in either place, and names the first broken link.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

fn events(env: &Env) -> Vec<Value> {
    env.json(&["audit"]).as_array().unwrap().clone()
}

fn verify(env: &Env) -> (i32, Value) {
    let o = env.run(&["--json", "audit", "verify"]);
    (
        o.status.code().unwrap(),
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", out(&o))),
    )
}

/// A repository whose log holds a few operations of each kind, one of them failed.
fn busy_env() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(1, 300_000));
    write(&src.join("records/b.txt"), &text(2, 50_000));
    let snap = env.snapshot(&[&src]);
    let id = snap["id"].as_str().unwrap();
    let target = env.path("restored");
    env.ok(&[
        "restore",
        id,
        "--target",
        target.to_str().unwrap(),
        "--reason",
        "ticket 4711: exam lost",
    ]);
    env.ok(&["hold", "add", &id[..8], "--reason", "court order 12/2026"]);
    // A restore that fails: the event records the failure.
    let o = env.run(&["restore", "ffffffff", "--target", "/nonexistent/x"]);
    assert!(!o.status.success());
    env.verified();
    (env, src)
}

#[test]
fn every_operation_is_recorded_and_chained() {
    let (env, src) = busy_env();
    let ev = events(&env);
    let ops: Vec<&str> = ev
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["init", "snapshot", "restore", "hold add", "restore", "verify"]
    );
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
        assert!(!e["user"].as_str().unwrap().is_empty());
        assert!(!e["host"].as_str().unwrap().is_empty());
    }
    let snap_id = env.snapshot_ids()[0].clone();
    assert_eq!(ev[1]["snapshot"], snap_id.as_str());
    assert_eq!(ev[1]["result"], "ok");
    assert!(ev[1]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(ev[2]["reason"], "ticket 4711: exam lost");
    assert_eq!(ev[2]["snapshot"], snap_id.as_str());
    assert_eq!(ev[2]["bytes"], 350_000);
    assert_eq!(ev[3]["reason"], "court order 12/2026");
    assert_eq!(ev[4]["result"], "failed");
    assert_ne!(ev[4]["exit_code"], 0);
    assert!(ev[4]["error"].as_str().unwrap().contains("ffffffff"));
    // The first event chains to the repository; each next one to the one before.
    assert_eq!(ev[0]["prev"].as_str().unwrap().len(), 64);
    let (code, v) = verify(&env);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["events"], 6);
    assert_eq!(v["stored"], 6);
    // The repository holds each event sealed: no plaintext of it on disk.
    let objects: Vec<_> = fs::read_dir(env.repo.join("audit")).unwrap().collect();
    assert_eq!(objects.len(), 6);
    assert!(find_in_tree(&env.repo, b"court order").is_none());
    assert!(find_in_tree(&env.repo, b"ticket 4711").is_none());

    // --since filters by time; a bad time is a usage error.
    assert_eq!(
        env.json(&["audit", "--since", "2000-01-01"])
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert!(env
        .json(&["audit", "--since", "2999-01-01"])
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        env.run(&["audit", "--since", "yesterday"]).status.code(),
        Some(2)
    );

    // Two snapshots at once each chain to the other's event: no fork.
    let a = env
        .cmd()
        .args(["snapshot", src.to_str().unwrap()])
        .spawn()
        .unwrap();
    let b = env
        .cmd()
        .args(["snapshot", src.to_str().unwrap()])
        .spawn()
        .unwrap();
    assert!(a.wait_with_output().unwrap().status.success());
    assert!(b.wait_with_output().unwrap().status.success());
    let (code, v) = verify(&env);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["events"], 8);
}

/// Run `tamper` on a copy of the catalog, expect `audit verify` to fail naming
/// `seq` as the catalog's first broken link, then put the catalog back.
fn expect_catalog_break(env: &Env, seq: u64, tamper: &str) {
    let cat = env.catalog_file();
    let saved = fs::read(&cat).unwrap();
    let conn = rusqlite::Connection::open(&cat).unwrap();
    conn.execute_batch(tamper).unwrap();
    drop(conn);
    let (code, v) = verify(env);
    assert_eq!(code, 1, "{tamper}: {v}");
    assert_eq!(v["ok"], false);
    assert_eq!(v["catalog_broken"]["seq"], seq, "{tamper}: {v}");
    assert!(v["repository_broken"].is_null(), "{v}");
    fs::write(&cat, saved).unwrap();
    let (code, v) = verify(env);
    assert_eq!(code, 0, "restored: {v}");
}

#[test]
fn changing_removing_or_reordering_any_event_is_detected() {
    let (env, _) = busy_env();
    assert_eq!(verify(&env).0, 0);
    // In the catalog: a failed restore turned into a success.
    expect_catalog_break(
        &env,
        5,
        "UPDATE audit SET event = replace(event, '\"result\":\"failed\"', '\"result\":\"ok\"') WHERE seq = 5;",
    );
    // The reason of a restore rewritten.
    expect_catalog_break(
        &env,
        3,
        "UPDATE audit SET event = replace(event, 'ticket 4711', 'ticket 4712') WHERE seq = 3;",
    );
    // An event removed from the middle, and the last one.
    expect_catalog_break(&env, 4, "DELETE FROM audit WHERE seq = 4;");
    // Two events swapped.
    expect_catalog_break(
        &env,
        2,
        "UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 100;",
    );
    // The first event's link to the repository.
    expect_catalog_break(
        &env,
        1,
        "UPDATE audit SET event = replace(event, '\"seq\":1,', '\"seq\":1, ') WHERE seq = 1;",
    );
    // The last event removed from the catalog: the repository holds it, and the
    // catalog (a cache of the repository's chain) takes it back from there.
    let cat = env.catalog_file();
    let conn = rusqlite::Connection::open(&cat).unwrap();
    conn.execute_batch("DELETE FROM audit WHERE seq = 6;")
        .unwrap();
    drop(conn);
    let (code, v) = verify(&env);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["events"], 6, "{v}");

    // In the repository: the object of event #3 removed, or a byte of it changed.
    let conn = rusqlite::Connection::open(env.catalog_file()).unwrap();
    let id: String = conn
        .query_row("SELECT lower(hex(id)) FROM audit WHERE seq = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    drop(conn);
    let victim = &env.repo.join("audit").join(id);
    let bytes = fs::read(victim).unwrap();
    fs::remove_file(victim).unwrap();
    let (code, v) = verify(&env);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["repository_broken"]["seq"], 3, "{v}");
    assert!(v["catalog_broken"].is_null());
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n / 2] ^= 1;
    fs::write(victim, &flipped).unwrap();
    let (code, v) = verify(&env);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("does not open")),
        "{v}"
    );
    fs::write(victim, &bytes).unwrap();
    assert_eq!(verify(&env).0, 0);
}

#[test]
fn the_log_survives_the_catalog_and_reaches_every_copy() {
    let env = Env::new();
    let usb = env.usb_destination();
    let src = env.path("uploads");
    write(&src.join("a.pdf"), &text(3, 20_000));
    env.snapshot(&[&src]);
    env.ok(&["mirror"]);
    let before = events(&env);
    assert_eq!(before.len(), 3); // init, snapshot (which mirrored), mirror

    // The catalog is a cache: deleted, the log is read back from the repository
    // and the next event continues its chain.
    fs::remove_dir_all(&env.cache).unwrap();
    assert_eq!(events(&env), before);
    env.snapshot(&[&src]);
    let after = events(&env);
    assert_eq!(after.len(), 4);
    assert_eq!(after[3]["seq"], 4);
    assert_eq!(verify(&env).0, 0);

    // The USB copy holds the events mirrored so far: a machine that has only it
    // (its own, empty cache) reads and checks them. A command's own event is
    // written after it ran, so the copy has all but the last mirror's.
    env.ok(&["mirror"]);
    let o = env
        .cmd_repo(usb.as_os_str())
        .env("HCBACKUP_CACHE_DIR", env.path("new-machine-cache"))
        .args(["--json", "audit", "verify"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0), "{v}");
    assert_eq!(v["events"], 4);
    assert_eq!(events(&env).len(), 5);

    // A damaged event object and a lost catalog: commands still record (the good
    // events are read back, the new one chains on), and `audit verify` says what
    // is wrong.
    let first = fs::read_dir(env.repo.join("audit"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&first).unwrap();
    bytes[20] ^= 0xff;
    fs::write(&first, &bytes).unwrap();
    fs::remove_dir_all(&env.cache).unwrap();
    let o = env.run(&["snapshot", "--no-mirror", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not open"));
    let after = events(&env);
    assert_eq!(after.len(), 5, "four read back, one new");
    assert_eq!(after.last().unwrap()["operation"], "snapshot");
    let (code, v) = verify(&env);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["problems"][0].as_str().unwrap().contains("does not open"),
        "{v}"
    );
}
