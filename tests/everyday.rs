//! Everyday use (issue #17): nightly failures never pass as success, and a bad
//! night never costs more than what went wrong.

mod common;

use common::pg::Server;
use common::*;

/// The uploads folder is gone (an unmounted disk, a renamed folder): the
/// database is still dumped and saved, the run exits 3 naming the folder, and
/// `status` reports the source as failing.
#[test]
fn a_missing_uploads_folder_does_not_cost_the_database_dump() {
    let server = Server::from_env();
    let db = server.create("nouploads");
    db.psql("CREATE TABLE patients (id int PRIMARY KEY); INSERT INTO patients SELECT generate_series(1, 300);");
    let env = Env::new();
    let uploads = env.path("uploads");
    write(&uploads.join("exame.pdf"), b"%PDF");
    let run = |args: &[&str]| env.pg_cmd(&server, &db.name).args(args).output().unwrap();
    let o = run(&["snapshot", uploads.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));

    std::fs::remove_dir_all(&uploads).unwrap();
    let o = run(&["--json", "snapshot", uploads.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    let said = out(&o);
    assert!(
        said.contains(uploads.to_str().unwrap()) && said.contains("cannot be read"),
        "{said}"
    );
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snap["incomplete"], true, "{snap}");
    assert_eq!(snap["databases"][0]["ok"], true, "{snap}");

    // The night's dump is there and restores.
    let id = snap["id"].as_str().unwrap();
    let file = env.path("night.dump");
    env.ok(&["restore", id, "--db-file", file.to_str().unwrap()]);
    assert!(std::fs::read(&file).unwrap().starts_with(b"PGDMP"));
    // `status` says the files source failed in its newest snapshot.
    let o = run(&["--json", "status"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let problems = st["problems"].to_string();
    assert!(problems.contains(uploads.to_str().unwrap()), "{st}");
    assert_ne!(o.status.code(), Some(0), "{st}");

    // With nothing else to save, the run fails as before (exit 2) and saves nothing.
    let o = env.run(&["snapshot", uploads.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert_eq!(env.snapshot_ids().len(), 2);
    env.verified();
}

/// `--time` in the future is refused (it once became `latest` for good); one
/// made anyway (--allow-future, or by a host with a wrong clock) is never
/// `latest` and `status` names it; a backdated snapshot says when it was made.
#[test]
fn a_snapshot_dated_in_the_future_is_refused_and_never_latest() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("ficha.txt"), b"today");
    let far = "2099-01-01T00:00:00Z";
    let o = env.run(&["snapshot", src.to_str().unwrap(), "--time", far]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("--allow-future"), "{}", out(&o));
    assert!(env.snapshot_ids().is_empty());

    let today = env.snapshot(&[&src]);
    assert!(today["written"].is_null(), "{today}");
    write(&src.join("ficha.txt"), b"from the future");
    let s = &[
        "snapshot",
        src.to_str().unwrap(),
        "--time",
        far,
        "--allow-future",
    ];
    let future = env.json(s);
    assert!(future["written"].is_string(), "{future}");

    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        env.path("r").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("in the future"), "{}", out(&o));
    assert_eq!(
        std::fs::read(env.path("r/uploads/ficha.txt")).unwrap(),
        b"today"
    );
    let st = env.cmd().args(["--json", "status"]).output().unwrap();
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let short = &future["id"].as_str().unwrap()[..8];
    assert!(
        st["problems"]
            .to_string()
            .contains(&format!("snapshot {short} is dated 2099")),
        "{st}"
    );
    assert!(env.ok(&["snapshots"]).contains("(dated in the future)"));

    // Backdated (an import of an older night): marked, with the time it was made.
    let old = env.json(&[
        "snapshot",
        src.to_str().unwrap(),
        "--time",
        "2026-01-02T03:00:00Z",
    ]);
    assert!(old["written"].is_string(), "{old}");
    let listed = env.ok(&["snapshots"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(short) && l.contains("backdated")),
        "{listed}"
    );
    let listed = env.json(&["snapshots"]);
    let marked = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["written"].is_string())
        .count();
    assert_eq!(marked, 2, "{listed}");
    env.verified();
}

/// The uploads disk was not mounted: the folder is there but empty. The
/// snapshot saves what it finds (exit 0) but warns, an alert goes out, and
/// `status` names the source until a snapshot no longer shrinks it.
#[test]
fn an_emptied_uploads_folder_is_warned_alerted_and_named_by_status() {
    use common::listener::{mail_to, smtp_port, unique_address};
    let env = Env::new();
    let src = env.path("uploads");
    for i in 0..110 {
        write(&src.join(format!("exams/exame-{i}.pdf")), &noise(i, 20_000));
    }
    env.snapshot(&[&src]);
    std::fs::remove_dir_all(src.join("exams")).unwrap();

    let to = unique_address("shrink");
    let o = env
        .cmd()
        .env("BACKUP_NOTIFICATION_EMAIL", &to)
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", smtp_port())
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let said = out(&o);
    assert!(
        said.contains("WARNING") && said.contains("shrank from 110 files"),
        "{said}"
    );
    let mails = mail_to(&to);
    assert_eq!(mails.len(), 1, "one warning for {to}");
    assert!(
        mails[0].contains("Subject: [hcbackup] WARNING: snapshot on "),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("shrank from 110 files"), "{}", mails[0]);

    let st = env.cmd().args(["--json", "status"]).output().unwrap();
    assert_ne!(st.status.code(), Some(0));
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(st["problems"].to_string().contains("shrank"), "{st}");
    // Off with HCBACKUP_SHRINK_PERCENT=0.
    let st = env
        .cmd()
        .env("HCBACKUP_SHRINK_PERCENT", "0")
        .args(["--json", "status"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(!st["problems"].to_string().contains("shrank"), "{st}");

    // The next night finds it as small as the last: no warning, and status clears.
    let o = env.run(&["snapshot", src.to_str().unwrap()]);
    assert!(
        o.status.success() && !out(&o).contains("WARNING"),
        "{}",
        out(&o)
    );
    let st = env.json(&["status"]);
    assert!(!st["problems"].to_string().contains("shrank"), "{st}");
    env.verified();
}

/// 3-2-1: with no offsite copy (no destination, or only a USB disk), `status`,
/// `report` and the dashboard's data say so as a warning that does not make the
/// backups stale; a cloud destination clears it.
#[test]
fn status_and_report_warn_when_no_copy_is_offsite() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.pdf"), b"%PDF");
    env.snapshot(&[&src]);
    let warned = |c: &mut std::process::Command| -> String {
        let o = c.args(["--json", "status"]).output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "a risk, not staleness: {}",
            out(&o)
        );
        let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        st["warnings"].to_string()
    };
    assert!(warned(&mut env.cmd()).contains("no offsite copy"));
    assert!(env.ok(&["status"]).contains("warning: no offsite copy"));
    let report = env.ok(&["report"]);
    assert!(report.contains("Risks: no offsite copy"), "{report}");

    env.usb_destination();
    assert!(warned(&mut env.cmd()).contains("local disks only"));
    let mut cloud = env.cmd();
    cloud
        .env("AWS_ENDPOINT_URL", common::s3::endpoint())
        .env("S3_BACKUP_BUCKET", "clinic-offsite");
    assert_eq!(warned(&mut cloud), "[]");
}

/// Mistakes get one line that names the path and what to do.
#[test]
fn messages_name_the_path_and_what_to_do() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.pdf"), b"%PDF");
    // -q: nothing on success.
    let o = env.run(&["-q", "snapshot", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", out(&o));

    // A repository path that is a file.
    let file = env.path("notes.txt");
    write(&file, b"not a repository");
    let o = env
        .cmd_repo(file.as_os_str())
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        out(&o).contains(&format!(
            "{} is a file, not a repository folder",
            file.display()
        )),
        "{}",
        out(&o)
    );

    // A wrong password says what to check, not a command that needs the password.
    let o = env
        .cmd()
        .env("HCBACKUP_PASSWORD", "wrong")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(12), "{}", out(&o));
    assert!(
        out(&o).contains("HCBACKUP_PASSWORD") && !out(&o).contains("key list"),
        "{}",
        out(&o)
    );

    // init refuses a folder that holds other things; a fresh disk's lost+found is fine.
    let docs = env.path("documents");
    write(&docs.join("contrato.pdf"), b"%PDF");
    let o = env.cmd_repo(docs.as_os_str()).arg("init").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        out(&o).contains("is not empty") && out(&o).contains("contrato.pdf"),
        "{}",
        out(&o)
    );
    assert!(!docs.join("config").exists());
    let usb = env.path("usb");
    std::fs::create_dir_all(usb.join("lost+found")).unwrap();
    let o = env.cmd_repo(usb.as_os_str()).arg("init").output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    // A short password is warned about.
    let short = env.path("short");
    let o = env
        .cmd_repo(short.as_os_str())
        .env("HCBACKUP_PASSWORD", "clinic1")
        .arg("init")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("7 characters") && out(&o).contains("12 or more"),
        "{}",
        out(&o)
    );
}

