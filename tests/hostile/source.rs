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
