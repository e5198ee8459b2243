//! A generated uploads tree with every kind of entry, shared by the round-trip
//! tests and the second reader's (tests/second_reader.rs).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use super::{noise, text, write};

pub fn set_mtime(p: &Path, secs: i64, nsec: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nsec);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A tree with empty files, large files, deep nesting, unicode and non-UTF-8 names,
/// symlinks, odd permissions, old mtimes, empty folders and a FIFO.
pub fn generate(root: &Path) {
    write(
        &root.join("exams/video/teleconsulta-2026-01-15.mp4"),
        &noise(1, 24 << 20),
    );
    write(&root.join("exams/laudo-joão-ção.txt"), &text(2, 3 << 20));
    write(&root.join("prontuários/患者/ficha.txt"), &text(3, 10_000));
    write(&root.join("empty.pdf"), b"");
    fs::create_dir_all(root.join("empty-folder/also-empty")).unwrap();
    let raw = root.join(OsStr::from_bytes(b"bin\xff\xfe-name.dcm"));
    write(&raw, &noise(4, 700_000));
    let mut deep = root.join("deep");
    for i in 0..40 {
        deep = deep.join(format!("level{i}"));
    }
    write(&deep.join("bottom.txt"), b"bottom");
    symlink(
        "../exams/laudo-joão-ção.txt",
        root.join("prontuários/link-to-laudo"),
    )
    .unwrap();
    symlink("/nonexistent/dangling", root.join("dangling")).unwrap();
    symlink(
        OsStr::from_bytes(b"target\xff"),
        root.join("binary-target-link"),
    )
    .unwrap();
    unsafe {
        let c = std::ffi::CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        assert_eq!(libc::mkfifo(c.as_ptr(), 0o640), 0);
    }
    write(&root.join("perms/setuid-tool"), b"#!/bin/sh\n");
    chmod(&root.join("perms/setuid-tool"), 0o4755);
    write(&root.join("perms/secret"), b"s");
    chmod(&root.join("perms/secret"), 0o400);
    write(&root.join("perms/none"), b"n");
    chmod(&root.join("perms/none"), 0o000);
    fs::create_dir(root.join("perms/sticky")).unwrap();
    chmod(&root.join("perms/sticky"), 0o1777);
    fs::create_dir(root.join("perms/readonly-dir")).unwrap();
    write(&root.join("perms/readonly-dir/inside"), b"i");
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::lchown(root.join("perms/secret"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("dangling"), Some(42), Some(43)).unwrap();
    }
    set_mtime(
        &root.join("exams/laudo-joão-ção.txt"),
        631_152_000,
        123_456_789,
    ); // 1990
    set_mtime(&root.join("empty.pdf"), -86_400 * 365, 0); // before 1970
    set_mtime(&root.join("dangling"), 946_684_800, 5);
    chmod(&root.join("perms/readonly-dir"), 0o555);
    for d in ["empty-folder/also-empty", "empty-folder", "perms", "exams"] {
        set_mtime(&root.join(d), 1_000_000_000, 777);
    }
}
