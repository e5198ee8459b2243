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
