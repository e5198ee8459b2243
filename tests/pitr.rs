//! Point-in-time recovery (issue #19): a base backup taken by `snapshot
//! --physical` while the WAL is archived by `wal-push`, rows written after
//! it with a marker at a known moment, then a destructive statement; `restore
//! --pgdata … --to-time` lays out the base backup with restore_command =
//! `wal-fetch`, and PostgreSQL started on it recovers to just before the
//! destruction: the marker is there, the table is whole, and each table's
//! content equals a reference taken at that moment.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Archive, Cluster, PG_USER};
use common::*;

/// A digest of every row of the clinic tables, as the server sees them.
fn contents(c: &Cluster) -> String {
    c.psql("SELECT count(*) || ':' || md5(string_agg(v::text, ',' ORDER BY v.id)) FROM visits v")
}

/// A cluster archiving into `archive`, started, with `rows` rows in `visits`.
fn clinic(archive: &Archive, rows: u32) -> Cluster {
    let cluster = archive.cluster("data");
    cluster.pg_ctl("start");
    cluster.psql("CREATE TABLE visits (id int PRIMARY KEY, note text)");
    cluster.psql(&format!(
        "INSERT INTO visits SELECT g, md5(g::text) FROM generate_series(1, {rows}) g"
    ));
    cluster
}

/// The marker row written, the content then, and the moment just after it
/// (UTC, to the microsecond); a second passes before anything else.
fn marked(c: &Cluster) -> (String, String) {
    c.psql("INSERT INTO visits VALUES (0, 'marker')");
    let reference = contents(c);
    let moment = c.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    std::thread::sleep(Duration::from_millis(1100));
    (reference, moment)
}

/// `restore latest --pgdata` from the repository at `repo` to `moment`, as the
/// server's user, then a server started on it until recovery has ended.
fn recover(archive: &Archive, repo: &std::path::Path, name: &str, moment: &str) -> Cluster {
    recover_with(archive, repo, name, moment, &[])
}

