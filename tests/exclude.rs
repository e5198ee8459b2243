//! What a snapshot leaves out and how it is told what to save (issue #17):
//! `--exclude`, `--exclude-file`, `exclude` in hcbackup.toml, `--exclude-caches`,
//! `--exclude-larger-than`, `--one-file-system`, `--files-from`, `--host`, and
//! `--dry-run`, which writes nothing.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::*;

/// The paths a restored tree holds, relative to it ("uploads/a/b.pdf").
fn restored_paths(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = digest(root)
        .into_keys()
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .filter(|k| !k.is_empty())
        .collect();
    out.sort();
    out
}

#[test]
fn excluded_entries_are_left_out_and_counted() {
    let env = Env::new();
    let up = env.path("uploads");
    write(&up.join("exams/laudo.pdf"), b"%PDF laudo");
    write(&up.join("exams/laudo.pdf.tmp"), b"partial upload");
    write(&up.join("tmp/session-1"), b"session");
    write(&up.join("exams/thumbs/1.jpg"), b"thumb");
    write(
        &up.join("exams/thumbs/keep/2.jpg"),
        b"thumb kept: ** only crosses folders",
    );
    write(&up.join("video/consulta.mp4"), &noise(1, 300_000));
    write(&up.join("notes.txt"), b"kept");
    // A real cache folder keeps only its tag; a forged tag (wrong signature) or a
    // link named CACHEDIR.TAG to a real one hides nothing.
    write(
        &up.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache",
    );
    write(&up.join("cache/blob"), b"cached");
    write(&up.join("notcache/CACHEDIR.TAG"), b"Signature: 0000");
    write(&up.join("notcache/ficha.pdf"), b"%PDF ficha");
    write(&up.join("linked/ficha2.pdf"), b"%PDF ficha2");
    std::os::unix::fs::symlink(
        up.join("cache/CACHEDIR.TAG"),
        up.join("linked/CACHEDIR.TAG"),
    )
    .unwrap();
    std::fs::write(
        env.path("hcbackup.toml"),
        "exclude = [\"/**/uploads/tmp\"]\n",
    )
    .unwrap();
    let patterns = env.path("excludes.txt");
    std::fs::write(
        &patterns,
        "# uploads still being written\n*.tmp\n\nthumbs/*.jpg\n",
    )
    .unwrap();

    let s = env.json(&[
        "snapshot",
        up.to_str().unwrap(),
        "--exclude-file",
        patterns.to_str().unwrap(),
        "--exclude-caches",
        "--exclude-larger-than",
        "100K",
    ]);
    // laudo.pdf.tmp, tmp, thumbs/1.jpg, the video, the cache's content.
    assert_eq!(s["excluded"], 5, "{s}");
    assert_eq!(s["incomplete"], false, "{s}");
    let id = s["id"].as_str().unwrap();
    let back = env.restore(id, "back");
    assert_eq!(
        restored_paths(&back),
        [
            "uploads",
            "uploads/cache",
            "uploads/cache/CACHEDIR.TAG",
            "uploads/exams",
            "uploads/exams/laudo.pdf",
            "uploads/exams/thumbs",
            "uploads/exams/thumbs/keep",
            "uploads/exams/thumbs/keep/2.jpg",
            "uploads/linked",
            "uploads/linked/CACHEDIR.TAG",
            "uploads/linked/ficha2.pdf",
            "uploads/notcache",
            "uploads/notcache/CACHEDIR.TAG",
            "uploads/notcache/ficha.pdf",
            "uploads/notes.txt",
            "uploads/video",
        ]
    );
    // The human line says how many were left out.
    let line = env.ok(&["snapshot", up.to_str().unwrap(), "--exclude", "*.mp4"]);
    assert!(line.contains("2 entries excluded"), "{line}"); // the video and tmp/ (hcbackup.toml)
    env.verified();
}

#[test]
fn one_file_system_stays_on_the_source_disk() {
    let env = Env::new();
    let up = env.path("uploads");
    write(&up.join("ficha.pdf"), b"%PDF");
    let _m = mount_tmpfs(&up.join("mounted"), "1m");
    write(&up.join("mounted/other-disk.bin"), b"another file system");
    let all = env.snapshot(&[&up]);
    assert_eq!(all["files"], 2, "{all}");
    let one = env.json(&["snapshot", up.to_str().unwrap(), "-x"]);
    assert_eq!(
        (&one["files"], &one["excluded"]),
        (&1.into(), &1.into()),
        "{one}"
    );
    let back = env.restore(one["id"].as_str().unwrap(), "back");
    // The mount point's folder is kept, empty, as restic does.
    assert_eq!(
        restored_paths(&back),
        ["uploads", "uploads/ficha.pdf", "uploads/mounted"]
    );
    env.verified();
}

