//! Hostile restore targets: other users plant links there, before and during a
//! restore run as root. A restore must write exactly the snapshot into the
//! target, and nothing anywhere else.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use crate::common::*;

/// A folder outside the target that an attacker wants restore to write into or
/// chmod, with a file restore would overwrite if it followed a link.
fn victim(env: &Env) -> std::path::PathBuf {
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("a.dcm"), b"victim's own file").unwrap();
    fs::write(outside.join("r.txt"), b"victim's own record").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
    outside
}

fn assert_untouched(outside: &Path) {
    assert_eq!(
        fs::read(outside.join("a.dcm")).unwrap(),
        b"victim's own file"
    );
    assert_eq!(
        fs::read(outside.join("r.txt")).unwrap(),
        b"victim's own record"
    );
    let names: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "restore wrote into the folder outside: {names:?}"
    );
    let m = fs::metadata(outside).unwrap();
    assert_eq!(
        m.mode() & 0o7777,
        0o755,
        "restore chmod'ed the folder outside"
    );
}

fn clinic(env: &Env) -> std::path::PathBuf {
    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(1, 300_000));
    write(&src.join("records/r.txt"), &text(2, 5_000));
    fs::set_permissions(src.join("exams"), fs::Permissions::from_mode(0o750)).unwrap();
    env.snapshot(&[&src]);
    src
}

/// Attack: links planted where the snapshot has a folder (`uploads/exams` → a
/// folder outside) and a file (`uploads/records/r.txt` → a file outside), then
/// `restore --overwrite`. Restore replaces the links themselves.
#[test]
fn links_planted_before_an_overwrite_restore_are_replaced_not_followed() {
    let env = Env::new();
    let src = clinic(&env);
    let outside = victim(&env);
    let target = env.path("t");
    fs::create_dir_all(target.join("uploads/records")).unwrap();
    symlink(&outside, target.join("uploads/exams")).unwrap();
    symlink(outside.join("r.txt"), target.join("uploads/records/r.txt")).unwrap();
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_untouched(&outside);
    assert!(fs::symlink_metadata(target.join("uploads/exams"))
        .unwrap()
        .is_dir());
    assert_same_tree(&src, &target.join("uploads"));
}