/// A copy on write-protected media (a USB disk mounted read-only) restores,
/// lists and verifies: no lock is taken where none can be written and nothing
/// can be deleted. `--no-lock` does the same anywhere, for reading commands only.
#[test]
fn a_read_only_copy_restores_without_a_lock() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exame.pdf"), &noise(5, 400_000));
    env.snapshot(&[&src]);
    let copy = env.path("usb-copy");
    let o = std::process::Command::new("cp")
        .arg("-a")
        .arg(&env.repo)
        .arg(&copy)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let ro = env.path("usb");
    let _mounted = mount_read_only(&copy, &ro);

    let target = env.path("restored");
    let run = |args: &[&str]| env.cmd_repo(ro.as_os_str()).args(args).output().unwrap();
    let o = run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(out(&o).contains("read-only file system"), "{}", out(&o));
    assert_same_tree(&src, &target.join("uploads"));
    for args in [
        &["ls", "latest"][..],
        &["verify", "--read-data"],
        &["snapshots"],
    ] {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {}", out(&o));
    }
    // Writing there still fails, and says why.
    let o = run(&["snapshot", src.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("Read-only file system"), "{}", out(&o));

    // --no-lock: no lock file is written; a command that writes refuses it.
    let o = env.run(&["--no-lock", "ls", "latest"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = env.run(&["--no-lock", "snapshot", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("needs its lock"), "{}", out(&o));
}

/// `--include` that matches nothing: exit 2, an example with the snapshot's
/// own source name, and no empty target folder left behind.
#[test]
fn an_include_that_matches_nothing_says_so_and_leaves_no_folder() {
    let env = Env::new();
    let src = env.path("scans");
    write(&src.join("exams/a.dcm"), b"DICM");
    env.snapshot(&[&src]);
    let target = env.path("restored");
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        "exams/**",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("such as scans/**"), "{}", out(&o));
    assert!(!target.exists(), "the target it made is gone");
    env.verified();
}

/// A sparse file (a preallocated video, a VM image) comes back sparse, with
/// the same bytes, instead of taking its full size on the restore disk.
#[test]
fn a_sparse_file_restores_sparse() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let env = Env::new();
    let src = env.path("uploads");
    std::fs::create_dir_all(&src).unwrap();
    let f = std::fs::File::create(src.join("teleconsulta.mp4")).unwrap();
    f.set_len(256 << 20).unwrap();
    f.write_all_at(&noise(7, 1 << 20), 100 << 20).unwrap();
    drop(f);
    env.snapshot(&[&src]);
    let t = env.restore("latest", "r");
    assert_same_tree(&src, &t.join("uploads"));
    let m = std::fs::metadata(t.join("uploads/teleconsulta.mp4")).unwrap();
    assert_eq!(m.len(), 256 << 20);
    assert!(
        m.blocks() * 512 < 16 << 20,
        "{} bytes on disk",
        m.blocks() * 512
    );
    env.verified();
}

/// Item 11: hard links come back as hard links (they came back as separate
/// files), also into a read-only folder, with every folder's time kept; an
/// unchanged tree of links stores nothing new the next night.
#[test]
fn hard_links_come_back_as_hard_links() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a/exame.pdf"), &noise(4, 150_000));
    write(&src.join("c/copy.pdf"), &noise(4, 150_000));
    write(&src.join("t/one.dcm"), b"three names");
    std::fs::create_dir_all(src.join("b")).unwrap();
    std::fs::create_dir_all(src.join("ro")).unwrap();
    std::fs::hard_link(src.join("a/exame.pdf"), src.join("b/exame-link.pdf")).unwrap();
    std::fs::hard_link(src.join("t/one.dcm"), src.join("t/two.dcm")).unwrap();
    std::fs::hard_link(src.join("t/one.dcm"), src.join("ro/three.dcm")).unwrap();
    std::fs::set_permissions(src.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    for d in ["a", "b", "c", "t", "ro"] {
        tree::set_mtime(&src.join(d), 1_700_000_000, 5);
    }
    let first = env.snapshot(&[&src]);
    let back = env.restore(first["id"].as_str().unwrap(), "back");
    let up = back.join("uploads");
    assert_same_tree(&src, &up);
    let ino = |p: &str| std::fs::metadata(up.join(p)).unwrap().ino();
    assert_eq!(ino("a/exame.pdf"), ino("b/exame-link.pdf"));
    assert_ne!(ino("a/exame.pdf"), ino("c/copy.pdf"));
    assert_eq!(ino("t/one.dcm"), ino("t/two.dcm"));
    assert_eq!(ino("t/one.dcm"), ino("ro/three.dcm"));
    assert_eq!(std::fs::metadata(up.join("t/one.dcm")).unwrap().nlink(), 3);
    // Only one name selected: a file of its own.
    let part = env.path("part");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        part.to_str().unwrap(),
        "--include",
        "uploads/b/**",
    ]);
    assert_eq!(
        std::fs::read(part.join("uploads/b/exame-link.pdf")).unwrap(),
        noise(4, 150_000)
    );
    let second = env.snapshot(&[&src]);
    assert_eq!(second["bytes_added"], 0, "{second}");
    std::fs::set_permissions(src.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
    env.verified();
}

