//! `status`: exit 0 when fresh, 2 when a source's last good snapshot is older than
//! the limit (26 h) or no restore test passed within 35 days; judged at injected
//! times with `--now`.

mod common;

use common::pg::Server;
use common::*;
use serde_json::Value;

fn status(env: &Env, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["--json", "status"];
    a.extend_from_slice(args);
    let o = env.run(&a);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", out(&o)));
    (o.status.code().unwrap(), v)
}

#[test]
fn a_snapshot_older_than_the_limit_makes_status_exit_2() {
    let env = Env::new();
    let (code, v) = status(&env, &[]);
    assert_eq!(code, 2);
    assert_eq!(v["problems"][0], "no snapshot yet");

    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(1, 200_000));
    env.ok(&[
        "snapshot",
        "--time",
        "2026-01-10T03:00:00Z",
        src.to_str().unwrap(),
    ]);
    env.ok(&[
        "snapshot",
        "--time",
        "2026-01-11T03:00:00Z",
        src.to_str().unwrap(),
    ]);

    // 23 hours after the last one: fresh.
    let (code, v) = status(&env, &["--now", "2026-01-12T02:00:00Z"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["fresh"], true);
    assert_eq!(v["snapshots"], 2);
    let s = &v["sources"][0];
    assert_eq!(s["kind"], "files");
    assert_eq!(s["last_good"]["age_hours"], 23.0);
    assert_eq!(s["bytes"], 200_000);
    // Two snapshots of the same bytes stored once: about 2x.
    let ratio = v["dedup_ratio"].as_f64().unwrap();
    assert!(ratio > 1.9 && ratio < 2.0, "{ratio}");
    // Files only: no restore test is asked for.
    assert!(v["last_restore_test"].is_null());

    // 27 hours: stale, exit 2, saying which source and how old.
    let (code, v) = status(&env, &["--now", "2026-01-12T06:00:00Z"]);
    assert_eq!(code, 2, "{v}");
    assert_eq!(v["fresh"], false);
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .contains("last good snapshot is 27.0 hours old (limit 26)"),
        "{v}"
    );
    // A wider limit, by flag or environment.
    assert_eq!(
        status(&env, &["--now", "2026-01-12T06:00:00Z", "--max-age", "30"]).0,
        0
    );
    let o = env
        .cmd()
        .env("HCBACKUP_STATUS_MAX_AGE_HOURS", "30")
        .args(["status", "--now", "2026-01-12T06:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("FRESH"));
    // A snapshot "made" after --now is not seen: as of 10 Jan 12:00 only the first.
    let (_, v) = status(&env, &["--now", "2026-01-10T12:00:00Z"]);
    assert_eq!(v["snapshots"], 1);
    let o = env.run(&["status", "--now", "junk"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--now junk"));
    env.verified();
}

#[test]
fn destinations_show_their_lag() {
    let env = Env::new();
    env.usb_destination();
    let src = env.path("uploads");
    write(&src.join("a.pdf"), &text(1, 10_000));
    env.ok(&["snapshot", "--no-mirror", src.to_str().unwrap()]);
    let (_, v) = status(&env, &[]);
    let d = &v["destinations"][0];
    assert_eq!(d["name"], "usb");
    assert!(d["snapshots_behind"].is_null(), "never mirrored: {d}");
    assert!(d["last_mirror"].is_null());
    env.ok(&["mirror"]);
    let (code, v) = status(&env, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["destinations"][0]["snapshots_behind"], 0);
    assert!(v["destinations"][0]["last_mirror"].is_string());
    // (Windows are told to the second.)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["snapshot", "--no-mirror", src.to_str().unwrap()]);
    let (_, v) = status(&env, &[]);
    assert_eq!(v["destinations"][0]["snapshots_behind"], 1);
    assert!(v["destinations"][0]["lag_hours"].as_f64().unwrap() < 1.0);

    // Each copy's recovery window: the copy keeps a snapshot the primary
    // forgot; its time comes from the audit log.
    env.ok(&["mirror"]);
    let first = env.snapshot_ids()[0].clone();
    env.ok(&["forget", &first]);
    let (_, v) = status(&env, &[]);
    assert_eq!(v["window"]["snapshots"], 1, "{v}");
    let w = &v["destinations"][0]["window"];
    assert_eq!(w["snapshots"], 2, "{v}");
    let (oldest, newest) = (w["oldest"].as_str().unwrap(), w["newest"].as_str().unwrap());
    assert!(oldest < newest, "{w}");
    assert_eq!(newest, v["window"]["newest"], "{v}");
    let human = env.ok(&["status"]);
    assert!(human.contains("holds 2 snapshots, "), "{human}");
    env.verified();
}

#[test]
fn a_database_needs_a_restore_test_within_35_days() {
    let admin = Server::admin();
    let db = admin.create("status");
    db.psql("CREATE TABLE patients(id int primary key); INSERT INTO patients SELECT generate_series(1, 20);");
    let env = Env::new();
    let o = env
        .pg_cmd(&admin, &db.name)
        .args(["snapshot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let (code, v) = status(&env, &[]);
    assert_eq!(code, 2, "{v}");
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .contains("no restore test yet"),
        "{v}"
    );
    let name = format!("{}@{}:{}", db.name, admin.host, admin.port);
    assert_eq!(v["sources"][0]["name"], name.as_str());
    assert_eq!(v["sources"][0]["kind"], "database");

    let o = env
        .pg_cmd(&admin, &db.name)
        .args(["verify", "--restore-test"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let (code, v) = status(&env, &[]);
    assert_eq!(code, 0, "{v}");
    let t = &v["last_restore_test"];
    assert_eq!(t["passed"], true);
    assert_eq!(t["within_rto"], true);
    assert_eq!(t["rto_secs"], 900.0);
    assert_eq!(v["last_verify"]["result"], "ok");

    // 36 days on (snapshot age ignored): the restore test is overdue.
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(36);
    let later = later
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (code, v) = status(&env, &["--now", &later, "--max-age", "100000"]);
    assert_eq!(code, 2, "{v}");
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .contains("the last restore test is 36 days old (limit 35)"),
        "{v}"
    );
    let (code, _) = status(
        &env,
        &[
            "--now",
            &later,
            "--max-age",
            "100000",
            "--max-restore-test-age",
            "40",
        ],
    );
    assert_eq!(code, 0);
}

#[test]
fn only_the_sources_the_settings_name_are_judged() {
    let env = Env::new();
    let old = env.path("old-uploads");
    let new = env.path("uploads");
    write(&old.join("a.pdf"), b"old");
    write(&new.join("b.pdf"), b"new");
    let with_uploads = |dir: &std::path::Path, args: &[&str]| {
        env.cmd()
            .env("UPLOADS_DIR", dir)
            .args(args)
            .output()
            .unwrap()
    };
    // The clinic moved its uploads folder on the 12th.
    let o = with_uploads(&old, &["snapshot", "--time", "2026-01-10T03:00:00Z"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = with_uploads(&new, &["snapshot", "--time", "2026-01-12T03:00:00Z"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = with_uploads(&new, &["--json", "status", "--now", "2026-01-12T10:00:00Z"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "the old folder is not judged: {v}"
    );
    let judged: Vec<bool> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["judged"].as_bool().unwrap())
        .collect();
    assert_eq!(judged.iter().filter(|j| **j).count(), 1, "{v}");
    // Settings naming a folder no snapshot has: stale, and saying so.
    let elsewhere = env.path("never-backed-up");
    let o = with_uploads(
        &elsewhere,
        &["--json", "status", "--now", "2026-01-12T10:00:00Z"],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(2), "{v}");
    assert!(
        v["problems"][0]
            .as_str()
            .unwrap()
            .contains("no snapshot yet (the settings back it up)"),
        "{v}"
    );
    env.verified();
}

#[test]
fn the_last_verify_is_found_behind_hundreds_of_newer_events() {
    // status reads the audit log back a page (256 events) at a time: a verify
    // older than a page must still be found.
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.pdf"), b"a");
    env.snapshot(&[&src]);
    env.verified();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..70 {
                    env.ok(&["catalog", "rebuild"]);
                }
            });
        }
    });
    assert_eq!(env.json(&["audit"]).as_array().unwrap().len(), 3 + 280);
    let (code, v) = status(&env, &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["last_verify"]["result"], "ok", "{v}");
}
