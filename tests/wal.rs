//! WAL archiving (issue #19, step 1): `wal-push` as archive_command and
//! `wal-fetch` as restore_command, on segment files shaped as PostgreSQL
//! writes them (data, then a zero-filled tail after a switch).

mod common;

use std::path::{Path, PathBuf};

use common::*;

const SEGMENT: usize = 16 << 20;

/// A segment of `used` bytes of WAL and a zero-filled tail, as after
/// `pg_switch_wal()` or `archive_timeout`.
fn segment(dir: &Path, name: &str, seed: u64, used: usize) -> PathBuf {
    let mut b = noise(seed, used);
    b.resize(SEGMENT, 0);
    let p = dir.join(name);
    write(&p, &b);
    p
}

fn push(env: &Env, p: &Path) -> std::process::Output {
    env.cmd()
        .args(["--json", "wal-push"])
        .arg(p)
        .output()
        .unwrap()
}

fn fetch(env: &Env, name: &str, dest: &Path) -> Option<i32> {
    env.cmd()
        .args(["wal-fetch", name])
        .arg(dest)
        .output()
        .unwrap()
        .status
        .code()
}

/// `wal-fetch` with a wrong password: it succeeds only where it needs no
/// unlock (a segment fetched ahead, an answer known a moment ago).
fn fetch_locked_out(env: &Env, name: &str, dest: &Path) -> std::process::Output {
    env.cmd()
        .env("HCBACKUP_PASSWORD", "not the password")
        .args(["wal-fetch", name])
        .arg(dest)
        .output()
        .unwrap()
}

/// The record file of the only (or newest) segment pushed since `before`.
fn records(env: &Env) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(env.repo.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

const SEG1: &str = "000000010000000000000001";
const SEG2: &str = "000000010000000000000002";

#[test]
fn a_pushed_segment_comes_back_byte_exact_and_costs_only_its_data() {
    let env = Env::new();
    let wal = env.path("pg_wal");
    let one = segment(&wal, SEG1, 1, 300_000);
    let o = push(&env, &one);
    assert!(o.status.success(), "{}", out(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (doc["name"].as_str(), doc["already"].as_bool()),
        (Some(SEG1), Some(false))
    );
    // A switched segment's zero tail is nearly free: the second costs its data.
    let before = env.repo_size();
    let two = segment(&wal, SEG2, 2, 200_000);
    assert!(push(&env, &two).status.success());
    let grew = env.repo_size() - before;
    assert!(
        grew < 600_000,
        "a segment of 200 KB of WAL added {grew} bytes"
    );
    // PostgreSQL may push a name again after a crash: the same bytes succeed.
    let o = push(&env, &one);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["already"],
        true
    );
    // restore_command writes to a temporary name of PostgreSQL's choosing.
    let dest = env.path("restored/pg_wal/RECOVERYXLOG");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    for (name, src) in [(SEG1, &one), (SEG2, &two)] {
        assert_eq!(fetch(&env, name, &dest), Some(0));
        assert!(
            std::fs::read(&dest).unwrap() == std::fs::read(src).unwrap(),
            "{name}"
        );
    }
    // Never archived: exit 1, nothing written (the end of the WAL for PostgreSQL).
    std::fs::remove_file(&dest).unwrap();
    assert_eq!(fetch(&env, "000000010000000000000007", &dest), Some(1));
    assert_eq!(fetch(&env, "00000002.history", &dest), Some(1));
    assert!(!dest.exists());
    // Prune keeps what only WAL needs.
    env.ok(&["prune"]);
    assert_eq!(fetch(&env, SEG2, &dest), Some(0));
    assert!(std::fs::read(&dest).unwrap() == std::fs::read(&two).unwrap());
    env.verified();
}

#[test]
fn a_name_archived_with_other_bytes_is_never_replaced() {
    let env = Env::new();
    let wal = env.path("pg_wal");
    let one = segment(&wal, SEG1, 1, 100_000);
    assert!(push(&env, &one).status.success());
    let first = std::fs::read(&one).unwrap();
    // Another cluster (or a restored one on an old timeline) writes the same name.
    segment(&wal, SEG1, 99, 100_000);
    let o = push(&env, &one);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("other content") && out(&o).contains("timeline"),
        "{}",
        out(&o)
    );
    let dest = env.path("back");
    assert_eq!(fetch(&env, SEG1, &dest), Some(0));
    assert!(
        std::fs::read(&dest).unwrap() == first,
        "the archived bytes changed"
    );
    env.verified();
}

