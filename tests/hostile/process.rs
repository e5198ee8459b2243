//! Hostile surroundings of the process: children that should not see secrets,
//! settings files others can write, the status server's sockets, the catalog's
//! files, a lock taken away, and what sizes a copy reveals.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use crate::common::pg::Server;
use crate::common::*;

/// Secrets of the process's environment that no child may inherit.
const SECRETS: &[(&str, &str)] = &[
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-6d1f"),
    ("AWS_SESSION_TOKEN", "aws-session-71c2"),
    ("SMTP_PASSWORD", "smtp-secret-09ab"),
    (
        "HCBACKUP_WEBHOOK_URL",
        "http://127.0.0.1:9/hook-secret-5e3d",
    ),
    ("HCBACKUP_STATUS_TOKEN", "status-token-secret-2f4e"),
];

/// Attack: pg_dump, pg_dumpall and a password command are programs the operator
/// chose, but a compromised one (or anything it runs) reads its environment.
/// Each must see what it needs (PGPASSWORD for the PostgreSQL programs) and none
/// of hcbackup's secrets: the repository password, cloud keys, SMTP and webhook.
#[test]
fn children_see_no_secret_of_hcbackup() {
    let server = Server::from_env();
    let db = server.create("envleak");
    db.load_clinic(1);
    let env = Env::new();
    let dump_env = env.path("seen");
    fs::create_dir_all(&dump_env).unwrap();
    let script = format!(
        "env > {}/$(basename $0).$$\nexec $REAL \"$@\"",
        dump_env.display()
    );
    let bin = env.pg_bin("bin", &[("pg_dump", &script), ("pg_dumpall", &script)]);
    let pw_file = env.path("seen/password-command");
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"a");
    let mut c = env.pg_cmd_bin(&server, &db.name, &bin);
    for (k, v) in SECRETS {
        c.env(k, v);
    }
    c.env_remove("HCBACKUP_PASSWORD")
        .env(
            "HCBACKUP_PASSWORD_COMMAND",
            format!("env > {}; echo '{PASSWORD}'", pw_file.display()),
        )
        .env("HCBACKUP_NOTIFY_SUCCESS", "0");
    // Snapshot with `c`; the environments the children recorded.
    let run = |mut c: std::process::Command| {
        let o = c
            .args(["snapshot", src.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", out(&o));
        let seen: Vec<_> = fs::read_dir(&dump_env)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        for f in &seen {
            let text = fs::read_to_string(f).unwrap();
            assert!(
                !text.contains(PASSWORD),
                "{} saw the repository password",
                f.display()
            );
            assert!(
                !text.contains("HCBACKUP_PASSWORD"),
                "{} saw HCBACKUP_PASSWORD",
                f.display()
            );
        }
        seen
    };
    let seen = run(c);
    assert!(
        seen.len() >= 3,
        "pg_dump, pg_dumpall and the password command ran: {seen:?}"
    );
    for f in &seen {
        let text = fs::read_to_string(f).unwrap();
        for (k, v) in SECRETS {
            assert!(!text.contains(v), "{} saw {k}", f.display());
        }
    }
    // The dump itself (not `pg_dump --version`) got the login it needs.
    let logins = seen
        .iter()
        .filter(|f| {
            fs::read_to_string(f)
                .unwrap()
                .contains(&format!("PGPASSWORD={}", server.password))
        })
        .count();
    assert!(logins >= 2, "pg_dump and pg_dumpall got their login");
    // And with the password in the environment: no child inherits it.
    for f in fs::read_dir(&dump_env).unwrap() {
        fs::remove_file(f.unwrap().path()).unwrap();
    }
    let mut c = env.pg_cmd_bin(&server, &db.name, &bin);
    c.env("HCBACKUP_PASSWORD", PASSWORD);
    let seen = run(c);
    assert!(seen.len() >= 2, "{seen:?}");
}

/// Attack: someone who can write the working folder plants `.env` (a password
/// command of theirs, a pg_dump of theirs) or makes `hcbackup.toml` writable.
#[test]
fn settings_files_others_can_write_are_refused() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"a");
    let planted = env.path(".env");
    fs::write(&planted, "HCBACKUP_PG_BIN=/tmp/evil\n").unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o666)).unwrap();
    let o = env.run(&["snapshot", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refusing .env") && err.contains("umask 077"),
        "{err}"
    );
    // Owned by another user: refused too.
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    let o = env.run(&["snapshot", src.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("belongs to uid 65534"),
        "{}",
        out(&o)
    );
    fs::remove_file(&planted).unwrap();
    let toml = env.path("hcbackup.toml");
    fs::write(&toml, "").unwrap();
    fs::set_permissions(&toml, fs::Permissions::from_mode(0o620)).unwrap();
    let o = env.run(&["snapshots"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing hcbackup.toml"),
        "{}",
        out(&o)
    );
    // The operator's own, private files are read.
    fs::set_permissions(&toml, fs::Permissions::from_mode(0o600)).unwrap();
    env.ok(&["snapshot", src.to_str().unwrap()]);
}

/// Attack: without the token, open idle sockets to the status server and trickle
/// a request byte by byte, so that the monitor's `/healthz` gets no answer.
/// (And, while it runs, the catalog's files are checked.)
#[test]
fn idle_and_slow_sockets_do_not_stall_the_status_server() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"a");
    env.snapshot(&[&src]);
    // Port 0: the server picks a free one and prints it first.
    let mut server = env
        .cmd()
        .env("HCBACKUP_STATUS_TOKEN", "a-long-enough-status-token")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let connect = || std::net::TcpStream::connect(&addr).unwrap();
    let idle: Vec<_> = (0..40).map(|_| connect()).collect();
    // Meanwhile: the catalog holds per-file sizes, inodes and chunk lists in
    // plaintext; every file of it, the SQLite -wal and -shm files of the open
    // catalog too, is private from the first byte.
    let files: Vec<_> = fs::read_dir(&env.cache)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.file_name().to_string_lossy().ends_with("-wal")),
        "{files:?}"
    );
    for f in files {
        let m = f.metadata().unwrap();
        let want = if m.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            m.mode() & 0o777,
            want,
            "{} is {:o}",
            f.path().display(),
            m.mode() & 0o777
        );
    }
    let mut slow = connect();
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let asked = Instant::now();
    let mut s = connect();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"),
        "{answer}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "healthz took {:?}",
        asked.elapsed()
    );
    // A request that never finishes its headers is dropped within seconds.
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        asked.elapsed() < Duration::from_secs(12),
        "a slow request held on for {:?}",
        asked.elapsed()
    );
    drop(idle);
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Attack (on the lock): another process removes this run's lock as stale while
/// the run goes on; or garbles it, so that a prune elsewhere cannot read it. The
/// run stops before writing its index or manifest (exit 11), whether its lock
/// refresh notices first (every second here) or the check before committing
/// does (a run shorter than the 5-minute refresh); and a prune never runs beside
/// a lock it cannot read.
#[test]
fn a_run_whose_lock_is_taken_away_stops() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), &text(51, 10_000));
    env.snapshot(&[&src]);
    let start_paused = |refresh: Option<&str>| {
        let mut c = env.cmd();
        if let Some(r) = refresh {
            c.env("HCBACKUP_TEST_LOCK_REFRESH_SECS", r);
        }
        let child = c
            .env("HCBACKUP_TEST_PAUSE", "before-index:4")
            .args(["snapshot", src.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lock = wait_for_lock(&env.repo);
        (child, lock)
    };
    for (i, refresh) in [Some("1"), None].into_iter().enumerate() {
        write(
            &src.join(format!("new-{i}.txt")),
            &text(52 + i as u64, 10_000),
        );
        let (child, lock) = start_paused(refresh);
        fs::remove_file(&lock).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(11), "{}", out(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("lost its repository lock"),
            "{}",
            out(&o)
        );
        assert_eq!(
            env.snapshot_ids().len(),
            1,
            "no snapshot was written without a lock"
        );
    }
    // A garbled lock: prune runs beside it (as beside any snapshot) but
    // deletes nothing a writer may use while it is there, and says which it is.
    let (child, lock) = start_paused(None);
    fs::write(&lock, noise(53, 300)).unwrap();
    let packs = pack_files(&env.repo).len();
    let p = env.run(&["prune"]);
    assert_eq!(p.status.code(), Some(0), "{}", out(&p));
    assert!(
        String::from_utf8_lossy(&p.stderr).contains("unreadable lock"),
        "{}",
        out(&p)
    );
    assert!(pack_files(&env.repo).len() >= packs, "{}", out(&p));
    // And the run whose lock was garbled stops too: its lock is not its own.
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(11), "{}", out(&o));
    assert_eq!(env.snapshot_ids().len(), 1);
    // A lock hidden from the listing by turning it into a link (and back): the
    // prune meanwhile sees something in locks/ that is no lock file, and
    // deletes nothing while it is there.
    let (child, lock) = start_paused(None);
    let aside = env.path("lock-aside");
    fs::rename(&lock, &aside).unwrap();
    std::os::unix::fs::symlink(&aside, &lock).unwrap();
    let packs = pack_files(&env.repo).len();
    let p = env.run(&["prune"]);
    assert_eq!(p.status.code(), Some(0), "{}", out(&p));
    assert!(
        String::from_utf8_lossy(&p.stderr).contains("not a lock file"),
        "{}",
        out(&p)
    );
    assert!(pack_files(&env.repo).len() >= packs, "{}", out(&p));
    fs::remove_file(&lock).unwrap();
    fs::rename(&aside, &lock).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    env.verified();
}

