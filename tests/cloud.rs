//! A repository that lives in S3 (the moto server scripts/services.sh starts):
//! every command works on it directly, and a fresh machine with only the password
//! and the bucket restores byte-exact.

mod common;

use common::s3 as moto;
use common::{assert_same_tree, noise, text, write, Env};

fn s3_repo() -> String {
    format!("s3://{}/clinic", moto::new_bucket("hcb-repo"))
}

fn s3(env: &Env, repo: &str, args: &[&str]) -> String {
    let endpoint = moto::endpoint();
    let o = env
        .cmd_repo(repo.as_ref())
        .env("AWS_ENDPOINT_URL", endpoint)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "hcbackup {args:?} on {repo}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn a_repository_in_s3_snapshots_and_restores_from_a_fresh_machine() {
    let env = Env::uninit();
    let repo = s3_repo();
    let src = env.path("uploads");
    write(&src.join("exames/raio-x.jpg"), &noise(1, 3 << 20));
    write(&src.join("prontuarios/p1.txt"), &text(2, 300_000));
    write(&src.join("vazio.txt"), b"");
    s3(&env, &repo, &["init"]);
    let snap: serde_json::Value = serde_json::from_str(&s3(
        &env,
        &repo,
        &["--json", "snapshot", src.to_str().unwrap()],
    ))
    .unwrap();
    assert!(snap["bytes_added"].as_u64().unwrap() > 3 << 20);

    // A fresh machine: no catalog, no cache; only the password and the bucket.
    std::fs::remove_dir_all(&env.cache).unwrap();
    let list: serde_json::Value =
        serde_json::from_str(&s3(&env, &repo, &["--json", "snapshots"])).unwrap();
    assert_eq!(list[0]["id"], snap["id"]);
    let target = env.path("restored");
    s3(
        &env,
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&src, &target.join("uploads"));
    assert!(s3(&env, &repo, &["verify", "--read-data"]).contains("no problems"));
}