#[test]
fn files_from_and_host() {
    let env = Env::new();
    let a = env.path("uploads/a.pdf");
    write(&a, b"%PDF a");
    let raw = [env.path("uploads").as_os_str().as_bytes(), b"/b\xe9.pdf"].concat();
    let odd = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
    write(&odd, b"%PDF latin-1 name");
    write(&env.path("uploads/not-listed.pdf"), b"left alone");
    let list = env.path("list.txt");
    std::fs::write(
        &list,
        [
            b"# exams of the day\r\n".as_slice(),
            a.as_os_str().as_bytes(),
            b"\r\n\n",
            &raw,
            b"\n",
        ]
        .concat(),
    )
    .unwrap();
    let s = env.json(&[
        "snapshot",
        "--files-from",
        list.to_str().unwrap(),
        "--host",
        "old-server",
    ]);
    assert_eq!(s["files"], 2, "{s}");
    assert_eq!(s["host"], "old-server", "{s}");
    let listed = env.json(&["snapshots", "--host", "old-server"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let back = env.restore(s["id"].as_str().unwrap(), "back");
    assert_eq!(std::fs::read(back.join("a.pdf")).unwrap(), b"%PDF a");
    let odd_back = back.join(std::ffi::OsStr::from_bytes(b"b\xe9.pdf"));
    assert_eq!(std::fs::read(odd_back).unwrap(), b"%PDF latin-1 name");

    // Each bad input: one line, exit 2, nothing saved.
    std::fs::write(env.path("empty.txt"), "# nothing\n\n").unwrap();
    for (args, says) in [
        (vec!["--files-from", "empty.txt"], "lists no path"),
        (vec!["--files-from", "missing.txt"], "missing.txt"),
        (vec!["--exclude-file", "missing.txt"], "missing.txt"),
        (vec!["--exclude-larger-than", "lots"], "give a size"),
        (vec!["--exclude", "a[b"], "bad --exclude a[b"),
        (vec!["--host", " "], "--host"),
    ] {
        let mut all = vec!["snapshot", a.to_str().unwrap()];
        all.extend(&args);
        let o = env.run(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", out(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(says) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    assert_eq!(env.snapshot_ids().len(), 1);
    env.verified();
}

#[test]
fn a_dry_run_writes_nothing_and_says_what_a_snapshot_would_do() {
    let env = Env::new();
    let up = env.path("uploads");
    write(&up.join("video.mp4"), &noise(7, 2_000_000));
    write(&up.join("ficha.txt"), b"ficha");
    write(&up.join("upload.tmp"), b"partial");
    let size = env.repo_size();

    let d = env.json(&["snapshot", up.to_str().unwrap(), "-n", "--exclude", "*.tmp"]);
    assert_eq!((&d["files"], &d["excluded"]), (&2.into(), &1.into()), "{d}");
    assert!(d["bytes_added"].as_u64().unwrap() > 1_900_000, "{d}");
    assert!(d["excluded_entries"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with("upload.tmp"));
    // Nothing written: no snapshot, no pack, no audit event (and no file-cache
    // row: see the real snapshot below).
    assert!(env.snapshot_ids().is_empty());
    assert_eq!(env.repo_size(), size);
    let human = env.ok(&["snapshot", up.to_str().unwrap(), "--dry-run"]);
    assert!(human.contains("dry run, nothing written"), "{human}");
    let audit = env.json(&["audit"]);
    assert!(!audit.to_string().contains("\"snapshot\""), "{audit}");

    // The real snapshot reads everything (no cache row vouched for the dry
    // run's "stored" chunks) and stores it; a dry run after it adds nothing.
    let s = env.snapshot(&[&up]);
    assert_eq!(s["bytes_read"], s["bytes"], "{s}");
    let again = env.json(&["--no-lock", "snapshot", up.to_str().unwrap(), "-n"]);
    assert_eq!(
        (&again["bytes_added"], &again["bytes_read"]),
        (&0.into(), &0.into()),
        "{again}"
    );
    env.verified();
}

/// A source given as a link (UPLOADS_DIR pointing at another disk) saves what
/// it points to, not the link (it once saved 0 files and said ok).
#[test]
fn a_linked_source_is_followed() {
    let env = Env::new();
    let real = env.path("disk2/uploads");
    write(&real.join("laudo.pdf"), b"%PDF");
    let link = env.path("uploads");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let s = env.snapshot(&[&link]);
    assert_eq!(s["files"], 1, "{s}");
    let back = env.restore(s["id"].as_str().unwrap(), "back");
    assert_eq!(
        std::fs::read(back.join("uploads/laudo.pdf")).unwrap(),
        b"%PDF"
    );
    env.verified();
}
