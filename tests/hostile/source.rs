//! Hostile sources: file contents and names chosen by an attacker.

use std::fs;
use std::os::unix::ffi::OsStrExt;

use hcbackup::model::tree::Tree;

use crate::common::*;

/// Attack: an upload whose bytes are exactly the encoding of an empty folder (17
/// bytes). Data chunks and trees once shared one id space, so dedup stored only
/// one of them and every empty folder (or the upload) then failed to restore.
#[test]
fn an_upload_holding_a_tree_encoding_breaks_nothing() {
    let env = Env::new();
    let src = env.path("uploads");
    let empty_tree = Tree::new(vec![]).to_bytes();
    assert_eq!(empty_tree.len(), 17);
    // One night: the crafted upload first, empty folders in the next snapshot.
    write(&src.join("exams/crafted.bin"), &empty_tree);
    env.snapshot(&[&src]);
    fs::create_dir_all(src.join("empty-a")).unwrap();
    fs::create_dir_all(src.join("records/empty-b")).unwrap();
    env.snapshot(&[&src]);
    // And the other order: an empty folder stored first, the upload after.
    let src2 = env.path("second");
    fs::create_dir_all(src2.join("empty-c")).unwrap();
    env.snapshot(&[&src2]);
    write(&src2.join("late/crafted.bin"), &empty_tree);
    env.snapshot(&[&src2]);
    for (i, id) in env.snapshot_ids().iter().enumerate() {
        let t = env.restore(id, &format!("r{i}"));
        assert!(t.join(if i < 2 { "uploads" } else { "second" }).is_dir());
    }
    assert_same_tree(&src, &env.path("r1/uploads"));
    assert_same_tree(&src2, &env.path("r3/second"));
    assert_eq!(
        fs::read(env.path("r3/second/late/crafted.bin")).unwrap(),
        empty_tree
    );
    let v = env.run(&["verify", "--read-data"]);
    assert!(v.status.success(), "{}", out(&v));
}