#[test]
fn names_postgresql_never_archives_are_refused() {
    let env = Env::new();
    let odd = env.path("pg_wal/archive_status");
    write(&odd.join("x"), b"x");
    let o = push(&env, &odd.join("x"));
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("wal-push %p"), "{}", out(&o));
    // %p and %f swapped in restore_command: recovery must stop, not end with
    // nothing replayed (exit 255, above PostgreSQL's 125).
    let o = env
        .cmd()
        .args(["wal-fetch", "pg_wal/RECOVERYXLOG", SEG1])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255), "{}", out(&o));
    assert!(out(&o).contains("recovery stops"), "{}", out(&o));
}

#[test]
fn a_damaged_or_swapped_record_stops_recovery_and_verify_names_it() {
    let env = Env::new();
    let wal = env.path("pg_wal");
    assert!(push(&env, &segment(&wal, SEG1, 1, 50_000)).status.success());
    let r1 = records(&env);
    assert!(push(&env, &segment(&wal, SEG2, 2, 50_000)).status.success());
    let r2: Vec<PathBuf> = records(&env)
        .into_iter()
        .filter(|p| !r1.contains(p))
        .collect();
    let (rec1, rec2) = (&r1[0], &r2[0]);
    let dest = env.path("back");
    // Someone with access to the storage puts segment 1's record at segment 2's
    // place: it does not open there.
    let saved = std::fs::read(rec2).unwrap();
    std::fs::copy(rec1, rec2).unwrap();
    let o = env
        .cmd()
        .args(["wal-fetch", SEG2])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255), "{}", out(&o));
    let v = env.cmd().args(["--json", "verify"]).output().unwrap();
    assert!(!v.status.success());
    assert!(out(&v).contains("wal/"), "{}", out(&v));
    std::fs::write(rec2, &saved).unwrap();
    // A damaged chunk: the fetch stops too, and leaves no partial file.
    for p in pack_files(&env.repo) {
        flip_byte(&p, 700);
    }
    assert_eq!(fetch(&env, SEG1, &dest), Some(255));
    assert!(!dest.exists());
}

#[test]
fn a_push_killed_before_its_record_is_not_archived_and_is_pushed_again() {
    let env = Env::new();
    let one = segment(&env.path("pg_wal"), SEG1, 1, 400_000);
    env.killed_at("wal-before-record", &["wal-push", one.to_str().unwrap()]);
    let dest = env.path("back");
    // Not reported archived, so PostgreSQL kept the segment and pushes it again.
    assert_eq!(fetch(&env, SEG1, &dest), Some(1));
    assert!(push(&env, &one).status.success());
    assert_eq!(fetch(&env, SEG1, &dest), Some(0));
    assert!(std::fs::read(&dest).unwrap() == std::fs::read(&one).unwrap());
    env.verified();
}

#[test]
fn archived_wal_reaches_a_mirror_and_is_fetched_from_it() {
    let env = Env::new();
    let usb = env.usb_destination();
    let one = segment(&env.path("pg_wal"), SEG1, 1, 100_000);
    assert!(push(&env, &one).status.success());
    env.ok(&["mirror"]);
    // The server is lost: the copy on the USB disk serves the fetch.
    std::fs::remove_dir_all(&env.repo).unwrap();
    let dest = env.path("back");
    let o = env
        .cmd_repo(usb.as_os_str())
        .args(["wal-fetch", SEG1])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(std::fs::read(&dest).unwrap() == std::fs::read(&one).unwrap());
}

/// Every failure of wal-fetch is 255, also those before it runs (a setting, the
/// command line): exit 1 would end a recovery early, silently.
#[test]
fn wal_fetch_fails_with_255_however_it_fails() {
    let env = Env::new();
    let one = segment(&env.path("pg_wal"), SEG1, 1, 10_000);
    assert!(push(&env, &one).status.success());
    let dest = env.path("back");
    let code = |c: &mut std::process::Command| c.output().unwrap().status.code();
    // No cache folder (a server started with an empty environment).
    let mut c = env.cmd();
    c.env_remove("HCBACKUP_CACHE_DIR")
        .env_remove("HOME")
        .args(["wal-fetch", SEG1])
        .arg(&dest);
    assert_eq!(code(&mut c), Some(255));
    // %p left out of restore_command.
    assert_eq!(code(env.cmd().args(["wal-fetch", SEG1])), Some(255));
    // A malformed hcbackup.toml in the data folder.
    std::fs::write(env.path("hcbackup.toml"), "nonsense = [\n").unwrap();
    assert_eq!(
        code(env.cmd().args(["wal-fetch", SEG1]).arg(&dest)),
        Some(255)
    );
    std::fs::remove_file(env.path("hcbackup.toml")).unwrap();
    assert_eq!(
        code(env.cmd().args(["wal-fetch", SEG1]).arg(&dest)),
        Some(0)
    );
}

