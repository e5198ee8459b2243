//! `schedule`: the printed cron entries run as cron would run them (the daily one
//! makes a snapshot; the first-Sunday guard passes on a first Sunday only), and the
//! systemd calendars are ones systemd accepts.

mod common;

use std::fs;
use std::process::Command;

use common::*;

fn schedule(env: &Env, args: &[&str]) -> String {
    env.ok(&[&["schedule"], args].concat())
}

/// The command part of a cron.d line ("m h dom mon dow user command"), as cron
/// hands it to the shell (`\%` becomes `%`).
fn command_of(line: &str) -> String {
    line.splitn(7, ' ').nth(6).unwrap().replace("\\%", "%")
}

/// Whether a log line starts "2026-12-01T03:00:00Z [PID] ".
fn regex_like_stamp() -> impl Fn(&str) -> bool {
    |l: &str| {
        let (t, rest) = l.split_at(l.find(' ').unwrap_or(0));
        t.len() == 20
            && t.ends_with('Z')
            && t.as_bytes()[10] == b'T'
            && rest.trim_start().starts_with('[')
            && rest.contains("] ")
    }
}

#[test]
fn the_cron_entries_run_as_cron_runs_them() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("laudos/l1.pdf"), &noise(5, 200_000));
    let env_file = env.path("hcbackup.env");
    let log = env.path("hcbackup.log");
    fs::write(
        &env_file,
        format!(
            "HCBACKUP_REPO={}\nUPLOADS_DIR={}\nHCBACKUP_PASSWORD='{PASSWORD}'\nHCBACKUP_CACHE_DIR={}\nHCBACKUP_TEST_KDF=1\n",
            env.repo.display(),
            src.display(),
            env.cache.display()
        ),
    )
    .unwrap();
    let out = schedule(
        &env,
        &[
            "--cron",
            "--env-file",
            env_file.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
        ],
    );
    let daily = out
        .lines()
        .find(|l| l.starts_with("0 3 * * * root "))
        .expect(&out);
    let monthly = out
        .lines()
        .find(|l| l.starts_with("0 2 1-7 * * root "))
        .expect(&out);
    assert!(out.contains("SHELL=/bin/bash"));

    // The daily entry, in an empty environment as cron gives it: a snapshot, then
    // retention. A good night prints nothing (cron mails nothing); every line
    // goes to the log with its time and process id.
    let cron = || {
        Command::new("/bin/bash")
            .arg("-c")
            .arg(command_of(daily))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    let o = cron();
    assert!(o.status.success(), "{}", common::out(&o));
    assert!(
        o.stdout.is_empty() && o.stderr.is_empty(),
        "{}",
        common::out(&o)
    );
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("snapshot") && logged.contains("saved"),
        "{logged}"
    );
    assert!(logged.contains("policy --keep-daily 30"), "{logged}");
    let stamped = regex_like_stamp();
    for l in logged.lines() {
        assert!(stamped(l), "no time on: {l}");
    }
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    // A failed night: the error is on stderr, which cron mails, and in the log.
    fs::rename(&src, env.path("moved")).unwrap();
    let o = cron();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot be read"), "{}", common::out(&o));
    let logged = fs::read_to_string(&log).unwrap();
    let last_err = logged.lines().rev().find(|l| l.contains(" err ")).unwrap();
    assert!(
        last_err.contains("cannot be read") && stamped(last_err),
        "{logged}"
    );
    assert!(logged.trim_end().ends_with("exit 2"), "{logged}");
    fs::rename(env.path("moved"), &src).unwrap();

    // The guard: 6 December 2026 is the first Sunday, the 7th a Monday.
    let cmd = command_of(monthly);
    let guard = cmd.split(" && ").next().unwrap();
    assert!(guard.contains("date +%u"), "{guard}");
    for (day, passes) in [
        ("2026-12-06", true),
        ("2026-12-07", false),
        ("2026-12-13", true),
    ] {
        let g = guard.replace("date +%u", &format!("date -d {day} +%u"));
        let st = Command::new("/bin/bash")
            .arg("-c")
            .arg(&g)
            .status()
            .unwrap();
        assert_eq!(st.success(), passes, "{day}: {g}");
    }
    // (The 13th is a Sunday too: cron's day-of-month field 1-7 keeps it out.)
    assert!(monthly.starts_with("0 2 1-7 "));
    assert!(cmd.contains("verify --destination all --read-data-subset auto --restore-test"));
}

