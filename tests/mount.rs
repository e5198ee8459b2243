//! `mount` (issue #17): the snapshots as a read-only FUSE file system.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// `hcbackup mount MP`, once the snapshots show there.
fn mounted(env: &Env, mp: &std::path::Path) -> std::process::Child {
    let child = env
        .cmd()
        .args(["mount", mp.to_str().unwrap()])
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !mp.join("ids").exists() {
        assert!(start.elapsed() < Duration::from_secs(20), "not mounted");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

#[test]
fn snapshots_mount_read_only_by_id_date_and_latest() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/video.mp4"), &noise(2, 3_000_000));
    write(&src.join("ficha.txt"), b"first");
    std::os::unix::fs::symlink("ficha.txt", src.join("link")).unwrap();
    let first = env.snapshot(&[&src]);
    write(&src.join("ficha.txt"), b"second");
    env.snapshot(&[&src]);
    let mp = env.path("mp");
    std::fs::create_dir(&mp).unwrap();
    let mut child = mounted(&env, &mp);
    let latest = mp.join("latest/uploads");
    assert_same_tree(&src, &latest);
    let short = &first["id"].as_str().unwrap()[..8];
    assert_eq!(
        std::fs::read(mp.join("ids").join(short).join("uploads/ficha.txt")).unwrap(),
        b"first"
    );
    assert_eq!(std::fs::read_dir(mp.join("snapshots")).unwrap().count(), 2);
    let e = std::fs::write(latest.join("new.txt"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    assert!(std::process::Command::new("umount")
        .arg(&mp)
        .status()
        .unwrap()
        .success());
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}");

    // SIGTERM (or Ctrl-C) unmounts cleanly: no dead mount, no lock left.
    let mut child = mounted(&env, &mp);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}");
    assert_eq!(std::fs::read_dir(&mp).unwrap().count(), 0, "still mounted");
    assert!(std::fs::read_dir(env.repo.join("locks")).map_or(true, |d| d.count() == 0));

    // Busy (a file open in it): unmounted lazily, never a dead mount left.
    let mut child = mounted(&env, &mp);
    let open = std::fs::File::open(mp.join("latest/uploads/ficha.txt")).unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait().unwrap();
    assert!(st.success(), "{st:?}");
    drop(open);
    assert_eq!(std::fs::read_dir(&mp).unwrap().count(), 0, "still mounted");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(mp.to_str().unwrap()), "{mounts}");
    env.verified();
}