/// Two pushes of one name with other bytes at the same moment: at most one
/// is told "archived", and a fetch gives its bytes.
#[test]
fn racing_pushes_of_one_name_never_both_win() {
    let env = Env::new();
    for round in 0..6u64 {
        let name = format!("0000000100000000000000{:02X}", 0x10 + round);
        let a = segment(&env.path("a"), &name, 100 + round, 200_000);
        let b = segment(&env.path("b"), &name, 200 + round, 200_000);
        let start = |p: &Path| {
            env.cmd()
                .env("HCBACKUP_LOCK_WAIT", "60")
                .arg("wal-push")
                .arg(p)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let (mut pa, mut pb) = (start(&a), start(&b));
        let (ra, rb) = (pa.wait().unwrap().success(), pb.wait().unwrap().success());
        assert!(!(ra && rb), "round {round}: both pushes said archived");
        let dest = env.path("back");
        assert_eq!(
            fetch(&env, &name, &dest),
            Some(if ra || rb { 0 } else { 1 })
        );
        if ra || rb {
            let won = if ra { &a } else { &b };
            assert!(
                std::fs::read(&dest).unwrap() == std::fs::read(won).unwrap(),
                "round {round}"
            );
        }
    }
    env.verified();
}

/// A record deleted behind the repository's back is named by verify (a gap,
/// or a record this catalog saw), stops prune, and repair brings it back.
#[test]
fn a_deleted_record_is_found_stops_prune_and_is_repaired() {
    let env = Env::new();
    let usb = env.usb_destination();
    let wal = env.path("pg_wal");
    let names = [SEG1, SEG2, "000000010000000000000003"];
    let mut records_before = Vec::new();
    for (i, n) in names.iter().enumerate() {
        assert!(push(&env, &segment(&wal, n, i as u64 + 1, 30_000))
            .status
            .success());
        let now = records(&env);
        records_before.push(
            now.into_iter()
                .find(|p| !records_before.contains(p))
                .unwrap(),
        );
    }
    env.ok(&["mirror"]);
    // The middle one: a gap, seen with any catalog.
    let middle = records_before[1].clone();
    std::fs::rename(&middle, env.path("stash")).unwrap();
    let fresh = env.path("fresh-cache");
    let v = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &fresh)
        .args(["--json", "verify", "--destination", "local"])
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1), "{}", out(&v));
    assert!(
        out(&v).contains(&format!("WAL segment {SEG2} is missing")),
        "{}",
        out(&v)
    );
    // The last one, with this catalog that saw it: named, and prune stops.
    std::fs::remove_file(&records_before[2]).unwrap();
    let before = pack_files(&env.repo).len();
    let p = env.run(&["prune"]);
    assert_eq!(p.status.code(), Some(1), "{}", out(&p));
    assert!(out(&p).contains("archived before, is gone"), "{}", out(&p));
    assert_eq!(pack_files(&env.repo).len(), before, "prune deleted data");
    let dest = env.path("back");
    assert_eq!(fetch(&env, SEG2, &dest), Some(1));
    // Repair brings both back from the USB copy.
    let r = env.run(&["repair", "--destination", "local"]);
    assert!(r.status.success(), "{}", out(&r));
    for n in names {
        assert_eq!(fetch(&env, n, &dest), Some(0), "{n}");
    }
    env.verified();
    let _ = usb;
}

/// A pack the catalog believes in but the storage lost: the next push stores
/// the shared chunks again instead of answering "archived" for nothing.
#[test]
fn a_push_never_trusts_a_pack_that_is_gone() {
    let env = Env::new();
    let wal = env.path("pg_wal");
    assert!(push(&env, &segment(&wal, SEG1, 1, 30_000)).status.success());
    let stash = env.path("stash");
    std::fs::create_dir_all(&stash).unwrap();
    for (i, p) in pack_files(&env.repo).iter().enumerate() {
        std::fs::rename(p, stash.join(i.to_string())).unwrap();
    }
    let two = segment(&wal, SEG2, 2, 30_000);
    let o = push(&env, &two);
    assert!(o.status.success(), "{}", out(&o));
    let dest = env.path("back");
    assert_eq!(fetch(&env, SEG2, &dest), Some(0));
    assert!(std::fs::read(&dest).unwrap() == std::fs::read(&two).unwrap());
    // Pushed again, the first one's data is stored again too.
    let o = push(&env, &wal.join(SEG1));
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(fetch(&env, SEG1, &dest), Some(0));
    env.verified();
}

