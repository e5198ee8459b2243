//! Dedup: unchanged data costs nothing; moved and appended files cost only new bytes.

mod common;

use std::fs;
use std::io::Write;

use common::*;

const MIB: u64 = 1 << 20;

#[test]
fn moved_and_appended_files_store_only_the_new_bytes() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a/exam-video.mp4"), &noise(1, 40 * MIB as usize));
    write(&src.join("b/scan.dcm"), &noise(2, 30 * MIB as usize));
    write(&src.join("b/records.txt"), &text(3, 2 * MIB as usize));
    let first = env.snapshot(&[&src]);
    let stored = first["bytes_added"].as_u64().unwrap();
    assert!(
        stored <= 72 * MIB + MIB / 2,
        "first snapshot stored {stored} bytes"
    );
    assert!(
        stored >= 70 * MIB,
        "incompressible data cannot shrink: {stored}"
    );

    // Nothing changed: nothing is read, nothing is added.
    let same = env.snapshot(&[&src]);
    assert_eq!(same["bytes_read"], 0);
    assert_eq!(same["bytes_added"], 0);
    assert_eq!(same["blobs_added"], 0);

    // Move the video to another folder, append 1 MiB to the scan.
    fs::create_dir_all(src.join("c")).unwrap();
    fs::rename(src.join("a/exam-video.mp4"), src.join("c/exam-video.mp4")).unwrap();
    let appended = noise(4, MIB as usize);
    fs::OpenOptions::new()
        .append(true)
        .open(src.join("b/scan.dcm"))
        .unwrap()
        .write_all(&appended)
        .unwrap();
    let before = env.repo_size();
    let next = env.snapshot(&[&src]);
    let added = next["bytes_added"].as_u64().unwrap();
    // Only the moved and the appended file are read again; records.txt, unchanged in
    // a folder where another file changed, comes from the file cache.
    assert_eq!(next["bytes_read"].as_u64().unwrap(), 40 * MIB + 31 * MIB);
    // The new bytes, plus at most the old last chunk of the appended file (≤ 4 MiB,
    // re-cut), plus a few small trees and a pack header.
    let bound = MIB + 4 * MIB + 64 * 1024;
    assert!(added <= bound, "added {added} bytes, bound {bound}");
    let growth = env.repo_size() - before;
    assert!(growth <= bound + 64 * 1024, "repository grew by {growth}");

    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
    env.verified();
}

#[test]
fn identical_files_in_one_snapshot_are_stored_once() {
    let env = Env::new();
    let src = env.path("uploads");
    let data = noise(7, 8 * MIB as usize);
    for i in 0..5 {
        write(&src.join(format!("copy{i}/same.dcm")), &data);
    }
    let s = env.snapshot(&[&src]);
    let added = s["bytes_added"].as_u64().unwrap();
    assert!(
        added < 8 * MIB + 256 * 1024,
        "five copies stored {added} bytes"
    );
    let r = env.restore("latest", "r");
    assert_same_tree(&src, &r.join("uploads"));
    env.verified();
}