#[test]
fn snapshots_are_mirrored_to_s3_and_an_offsite_failure_is_never_hidden() {
    let endpoint = moto::endpoint();
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exames/tc.dcm"), &noise(3, 2 << 20));
    write(&src.join("notas.txt"), &text(4, 50_000));
    let mirror_cmd = |bucket: &str| {
        let mut c = env.cmd();
        c.env("AWS_ENDPOINT_URL", &endpoint)
            .env("S3_BACKUP_BUCKET", bucket);
        c
    };

    // The bucket does not exist yet: the local snapshot is saved, the exit code
    // says the offsite copy failed, and the message names the destination and why.
    let bucket = moto::bucket_name("hcb-mirror");
    let o = mirror_cmd(&bucket)
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("mirror to s3 FAILED") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);

    // Once the bucket exists, `mirror` catches up; a second run sends nothing.
    moto::create_bucket(&bucket);
    let o = mirror_cmd(&bucket)
        .args(["--json", "mirror"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r[0]["copied"].as_u64().unwrap() >= 5, "{r}");
    let o = mirror_cmd(&bucket)
        .args(["--json", "mirror"])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Nothing but the audit event of the mirror before (written after it ran).
    assert_eq!(r[0]["copied"], 1, "{r}");

    // The next snapshot mirrors by itself (exit 0), and the copy restores
    // byte-exact on a machine that has lost the local repository and its cache.
    write(&src.join("novo.txt"), b"consulta de hoje");
    let o = mirror_cmd(&bucket)
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("mirror to s3:"));
    std::fs::remove_dir_all(&env.repo).unwrap();
    std::fs::remove_dir_all(&env.cache).unwrap();
    // `restore --from s3` with the local repository gone.
    let via_from = env.path("via-from");
    let o = mirror_cmd(&bucket)
        .args([
            "restore",
            "latest",
            "--from",
            "s3",
            "--target",
            via_from.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&src, &via_from.join("uploads"));
    // `mount --from s3`: browse the copy itself.
    let mp = env.path("mp");
    std::fs::create_dir(&mp).unwrap();
    let mut child = mirror_cmd(&bucket)
        .args(["mount", mp.to_str().unwrap(), "--from", "s3"])
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !mp.join("latest").exists() {
        assert!(start.elapsed().as_secs() < 30, "not mounted");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_same_tree(&src, &mp.join("latest/uploads"));
    assert!(std::process::Command::new("umount")
        .arg(&mp)
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    let repo = format!("s3://{bucket}/backups");
    let list: serde_json::Value =
        serde_json::from_str(&s3(&env, &repo, &["--json", "snapshots"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let target = env.path("from-s3");
    s3(
        &env,
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&src, &target.join("uploads"));

    // The audit log survived the server in the bucket: the lost server's events
    // (all but the last snapshot's, written after its mirror), then the two
    // restores from the bucket, chained on; the chain checks out.
    let events: serde_json::Value =
        serde_json::from_str(&s3(&env, &repo, &["--json", "audit"])).unwrap();
    let ops: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["init", "snapshot", "mirror", "mirror", "restore", "restore"]
    );
    assert_eq!(events[4]["destinations"][0], "s3");
    assert_eq!(events[1]["result"], "failed", "its mirror had no bucket");
    let v: serde_json::Value =
        serde_json::from_str(&s3(&env, &repo, &["--json", "audit", "verify"])).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn cloud_faults_are_retried_and_a_persistent_one_is_reported_then_caught_up() {
    use common::faults::FaultProxy;
    let endpoint = moto::endpoint();
    let proxy = FaultProxy::start(&endpoint);
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("video.mp4"), &noise(7, 20 << 20));
    write(&src.join("laudo.txt"), &text(8, 80_000));
    let repo = s3_repo();
    let bucket = repo
        .trim_start_matches("s3://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let via_proxy = |args: &[&str]| {
        env.cmd()
            .env("AWS_ENDPOINT_URL", &proxy.endpoint)
            .env("S3_BACKUP_BUCKET", &bucket)
            .env("HCBACKUP_RETRIES", "4")
            .env("HCBACKUP_CLOUD_TIMEOUT", "3")
            .args(args)
            .output()
            .unwrap()
    };

    fault_script(&env, &src, &proxy, "s3", 6000, via_proxy);
}

#[test]
fn drive_faults_are_retried_and_a_persistent_one_is_reported_then_caught_up() {
    use common::drive::DriveServer;
    use common::faults::FaultProxy;
    let drive = DriveServer::start();
    let proxy = FaultProxy::start(&drive.root_url);
    let root = format!("{}/", proxy.endpoint);
    let folder = drive.shared_folder("clinic-backups");
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("video.mp4"), &noise(17, 12 << 20));
    write(&src.join("laudo.txt"), &text(18, 80_000));
    let via_proxy = |args: &[&str]| {
        env.cmd()
            .env("GOOGLE_DRIVE_BACKUP_FOLDER", &folder)
            .env("GOOGLE_CREDENTIALS", drive.credentials_at(&root))
            .env("HCBACKUP_DRIVE_ROOT_URL", &root)
            .env("HCBACKUP_RETRIES", "4")
            .env("HCBACKUP_CLOUD_TIMEOUT", "1")
            .args(args)
            .output()
            .unwrap()
    };
    fault_script(&env, &src, &proxy, "drive", 2500, via_proxy);
}

/// The faults both clouds go through, through `proxy` (each command run by
/// `via_proxy`, whose timeout is below `slow_ms`): 503s, then 429s, then answers
/// slower than the timeout are retried through; a server that keeps failing leaves
/// the local snapshot saved and exit 1 naming the destination; back up, `mirror`
/// catches up, and a restore through connections cut mid-response is byte-exact.
fn fault_script(
    env: &Env,
    src: &std::path::Path,
    proxy: &common::faults::FaultProxy,
    dest: &str,
    slow_ms: u64,
    via_proxy: impl Fn(&[&str]) -> std::process::Output,
) {
    use common::faults::Fault;
    let ok = |args: &[&str]| {
        let o = via_proxy(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let snapshot = || ok(&["snapshot", src.to_str().unwrap()]);

    proxy.set(Fault::Status { code: 503, n: 3 });
    assert!(snapshot().contains(&format!("mirror to {dest}:")));
    assert_eq!(
        proxy.set(Fault::Status { code: 429, n: 2 }),
        3,
        "three 503s were served"
    );
    write(&src.join("novo.txt"), b"x");
    snapshot();
    assert_eq!(
        proxy.set(Fault::Slow { ms: slow_ms, n: 2 }),
        2,
        "two 429s were served"
    );
    write(&src.join("lento.txt"), b"z");
    snapshot();
    assert_eq!(
        proxy.set(Fault::Always(503)),
        2,
        "two slow answers were served"
    );

    write(&src.join("outro.txt"), b"y");
    let o = via_proxy(&["snapshot", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("mirror to {dest} FAILED"))
            && err.contains("gave up after 4 attempts"),
        "{err}"
    );
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 4);

    assert!(proxy.set(Fault::None) >= 4);
    ok(&["mirror"]);
    proxy.set(Fault::CutAfter { bytes: 3000, n: 3 });
    let target = env.path("restored");
    ok(&[
        "restore",
        "latest",
        "--from",
        dest,
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(src, &target.join("uploads"));
    assert_eq!(proxy.set(Fault::None), 3, "three responses were cut");
}

#[test]
fn mirror_trusts_the_catalogs_record_until_a_full_check() {
    use common::drive::DriveServer;
    let drive = DriveServer::start();
    let folder = drive.shared_folder("clinic-backups");
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exames/us.dcm"), &noise(21, 3 << 20));
    let run = |args: &[&str]| {
        let o = env
            .cmd()
            .env("GOOGLE_DRIVE_BACKUP_FOLDER", &folder)
            .env("GOOGLE_CREDENTIALS", drive.credentials())
            .env("HCBACKUP_DRIVE_ROOT_URL", &drive.root_url)
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    // Listings of the big folders (not the lookups of one name; `keys`, `locks` and
    // `holds`, a few small objects, are listed by every mirror).
    let listings = || {
        let big: Vec<String> = ["packs", "index", "snapshots"]
            .iter()
            .filter_map(|d| drive.subfolder(&folder, d))
            .collect();
        drive
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET /drive/v3/files?") && !r.contains("name+%3D"))
            .filter(|r| big.iter().any(|id| r.contains(id.as_str())))
            .count()
    };

    // The first mirror lists the destination; the next ones trust the record.
    assert!(run(&["snapshot", src.to_str().unwrap()]).contains("(listed)"));
    write(&src.join("exames/novo.pdf"), &noise(22, 100_000));
    let before = listings();
    let out = run(&["snapshot", src.to_str().unwrap()]);
    assert!(
        out.contains("mirror to drive:") && !out.contains("(listed)"),
        "{out}"
    );
    assert_eq!(
        listings(),
        before,
        "no folder of the destination was listed"
    );

    // A pack lost at the destination behind hcbackup's back: only a full check sees it.
    let packs = drive.subfolder(&folder, "packs").unwrap();
    let (lost, _) = drive.files_in(&packs).remove(0);
    assert_eq!(drive.remove(&packs, &lost), 1);
    // (Each run copies the audit event of the one before: written after it ran.)
    let r: serde_json::Value = serde_json::from_str(&run(&["--json", "mirror"])).unwrap();
    assert_eq!(
        (r[0]["copied"].as_u64(), r[0]["listed"].as_bool()),
        (Some(1), Some(false)),
        "{r}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&run(&["--json", "mirror", "--full-check"])).unwrap();
    assert_eq!(
        (r[0]["copied"].as_u64(), r[0]["listed"].as_bool()),
        (Some(2), Some(true)),
        "the lost pack and the last event: {r}"
    );
    assert!(drive.files_in(&packs).iter().any(|(n, _)| *n == lost));

    let target = env.path("restored");
    run(&[
        "restore",
        "latest",
        "--from",
        "drive",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &target.join("uploads"));
    env.verified();
}

#[test]
fn destinations_from_hcbackup_toml_a_usb_disk_and_a_drive_folder() {
    use common::drive::DriveServer;
    let drive = DriveServer::start();
    let folder = drive.shared_folder("offsite");
    let env = Env::new();
    let usb = env.path("usb-disk/hcbackup");
    std::fs::write(
        env.path("hcbackup.toml"),
        format!(
            "[[destination]]\nname = \"usb\"\nurl = \"{}\"\n\n[[destination]]\nname = \"offsite\"\nurl = \"drive://{folder}\"\n",
            usb.display()
        ),
    )
    .unwrap();
    let src = env.path("uploads");
    write(&src.join("exames/rx.jpg"), &noise(31, 1 << 20));
    let cmd = || {
        let mut c = env.cmd();
        c.env("GOOGLE_CREDENTIALS", drive.credentials())
            .env("HCBACKUP_DRIVE_ROOT_URL", &drive.root_url);
        c
    };
    let o = cmd()
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("mirror to usb:") && out.contains("mirror to offsite:"),
        "{out}"
    );
    for from in ["usb", "offsite"] {
        let target = env.path(&format!("from-{from}"));
        let o = cmd()
            .args([
                "restore",
                "latest",
                "--from",
                from,
                "--target",
                target.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_same_tree(&src, &target.join("uploads"));
    }

    // A name given twice is a configuration error that says what to do.
    std::fs::write(
        env.path("hcbackup.toml"),
        "[[destination]]\nname = \"s3\"\nurl = \"s3://other/backups\"\n",
    )
    .unwrap();
    let o = cmd()
        .env("S3_BACKUP_BUCKET", "clinic")
        .args(["mirror"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("defined twice") && err.contains("rename one"),
        "{err}"
    );
}
