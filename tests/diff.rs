//! `diff SNAP1 SNAP2` (issue #17): added, removed, changed and metadata-only
//! entries between two snapshots, in text and JSON.

mod common;

use common::tree::chmod;
use common::*;

#[test]
fn diff_lists_what_changed_between_two_snapshots() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(1, 300_000));
    write(&src.join("exams/b.dcm"), &noise(2, 300_000));
    write(&src.join("records/ficha.txt"), b"v1");
    write(&src.join("records/old.txt"), b"old");
    let first = env.snapshot(&[&src]);
    write(&src.join("exams/c.dcm"), &noise(3, 1000));
    write(&src.join("records/ficha.txt"), b"v2");
    std::fs::remove_file(src.join("records/old.txt")).unwrap();
    chmod(&src.join("exams/b.dcm"), 0o600);
    let second = env.snapshot(&[&src]);
    let (a, b) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );

    let d = env.json(&["diff", a, b]);
    let list: Vec<(String, String)> = d["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["path"].as_str().unwrap().to_string(),
                x["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("uploads/exams/b.dcm", "metadata"),
        ("uploads/exams/c.dcm", "added"),
        ("uploads/records/ficha.txt", "changed"),
        ("uploads/records/old.txt", "removed"),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect();
    assert_eq!(list, want, "{d}");
    let text = env.ok(&["diff", &a[..8], "latest"]);
    assert!(text.contains("+    uploads/exams/c.dcm"), "{text}");
    assert!(
        text.contains("1 added, 1 removed, 1 changed, 1 metadata only"),
        "{text}"
    );
    // A snapshot against itself: nothing.
    let same = env.json(&["diff", b, b]);
    assert_eq!(same["differences"].as_array().unwrap().len(), 0);
    env.verified();
}

/// `find PATTERN`: which snapshots hold a file, by name or by whole path.
#[test]
fn find_names_the_snapshots_that_hold_a_file() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/2026/laudo-maria.pdf"), b"%PDF v1");
    write(&src.join("records/ficha.txt"), b"x");
    let first = env.snapshot(&[&src]);
    write(&src.join("exams/2026/laudo-maria.pdf"), b"%PDF v2, longer");
    let second = env.snapshot(&[&src]);
    std::fs::remove_file(src.join("exams/2026/laudo-maria.pdf")).unwrap();
    env.snapshot(&[&src]);

    let found = env.json(&["find", "laudo-*.pdf"]);
    let hits: Vec<(String, u64)> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["path"], "uploads/exams/2026/laudo-maria.pdf", "{f}");
            (
                f["snapshot"].as_str().unwrap().to_string(),
                f["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = vec![
        (first["id"].as_str().unwrap().to_string(), 7),
        (second["id"].as_str().unwrap().to_string(), 15),
    ];
    assert_eq!(hits, want);
    // A whole-path pattern, and one that matches nothing.
    assert_eq!(
        env.json(&["find", "uploads/exams/**/*.pdf"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        env.json(&["find", "records/*.pdf"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let text = env.ok(&["find", "ficha.txt"]);
    assert!(text.contains("3 matches in 3 snapshots"), "{text}");
    env.verified();
}
