//! Security: no plaintext, password or key on disk or in logs; every damaged or
//! swapped object is detected and reported with its name.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const MARKER: &[u8] = b"PACIENTE-MARCADOR-7f3a9c";

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_plaintext_name_or_password_reaches_disk_or_logs() {
    let env = Env::new();
    let src = env.path("uploads");
    let mut doc = text(1, 200_000);
    for i in 0..50 {
        let at = i * 3000;
        doc.splice(at..at, MARKER.iter().copied());
    }
    write(&src.join("records/notes.txt"), &doc);
    let mut raw = noise(2, 3 << 20);
    raw.splice(1000..1000, MARKER.iter().copied());
    write(&src.join("exams/scan.dcm"), &raw);
    let named = format!("exams/{}.pdf", String::from_utf8_lossy(MARKER));
    write(&src.join(&named), b"x");
    let tmp = env.path("tmp");
    fs::create_dir(&tmp).unwrap();
    let out = env
        .cmd()
        .env("TMPDIR", &tmp)
        .args(["-vv", "snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out2 = env
        .cmd()
        .env("TMPDIR", &tmp)
        .args([
            "-vv",
            "restore",
            "latest",
            "--target",
            env.path("r").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out2.status.success());
    assert_eq!(fs::read(env.path("r/uploads").join(&named)).unwrap(), b"x");
    for o in [&out, &out2] {
        assert!(!contains(&o.stdout, MARKER) && !contains(&o.stderr, MARKER));
        assert!(!contains(&o.stderr, PASSWORD.as_bytes()));
    }
    let mut files = Vec::new();
    all_files(&env.repo, &mut files);
    all_files(&env.cache, &mut files);
    all_files(&tmp, &mut files);
    assert!(files.len() > 5);
    assert!(files
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == "sqlite")));
    for f in &files {
        let b = fs::read(f).unwrap();
        assert!(!contains(&b, MARKER), "{} holds the marker", f.display());
        assert!(
            !contains(&b, PASSWORD.as_bytes()),
            "{} holds the password",
            f.display()
        );
        assert!(
            !contains(&b, b"records"),
            "{} holds a folder name",
            f.display()
        );
    }
    // Repository files are private.
    use std::os::unix::fs::PermissionsExt;
    for f in files.iter().filter(|f| f.starts_with(&env.repo)) {
        assert_eq!(
            fs::metadata(f).unwrap().permissions().mode() & 0o077,
            0,
            "{} is readable by others",
            f.display()
        );
    }
    env.verified();
}

/// Flip one byte of `file` at `at`.
fn flip(file: &Path, at: usize) -> Vec<u8> {
    let orig = fs::read(file).unwrap();
    let mut b = orig.clone();
    b[at] ^= 0x40;
    fs::write(file, &b).unwrap();
    orig
}

fn packs(env: &Env) -> Vec<PathBuf> {
    let mut f = Vec::new();
    all_files(&env.repo.join("packs"), &mut f);
    f
}

#[test]
fn flipped_bytes_in_every_object_kind_are_detected() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/scan.dcm"), &noise(3, 300_000));
    write(&src.join("records/notes.txt"), &text(4, 50_000));
    env.snapshot(&[&src]);
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));

    // Every pack (data and tree), at positions across blobs, header and trailer.
    for pack in packs(&env) {
        let name = pack.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = fs::read(&pack).unwrap();
        let len = bytes.len();
        // Where the blobs end and the sealed header (padded to 4 KiB) begins.
        let blobs_end = len - 4 - u32::from_le_bytes(bytes[len - 4..].try_into().unwrap()) as usize;
        for at in [
            0,
            13,
            blobs_end / 3,
            blobs_end / 2,
            len - 40,
            len - 5,
            len - 1,
        ] {
            let orig = flip(&pack, at);
            let o = env.run(&["verify", "--read-data"]);
            assert_eq!(
                o.status.code(),
                Some(1),
                "flip at {at} of {name} not detected"
            );
            assert!(
                String::from_utf8_lossy(&o.stderr).contains(&name),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            let r = env.run(&[
                "restore",
                "latest",
                "--target",
                env.path(&format!("bad-{name}-{at}")).to_str().unwrap(),
            ]);
            if at < blobs_end {
                // A damaged blob fails the restore, naming the pack and the file.
                assert_eq!(
                    r.status.code(),
                    Some(1),
                    "restore did not notice a flip at {at} of {name}"
                );
                assert!(String::from_utf8_lossy(&r.stderr).contains(&name[..16]));
            }
            fs::write(&pack, orig).unwrap();
        }
    }
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));

    // Snapshot manifests and index objects: any flipped byte is refused, by name.
    for (dir, word) in [("snapshots", "snapshot"), ("index", "index")] {
        let mut files = Vec::new();
        all_files(&env.repo.join(dir), &mut files);
        for f in files {
            let len = fs::metadata(&f).unwrap().len() as usize;
            for at in [0, 12, len / 2, len - 1] {
                let orig = flip(&f, at);
                fs::remove_dir_all(&env.cache).unwrap(); // force the index to be read again
                                                         // A damaged index object does not stop other commands (the packs it
                                                         // listed are found by their headers); verify reports it by name.
                let o = env.run(&["verify"]);
                assert_eq!(
                    o.status.code(),
                    Some(1),
                    "flip at {at} of {} not detected",
                    f.display()
                );
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(
                    err.contains(word) && err.contains(f.file_name().unwrap().to_str().unwrap()),
                    "{err}"
                );
                fs::write(&f, orig).unwrap();
            }
        }
    }
}

