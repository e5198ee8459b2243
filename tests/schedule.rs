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
    // retention, everything in the log.
    let st = Command::new("/bin/bash")
        .arg("-c")
        .arg(command_of(daily))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .status()
        .unwrap();
    assert!(st.success());
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("snapshot") && logged.contains("saved"),
        "{logged}"
    );
    assert!(logged.contains("policy --keep-daily 30"), "{logged}");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);

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
    assert!(o.status.success(), "{}", out(&o));
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
