//! Choosing snapshots (issue #17): `forget ID…` removes exactly the snapshots
//! named, `--host/--tag/--path` select which snapshots `forget` and `snapshots`
//! look at (as restic), `snapshots --latest N`; and one damaged manifest is
//! named when asked for, removable by name, and never stops the others.

mod common;

use std::path::Path;

use common::*;

fn snap(env: &Env, src: &Path, tag: &str, day: u32) -> String {
    let time = format!("2026-11-{day:02}T03:00:00Z");
    let s = env.json(&[
        "snapshot",
        src.to_str().unwrap(),
        "--tag",
        tag,
        "--time",
        &time,
    ]);
    s["id"].as_str().unwrap().to_string()
}

fn listed(env: &Env, args: &[&str]) -> Vec<String> {
    let mut a = vec!["snapshots"];
    a.extend_from_slice(args);
    env.json(&a)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forget_removes_the_snapshots_named_and_filters_select_what_is_judged() {
    let env = Env::new();
    let (a, b) = (env.path("uploads"), env.path("scans"));
    write(&a.join("a.pdf"), &noise(1, 300_000));
    write(&b.join("b.dcm"), &noise(2, 300_000));
    let s1 = snap(&env, &a, "nightly", 1);
    let s2 = snap(&env, &a, "manual", 2);
    let s3 = snap(&env, &b, "nightly", 3);
    let s4 = snap(&env, &a, "nightly", 4);

    assert_eq!(
        listed(&env, &["--tag", "manual"]),
        std::slice::from_ref(&s2)
    );
    assert_eq!(
        listed(&env, &["--path", a.to_str().unwrap()]),
        [s1.clone(), s2.clone(), s4.clone()]
    );
    let b_nightly = listed(&env, &["--path", b.to_str().unwrap(), "--tag", "nightly"]);
    assert_eq!(b_nightly, std::slice::from_ref(&s3));
    assert_eq!(listed(&env, &["--latest", "2"]), [s3.clone(), s4.clone()]);
    assert!(listed(&env, &["--host", "another-host"]).is_empty());

    // By a prefix: exactly that one goes.
    let f = env.json(&["forget", &s2[..10]]);
    assert_eq!(f[0]["removed"], 1, "{f}");
    assert_eq!(env.snapshot_ids(), [s1.clone(), s3.clone(), s4.clone()]);
    // A name and a policy together, or a name the filter leaves out: refused.
    let o = env.run(&["forget", &s1, "--keep-last", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let o = env.run(&["forget", &s3, "--path", a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert_eq!(env.snapshot_ids().len(), 3, "nothing removed");

    // A policy with a filter judges only what it selects: b's snapshot stays.
    env.json(&["forget", "--path", a.to_str().unwrap(), "--keep-last", "1"]);
    assert_eq!(env.snapshot_ids(), [s3.clone(), s4.clone()]);

    // A legal hold keeps a snapshot even when it is named.
    env.ok(&["hold", "add", &s4, "--reason", "processo 123"]);
    let f = env.json(&["forget", &s4]);
    assert_eq!(f[0]["removed"], 0, "{f}");
    assert!(f.to_string().contains("legal hold: processo 123"), "{f}");
    let f = env.json(&["forget", &s3, "--prune"]);
    assert_eq!(f[0]["removed"], 1, "{f}");
    assert_eq!(env.snapshot_ids(), std::slice::from_ref(&s4));
    let v = env.json(&["verify", "--read-data"]);
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn a_damaged_manifest_is_named_when_asked_for_and_removable_by_name() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.pdf"), b"%PDF one");
    let s1 = snap(&env, &src, "nightly", 1);
    write(&src.join("a.pdf"), b"%PDF two");
    let s2 = snap(&env, &src, "nightly", 2);
    let manifest = fs_file(&env, &s1);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&manifest)
        .unwrap()
        .set_len(100)
        .unwrap();

    // The others still list and restore, with a warning naming the bad one.
    let o = env.cmd().args(["--json", "snapshots"]).output().unwrap();
    assert!(o.status.success() && out(&o).contains(&s1), "{}", out(&o));
    let t = env.restore(&s2, "r");
    assert_eq!(std::fs::read(t.join("uploads/a.pdf")).unwrap(), b"%PDF two");
    // Asked for by name: why, and what to do (not "no snapshot matches").
    let o = env.run(&["ls", &s1[..8]]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("does not read back") && out(&o).contains("repair"),
        "{}",
        out(&o)
    );
    let o = env.run(&["ls", ""]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("no snapshot given"), "{}", out(&o));

    // A prefix that names a good snapshot and a planted, unreadable manifest
    // removes neither.
    let planted = format!("{}{}", &s2[..8], "0".repeat(56));
    std::fs::write(env.repo.join("snapshots").join(&planted), b"junk").unwrap();
    let o = env.run(&["forget", &s2[..8]]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("give more of the id"), "{}", out(&o));
    assert!(env.snapshot_ids().contains(&s2));
    env.json(&["forget", &planted]);

    // With no copy to repair it from, it can be removed by name.
    let f = env.json(&["forget", &s1[..8]]);
    assert_eq!(f[0]["removed"], 1, "{f}");
    assert!(!manifest.exists());
    let o = env.cmd().args(["snapshots"]).output().unwrap();
    assert!(!out(&o).contains("does not read back"), "{}", out(&o));
    let v = env.json(&["verify"]);
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
}

fn fs_file(env: &Env, id: &str) -> std::path::PathBuf {
    env.repo.join("snapshots").join(id)
}

/// Found by an attack on the release: a manifest forgotten (and pruned) here
/// and put back by someone with access to the storage became the newest
/// snapshot a `--keep-last` forget kept in place of the good ones. A manifest
/// this machine forgot is now ignored when it comes back, named, and removable.
#[test]
fn a_forgotten_manifest_put_back_is_ignored() {
    let env = Env::new();
    let src = env.path("uploads");
    let mut ids = Vec::new();
    for day in 1..=3 {
        write(&src.join("a.pdf"), &noise(day as u64, 200_000));
        ids.push(snap(&env, &src, "x", day));
    }
    let newest = env.repo.join("snapshots").join(&ids[2]);
    let saved = std::fs::read(&newest).unwrap();
    env.json(&["forget", &ids[2], "--prune"]);
    std::fs::write(&newest, &saved).unwrap();

    let o = env.cmd().args(["--json", "snapshots"]).output().unwrap();
    assert!(out(&o).contains("it is back"), "{}", out(&o));
    assert_eq!(env.snapshot_ids(), ids[..2].to_vec());
    env.json(&["forget", "--tag", "x", "--keep-last", "1"]);
    assert_eq!(
        env.snapshot_ids(),
        ids[1..2].to_vec(),
        "the good newest stays"
    );
    let t = env.restore("latest", "r");
    assert_eq!(
        std::fs::read(t.join("uploads/a.pdf")).unwrap(),
        noise(2, 200_000)
    );
    env.json(&["forget", &ids[2][..8]]);
    assert!(!newest.exists());
    env.verified();
}

/// Found by the second attack round: a lifted legal hold whose object was put
/// back kept `forget ID` from removing the snapshot. The audit log's `hold
/// remove` wins over a hold object that comes back.
#[test]
fn a_lifted_hold_put_back_does_not_hold() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.pdf"), b"%PDF");
    let id = snap(&env, &src, "x", 1);
    env.ok(&["hold", "add", &id, "--reason", "processo 1"]);
    let object = env.repo.join("holds").join(&id);
    let saved = std::fs::read(&object).unwrap();
    env.ok(&["hold", "remove", &id, "--reason", "encerrado"]);
    std::fs::write(&object, &saved).unwrap();
    let o = env.cmd().args(["--json", "forget", &id]).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("was lifted"), "{}", out(&o));
    assert!(env.snapshot_ids().is_empty());
    env.verified();
}