/// `--db-file /dev/stdout` writes the dump to stdout (the link in /dev stays,
/// even as root and with --overwrite), its own line goes to stderr, and with
/// `--log-file` the dump never lands in the log. A named pipe of one's own is
/// written through; another user's is refused.
#[test]
fn a_dump_goes_to_stdout_and_to_pipes_and_not_into_the_log() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let server = Server::from_env();
    let db = server.create("tostdout");
    db.psql("CREATE TABLE patients (id int PRIMARY KEY); INSERT INTO patients SELECT generate_series(1, 50);");
    let env = Env::new();
    let o = env
        .pg_cmd(&server, &db.name)
        .arg("snapshot")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let file = env.path("night.dump");
    env.ok(&["restore", "latest", "--db-file", file.to_str().unwrap()]);
    let dump = std::fs::read(&file).unwrap();
    assert!(dump.starts_with(b"PGDMP"));

    let log = env.path("hcbackup.log");
    for extra in [
        &[][..],
        &["--overwrite"][..],
        &["--log-file", log.to_str().unwrap()][..],
    ] {
        let mut args = vec!["restore", "latest", "--db-file", "/dev/stdout"];
        args.extend_from_slice(extra);
        let o = env.run(&args);
        assert!(o.status.success(), "{extra:?}: {}", out(&o));
        assert!(o.stdout == dump, "{extra:?}: stdout is not the dump");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("/dev/stdout"),
            "{}",
            out(&o)
        );
        let link = std::fs::symlink_metadata("/dev/stdout").unwrap();
        assert!(link.file_type().is_symlink(), "/dev/stdout was replaced");
    }
    let logged = std::fs::read(&log).unwrap();
    assert!(
        !logged.windows(5).any(|w| w == b"PGDMP"),
        "the dump is in the log"
    );
    assert!(String::from_utf8_lossy(&logged).contains("exit 0"));

    // Spelled otherwise, still stdout; files restored beside it print their
    // line on stderr, never into the dump.
    let target = env.path("files");
    for spelling in ["/dev//stdout", "/dev/../dev/stdout", "/proc/self/fd/1"] {
        let o = env.run(&[
            "restore",
            "latest",
            "--db-file",
            spelling,
            "--target",
            target.to_str().unwrap(),
            "--overwrite",
        ]);
        assert!(o.status.success(), "{spelling}: {}", out(&o));
        assert!(
            o.stdout == dump,
            "{spelling}: stdout is not the dump: {}",
            out(&o)
        );
    }
    // A descriptor hcbackup opened itself (its catalog, its lock) is never
    // written: refused, and the catalog is intact.
    for fd in [
        "/dev/fd/3",
        "/dev/fd/4",
        "/dev/fd/5",
        "/proc/self/fd/6",
        "/dev/fd/-1",
        "/dev/fd/99",
    ] {
        let o = env.run(&["export", "latest", "--db-dump", fd, "--overwrite"]);
        assert_eq!(o.status.code(), Some(2), "{fd}: {}", out(&o));
        assert!(
            out(&o).contains("was not given to hcbackup") || out(&o).contains("system folder"),
            "{fd}: {}",
            out(&o)
        );
    }
    let o = env.run(&["snapshots"]);
    assert!(
        o.status.success() && !out(&o).contains("damaged"),
        "{}",
        out(&o)
    );
    // One the shell opened for it (`7> FILE`) is.
    let file7 = env.path("fd7.dump");
    let f7 = std::fs::File::create(&file7).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&f7);
    let mut c = env.cmd();
    c.args(["export", "latest", "--db-dump", "/dev/fd/7"]);
    // SAFETY: dup2 in the child before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            if libc::dup2(raw, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert!(std::fs::read(&file7).unwrap() == dump);

    // Devices and links: a block device is refused (and left alone); a link
    // another user planted in a shared folder, even to /dev/null, is not followed.
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let blk = shared.join("blk");
    let c = std::ffi::CString::new(blk.to_str().unwrap()).unwrap();
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(7, 250)) },
        0
    );
    let planted = shared.join("db_backup.dump");
    std::os::unix::fs::symlink("/dev/null", &planted).unwrap();
    std::os::unix::fs::lchown(&planted, Some(65534), Some(65534)).unwrap();
    for (path, extra) in [(&blk, "--overwrite"), (&planted, "--quiet")] {
        let o = env.run(&[
            "export",
            "latest",
            "--db-dump",
            path.to_str().unwrap(),
            extra,
        ]);
        assert_eq!(o.status.code(), Some(2), "{}: {}", path.display(), out(&o));
    }
    assert!(std::fs::symlink_metadata(&blk)
        .unwrap()
        .file_type()
        .is_block_device());
    assert!(std::fs::symlink_metadata(&planted)
        .unwrap()
        .file_type()
        .is_symlink());

    // A dump file that cannot be written stops a restore before any file is
    // restored; restoring into a system folder is refused.
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        env.path("early").to_str().unwrap(),
        "--db-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        !env.path("early").exists(),
        "files restored before the dump file was refused"
    );
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        "/dev/hcbackup-test-restore",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(!std::path::Path::new("/dev/hcbackup-test-restore").exists());
    // A named pipe others can write (they would mix bytes into the dump): refused.
    let writable = env.path("writable.fifo");
    assert!(std::process::Command::new("mkfifo")
        .args(["-m", "622"])
        .arg(&writable)
        .status()
        .unwrap()
        .success());
    let o = env.run(&["restore", "latest", "--db-file", writable.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    // A named pipe others can read (mkfifo's default mode): refused.
    let open_fifo = env.path("open.fifo");
    assert!(std::process::Command::new("mkfifo")
        .args(["-m", "644"])
        .arg(&open_fifo)
        .status()
        .unwrap()
        .success());
    let o = env.run(&[
        "restore",
        "latest",
        "--db-file",
        open_fifo.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("mkfifo -m 600"), "{}", out(&o));

    // A named pipe of this user's: written through, not replaced.
    let fifo = env.path("dump.fifo");
    assert!(std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(&fifo).unwrap())
    };
    env.ok(&["restore", "latest", "--db-file", fifo.to_str().unwrap()]);
    assert!(
        reader.join().unwrap() == dump,
        "the pipe did not get the dump"
    );
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    // Another user's named pipe (in a shared /tmp): refused, one line, exit 2.
    let theirs = env.path("theirs.fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&theirs)
        .status()
        .unwrap()
        .success());
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let o = env.run(&[
        "restore",
        "latest",
        "--db-file",
        theirs.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("another user"), "{}", out(&o));
    assert!(std::fs::symlink_metadata(&theirs)
        .unwrap()
        .file_type()
        .is_fifo());
    env.verified();
}
