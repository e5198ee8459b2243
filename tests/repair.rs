//! Damaged copies: each kind of damage is reported by `verify` (never "ok", with the
//! files it affects) and healed by `repair` from another copy where one holds a good
//! object; afterwards every restore is byte-exact. The second copy is a folder
//! destination (a USB disk); the same code heals S3 and Drive copies.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

struct Setup {
    env: Env,
    src: PathBuf,
    usb: PathBuf,
}

/// A repository with a USB destination, two snapshots mirrored to it.
fn setup() -> Setup {
    let env = Env::new();
    let usb = env.usb_destination();
    // Two snapshots, so the exam (added second) sits in a pack of its own.
    let src = env.path("uploads");
    write(&src.join("laudos/laudo-0001.pdf"), &noise(2, 300 << 10));
    write(
        &src.join("notas.txt"),
        b"paciente 0001: retorno em 30 dias\n",
    );
    env.snapshot(&[&src]);
    write(&src.join("exames/rx-0001.dcm"), &noise(1, 2 << 20));
    env.snapshot(&[&src]);
    assert!(usb.join("config").exists(), "the snapshot was mirrored");
    for copy in ["local", "usb"] {
        let v = verify(&env, copy, true);
        assert!(v.0, "{copy} starts good: {}", v.1);
    }
    Setup { env, src, usb }
}

/// `verify --read-data` (or structure only) of a copy: (ok, stderr + stdout).
fn verify(env: &Env, copy: &str, read: bool) -> (bool, String) {
    let mut args = vec!["verify", "--destination", copy];
    if read {
        args.push("--read-data");
    }
    let o = env.run(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "{text}"
    );
    (o.status.success(), text)
}

fn objects(repo: &Path, dir: &str) -> Vec<PathBuf> {
    fs::read_dir(repo.join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn repair(env: &Env, copy: &str) -> (bool, String) {
    let o = env.run(&["repair", "--read-data", "--destination", copy]);
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        ),
    )
}

fn restores_exactly(s: &Setup) {
    let got = s
        .env
        .restore("latest", &format!("restored-{}", rand_suffix()));
    assert_same_tree(&s.src, &got.join("uploads"));
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn every_kind_of_damage_is_reported_and_healed_from_the_mirror() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage, bool, &str); 7] = [
        (
            "a flipped byte in a data pack",
            |r| flip_byte(&pack_files(r).pop().unwrap(), 1000),
            true,
            "rx-0001.dcm",
        ),
        (
            "a truncated pack",
            |r| {
                let p = pack_files(r).pop().unwrap();
                let len = fs::metadata(&p).unwrap().len();
                fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
            },
            false,
            "rx-0001.dcm",
        ),
        (
            "a deleted pack",
            |r| fs::remove_file(pack_files(r).pop().unwrap()).unwrap(),
            false,
            "rx-0001.dcm",
        ),
        // Trees sit in their own, small packs: deleting it loses every folder listing.
        (
            "a deleted tree",
            |r| fs::remove_file(&pack_files(r)[0]).unwrap(),
            false,
            "folder",
        ),
        (
            "a deleted index object",
            |r| {
                for p in objects(r, "index") {
                    fs::remove_file(p).unwrap();
                }
            },
            false,
            "no index object lists it",
        ),
        (
            "a flipped byte in an index object",
            |r| flip_byte(&objects(r, "index")[0], 40),
            false,
            "index",
        ),
        (
            "a flipped byte in a snapshot manifest",
            |r| flip_byte(&objects(r, "snapshots")[0], 40),
            false,
            "snapshot",
        ),
    ];
    for (what, damage, needs_read, says) in cases {
        let s = setup();
        damage(&s.env.repo);
        let (ok, text) = verify(&s.env, "local", needs_read);
        assert!(!ok, "{what}: verify said ok:\n{text}");
        assert!(
            text.contains(says),
            "{what}: verify does not say {says:?}:\n{text}"
        );
        let (ok, text) = repair(&s.env, "local");
        assert!(ok, "{what}: repair failed:\n{text}");
        assert!(text.contains("no problems left"), "{what}:\n{text}");
        let (ok, text) = verify(&s.env, "local", true);
        assert!(ok, "{what}: still damaged after repair:\n{text}");
        restores_exactly(&s);
    }
}

#[test]
fn damage_on_the_mirror_is_healed_from_the_repository() {
    let s = setup();
    flip_byte(&pack_files(&s.usb).pop().unwrap(), 5000);
    let (ok, text) = verify(&s.env, "usb", true);
    assert!(!ok && text.contains("rx-0001.dcm"), "{text}");
    let (ok, text) = repair(&s.env, "usb");
    assert!(ok, "{text}");
    assert!(text.contains("from local"), "{text}");
    assert!(verify(&s.env, "all", true).0);
    // Restore from the healed copy itself.
    let t = s.env.path("from-usb");
    s.env.ok(&[
        "restore",
        "latest",
        "--from",
        "usb",
        "--target",
        t.to_str().unwrap(),
    ]);
    assert_same_tree(&s.src, &t.join("uploads"));
}

#[test]
fn damage_no_copy_can_heal_is_listed_with_the_files_it_affects() {
    let s = setup();
    // The same pack lost in both copies.
    let name = pack_files(&s.env.repo).pop().unwrap();
    let rel = name.strip_prefix(&s.env.repo).unwrap().to_path_buf();
    fs::remove_file(&name).unwrap();
    fs::remove_file(s.usb.join(&rel)).unwrap();
    let (ok, text) = repair(&s.env, "local");
    assert!(!ok, "{text}");
    assert!(text.contains("NOT healed"), "{text}");
    assert!(
        text.contains("affects snapshot") && text.contains("/uploads/exames/rx-0001.dcm"),
        "{text}"
    );
    // The other files still restore.
    let t = s.env.path("partial");
    s.env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--include",
        "*.pdf",
    ]);
    assert_eq!(
        fs::read(t.join("uploads/laudos/laudo-0001.pdf")).unwrap(),
        noise(2, 300 << 10)
    );
}
