//! Crashes: a run killed at any step leaves every earlier snapshot intact, and the
//! next run succeeds and reuses the packs already written.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use common::*;

fn big_tree(env: &Env) -> std::path::PathBuf {
    let src = env.path("uploads");
    for i in 0..6 {
        write(
            &src.join(format!("exams/video{i}.mp4")),
            &noise(100 + i, 12 << 20),
        );
    }
    for i in 0..200 {
        write(&src.join(format!("records/p{i:03}.txt")), &text(i, 20_000));
    }
    src
}

#[test]
fn killed_at_each_step_then_resumed() {
    let env = Env::new();
    let small = env.path("small");
    write(&small.join("a.txt"), b"day one");
    let s0 = env.snapshot(&[&small])["id"].as_str().unwrap().to_string();
    let src = big_tree(&env);

    for fp in [
        "after-pack:1",
        "after-pack:3",
        "before-index",
        "after-index",
    ] {
        let o = env
            .cmd()
            .env("HCBACKUP_FAILPOINT", fp)
            .args(["snapshot", src.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(9),
            "failpoint {fp} did not fire: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            env.snapshot_ids(),
            vec![s0.clone()],
            "a killed run ({fp}) left a snapshot"
        );
        assert_eq!(
            std::fs::read_dir(env.repo.join("locks")).unwrap().count(),
            1,
            "the killed run's lock"
        );
        // The next run that locks removes the dead run's lock, and says so.
        let r = env.path(&format!("r0-{}", fp.replace(':', "-")));
        let o = env.run(&["restore", &s0, "--target", r.to_str().unwrap()]);
        assert!(o.status.success());
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("removed stale lock") && stderr.contains("is gone"),
            "{stderr}"
        );
        assert_same_tree(&small, &r.join("small"));
        assert_eq!(
            std::fs::read_dir(env.repo.join("locks")).unwrap().count(),
            0
        );
    }
    // The next run reuses what the killed runs wrote.
    let s = env.snapshot(&[&src]);
    let total = s["bytes"].as_u64().unwrap();
    let added = s["bytes_added"].as_u64().unwrap();
    assert!(
        added < total / 20,
        "resumed run stored {added} of {total} bytes again"
    );
    assert!(
        env.repo_size() < total + total / 10,
        "repository holds duplicates: {} for {total}",
        env.repo_size()
    );
    let r = env.restore("latest", "r-final");
    assert_same_tree(&src, &r.join("uploads"));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

#[test]
fn kill_9_at_random_moments() {
    let env = Env::new();
    let src = big_tree(&env);
    for delay_ms in [15u64, 60, 150, 300, 500, 800] {
        let mut child = env
            .cmd()
            .args(["snapshot", src.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever exists restores exactly.
        for (i, id) in env.snapshot_ids().iter().enumerate() {
            let r = env.restore(id, &format!("r-{delay_ms}-{i}"));
            assert_same_tree(&src, &r.join("uploads"));
            std::fs::remove_dir_all(r).unwrap();
        }
    }
    let s = env.snapshot(&[&src]);
    assert_eq!(s["incomplete"], false);
    let r = env.restore("latest", "r-final");
    assert_same_tree(&src, &r.join("uploads"));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

/// Every file under its own name in a killed restore's target is whole, with its
/// metadata; what is unfinished carries a part name.
fn assert_whole_or_absent(src: &std::path::Path, restored: &std::path::Path) -> usize {
    let want = digest(src);
    let mut whole = 0;
    for (rel, e) in digest(restored) {
        let name = String::from_utf8_lossy(&rel).into_owned();
        if e.kind != "file"
            || name
                .rsplit('/')
                .next()
                .unwrap()
                .starts_with(".hcbackup-part-")
        {
            continue;
        }
        assert_eq!(want.get(&rel), Some(&e), "{name} is not whole");
        whole += 1;
    }
    whole
}

/// A killed restore leaves no truncated file under a real name, and the same
/// command run again finishes it, without --overwrite, keeping what was done.
#[test]
fn a_killed_restore_is_finished_by_running_it_again() {
    let env = Env::new();
    let src = big_tree(&env);
    let id = env.snapshot(&[&src])["id"].as_str().unwrap().to_string();
    let t = env.path("r");
    let restore = |fp: Option<&str>| {
        let mut c = env.cmd();
        if let Some(fp) = fp {
            c.env("HCBACKUP_FAILPOINT", fp);
        }
        c.args(["--json", "restore", &id, "--target", t.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let mut whole = 0;
    for fp in [
        "restore-chunk:40",
        "restore-before-rename:50",
        "restore-chunk:25",
    ] {
        let o = restore(Some(fp));
        assert_eq!(o.status.signal(), Some(9), "{fp} did not fire: {}", out(&o));
        let now = assert_whole_or_absent(&src, &t.join("uploads"));
        assert!(
            now >= whole,
            "a rerun lost finished files ({now} < {whole})"
        );
        whole = now;
    }
    assert!(whole > 0, "no file was finished before the kills");
    let o = restore(None);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unfinished restore"),
        "{}",
        out(&o)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["kept"].as_u64(), Some(whole as u64), "{r}");
    assert_eq!(r["files"].as_u64(), Some(206), "{r}");
    assert_same_tree(&src, &t.join("uploads"));
    let names: Vec<_> = std::fs::read_dir(&t)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["uploads"], "the restore's note is gone");
    // Finished: the next run into the same folder is a new restore again.
    let o = restore(None);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not empty"));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

/// A killed export leaves nothing under the file's name (a truncated tar or dump
/// would look whole), and the rerun needs no --overwrite.
#[test]
fn a_killed_export_leaves_no_file_that_looks_whole() {
    let env = Env::new();
    let src = big_tree(&env);
    env.snapshot(&[&src]);
    let dir = env.path("exports");
    std::fs::create_dir(&dir).unwrap();
    let tar = dir.join("files.tar.gz");
    env.killed_at(
        "output-write:20",
        &["export", "latest", "--tar", tar.to_str().unwrap()],
    );
    assert!(!tar.exists(), "a partial export sits under its real name");
    env.ok(&["export", "latest", "--tar", tar.to_str().unwrap()]);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // The killed run's part stays, named as what it is.
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with(".hcbackup-part-")),
        "{names:?}"
    );
    let x = env.path("x");
    std::fs::create_dir(&x).unwrap();
    let st = std::process::Command::new("tar")
        .args(["-xzf", tar.to_str().unwrap(), "-C", x.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    // tar keeps whole seconds only: compare what is in the files.
    let hashes = |d| {
        digest(d)
            .into_iter()
            .map(|(k, e)| (k, e.hash))
            .collect::<Vec<_>>()
    };
    assert_eq!(hashes(&src), hashes(&x));
}

/// Found by the fault campaign: a forget killed between removing a manifest and
/// recording it made this machine (and every other that had seen the manifest)
/// take it for one hidden behind its back: prune stopped and verify failed.
#[test]
fn a_killed_forget_raises_no_false_alarm() {
    let env = Env::new();
    let other = env.path("other-machine");
    let src = env.path("uploads");
    for i in 0..4 {
        write(&src.join(format!("r{i}.txt")), &text(i, 3000));
        env.snapshot(&[&src]);
    }
    let o = env
        .cmd()
        .env("HCBACKUP_CACHE_DIR", &other)
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    env.killed_at("forget-after-delete:2", &["forget", "--keep-last", "1"]);
    assert_eq!(
        env.snapshot_ids().len(),
        2,
        "one of three removed, then killed"
    );
    for cache in [&env.cache, &other] {
        let run = |args: &[&str]| {
            env.cmd()
                .env("HCBACKUP_CACHE_DIR", cache)
                .args(args)
                .output()
                .unwrap()
        };
        let o = run(&["verify"]);
        assert!(o.status.success(), "{}", out(&o));
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("hidden"),
            "{}",
            out(&o)
        );
    }
    env.ok(&["forget", "--keep-last", "1"]);
    env.ok(&["prune"]);
    assert_eq!(env.snapshot_ids().len(), 1);
    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
    let v: serde_json::Value =
        serde_json::from_slice(&env.run(&["--json", "audit", "verify"]).stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}
