//! Retention on the cloud copies: each copy (the repository, S3 on the moto server,
//! Google Drive on the test server) forgets by its own policy and is pruned where it
//! lives; every copy then verifies clean, reading all data, and restores byte-exact.

mod common;

use std::fs;
use std::process::Command;

use common::drive::DriveServer;
use common::s3 as moto;
use common::{noise, out, write, Env};

struct Clouds {
    env: Env,
    drive: DriveServer,
    folder: String,
    bucket: String,
}

impl Clouds {
    fn cmd(&self) -> Command {
        let mut c = self.env.cmd();
        c.env("AWS_ENDPOINT_URL", moto::endpoint())
            .env("S3_BACKUP_BUCKET", &self.bucket)
            .env("GOOGLE_DRIVE_BACKUP_FOLDER", &self.folder)
            .env("GOOGLE_CREDENTIALS", self.drive.credentials())
            .env("HCBACKUP_DRIVE_ROOT_URL", &self.drive.root_url);
        c
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let o = self.cmd().arg("--json").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

/// Day `d`'s uploads: a scan kept all along and the day's report.
fn day_files(src: &std::path::Path, d: u64) {
    let _ = fs::remove_file(src.join(format!("laudo-{}.pdf", d - 1)));
    write(&src.join(format!("laudo-{d}.pdf")), &noise(d, 600 << 10));
}

fn check_day(dir: &std::path::Path, d: u64) {
    let up = dir.join("uploads");
    assert!(fs::read(up.join("rx.dcm")).unwrap() == noise(99, 2 << 20));
    assert!(fs::read(up.join(format!("laudo-{d}.pdf"))).unwrap() == noise(d, 600 << 10));
    assert_eq!(fs::read_dir(&up).unwrap().count(), 2);
}

#[test]
fn each_copy_forgets_by_its_own_policy_and_is_pruned_where_it_lives() {
    let drive = DriveServer::start();
    let c = Clouds {
        env: Env::new(),
        folder: drive.shared_folder("backups"),
        drive,
        bucket: moto::new_bucket("hcb-retention"),
    };
    fs::write(
        c.env.path("hcbackup.toml"),
        "[retention.local]\nkeep_last = 2\n[retention.s3]\nkeep_last = 3\n[retention.drive]\nkeep_last = 1\n",
    )
    .unwrap();
    let src = c.env.path("uploads");
    write(&src.join("rx.dcm"), &noise(99, 2 << 20));
    let mut ids = Vec::new();
    for d in 1..=4u64 {
        day_files(&src, d);
        let time = format!("2026-11-0{d}T03:00:00Z");
        let s = c.json(&["snapshot", src.to_str().unwrap(), "--time", &time]);
        ids.push(s["id"].as_str().unwrap().to_string());
    }
    let packs = |copy: &str| {
        c.json(&["verify", "--destination", copy])["packs"]
            .as_u64()
            .unwrap()
    };
    let (s3_before, drive_before) = (packs("s3"), packs("drive"));
    let drive_packs = c.drive.subfolder(&c.folder, "packs").unwrap();
    let drive_files_before = c.drive.files_in(&drive_packs).len();

    let done = c.json(&["forget", "--destination", "all", "--prune"]);
    let by_copy = |name: &str| {
        done.as_array()
            .unwrap()
            .iter()
            .find(|d| d["copy"] == name)
            .unwrap_or_else(|| panic!("no {name} in {done}"))
            .clone()
    };
    // local keeps days 3–4; s3 its last three (2–4); drive its last one, plus what
    // the repository still has (3–4).
    assert_eq!(by_copy("local")["removed"], 2);
    assert_eq!(by_copy("s3")["removed"], 1);
    let drive_doc = by_copy("drive");
    assert_eq!(drive_doc["removed"], 2);
    let reasons: Vec<&str> = drive_doc["groups"][0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["keep"] == true)
        .flat_map(|s| s["reasons"].as_array().unwrap().iter())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("still in the local repository")),
        "{reasons:?}"
    );
    for copy in ["s3", "drive"] {
        let p = &by_copy(copy)["prune"];
        assert!(p["packs_deleted"].as_u64().unwrap() >= 1, "{copy}: {p}");
        // Only the packs it repacks are downloaded.
        assert!(
            p["bytes_downloaded"].as_u64().unwrap() <= 3 << 20,
            "{copy}: {p}"
        );
    }
    assert!(packs("s3") < s3_before);
    assert!(packs("drive") < drive_before);
    assert!(c.drive.files_in(&drive_packs).len() < drive_files_before);