/// Attack: the target is empty when restore checks it, and a link appears at
/// `uploads` right after (a race). Restore refuses the entry, says why, and
/// writes nothing outside.
#[test]
fn a_link_planted_during_a_restore_is_refused() {
    let env = Env::new();
    clinic(&env);
    let outside = victim(&env);
    let target = env.path("t");
    fs::create_dir_all(&target).unwrap();
    let child = env
        .cmd()
        .env("HCBACKUP_TEST_PAUSE", "restore-after-check:2")
        .args(["restore", "latest", "--target", target.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    symlink(&outside, target.join("uploads")).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("symbolic link") && err.contains("refusing"),
        "{err}"
    );
    assert_untouched(&outside);
    assert!(fs::symlink_metadata(target.join("uploads"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Attack: the target itself is a link someone planted (a shared /tmp path).
#[test]
fn a_target_that_is_a_link_is_refused() {
    let env = Env::new();
    clinic(&env);
    let outside = victim(&env);
    let link = env.path("restore-here");
    symlink(&outside, &link).unwrap();
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        link.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is a link"),
        "{}",
        out(&o)
    );
    assert_untouched(&outside);
}

/// Attack: a snapshot holding a setuid-root program and a raw disk device (a
/// compromised client wrote it, or a patient's upload folder held them). Without
/// --restore-privileged neither comes back as such.
#[test]
fn setuid_bits_and_devices_need_an_explicit_flag() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("tool"), b"#!/bin/sh\n");
    fs::set_permissions(src.join("tool"), fs::Permissions::from_mode(0o6755)).unwrap();
    let dev = src.join("disk");
    let made = std::process::Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(
        made.success(),
        "this test makes a device node and must run as root (CI does)"
    );
    env.snapshot(&[&src]);
    let plain = env.path("plain");
    let o = env.run(&["restore", "latest", "--target", plain.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("setuid/setgid") && err.contains("device nodes"),
        "{err}"
    );
    let m = fs::metadata(plain.join("uploads/tool")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o755);
    assert!(fs::symlink_metadata(plain.join("uploads/disk")).is_err());
    let full = env.path("full");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        full.to_str().unwrap(),
        "--restore-privileged",
    ]);
    assert_same_tree(&src, &full.join("uploads"));
}

/// Attack (race): the restore makes `uploads`, and before it opens it the
/// attacker (who can write the target) renames it away and puts a folder of
/// their own there, to have root work inside a folder they control (and chown
/// through hard links they place in it). The swapped-in folder is refused.
#[test]
fn a_folder_swapped_in_during_a_restore_is_refused() {
    let env = Env::new();
    clinic(&env);
    let target = env.path("t");
    fs::create_dir_all(&target).unwrap();
    let child = env
        .cmd()
        .env("HCBACKUP_TEST_PAUSE", "restore-after-mkdir:2:1")
        .args(["restore", "latest", "--target", target.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    fs::rename(target.join("uploads"), env.path("moved")).unwrap();
    fs::create_dir(target.join("uploads")).unwrap();
    fs::set_permissions(target.join("uploads"), fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::chown(target.join("uploads"), Some(65534), Some(65534)).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("was replaced by someone else"),
        "{}",
        out(&o)
    );
    assert_eq!(
        fs::read_dir(target.join("uploads")).unwrap().count(),
        0,
        "restore worked in the swapped-in folder"
    );
}

/// A target others can write to (a shared folder): links and special files are
/// made in a private staging folder and renamed into place, with their owner and
/// time, and the staging folder goes away.
#[test]
fn links_restored_into_a_shared_target_keep_their_metadata() {
    let env = Env::new();
    let real = env.path("real-uploads");
    write(&real.join("a.pdf"), b"a");
    let link = env.path("uploads");
    // A link to a file (a link to a folder would be followed).
    symlink(real.join("a.pdf"), &link).unwrap();
    let t = filetime::FileTime::from_unix_time(1_500_000_000, 0);
    filetime::set_symlink_file_times(&link, t, t).unwrap();
    env.snapshot(&[&link]);
    let target = env.path("shared");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::chown(&target, Some(65534), Some(65534)).unwrap();
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let m = fs::symlink_metadata(target.join("uploads")).unwrap();
    assert!(m.file_type().is_symlink());
    assert_eq!(m.mtime(), 1_500_000_000);
    assert_eq!(
        fs::read_link(target.join("uploads")).unwrap(),
        real.join("a.pdf")
    );
    let names: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["uploads"], "no staging folder left: {names:?}");
}

/// Attack: a target given with a trailing `/` (as tab completion writes it) or
/// through a link another user owns in a shared folder.
#[test]
fn a_target_through_someone_elses_link_is_refused() {
    let env = Env::new();
    clinic(&env);
    let outside = victim(&env);
    let link = env.path("restore-here");
    symlink(&outside, &link).unwrap();
    let slash = format!("{}/", link.display());
    let o = env.run(&["restore", "latest", "--target", &slash, "--overwrite"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    let deeper = link.join("new/deep");
    let o = env.run(&["restore", "latest", "--target", deeper.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("belongs to uid 65534"),
        "{}",
        out(&o)
    );
    assert_untouched(&outside);
}

/// Attack: `export --tar` and `report -o` given a name someone planted as a link
/// (to a folder, or to a file they want overwritten).
#[test]
fn outputs_are_never_written_through_a_planted_link() {
    let env = Env::new();
    clinic(&env);
    let outside = victim(&env);
    let to_dir = env.path("export.tar.gz");
    symlink(&outside, &to_dir).unwrap();
    let o = env.run(&["export", "latest", "--tar", to_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let report = env.path("report.md");
    symlink(outside.join("r.txt"), &report).unwrap();
    env.ok(&["report", "-o", report.to_str().unwrap()]);
    assert!(!fs::symlink_metadata(&report)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_untouched(&outside);
}

/// The note an unfinished restore leaves, as `hcbackup` writes it.
fn restore_note(snapshot: &str) -> String {
    format!(r#"{{"hcbackup_restore":1,"snapshot":"{snapshot}","started":"2026-11-30T03:00:00Z"}}"#)
}

fn latest_id(env: &Env) -> String {
    env.snapshot_ids().pop().unwrap()
}

/// Attack: in a target others can write to, someone plants an "unfinished
/// restore" note naming the snapshot beside files of their own with the names,
/// sizes, modes and times the snapshot has, so that a restore would keep them
/// as already restored. A note is trusted only in a target nobody else can
/// change, and only as a plain file of ours; a link there is not followed.
#[test]
fn a_planted_restore_note_does_not_make_a_restore_adopt_planted_files() {
    let env = Env::new();
    let src = clinic(&env);
    let id = latest_id(&env);
    let outside = victim(&env);
    let target = env.path("shared");
    fs::create_dir_all(target.join("uploads/records")).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = target.join("uploads/records/r.txt");
    fs::write(&planted, vec![b'x'; 5_000]).unwrap();
    let note = target.join(".hcbackup-restore-incomplete");
    fs::write(&note, restore_note(&id)).unwrap();
    let restore = || env.run(&["restore", &id, "--target", target.to_str().unwrap()]);
    let o = restore();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("others can write to it"));
    assert_eq!(fs::read(&planted).unwrap(), vec![b'x'; 5_000]);
    // A private target: a note that is someone else's file, or a link to a note, is refused.
    fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&note, Some(65534), Some(65534)).unwrap();
    let o = restore();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a file of ours"));
    fs::remove_file(&note).unwrap();
    let real_note = outside.join("note");
    fs::write(&real_note, restore_note(&id)).unwrap();
    symlink(&real_note, &note).unwrap();
    let o = restore();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be opened"));
    fs::remove_file(&real_note).unwrap();
    assert_untouched(&outside);
    // A note of another snapshot: told which restore is unfinished.
    fs::remove_file(&note).unwrap();
    fs::write(&note, restore_note(&"ab".repeat(32))).unwrap();
    let o = restore();
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unfinished restore of snapshot abababab"),
        "{}",
        out(&o)
    );
    // --overwrite writes everything again and clears the note.
    env.ok(&[
        "restore",
        &id,
        "--target",
        target.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_same_tree(&src, &target.join("uploads"));
    assert!(fs::symlink_metadata(&note).is_err());
}

/// Attack: between a killed restore and its rerun, someone replaces a finished
/// file with one of their own of the same size, mode and time, and plants links
/// at the part names the rerun will write (to a file outside). The rerun writes
/// the snapshot's file again (the owner differs) and never follows the links.
#[test]
fn a_resumed_restore_keeps_only_files_it_finished_itself() {
    let env = Env::new();
    let src = env.path("uploads");
    for i in 0..40 {
        write(&src.join(format!("p{i:02}.pdf")), &text(i, 3_000));
    }
    env.snapshot(&[&src]);
    let id = latest_id(&env);
    let outside = victim(&env);
    let target = env.path("t");
    let restore = |fp: Option<&str>| {
        let mut c = env.cmd();
        if let Some(fp) = fp {
            c.env("HCBACKUP_FAILPOINT", fp);
        }
        c.args([
            "--json",
            "restore",
            &id,
            "--target",
            target.to_str().unwrap(),
        ])
        .output()
        .unwrap()
    };
    let o = restore(Some("restore-before-rename:20"));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(9),
        "{}",
        out(&o)
    );
    let up = target.join("uploads");
    let done: Vec<_> = fs::read_dir(&up)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(done.len() >= 10, "{done:?}");
    // Replace a finished file with a look-alike owned by someone else.
    let swapped = &done[0];
    let m = fs::metadata(swapped).unwrap();
    fs::remove_file(swapped).unwrap();
    fs::write(swapped, vec![b'x'; m.len() as usize]).unwrap();
    fs::set_permissions(swapped, fs::Permissions::from_mode(m.mode() & 0o7777)).unwrap();
    std::os::unix::fs::chown(swapped, Some(65534), Some(65534)).unwrap();
    let t = filetime::FileTime::from_last_modification_time(&m);
    filetime::set_file_mtime(swapped, t).unwrap();
    // Links at the part names of files not yet written.
    let mut links = 0;
    for i in 0..40 {
        let name = format!("p{i:02}.pdf");
        if !up.join(&name).exists() {
            let h = blake3::hash(name.as_bytes()).to_hex();
            let part = up.join(format!(".hcbackup-part-{}", &h[..16]));
            let _ = fs::remove_file(&part);
            symlink(outside.join("a.dcm"), &part).unwrap();
            links += 1;
        }
    }
    assert!(links > 0);
    let o = restore(None);
    assert!(o.status.success(), "{}", out(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["kept"].as_u64(), Some(done.len() as u64 - 1), "{r}");
    assert_same_tree(&src, &up);
    assert_untouched(&outside);
}

/// Attack (found by attack): a snapshot holding a file named like the part name
/// of another (a killed restore's leftover that was backed up). Both come back,
/// fresh, with --overwrite and on resume; neither takes the other's place.
#[test]
fn a_file_named_like_a_part_is_restored_as_itself() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("bigq"), &noise(5, 3 << 20));
    let h = blake3::hash(b"bigq").to_hex();
    write(
        &src.join(format!(".hcbackup-part-{}", &h[..16])),
        &noise(6, 500_000),
    );
    env.snapshot(&[&src]);
    let t = env.path("t");
    env.ok(&["restore", "latest", "--target", t.to_str().unwrap()]);
    assert_same_tree(&src, &t.join("uploads"));
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_same_tree(&src, &t.join("uploads"));
}

/// Attack (found by attack): `report -o` (and every export) through a folder
/// that is another user's link in a shared folder: refused, not followed.
#[test]
fn outputs_are_never_written_through_another_users_link_on_the_way() {
    let env = Env::new();
    clinic(&env);
    let outside = victim(&env);
    let shared = env.path("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let link = shared.join("att");
    symlink(&outside, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
    for args in [vec!["report", "-o"], vec!["export", "latest", "--tar"]] {
        let target = link.join("out.file");
        let mut a = args.clone();
        a.push(target.to_str().unwrap());
        let o = env.run(&a);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", out(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("belongs to uid 65534"),
            "{}",
            out(&o)
        );
    }
    assert_untouched(&outside);
}