/// What a copy reveals of sizes: an incompressible upload's exact size once
/// showed in its pack's size. Two uploads whose sizes differ by a hundred bytes
/// now make packs of the same size.
#[test]
fn packs_do_not_reveal_exact_upload_sizes() {
    let sizes: Vec<Vec<u64>> = [200_000usize, 200_100]
        .iter()
        .map(|&n| {
            let env = Env::new();
            let src = env.path("uploads");
            write(&src.join("scan.jpg"), &noise(60, n));
            env.snapshot(&[&src]);
            let mut packs: Vec<u64> = pack_files(&env.repo)
                .iter()
                .map(|p| fs::metadata(p).unwrap().len())
                .collect();
            packs.sort();
            packs
        })
        .collect();
    assert_eq!(sizes[0].len(), 2, "a data pack and a tree pack");
    assert_eq!(sizes[0], sizes[1], "pack sizes reveal the upload's size");
}

/// Attack: another user makes the cache folder (`mkdir -m 777 /var/tmp/cache`)
/// or plants the catalog file in it, to read it and poison its file-cache rows
/// (which name the chunks of unchanged files). Refused.
#[test]
fn a_cache_folder_or_catalog_of_another_user_is_refused() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"a");
    let shared = env.path("shared-cache");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(&shared, Some(65534), Some(65534)).unwrap();
    let o = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &shared)
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("belongs to uid 65534"),
        "{}",
        out(&o)
    );
    // Ours but writable by all: refused too (someone may already have planted
    // files there); made private by its owner, it is used.
    let mine = env.path("my-cache");
    fs::create_dir(&mine).unwrap();
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o777)).unwrap();
    let run = || {
        env.cmd()
            .env("HCBACKUP_CACHE_DIR", &mine)
            .args(["snapshot", src.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = run();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("can be written by others"),
        "{}",
        out(&o)
    );
    fs::set_permissions(&mine, fs::Permissions::from_mode(0o700)).unwrap();
    let o = run();
    assert!(o.status.success(), "{}", out(&o));
    // A link to it that another user owns, in a folder others can write to.
    let shared = env.path("shared");
    fs::create_dir(&shared).unwrap();
    let link = shared.join("cache");
    std::os::unix::fs::symlink(&mine, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let o = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &link)
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("belongs to uid 65534"),
        "{}",
        out(&o)
    );
}

