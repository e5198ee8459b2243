//! Retention: the seed's policies over twenty years of daily snapshots (a table
//! computed by hand), and forget + prune on a real repository: what is kept restores
//! byte-exact, what is not frees its space, holds keep evidence, and a prune that is
//! killed at any step leaves every snapshot intact.

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::*;
use hcbackup::retention::{apply, default_policy, Candidate};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn day(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day())
}

/// Daily 03:00 UTC snapshots from 2006-12-01 to 2026-11-28: twenty years.
fn twenty_years() -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut t = datetime!(2006-12-01 03:00 UTC);
    while t <= datetime!(2026-11-28 03:00 UTC) {
        out.push(Candidate {
            time: Some(t),
            tags: vec![],
            hold: None,
        });
        t += Duration::days(1);
    }
    out
}

fn kept_days(c: &[Candidate], v: &[hcbackup::retention::Verdict]) -> BTreeSet<String> {
    c.iter()
        .zip(v)
        .filter(|(_, v)| v.keep)
        .map(|(c, _)| day(c.time.unwrap()))
        .collect()
}

fn days_between(from: OffsetDateTime, to: OffsetDateTime) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut t = from;
    while t <= to {
        out.insert(day(t));
        t += Duration::days(1);
    }
    out
}

#[test]
fn twenty_years_of_daily_snapshots_under_the_seeds_policies() {
    let mut snaps = twenty_years();
    assert_eq!(snaps.len(), 7303);
    let now = datetime!(2026-11-28 12:00 UTC);

    // S3 and Drive: --keep-within 90d --keep-monthly 12 --keep-yearly 20.
    let s3 = default_policy("s3", 30);
    let v = apply(&s3, &snaps, now);
    // By hand: 90 days back from the newest (2026-11-28 03:00) is 2026-08-30 03:00,
    // so 30 Aug – 28 Nov (91 snapshots); the last day of each of the 12 months
    // Dec 2025 – Nov 2026 (Aug – Nov already inside); the last day of each of the
    // 20 years 2007 – 2026 (2025 and 2026 already counted).
    let mut expected = days_between(
        datetime!(2026-08-30 03:00 UTC),
        datetime!(2026-11-28 03:00 UTC),
    );
    for d in [
        "2026-07-31",
        "2026-06-30",
        "2026-05-31",
        "2026-04-30",
        "2026-03-31",
        "2026-02-28",
        "2026-01-31",
        "2025-12-31",
    ] {
        expected.insert(d.into());
    }
    for y in 2007..=2024 {
        expected.insert(format!("{y}-12-31"));
    }
    assert_eq!(expected.len(), 91 + 8 + 18);
    assert_eq!(kept_days(&snaps, &v), expected);
    let reasons = |d: &str| {
        let i = snaps
            .iter()
            .position(|c| day(c.time.unwrap()) == d)
            .unwrap();
        v[i].reasons.clone()
    };
    assert_eq!(reasons("2016-12-31"), vec!["yearly snapshot"]);
    assert_eq!(
        reasons("2025-12-31"),
        vec!["monthly snapshot", "yearly snapshot"]
    );
    assert_eq!(
        reasons("2026-11-28"),
        vec![
            "monthly snapshot",
            "yearly snapshot",
            "within 90d of the newest"
        ]
    );
    // The 21st year back (2006) is gone, as is every other day of 2007–2024.
    assert!(!expected.contains("2006-12-31"));

    // Local: --keep-daily ${RETENTION_DAYS:-30}: 30 Oct – 28 Nov.
    let local = default_policy("local", 30);
    let v = apply(&local, &snaps, now);
    assert_eq!(
        kept_days(&snaps, &v),
        days_between(
            datetime!(2026-10-30 03:00 UTC),
            datetime!(2026-11-28 03:00 UTC)
        )
    );

    // A legal hold keeps a 2010 snapshot under both policies.
    let held = snaps
        .iter()
        .position(|c| day(c.time.unwrap()) == "2010-06-15")
        .unwrap();
    snaps[held].hold = Some("processo 0001234-56.2010".into());
    for p in [&s3, &local] {
        let v = apply(p, &snaps, now);
        assert!(v[held].keep);
        assert_eq!(
            v[held].reasons,
            vec!["legal hold: processo 0001234-56.2010"]
        );
    }

    // Backups that stopped in June 2026 keep their last 90 days: the window counts
    // from the newest snapshot, not from the clock.
    let stopped: Vec<Candidate> = twenty_years()
        .into_iter()
        .filter(|c| c.time.unwrap() <= datetime!(2026-06-01 03:00 UTC))
        .collect();
    let v = apply(&s3, &stopped, now);
    let kept = kept_days(&stopped, &v);
    assert!(kept.contains("2026-03-03") && kept.contains("2026-06-01"));
    assert!(!kept.contains("2026-03-01"), "3 March is the 90-day edge");
}