/// A copy's WAL record is never replaced by mirror, and a different one is said.
#[test]
fn mirror_never_replaces_a_copys_wal_record() {
    let env = Env::new();
    let usb = env.usb_destination();
    assert!(push(&env, &segment(&env.path("pg_wal"), SEG1, 1, 10_000))
        .status
        .success());
    env.ok(&["mirror"]);
    let theirs = std::fs::read_dir(usb.join("wal"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut changed = std::fs::read(&theirs).unwrap();
    changed.push(0);
    std::fs::write(&theirs, &changed).unwrap();
    // The catalog's record of the copy says nothing changed; a full check lists it.
    let o = env.run(&["mirror", "--full-check"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("holds another record of this name"),
        "{}",
        out(&o)
    );
    assert_eq!(
        std::fs::read(&theirs).unwrap(),
        changed,
        "mirror replaced the copy's record"
    );
}

#[test]
fn a_fifo_is_refused_at_once() {
    let env = Env::new();
    let p = env.path("pg_wal").join(SEG1);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&p)
        .status()
        .unwrap();
    assert!(made.success());
    let o = env.cmd().arg("wal-push").arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("not a regular file"), "{}", out(&o));
}

#[test]
fn the_next_segments_are_fetched_ahead_and_served_without_the_repository() {
    let env = Env::new();
    let src = env.path("src_wal");
    let names: Vec<String> = (1..=4)
        .map(|n| format!("0000000100000000000000{n:02X}"))
        .collect();
    for (i, n) in names.iter().enumerate() {
        let p = segment(&src, n, 40 + i as u64, 200_000);
        assert!(push(&env, &p).status.success());
    }
    // PostgreSQL's own folder: fetches land in pg_wal/RECOVERYXLOG.
    let pg_wal = env.path("data/pg_wal");
    std::fs::create_dir_all(&pg_wal).unwrap();
    let dest = pg_wal.join("RECOVERYXLOG");
    assert_eq!(fetch(&env, &names[0], &dest), Some(0));
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(src.join(&names[0])).unwrap()
    );
    let spool = pg_wal.join("hcbackup-prefetch");
    for n in &names[1..] {
        assert!(spool.join(n).is_file(), "{n} was not fetched ahead");
    }
    // Served from the spool: the repository is not even opened (a wrong
    // password would fail it), and the bytes are the archived ones.
    let o = fetch_locked_out(&env, &names[1], &dest);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(src.join(&names[1])).unwrap()
    );
    assert!(!spool.join(&names[1]).exists());
    // Another repository never gets this one's spool: it is opened (and
    // here, missing, cannot tell).
    let o = env
        .cmd_repo(env.path("no-such-repo").as_os_str())
        .args(["wal-fetch", &names[3]])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255), "{}", out(&o));
    assert!(spool.join(&names[3]).is_file());
    // A link planted in the spool is never served.
    let planted = env.path("planted");
    write(&planted, b"not WAL");
    std::fs::remove_file(spool.join(&names[2])).unwrap();
    std::os::unix::fs::symlink(&planted, spool.join(&names[2])).unwrap();
    assert_eq!(fetch(&env, &names[2], &dest), Some(0));
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(src.join(&names[2])).unwrap()
    );
    // The end of the archive: the spool is emptied.
    assert_eq!(fetch(&env, "000000010000000000000009", &dest), Some(1));
    assert!(!spool.exists(), "the spool outlived the recovery");
    // A folder others may write in gets no spool: its entries could be
    // swapped between a check and a use.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pg_wal, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(fetch(&env, &names[0], &dest), Some(0));
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(src.join(&names[0])).unwrap()
    );
    assert!(!spool.exists(), "a spool in a folder others may write in");
    env.verified();
}