/// Careless or hostile settings files: a FIFO named `.env` (once hung every
/// run), a `.env` that is a link someone else planted to a file of ours whose
/// content they wrote (an upload, say).
#[test]
fn a_fifo_or_a_foreign_link_as_a_settings_file_is_refused() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"a");
    assert!(std::process::Command::new("mkfifo")
        .arg(env.path(".env"))
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a regular file"),
        "{}",
        out(&o)
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    fs::remove_file(env.path(".env")).unwrap();
    let ours = env.path("restored-upload.txt");
    fs::write(&ours, "HCBACKUP_PG_BIN=/tmp/evil\n").unwrap();
    std::os::unix::fs::symlink(&ours, env.path(".env")).unwrap();
    std::os::unix::fs::lchown(env.path(".env"), Some(65534), Some(65534)).unwrap();
    let o = env.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the link belongs to uid 65534"),
        "{}",
        out(&o)
    );
}

/// `HCBACKUP_CHILD_ENV` reaches the password command and nothing else.
#[test]
fn child_env_additions_reach_only_the_password_command() {
    let server = Server::from_env();
    let db = server.create("childenv");
    db.load_clinic(1);
    let env = Env::new();
    let seen = env.path("seen");
    fs::create_dir_all(&seen).unwrap();
    let script = format!(
        "env > {}/$(basename $0).$$\nexec $REAL \"$@\"",
        seen.display()
    );
    let bin = env.pg_bin("bin", &[("pg_dump", &script)]);
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"a");
    let o = env
        .pg_cmd_bin(&server, &db.name, &bin)
        .env_remove("HCBACKUP_PASSWORD")
        .env("VAULT_TOKEN", "vault-token-for-the-command")
        .env("HCBACKUP_CHILD_ENV", "VAULT_TOKEN")
        .env(
            "HCBACKUP_PASSWORD_COMMAND",
            format!("env > {}/command; echo '{PASSWORD}'", seen.display()),
        )
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    for f in fs::read_dir(&seen).unwrap() {
        let f = f.unwrap().path();
        let saw = fs::read_to_string(&f)
            .unwrap()
            .contains("vault-token-for-the-command");
        assert_eq!(saw, f.ends_with("command"), "{}", f.display());
    }
}