/// Attack: while the walk runs as root, a file it has listed is swapped for a
/// link to a file the attacker cannot read (`/etc/shadow`, here a stand-in), so
/// that the backup stores the secret under the upload's name and a restore hands
/// it back. The swap happens at the exact moment between listing and opening.
#[test]
fn a_file_swapped_for_a_link_during_the_walk_is_not_stored() {
    let env = Env::new();
    let src = env.path("uploads");
    let secret = env.path("shadow");
    fs::write(&secret, b"root:SECRET-HASH:19000").unwrap();
    write(&src.join("exam.pdf"), b"an upload");
    // Hits of the pause: 1 = the source folder, 2 = exam.pdf.
    let child = env
        .cmd()
        .env("HCBACKUP_TEST_PAUSE", "archive-before-open:2:2")
        .args(["--json", "snapshot", src.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    fs::remove_file(src.join("exam.pdf")).unwrap();
    std::os::unix::fs::symlink(&secret, src.join("exam.pdf")).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("exam.pdf") && err.contains("replaced"),
        "{err}"
    );
    let r = env.restore("latest", "r");
    assert!(
        find_in_tree(&r, b"SECRET-HASH").is_none(),
        "the secret was stored"
    );
    assert!(!r.join("uploads/exam.pdf").exists());
}

/// Attack: a folder swapped for a link to another folder while the walk is
/// about to enter it.
#[test]
fn a_folder_swapped_for_a_link_during_the_walk_is_not_entered() {
    let env = Env::new();
    let src = env.path("uploads");
    let private = env.path("private");
    write(&private.join("key.pem"), b"PRIVATE-KEY-MATERIAL");
    write(&src.join("exams/a.pdf"), b"an upload");
    let child = env
        .cmd()
        .env("HCBACKUP_TEST_PAUSE", "archive-before-open:2:2")
        .args(["snapshot", src.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    fs::rename(src.join("exams"), env.path("moved-exams")).unwrap();
    std::os::unix::fs::symlink(&private, src.join("exams")).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    let r = env.restore("latest", "r");
    assert!(
        find_in_tree(&r, b"PRIVATE-KEY-MATERIAL").is_none(),
        "the private folder was stored"
    );
}

/// Attack: names built to disturb whoever reads a listing (escape sequences
/// that clear the screen or forge a line, bidirectional overrides). They are
/// stored and restored as they are, and `ls` shows them escaped.
#[test]
fn names_with_control_characters_are_kept_and_listed_escaped() {
    let env = Env::new();
    let src = env.path("uploads");
    let names: [&[u8]; 3] = [
        b"evil\n2026-01-01 forged line",
        b"\x1b[2Jclear",
        "exam\u{202e}fdp.exe".as_bytes(),
    ];
    for n in names {
        write(&src.join(std::ffi::OsStr::from_bytes(n)), b"x");
    }
    env.snapshot(&[&src]);
    let listing = env.ok(&["ls", "latest"]);
    assert!(
        !listing.contains('\x1b') && !listing.contains('\u{202e}'),
        "{listing:?}"
    );
    assert!(
        listing.contains("evil\\n2026")
            && listing.contains("\\x1b[2Jclear")
            && listing.contains("\\u{202e}"),
        "{listing}"
    );
    assert_eq!(
        listing
            .lines()
            .filter(|l| l.contains("forged line"))
            .count(),
        1
    );
    assert_same_tree(&src, &env.restore("latest", "r").join("uploads"));
}

/// A tar member with a hand-written name (the `tar` crate refuses `..`).
fn member(
    b: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    mode: u32,
    link: &[u8],
    data: &[u8],
) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn tar_gz(members: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    members(&mut b);
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

/// Attack: an old tar.gz (import-legacy) whose members climb out (`../x`), start
/// at `/`, go through a link member (`link -> /outside`, then `link/passwd`),
/// repeat a name, or carry setuid bits. Nothing is extracted on import, and the
/// restore of what was imported writes inside its target only.
#[test]
fn hostile_tar_members_of_an_old_backup_stay_inside() {
    let env = Env::new();
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let old = env.path("old");
    fs::create_dir_all(&old).unwrap();
    let link_target = outside.as_os_str().as_bytes().to_vec();
    let good = tar_gz(|b| {
        member(
            b,
            b"/abs/file",
            tar::EntryType::Regular,
            0o644,
            b"",
            b"absolute",
        );
        member(
            b,
            b"./link",
            tar::EntryType::Symlink,
            0o777,
            &link_target,
            b"",
        );
        member(
            b,
            b"./link/passwd",
            tar::EntryType::Regular,
            0o644,
            b"",
            b"through the link",
        );
        member(b, b"./dup", tar::EntryType::Regular, 0o644, b"", b"first");
        member(b, b"./dup", tar::EntryType::Regular, 0o644, b"", b"second");
        member(
            b,
            b"./tool",
            tar::EntryType::Regular,
            0o4755,
            b"",
            b"#!/bin/sh\n",
        );
    });
    let climbing = tar_gz(|b| {
        member(
            b,
            b"../../escape",
            tar::EntryType::Regular,
            0o644,
            b"",
            b"out",
        )
    });
    let (g, c) = (
        old.join("files_backup_2025-03-01_03-00-00.tar.gz"),
        old.join("files_backup_2025-03-02_03-00-00.tar.gz"),
    );
    fs::write(&g, good).unwrap();
    fs::write(&c, climbing).unwrap();
    let o = env
        .cmd()
        .env("UPLOADS_DIR", env.path("uploads"))
        .arg("import-legacy")
        .args([&g, &c])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("leaves the folder"), "{}", out(&o));
    assert_eq!(env.snapshot_ids().len(), 1);
    let r = env.restore("latest", "r").join("uploads");
    assert_eq!(fs::read(r.join("abs/file")).unwrap(), b"absolute");
    assert!(fs::symlink_metadata(r.join("link")).unwrap().is_dir());
    assert_eq!(
        fs::read(r.join("link/passwd")).unwrap(),
        b"through the link"
    );
    assert_eq!(fs::read(r.join("dup")).unwrap(), b"second");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(r.join("tool")).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert!(
        fs::read_dir(&outside).unwrap().next().is_none(),
        "something was written outside"
    );
    assert!(find_in_tree(env.dir.path(), b"out").is_none_or(|p| !p.ends_with("escape")));
}

/// Attack: a folder chain deeper than any clinic's (1,500 levels) in the uploads,
/// which once overflowed the stack and aborted every nightly snapshot.
#[test]
fn a_folder_chain_too_deep_is_left_out_and_the_rest_saved() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exam.pdf"), b"kept");
    let mut deep = src.join("d");
    for _ in 0..1500 {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    let o = env.run(&["snapshot", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("folders deep"),
        "{}",
        out(&o)
    );
    let r = env.restore("latest", "r");
    assert_eq!(fs::read(r.join("uploads/exam.pdf")).unwrap(), b"kept");
    let v = env.run(&["verify"]);
    assert!(v.status.success(), "{}", out(&v));
}

/// Names that disturb a terminal also reach `snapshots` (a source folder's
/// name) and error lines; and `ls … | head` ends quietly.
#[test]
fn listings_escape_every_name_and_end_quietly_on_a_closed_pipe() {
    let env = Env::new();
    let src = env.path("up\x1b[2J\u{202e}loads");
    for i in 0..2000 {
        write(&src.join(format!("f{i:04}")), b"x");
    }
    env.snapshot(&[&src]);
    let list = env.ok(&["snapshots"]);
    assert!(
        !list.contains('\x1b') && !list.contains('\u{202e}'),
        "{list:?}"
    );
    let mut child = env
        .cmd()
        .args(["ls", "latest"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("panicked"),
        "{}",
        out(&o)
    );
}

/// A careless moment rather than an attack: an exam file rewritten in place
/// while the snapshot reads it. What was saved may mix old and new bytes, so
/// the run says which file (exit 3, "changed while it was read") instead of
/// reporting a clean snapshot; the next snapshot saves it whole.
#[test]
fn a_file_rewritten_while_it_is_read_is_reported() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exam.dcm"), &noise(61, 200_000));
    let child = env
        .cmd()
        .env("HCBACKUP_TEST_PAUSE", "archive-before-open:4:2")
        .args(["--json", "snapshot", src.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the run holds its lock, the walk (one folder) reaches the pause at
    // once: the file is rewritten after it was listed, before it is read.
    wait_for_lock(&env.repo);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let new = noise(62, 200_000);
    fs::OpenOptions::new()
        .write(true)
        .open(src.join("exam.dcm"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, &new))
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("changed while it was read"),
        "{}",
        out(&o)
    );
    let again = env.snapshot(&[&src]);
    assert_eq!(again["incomplete"], false, "{again}");
    let r = env.restore("latest", "r");
    assert_eq!(fs::read(r.join("uploads/exam.dcm")).unwrap(), new);
}