/// Snapshots on days 1..=n of November 2026: a 3 MiB file kept all along and a
/// 1 MiB file of the day (the previous day's removed). Returns their ids, oldest first.
fn daily_snapshots(env: &Env, n: u32) -> Vec<String> {
    let src = env.path("uploads");
    write(&src.join("base.dcm"), &noise(100, 3 << 20));
    let mut ids = Vec::new();
    for d in 1..=n {
        let _ = fs::remove_file(src.join(format!("day-{}.pdf", d - 1)));
        write(&src.join(format!("day-{d}.pdf")), &noise(d as u64, 1 << 20));
        let time = format!("2026-11-{d:02}T03:00:00Z");
        let doc = env.json(&["snapshot", src.to_str().unwrap(), "--time", &time]);
        ids.push(doc["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Restore snapshot `id` and check it holds the uploads folder of day `d`, byte-exact.
fn assert_day(env: &Env, id: &str, d: u32) {
    let got = env.restore(&id[..8], &format!("got-{id}"));
    let dir = got.join("uploads");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["base.dcm".to_string(), format!("day-{d}.pdf")]);
    assert!(fs::read(dir.join("base.dcm")).unwrap() == noise(100, 3 << 20));
    assert!(fs::read(dir.join(format!("day-{d}.pdf"))).unwrap() == noise(d as u64, 1 << 20));
}

#[test]
fn forget_and_prune_keep_the_policy_free_the_rest_and_honour_holds() {
    let env = Env::new();
    let ids = daily_snapshots(&env, 8);
    env.ok(&["hold", "add", &ids[1][..8], "--reason", "processo 42"]);
    let before = env.repo_size();

    // The plan, with reasons; a dry run changes nothing.
    let plan = env.json(&[
        "forget",
        "--keep-daily",
        "3",
        "--dry-run",
        "--now",
        "2026-11-30",
    ]);
    let snaps = &plan[0]["groups"][0]["snapshots"];
    let verdicts: Vec<(bool, String)> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["keep"].as_bool().unwrap(),
                s["reasons"][0].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(verdicts.len(), 8);
    assert_eq!(verdicts[0], (true, "daily snapshot".into()));
    assert_eq!(verdicts[2], (true, "daily snapshot".into()));
    assert_eq!(verdicts[3], (false, String::new()));
    assert_eq!(verdicts[6], (true, "legal hold: processo 42".into()));
    assert_eq!(env.snapshot_ids().len(), 8);
    assert_eq!(env.repo_size(), before);

    // A policy in the future's eyes: as of 3 Nov only days 1–3 count, 4–8 are "newer".
    let early = env.json(&[
        "forget",
        "--keep-last",
        "1",
        "--dry-run",
        "--now",
        "2026-11-03T12:00:00Z",
    ]);
    let kept = early[0]["kept"].as_u64().unwrap();
    assert_eq!(
        kept,
        1 + 5 + 1,
        "day 3, days 4–8 (after --now), the held day 2"
    );

    let done = env.json(&[
        "forget",
        "--keep-daily",
        "3",
        "--prune",
        "--now",
        "2026-11-30",
    ]);
    assert_eq!(done[0]["removed"], 4);
    let prune = &done[0]["prune"];
    assert!(prune["packs_deleted"].as_u64().unwrap() >= 3, "{prune}");
    // Day 1's pack also held base.dcm, still used: it was repacked, not lost.
    assert!(prune["packs_repacked"].as_u64().unwrap() >= 1, "{prune}");
    assert!(prune["removed"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !r["reason"].as_str().unwrap().is_empty()));
    let left = env.snapshot_ids();
    assert_eq!(
        left,
        vec![
            ids[1].clone(),
            ids[5].clone(),
            ids[6].clone(),
            ids[7].clone()
        ]
    );
    // Four 1 MiB files of the forgotten days are gone from disk.
    let after = env.repo_size();
    assert!(
        after + (4 << 20) - (64 << 10) <= before,
        "repository {before} -> {after} bytes"
    );
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
    for (d, id) in [(2, &ids[1]), (6, &ids[5]), (8, &ids[7])] {
        assert_day(&env, id, d);
    }

    // Lifting the hold lets the next forget take day 2; a second prune frees it.
    env.ok(&["hold", "remove", &ids[1][..8], "--reason", "case closed"]);
    assert_eq!(env.json(&["hold", "list"]).as_array().unwrap().len(), 0);
    env.ok(&[
        "forget",
        "--keep-daily",
        "3",
        "--prune",
        "--now",
        "2026-11-30",
    ]);
    assert_eq!(env.snapshot_ids().len(), 3);
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
}

#[test]
fn forget_refuses_an_empty_policy_and_a_bad_duration() {
    let env = Env::new();
    let o = env.run(&["forget", "--destination", "local"]);
    // No --keep-* and no [retention.local]: the seed's default (keep-daily 30) applies.
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env.run(&["forget", "--keep-within", "90x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("90d, 1y6m"));
    let o = env.run(&["forget", "--keep-daily", "3", "--destination", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));
    let o = env
        .cmd()
        .env("RETENTION_DAYS", "thirty")
        .args(["forget"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("RETENTION_DAYS"));
}

#[test]
fn policies_from_hcbackup_toml_and_retention_days() {
    let env = Env::new();
    daily_snapshots(&env, 5);
    // RETENTION_DAYS=2 sets the local default.
    let o = env
        .cmd()
        .env("RETENTION_DAYS", "2")
        .args(["--json", "forget", "--dry-run", "--now", "2026-11-30"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc[0]["policy"], "--keep-daily 2");
    assert_eq!(doc[0]["policy_source"], "default");
    assert_eq!(doc[0]["kept"], 2);
    // [retention.local] replaces it.
    fs::write(
        env.path("hcbackup.toml"),
        "[retention.local]\nkeep_last = 4\nkeep_within = \"1d\"\n",
    )
    .unwrap();
    let doc = env.json(&["forget", "--dry-run"]);
    assert_eq!(doc[0]["policy"], "--keep-last 4 --keep-within 1d");
    assert_eq!(doc[0]["policy_source"], "hcbackup.toml");
    assert_eq!(doc[0]["kept"], 4);
    fs::write(
        env.path("hcbackup.toml"),
        "[retention.usb]\nkeep_last = 4\n",
    )
    .unwrap();
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[retention.usb]"));
}

#[test]
fn a_prune_killed_at_any_step_leaves_every_snapshot_intact() {
    // Each in the first pass (it condemns) and in the second (it deletes).
    for point in [
        "prune-after-repack",
        "prune-after-index",
        "prune-after-index-delete",
        "prune-between-passes",
        "prune-after-index:2",
        "prune-after-index-delete:2",
        "prune-sweeping",
    ] {
        let env = Env::new();
        let ids = daily_snapshots(&env, 4);
        env.ok(&["forget", "--keep-last", "2"]);
        let o = env
            .cmd()
            .env("HCBACKUP_FAILPOINT", point)
            .args(["prune"])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{point}: prune was not killed");
        // The lock of the killed run is found stale (its process is gone).
        env.ok(&["prune"]);
        let v = env.json(&["verify", "--read-data"]);
        assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{point}: {v}");
        for (d, id) in [(3, &ids[2]), (4, &ids[3])] {
            assert_day(&env, id, d);
        }
        // Nothing left behind: a further prune has nothing to do.
        let again = env.json(&["prune"]);
        assert_eq!(again[0]["prune"]["packs_deleted"], 0, "{point}: {again}");
        assert_eq!(again[0]["prune"]["packs_repacked"], 0, "{point}: {again}");
    }
}

#[test]
fn snapshots_and_prunes_at_once_corrupt_nothing() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("base.dcm"), &noise(7, 2 << 20));
    env.snapshot(&[&src]);
    let cmd = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("HCBACKUP_LOCK_WAIT", "300")
            .args(args)
            .stdout(std::process::Stdio::null());
        c
    };
    for i in 0..6u64 {
        write(
            &src.join(format!("new-{i}.pdf")),
            &noise(1000 + i, 512 << 10),
        );
        let mut snap = cmd(&["snapshot", src.to_str().unwrap()]).spawn().unwrap();
        let mut prune = cmd(&["forget", "--keep-last", "3", "--prune"])
            .spawn()
            .unwrap();
        for c in [&mut snap, &mut prune] {
            let st = c.wait().unwrap();
            assert!(st.success(), "round {i}: a run failed: {st}");
        }
    }
    let v = env.json(&["verify", "--read-data"]);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
    // The last round's snapshot may have come after its forget.
    let ids = env.snapshot_ids();
    assert!((3..=4).contains(&ids.len()), "{ids:?}");
    let got = env.restore("latest", "latest");
    assert_same_tree(&src, &got.join("uploads"));
    for id in &ids {
        env.restore(&id[..8], &format!("r-{id}"));
    }
}