/// A restore into the database killed with SIGKILL while pg_restore runs leaves
/// no decrypted dump behind (the temp file has no name).
#[test]
fn a_killed_database_restore_leaves_no_plaintext_dump() {
    let server = Server::from_env();
    let db = server.create("killedrestore");
    db.load_clinic(1);
    let env = Env::new();
    let o = env
        .pg_cmd(&server, &db.name)
        .args(["snapshot", "--no-mirror"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let tmp = env.path("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let bin = env.pg_bin("bin", &[("pg_restore", "sleep 30\nexec $REAL \"$@\"")]);
    let mut child = env
        .pg_cmd_bin(&server, &db.name, &bin)
        .env("TMPDIR", &tmp)
        .args(["restore", "latest", "--db", &format!("{}_copy", db.name)])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::process::Command::new("pkill")
        .args(["-f", "sleep 30"])
        .status();
}

/// What operators type (a restore's reason) and what the system says (`$USER`)
/// reach the compliance report and the audit log: markup is escaped in the
/// Markdown report, and the user recorded is the account's, not `$USER`.
#[test]
fn reasons_and_users_cannot_forge_the_report_or_the_log() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"a");
    env.snapshot(&[&src]);
    let o = env
        .cmd()
        .env("USER", "dr.house")
        .args([
            "restore",
            "latest",
            "--target",
            env.path("r").to_str().unwrap(),
            "--reason",
            "<script>alert(1)</script>",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let report = env.ok(&["report"]);
    assert!(
        !report.contains("<script>") && report.contains("&lt;script&gt;"),
        "{report}"
    );
    let log = env.ok(&["audit"]);
    assert!(!log.contains("dr.house"), "{log}");
}

/// What a copy reveals of a pack's blob count: the sealed header's length (in
/// the pack's last four bytes) once grew by one entry per blob, and zstd
/// squeezed plaintext padding away. Packs of 2 and of 12 uploads now show the
/// same header length.
#[test]
fn pack_headers_do_not_reveal_the_number_of_uploads() {
    let header_len = |files: usize| -> Vec<u32> {
        let env = Env::new();
        let src = env.path("uploads");
        for i in 0..files {
            write(
                &src.join(format!("scan-{i}.jpg")),
                &noise(80 + i as u64, 50_000),
            );
        }
        env.snapshot(&[&src]);
        pack_files(&env.repo)
            .iter()
            .map(|p| {
                let b = fs::read(p).unwrap();
                u32::from_le_bytes(b[b.len() - 4..].try_into().unwrap())
            })
            .collect()
    };
    let (few, many) = (header_len(2), header_len(12));
    assert_eq!(few.len(), 2);
    assert_eq!(few.iter().max(), many.iter().max(), "{few:?} {many:?}");
    assert_eq!(few.iter().min(), many.iter().min(), "{few:?} {many:?}");
}