#[test]
fn the_systemd_units_use_calendars_systemd_accepts() {
    let env = Env::new();
    let out = schedule(&env, &["--systemd"]);
    let calendars: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("OnCalendar="))
        .collect();
    assert_eq!(calendars, vec!["*-*-* 03:00:00", "Sun *-*-01..07 02:00:00"]);
    assert!(out.contains("EnvironmentFile=/etc/hcbackup/env"));
    assert_eq!(out.matches("Type=oneshot").count(), 2);
    assert!(
        out.contains(" snapshot\nExecStart="),
        "snapshot, then forget: {out}"
    );
    if let Ok(o) = Command::new("systemd-analyze")
        .args(["calendar", "--iterations=3", "Sun *-*-01..07 02:00:00"])
        .output()
    {
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{text}");
        // Every elapse is a Sunday within the first seven days of its month.
        for l in text
            .lines()
            .filter(|l| l.contains("Iter.") || l.contains("Next elapse"))
        {
            let date = l.split_whitespace().find(|w| w.starts_with("20")).unwrap();
            let day: u32 = date[8..10].parse().unwrap();
            assert!(l.contains("Sun") && day <= 7, "{l}");
        }
    }
}

/// Issue #17: the settings file the entries read is checked when they are
/// written (missing, readable by others, no password, no repository), and a
/// --repo given to `schedule` goes into every entry.
#[test]
fn schedule_checks_the_settings_file_and_keeps_the_repository() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let missing = env.path("nope.env");
    let o = env.run(&[
        "schedule",
        "--cron",
        "--env-file",
        missing.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::out(&o));
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("does not exist yet"), "{said}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("--repo {}", env.repo.display())),
        "{stdout}"
    );

    let loose = env.path("loose.env");
    fs::write(&loose, "UPLOADS_DIR=/srv/uploads\n").unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();
    let o = env
        .cmd_repo("".as_ref())
        .args(["schedule", "--cron", "--env-file", loose.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("chmod 600"), "{said}");
    assert!(said.contains("names no password"), "{said}");
    assert!(said.contains("names no repository"), "{said}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("--repo"));
}

/// `--log-file` copies every line a command prints, timestamped, but never the
/// data `dump` writes on stdout (a patient's file in a log file).
#[test]
fn the_log_file_gets_lines_not_data() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("laudo.txt"), b"PATIENT-SECRET-CONTENT\n");
    env.snapshot(&[&src]);
    let log = env.path("run.log");
    let o = env
        .cmd()
        .args([
            "--log-file",
            log.to_str().unwrap(),
            "dump",
            "latest",
            "uploads/laudo.txt",
        ])
        .output()
        .unwrap();
    assert_eq!(o.stdout, b"PATIENT-SECRET-CONTENT\n", "{}", common::out(&o));
    let logged = fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("PATIENT-SECRET"), "{logged}");
    assert!(
        logged.contains("hcbackup dump started") && logged.contains("exit 0"),
        "{logged}"
    );
    // A link planted where the log goes is not followed.
    let target = env.path("elsewhere");
    fs::write(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, env.path("planted.log")).unwrap();
    let o = env
        .cmd()
        .args([
            "--log-file",
            env.path("planted.log").to_str().unwrap(),
            "snapshots",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", common::out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--log-file"));
    assert_eq!(fs::read(&target).unwrap(), b"");
    // A FIFO there does not hang the run; a file others can write is refused.
    let fifo = env.path("fifo.log");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let open = env.path("open.log");
    fs::write(&open, "").unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    for bad in [&fifo, &open] {
        let o = env
            .cmd()
            .args(["--log-file", bad.to_str().unwrap(), "snapshots"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", common::out(&o));
    }
    // Nor a folder link another user planted on the way (a shared /tmp).
    let logs = env.path("logs");
    fs::create_dir(&logs).unwrap();
    let theirs = env.path("their-link");
    std::os::unix::fs::symlink(&logs, &theirs).unwrap();
    std::os::unix::fs::lchown(&theirs, Some(65534), Some(65534)).unwrap();
    let o = env
        .cmd()
        .args([
            "--log-file",
            theirs.join("x.log").to_str().unwrap(),
            "snapshots",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", common::out(&o));
    assert!(!logs.join("x.log").exists());
    // Nor a file in a system folder.
    let o = env
        .cmd()
        .args(["--log-file", "/dev/hcbackup-test.log", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", common::out(&o));
    assert!(!std::path::Path::new("/dev/hcbackup-test.log").exists());
    // A log on a full disk: the run goes on and says once, on stderr, that
    // its log is lost (it used to stop logging without a word).
    let full = env.path("full");
    let _m = common::mount_tmpfs(&full, "64k");
    let log = full.join("run.log");
    fs::write(&log, "").unwrap();
    let mut filler = fs::File::create(full.join("filler")).unwrap();
    while std::io::Write::write_all(&mut filler, &[0u8; 4096]).is_ok() {}
    drop(filler);
    let o = env
        .cmd()
        .args(["--log-file", log.to_str().unwrap(), "snapshots"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("cannot be written").count(), 1, "{err}");
    assert!(err.contains(log.to_str().unwrap()), "{err}");
    // HCBACKUP_LOG_FILE set but empty is no log file.
    let o = env
        .cmd()
        .env("HCBACKUP_LOG_FILE", "")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::out(&o));
}