    let all = c.json(&["verify", "--destination", "all", "--read-data"]);
    for v in all.as_array().unwrap() {
        assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
    }
    // Day 2 lives only in S3 now; day 4 everywhere.
    let t = c.env.path("day2-from-s3");
    let o = c
        .cmd()
        .args([
            "restore",
            &ids[1][..8],
            "--from",
            "s3",
            "--target",
            t.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_day(&t, 2);
    let t = c.env.path("day4-from-drive");
    let o = c
        .cmd()
        .args([
            "restore",
            "latest",
            "--from",
            "drive",
            "--target",
            t.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_day(&t, 4);

    // A legal hold on day 2, which only S3 still has: placed in the repository,
    // mirrored, and honoured by S3's next forget.
    c.json(&["hold", "add", &ids[1][..8], "--reason", "processo 77"]);
    c.json(&["mirror"]);
    let again = c.json(&["forget", "--destination", "s3", "--keep-last", "1"]);
    let day2 = again[0]["groups"][0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == ids[1].as_str())
        .unwrap()
        .clone();
    assert_eq!(day2["keep"], true, "{again}");
    assert!(
        day2["reasons"].to_string().contains("processo 77"),
        "{day2}"
    );

    // The nightly cycle goes on: the next snapshot mirrors to the pruned copies.
    day_files(&src, 5);
    c.json(&[
        "snapshot",
        src.to_str().unwrap(),
        "--time",
        "2026-11-05T03:00:00Z",
    ]);
    let all = c.json(&["verify", "--destination", "all", "--read-data"]);
    for v in all.as_array().unwrap() {
        assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
    }
}

/// The retain-until date S3 reports for `key`, as a time.
fn retain_until(bucket: &str, key: &str) -> time::OffsetDateTime {
    let head = moto::raw("HEAD", &format!("{bucket}/{key}"));
    let v = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("x-amz-object-lock-retain-until-date:")
                .then(|| l.split_once(':').unwrap().1.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no retention on {key}: {head}"));
    time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339).unwrap()
}

#[test]
fn object_lock_keeps_packs_that_prune_would_delete_and_extends_live_ones() {
    let env = Env::new();
    let bucket = moto::new_locked_bucket("hcb-vault");
    fs::write(
        env.path("hcbackup.toml"),
        format!(
            "[[destination]]\nname = \"vault\"\nurl = \"s3://{bucket}/clinic?object_lock_days=30\"\n"
        ),
    )
    .unwrap();
    let cmd = || {
        let mut c = env.cmd();
        c.env("AWS_ENDPOINT_URL", moto::endpoint());
        c
    };
    let json = |args: &[&str]| -> serde_json::Value {
        let o = cmd().arg("--json").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let src = env.path("uploads");
    write(&src.join("rx.dcm"), &noise(99, 2 << 20));
    for d in 1..=3u64 {
        day_files(&src, d);
        json(&[
            "snapshot",
            src.to_str().unwrap(),
            "--time",
            &format!("2026-11-0{d}T03:00:00Z"),
        ]);
    }
    let packs = moto::keys(&bucket, "clinic/packs/");
    assert!(packs.len() >= 4, "{packs:?}");
    let before = retain_until(&bucket, &packs[0]);

    // The policy would drop days 1–2 at the vault, but their manifests are locked.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let done = json(&[
        "forget",
        "--destination",
        "all",
        "--keep-last",
        "1",
        "--prune",
    ]);
    let vault = done
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["copy"] == "vault")
        .unwrap();
    assert_eq!(vault["removed"], 0, "{vault}");
    assert_eq!(vault["retained"].as_array().unwrap().len(), 2, "{vault}");
    // Packs live snapshots use stay locked for another 30 days from now.
    assert!(vault["prune"]["locks_extended"].as_u64().unwrap() >= packs.len() as u64);
    assert!(retain_until(&bucket, &packs[0]) > before);

    // Someone with the bucket's keys deletes every manifest (S3 keeps them behind
    // delete markers). This machine saw them: its prune refuses to run.
    for k in moto::keys(&bucket, "clinic/snapshots/") {
        moto::raw("DELETE", &format!("{bucket}/{k}"));
    }
    assert!(moto::keys(&bucket, "clinic/snapshots/").is_empty());
    let o = cmd()
        .args(["prune", "--destination", "vault"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("no forget here removed it"), "{}", out(&o));
    assert_eq!(moto::keys(&bucket, "clinic/packs/"), packs);
    // A machine that never saw them finds every pack unused, and deletes none.
    let o = cmd()
        .env("HCBACKUP_CACHE_DIR", env.path("new-machine-cache"))
        .args(["--json", "prune", "--destination", "vault"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let retained = p[0]["prune"]["retained"].as_array().unwrap();
    assert!(retained.len() >= packs.len(), "{p}");
    assert_eq!(
        moto::keys(&bucket, "clinic/packs/"),
        packs,
        "a locked pack was deleted"
    );
    assert!(
        p[0]["prune"]["removed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| { !r["object"].as_str().unwrap().starts_with("packs/") }),
        "{p}"
    );
}