#[test]
fn swapped_objects_are_detected() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"first");
    env.snapshot(&[&src]);
    write(&src.join("a.txt"), b"second");
    env.snapshot(&[&src]);
    let mut snaps = Vec::new();
    all_files(&env.repo.join("snapshots"), &mut snaps);
    assert_eq!(snaps.len(), 2);
    let (a, b) = (fs::read(&snaps[0]).unwrap(), fs::read(&snaps[1]).unwrap());
    fs::write(&snaps[0], &b).unwrap();
    fs::write(&snaps[1], &a).unwrap();
    // Each is named; neither is listed as if it were good (issue #14: one bad
    // manifest no longer hides the others).
    let o = env.run(&["--json", "snapshots"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .matches("corrupt snapshot")
            .count(),
        2
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        serde_json::json!([])
    );
    assert_eq!(env.run(&["verify"]).status.code(), Some(1));
}

#[test]
fn key_files_hold_no_key_and_passwords_are_managed() {
    let env = Env::new();
    let keys = env.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let mut kf = Vec::new();
    all_files(&env.repo.join("keys"), &mut kf);
    let doc: serde_json::Value = serde_json::from_slice(&fs::read(&kf[0]).unwrap()).unwrap();
    assert_eq!(doc["kdf"]["algorithm"], "argon2id");
    // 96 key bytes sealed: nonce + ciphertext + tag, nothing else.
    assert_eq!(doc["data"].as_str().unwrap().len(), 2 * (12 + 96 + 16));

    let src = env.path("uploads");
    write(&src.join("a.txt"), b"kept");
    env.snapshot(&[&src]);
    let escrow = env.path("escrow-pw");
    fs::write(&escrow, "escrow password\n").unwrap();
    env.ok(&[
        "key",
        "add",
        "--new-password-file",
        escrow.to_str().unwrap(),
    ]);
    let with_escrow = |args: &[&str]| {
        env.cmd()
            .env_remove("HCBACKUP_PASSWORD")
            .arg("--password-file")
            .arg(&escrow)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(with_escrow(&["snapshots"]).status.success());
    // Change the admin password: the old one stops working, data stays readable.
    let newpw = env.path("new-pw");
    fs::write(&newpw, "new admin password").unwrap();
    env.ok(&[
        "key",
        "passwd",
        "--new-password-file",
        newpw.to_str().unwrap(),
    ]);
    assert_eq!(env.run(&["snapshots"]).status.code(), Some(12));
    let o = env
        .cmd()
        .env_remove("HCBACKUP_PASSWORD")
        .arg("--password-command")
        .arg(format!("cat {}", newpw.display()))
        .args([
            "restore",
            "latest",
            "--target",
            env.path("r").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(fs::read(env.path("r/uploads/a.txt")).unwrap(), b"kept");
    // The escrow key cannot remove itself, but can remove the other one.
    let list: serde_json::Value =
        serde_json::from_slice(&with_escrow(&["--json", "key", "list"]).stdout).unwrap();
    let other = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        with_escrow(&["key", "remove", &mine[..8]]).status.code(),
        Some(2)
    );
    assert!(with_escrow(&["key", "remove", &other[..8]])
        .status
        .success());
    assert_eq!(
        env.cmd()
            .env_remove("HCBACKUP_PASSWORD")
            .arg("--password-file")
            .arg(&newpw)
            .arg("snapshots")
            .output()
            .unwrap()
            .status
            .code(),
        Some(12)
    );
}

#[test]
fn a_missing_pack_is_named_with_the_files_it_affects() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/scan.dcm"), &noise(5, 200_000));
    env.snapshot(&[&src]);
    // The data pack is the larger of the two (the other holds trees).
    let mut ps = packs(&env);
    ps.sort_by_key(|p| fs::metadata(p).unwrap().len());
    let data = ps.last().unwrap().clone();
    let name = data.file_name().unwrap().to_str().unwrap().to_string();
    fs::remove_file(&data).unwrap();
    let o = env.run(&["verify"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&name) && err.contains("missing"), "{err}");
    let o = env.run(&[
        "restore",
        "latest",
        "--target",
        env.path("r").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&name) && err.contains("uploads/exams/scan.dcm"),
        "{err}"
    );
    assert!(
        !env.path("r/uploads/exams/scan.dcm").exists(),
        "an incomplete file was left behind"
    );
}

#[test]
fn a_changed_password_stops_opening_the_mirrors_too() {
    let env = Env::new();
    let usb = env.usb_destination();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"kept");
    env.snapshot(&[&src]);
    let on_usb = |pw: &str| {
        env.cmd_repo(usb.as_os_str())
            .env("HCBACKUP_PASSWORD", pw)
            .arg("snapshots")
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(on_usb(PASSWORD), Some(0));
    // The password leaks: it is changed here, and the next mirror carries that out.
    let newpw = env.path("new-pw");
    fs::write(&newpw, "new admin password").unwrap();
    env.ok(&[
        "key",
        "passwd",
        "--new-password-file",
        newpw.to_str().unwrap(),
    ]);
    let o = env
        .cmd()
        .env("HCBACKUP_PASSWORD", "new admin password")
        .args(["--json", "mirror"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc[0]["keys_removed"], 1, "{doc}");
    assert_eq!(
        on_usb(PASSWORD),
        Some(12),
        "the old password still opens the mirror"
    );
    assert_eq!(on_usb("new admin password"), Some(0));
}