#[test]
fn restore_lays_out_the_first_segments_and_keeps_them_ahead_while_recovery_runs() {
    use hcbackup::model::wal::WalRecord;
    use hcbackup::ops::wal_spool::{prefill, Feeder, PREFILL, SPOOL};
    // 1 MiB segments (initdb --wal-segsize=1): PREFILL and six more.
    let env = Env::new();
    let src = env.path("src_wal");
    let names: Vec<String> = (1..=PREFILL + 6)
        .map(|n| format!("0000000100000000000000{n:02X}"))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let mut b = noise(300 + i as u64, 20_000);
        b.resize(1 << 20, 0);
        write(&src.join(name), &b);
        let o = push(&env, &src.join(name));
        assert!(o.status.success(), "{}", out(&o));
    }
    let repo = hcbackup::repo::Repository::open(
        std::sync::Arc::new(hcbackup::storage::LocalBackend::new(&env.repo)),
        &mut || Ok(zeroize::Zeroizing::new(PASSWORD.to_string())),
        &env.cache,
    )
    .unwrap();
    let source = env.repo.to_str().unwrap();
    let pg_wal = env.path("data/pg_wal");
    std::fs::create_dir_all(&pg_wal).unwrap();
    let spool = pg_wal.join(SPOOL);
    let spooled = || {
        let mut v: Vec<String> = std::fs::read_dir(&spool)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 24)
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // A target archived in the third segment: the next two (the first
    // transaction after the moment may be there), none after them.
    let ahead = prefill(&repo, &names[0], &pg_wal, source, &|r: &WalRecord| {
        r.name == names[2]
    });
    assert_eq!(ahead, None);
    assert_eq!(spooled(), names[..5]);
    // To the end: PREFILL of them, and where to go on.
    let ahead = prefill(&repo, &names[0], &pg_wal, source, &|_: &WalRecord| false);
    assert_eq!(spooled(), names[..PREFILL]);
    assert_eq!(
        ahead.as_ref().map(|a| a.next.as_str()),
        Some(names[PREFILL].as_str())
    );
    // Recovery takes them one by one, and never opens the repository (a
    // wrong password would fail it): the restore, its repository open,
    // keeps the spool fed.
    let last = |_: &WalRecord| false;
    let mut feeder = Feeder {
        repo: &repo,
        dest: pg_wal.join("RECOVERYXLOG"),
        source: source.to_string(),
        ahead,
        last: &last,
        probe: Some("00000002.history".into()),
    };
    for name in &names {
        feeder.feed();
        let o = fetch_locked_out(&env, name, &feeder.dest);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", out(&o));
        assert_eq!(
            std::fs::read(&feeder.dest).unwrap(),
            std::fs::read(src.join(name)).unwrap(),
            "{name}"
        );
    }
    // The end of the archive: nothing more to feed.
    feeder.feed();
    assert!(feeder.ahead.is_none());
    assert!(spooled().is_empty(), "{:?}", spooled());
    // Recovery's timeline probe is answered from what the feeder checked a
    // moment ago, without the repository...
    let dest = feeder.dest.clone();
    let o = fetch_locked_out(&env, "00000002.history", &dest);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    // ...but not once that moment is past: then the repository is asked.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = fetch_locked_out(&env, "00000002.history", &dest);
    assert_eq!(o.status.code(), Some(255), "{}", out(&o));
    // A history file archived meanwhile: the next check drops the answer,
    // and the fetch brings it back; the probe moves to the next timeline.
    let history = src.join("00000002.history");
    write(&history, b"1\t0/3000000\tno recovery target specified\n");
    assert!(push(&env, &history).status.success());
    feeder.feed();
    assert_eq!(feeder.probe.as_deref(), Some("00000003.history"));
    assert_eq!(fetch(&env, "00000002.history", &dest), Some(0));
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&history).unwrap()
    );
    feeder.feed();
    let o = fetch_locked_out(&env, "00000003.history", &dest);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    // An answer planted for another repository is never taken.
    let o = env
        .cmd_repo(env.path("no-such-repo").as_os_str())
        .args(["wal-fetch", "00000003.history"])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(255), "{}", out(&o));
    env.verified();
}

#[test]
fn timeline_1_has_no_history_file_and_saying_so_needs_no_unlock() {
    let env = Env::new();
    let dest = env.path("pg_wal/RECOVERYHISTORY");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    // PostgreSQL asks for it when it promotes a copy recovered on timeline 1.
    let o = fetch_locked_out(&env, "00000001.history", &dest);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(!dest.exists());
    // Any other history file is looked up: a wrong password cannot tell.
    let o = fetch_locked_out(&env, "00000002.history", &dest);
    assert_eq!(o.status.code(), Some(255), "{}", out(&o));
    env.verified();
}