/// `recover`, with `vars` for hcbackup (a cloud copy's settings).
fn recover_with(
    archive: &Archive,
    repo: &std::path::Path,
    name: &str,
    moment: &str,
    vars: &[(&str, &str)],
) -> Cluster {
    let target = archive.work.join(name);
    let o = archive
        .hcbackup_at(
            repo,
            &[
                "--json",
                "restore",
                "latest",
                "--pgdata",
                target.to_str().unwrap(),
                "--to-time",
                moment,
            ],
            vars,
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let auto = std::fs::read_to_string(target.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("wal-fetch %f %p") && auto.contains("recovery_target_time"),
        "{auto}"
    );
    assert!(!auto.contains(PASSWORD), "the password was written to disk");
    // The first segments recovery asks for are laid out with the base
    // backup (its first fetches need no unlock), up to the one it stops in.
    let spool = target.join("pg_wal/hcbackup-prefetch");
    let spooled = std::fs::read_dir(&spool)
        .map(|d| d.flatten().filter(|e| e.file_name().len() == 24).count())
        .unwrap_or(0);
    assert!(
        spooled >= 1,
        "no segment was laid out ahead in {}",
        spool.display()
    );
    let recovered = Cluster {
        bin: common::cluster::server_bin(),
        data: target,
        socket: archive.work.clone(),
        port: common::cluster::free_port(),
    };
    recovered.configure(&format!("port = {}\narchive_mode = off\n", recovered.port));
    recovered.pg_ctl("start");
    let deadline = Instant::now() + Duration::from_secs(120);
    while recovered.psql("SELECT pg_is_in_recovery()") == "t" {
        assert!(
            Instant::now() < deadline,
            "recovery did not finish: {}",
            std::fs::read_to_string(recovered.log()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !spool.exists(),
        "the segments laid out ahead outlived the recovery"
    );
    recovered
}

#[test]
fn a_cluster_recovers_to_just_before_a_destructive_statement() {
    let env = Env::uninit();
    let archive = Archive::new(&env);
    let cluster = clinic(&archive, 50000);
    // Recovery settings left in postgresql.conf (where PostgreSQL's manual
    // puts them; the primary ignores them) go into the base backup: the
    // restore's own must win, or recovery stops early, waits an hour, or
    // refuses two targets.
    cluster.configure("recovery_target_xid = '3'\nrecovery_min_apply_delay = '1h'");

    // The base backup, as the server's user (its REPLICATION right).
    let o = archive.base_backup(&cluster);
    assert!(o.status.success(), "{}", out(&o));
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let physical = &snap["physical"];
    assert_eq!(physical["timeline"], 1, "{snap}");
    assert!(
        physical["start_lsn"]
            .as_str()
            .is_some_and(|l| l.contains('/')),
        "{snap}"
    );
    assert!(physical["bytes"].as_u64().unwrap() > 1 << 20, "{snap}");

    // After the backup: more rows, the marker, the moment, then the mistake.
    cluster.psql("INSERT INTO visits SELECT g, 'after ' || g FROM generate_series(50001, 80000) g");
    let (reference, moment) = marked(&cluster);
    cluster.psql("DROP TABLE visits");
    cluster.archive_now();
    drop(cluster);

    // Recover into a new folder, as the server's user.
    let recovered = recover(&archive, &archive.repo, "recovered", &moment);
    assert_eq!(
        recovered.psql("SELECT note FROM visits WHERE id = 0"),
        "marker",
        "the marker written before the target is missing"
    );
    assert_eq!(
        contents(&recovered),
        reference,
        "the table differs from the moment"
    );
    let log = std::fs::read_to_string(recovered.log()).unwrap_or_default();
    assert!(log.contains("recovery stopping before commit"), "{log}");
    drop(recovered);
    // The repository is whole: base backup and WAL (checked as the server's
    // user: what root writes there, its user could not read).
    common::cluster::run(archive.hcbackup(&["--json", "verify", "--read-data"], &[]));

    // The server is lost with the local repository: the same recovery from
    // the USB copy and from the S3 copy that `mirror` keeps (their WAL
    // included). The S3 keys are in a credentials file of the server's user,
    // which the restore_command is told of, never given.
    let usb = archive.work.join("usb");
    let bucket = common::s3::new_bucket("pitr");
    let s3_url = format!("s3://{bucket}/clinic/");
    let creds = archive.work.join("aws-credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = hcbackup-test\naws_secret_access_key = hcbackup-test-secret\n",
    )
    .unwrap();
    let endpoint = common::s3::endpoint();
    let s3_vars = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()),
    ];
    let toml = archive.work.join("hcbackup.toml");
    std::fs::write(
        &toml,
        format!(
            "[[destination]]\nname = \"usb\"\nurl = \"{}\"\n\n[[destination]]\nname = \"offsite\"\nurl = \"{s3_url}\"\n",
            usb.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&toml, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    common::cluster::run({
        let mut c = std::process::Command::new("chown");
        c.args([PG_USER, toml.to_str().unwrap(), creds.to_str().unwrap()]);
        c
    });
    common::cluster::run(
        archive.hcbackup(&["--config", toml.to_str().unwrap(), "mirror"], &s3_vars),
    );
    std::fs::remove_dir_all(&archive.repo).unwrap();
    let from_usb = recover(&archive, &usb, "recovered-from-usb", &moment);
    assert_eq!(
        contents(&from_usb),
        reference,
        "the copy recovered another moment"
    );
    drop(from_usb);
    let from_s3 = recover_with(
        &archive,
        std::path::Path::new(&s3_url),
        "recovered-from-s3",
        &moment,
        &s3_vars,
    );
    assert_eq!(
        contents(&from_s3),
        reference,
        "the S3 copy recovered another moment"
    );
    let auto = std::fs::read_to_string(from_s3.data.join("postgresql.auto.conf")).unwrap();
    assert!(
        auto.contains("AWS_SHARED_CREDENTIALS_FILE") && !auto.contains("hcbackup-test-secret"),
        "{auto}"
    );
    drop(from_s3);
    let v = env
        .cmd_repo(usb.as_os_str())
        .args(["--json", "verify", "--read-data"])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", out(&v));
}

#[test]
fn a_base_backup_that_cannot_be_taken_leaves_the_files_saved_and_says_why() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exam.pdf"), &noise(1, 50_000));
    // The shared test server's user has no REPLICATION right.
    let server = common::pg::Server::from_env();
    let o = env
        .pg_cmd(&server, "postgres")
        .args(["--json", "snapshot", "--physical", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(
        out(&o).contains("base backup NOT saved") && out(&o).contains("REPLICATION"),
        "{}",
        out(&o)
    );
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        snap["physical"]["error"].is_string() && snap["incomplete"] == true,
        "{snap}"
    );
    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
    // That snapshot holds no base backup: nothing to lay out, and a folder in
    // use is never written over.
    let pgdata = env.path("pgdata");
    let o = env
        .cmd()
        .args(["restore", "latest", "--pgdata", pgdata.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("snapshot --physical"), "{}", out(&o));
    assert!(!pgdata.exists());
    let o = env
        .cmd()
        .args([
            "restore",
            "latest",
            "--pgdata",
            src.to_str().unwrap(),
            "--to-time",
            "yesterday",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("RFC 3339"), "{}", out(&o));
    env.verified();
}

/// A base backup written by a compromised machine (a fake pg_basebackup
/// here): a link where postgresql.auto.conf belongs, a setuid file. The
/// restore lays out nothing through the link and says what is wrong.
#[test]
fn a_hostile_base_backup_never_writes_outside_its_folder() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let outside = env.path("outside/victim");
    write(&outside, b"precious");
    // The WAL the label names is archived, as a real backup's would be.
    let wal = env.path("pg_wal/000000010000000000000001");
    let mut seg = noise(1, 100_000);
    seg.resize(16 << 20, 0);
    write(&wal, &seg);
    let o = env.cmd().arg("wal-push").arg(&wal).output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    // The base backup's tar, with or without a link where the settings go,
    // or WAL planted where a restore puts what it fetched ahead.
    let make_tar = |link_to: Option<&std::path::Path>, planted: bool| {
        let mut tar = tar::Builder::new(Vec::new());
        let mut file = |name: &str, data: &[u8], mode: u32| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_cksum();
            tar.append_data(&mut h, name, data).unwrap();
        };
        file("PG_VERSION", b"15\n", 0o600);
        file(
            "backup_label",
            b"START WAL LOCATION: 0/1000028 (file 000000010000000000000001)\nSTART TIMELINE: 1\nLABEL: x\n",
            0o600,
        );
        file("setuid-tool", b"#!/bin/sh\n", 0o4755);
        // As a base backup of a standby carries it.
        file("standby.signal", b"", 0o600);
        file(
            "backup_manifest",
            br#"{"WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/1000028", "End-LSN": "0/1000100"}]}"#,
            0o600,
        );
        if planted {
            // With a leading `/`, which unpacking drops (tar::Builder
            // refuses to write one: the name goes in raw).
            let data = b"not the archived WAL";
            let mut h = tar::Header::new_ustar();
            let name = b"/pg_wal/hcbackup-prefetch/000000010000000000000001";
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            tar.append(&h, &data[..]).unwrap();
        }
        if let Some(target) = link_to {
            let mut link = tar::Header::new_ustar();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            link.set_cksum();
            tar.append_link(&mut link, "postgresql.auto.conf", target)
                .unwrap();
        }
        tar.into_inner().unwrap()
    };
    let tarfile = env.path("evil.tar");
    let bin = env.path("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("pg_basebackup");
    std::fs::write(&fake, format!("#!/bin/sh\ncat '{}'\n", tarfile.display())).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let base_backup = |tar: Vec<u8>| {
        std::fs::write(&tarfile, tar).unwrap();
        let o = env
            .cmd()
            .env("HCBACKUP_PG_BIN", &bin)
            .env("POSTGRES_DB", "postgres")
            .args(["--json", "snapshot", "--physical"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out(&o));
    };
    let pgdata = env.path("pgdata");
    let restore = || {
        env.cmd()
            .args(["restore", "latest", "--pgdata", pgdata.to_str().unwrap()])
            .output()
            .unwrap()
    };
    base_backup(make_tar(Some(&outside), false));
    let o = restore();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("postgresql.auto.conf") && out(&o).contains("Symlink"),
        "{}",
        out(&o)
    );
    assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
    // Nothing half laid out is left: the folder is empty, ready for a retry.
    assert_eq!(std::fs::read_dir(&pgdata).unwrap().count(), 0);
    // A base backup that carries WAL "fetched ahead": refused, whole.
    base_backup(make_tar(None, true));
    let o = restore();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("hcbackup-prefetch"), "{}", out(&o));
    assert_eq!(std::fs::read_dir(&pgdata).unwrap().count(), 0);
    // A base backup with a setuid file: laid out without the bit, and the
    // archived WAL (only that) fetched ahead beside it.
    base_backup(make_tar(None, false));
    let o = restore();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        std::fs::read(pgdata.join("pg_wal/hcbackup-prefetch/000000010000000000000001")).unwrap(),
        seg
    );
    let tool = std::fs::metadata(pgdata.join("setuid-tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7000, 0, "setuid kept");
    assert!(pgdata.join("recovery.signal").is_file());
    assert!(
        !pgdata.join("standby.signal").exists(),
        "the copy would wait for WAL as a standby instead of promoting"
    );
    env.verified();
}

/// Without WAL archiving into the repository, a base backup cannot be
/// restored: it is not recorded as good.
#[test]
fn a_base_backup_without_archived_wal_is_not_called_good() {
    let env = Env::uninit();
    let archive = Archive::new(&env);
    let cluster = archive.cluster("data");
    cluster.configure("archive_mode = off");
    cluster.pg_ctl("start");
    let o = archive.base_backup(&cluster);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("is not in this repository"), "{}", out(&o));
}

/// The files archived in the repository at `repo` (`wal/`).
fn archived(repo: &std::path::Path) -> usize {
    std::fs::read_dir(repo.join("wal")).unwrap().count()
}

#[test]
fn wal_goes_with_the_base_backups_forget_removes_and_what_stays_recovers() {
    let env = Env::uninit();
    let archive = Archive::new(&env);
    let cluster = archive.cluster("data");
    cluster.pg_ctl("start");
    cluster.psql("CREATE TABLE visits (id int PRIMARY KEY, note text)");
    let mut ids = Vec::new();
    let mut base = |cluster: &Cluster, from: i32| {
        cluster.psql(&format!(
            "INSERT INTO visits SELECT g, md5(g::text) FROM generate_series({from}, {from} + 999) g"
        ));
        cluster.archive_now();
        let o = archive.base_backup(cluster);
        assert!(o.status.success(), "{}", out(&o));
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        cluster.archive_now();
        ids.push((
            s["id"].as_str().unwrap().to_string(),
            s["physical"]["start_wal"].as_str().unwrap().to_string(),
            s["physical"]["end_time"].as_str().unwrap().to_string(),
        ));
    };
    let listed = |repo: &std::path::Path| -> std::collections::BTreeSet<std::path::PathBuf> {
        std::fs::read_dir(repo.join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    let first_wal = listed(&archive.repo);
    base(&cluster, 1);
    // The records the first base backup's own WAL is in (and the segment after).
    let first_base_wal: Vec<_> = listed(&archive.repo)
        .difference(&first_wal)
        .cloned()
        .collect();
    base(&cluster, 1001);
    base(&cluster, 2001);
    let (reference, moment) = marked(&cluster);
    cluster.psql("DELETE FROM visits");
    cluster.archive_now();
    // A second machine's catalog sees every record now.
    let other_cache = archive.work.join("other-cache");
    let other = [("HCBACKUP_CACHE_DIR", other_cache.to_str().unwrap())];
    common::cluster::run(archive.hcbackup(&["verify"], &other));
    let before = archived(&archive.repo);

    // A manifest hidden from this machine, or missing to a machine that never
    // saw it (the audit log says it was made): no WAL goes, one of them may
    // be the base backup that needs it.
    let manifest = archive.repo.join("snapshots").join(&ids[0].0);
    let aside = archive.work.join("aside");
    std::fs::rename(&manifest, &aside).unwrap();
    let fresh_cache = archive.work.join("fresh-cache");
    for vars in [
        &[][..],
        &[("HCBACKUP_CACHE_DIR", fresh_cache.to_str().unwrap())][..],
    ] {
        let o = archive
            .hcbackup(&["--json", "forget", "--keep-last", "1", "--dry-run"], vars)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let wal = &report[0]["wal"];
        assert_eq!(wal["removed"], 0, "{report}");
        assert!(
            wal["held_back"].as_str().unwrap().contains(&ids[0].0[..8]),
            "{report}"
        );
    }
    std::fs::rename(&aside, &manifest).unwrap();

    // The oldest base backup is held; the middle one goes.
    common::cluster::run(archive.hcbackup(
        &["hold", "add", &ids[0].0[..8], "--reason", "processo 123"],
        &[],
    ));
    let o = archive
        .hcbackup(&["--json", "forget", "--keep-last", "1", "--prune"], &[])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let wal = &report[0]["wal"];
    assert_eq!(wal["before"], ids[2].1.as_str(), "{report}");
    let removed = wal["removed"].as_u64().unwrap();
    assert!(removed >= 2, "{report}");
    assert_eq!(archived(&archive.repo), before - removed as usize);
    // The held base backup's own WAL stays.
    let fetched = archive.work.join("fetched");
    common::cluster::run(
        archive.hcbackup(&["wal-fetch", &ids[0].1, fetched.to_str().unwrap()], &[]),
    );
    // Neither this machine nor the other takes the removed WAL for lost; the
    // recovery window starts at the base backup kept by the policy (the held
    // one is an island: the WAL after it is gone).
    for vars in [&[][..], &other[..]] {
        let v = archive
            .hcbackup(&["--json", "verify", "--read-data"], vars)
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", out(&v));
        let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
        let w = &v["recovery_window"];
        assert_eq!(w["from"], ids[2].2.as_str(), "{v}");
        assert_eq!(w["base_backups"], 1, "{v}");
        assert!(w["to_wal"].as_str().unwrap() > ids[2].1.as_str(), "{v}");
        assert_eq!(v["wal_files"], archived(&archive.repo) as u64, "{v}");
    }
    // `status` shows the newest archived segment and the window, and calls
    // archiving that stopped stale.
    let status = |max: &str| {
        let o = archive
            .hcbackup(&["--json", "status", "--max-wal-age", max], &[])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let wal_problem = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("WAL: the newest segment"));
        (v, wal_problem)
    };
    let (v, stale) = status("60");
    assert!(!stale, "{v}");
    assert_eq!(
        v["wal"]["recovery_window"]["from"],
        ids[2].2.as_str(),
        "{v}"
    );
    assert!(v["wal"]["last_archived"].as_str().unwrap() > ids[2].1.as_str());
    assert!(!v["wal"]["recovery_window"]["to"]
        .as_str()
        .unwrap()
        .is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    let (v, stale) = status("0.01");
    assert!(stale, "{v}");

    // What stays recovers to the newest moment, started by the restore
    // itself (`--start`), which waits until recovery has ended.
    drop(cluster);
    let target = archive.work.join("recovered");
    let port = common::cluster::free_port();
    let o = archive
        .hcbackup(
            &[
                "--json",
                "restore",
                "latest",
                "--pgdata",
                target.to_str().unwrap(),
                "--to-time",
                &moment,
                "--start",
                "--port",
                &port.to_string(),
            ],
            &[],
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["started"]["recovery_secs"].as_f64().unwrap() > 0.0, "{r}");
    let recovered = Cluster {
        bin: common::cluster::server_bin(),
        data: target,
        socket: archive.work.clone(),
        port,
    };
    assert_eq!(recovered.psql("SELECT pg_is_in_recovery()"), "f");
    assert_eq!(contents(&recovered), reference);
    drop(recovered);
    // A target after the archived WAL cannot be reached: the server stops,
    // and the restore says why instead of waiting.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let early = archive.work.join("too-late");
    let o = archive
        .hcbackup(
            &[
                "restore",
                &ids[2].0[..8],
                "--pgdata",
                early.to_str().unwrap(),
                "--to-time",
                &later,
                "--start",
                "--port",
                &common::cluster::free_port().to_string(),
            ],
            &[],
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("FATAL"), "{}", out(&o));

    // The held base backup's own WAL deleted behind the repository's back:
    // verify names it, and a restore of it refuses before laying anything out.
    for f in &first_base_wal {
        let _ = std::fs::remove_file(f);
    }
    let v = archive
        .hcbackup(&["--json", "verify"], &[])
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1), "{}", out(&v));
    assert!(
        String::from_utf8_lossy(&v.stderr).contains("cannot be made consistent"),
        "{}",
        out(&v)
    );
    let target = archive.work.join("from-held");
    let o = archive
        .hcbackup(
            &[
                "restore",
                &ids[0].0[..8],
                "--pgdata",
                target.to_str().unwrap(),
            ],
            &[],
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot be made consistent"),
        "{}",
        out(&o)
    );
    assert!(
        !target.exists(),
        "a restore that cannot succeed laid something out"
    );
}

#[test]
fn the_monthly_pitr_test_reaches_a_restore_point_written_a_moment_before() {
    let env = Env::uninit();
    let archive = Archive::new(&env);
    let cluster = clinic(&archive, 20000);
    let o = archive.base_backup(&cluster);
    assert!(o.status.success(), "{}", out(&o));
    cluster.psql("INSERT INTO visits SELECT g, 'after' FROM generate_series(20001, 30000) g");
    let o = archive
        .hcbackup_on(&cluster, &["--json", "verify", "--restore-test", "--pitr"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &doc["restore_tests"][0];
    assert_eq!(t["passed"], true, "{doc}");
    let checks = t["checks"].to_string();
    assert!(
        checks.contains("recovery stopped at hcbackup-test-"),
        "{doc}"
    );
    assert!(
        checks.contains("amcheck") && !checks.contains("skipped"),
        "{doc}"
    );
    assert!(t["restore_secs"].as_f64().unwrap() > 0.0, "{doc}");
    // Nothing of the copy is left running or on disk.
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("hcbackup-pitr-test-")
        })
        .count();
    assert_eq!(leftovers, 0);
    // status takes it for the restore test.
    let o = archive
        .hcbackup_on(&cluster, &["--json", "status"])
        .output()
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["last_restore_test"]["passed"], true, "{s}");

    // The WAL the base backup needs is gone: the test fails, says why, and
    // status knows the last test failed.
    for e in std::fs::read_dir(archive.repo.join("wal")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let o = archive
        .hcbackup_on(&cluster, &["--json", "verify", "--restore-test", "--pitr"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("cannot be made consistent"), "{}", out(&o));
    let o = archive
        .hcbackup_on(&cluster, &["--json", "status"])
        .output()
        .unwrap();
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["last_restore_test"]["passed"], false, "{s}");
}
