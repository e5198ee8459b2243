//! A repository written before format 2 (tests/fixtures/format1, made by
//! tests/fixtures/make-format1.sh with the release of commit cf1bb29) opens,
//! restores byte for byte, verifies, is upgraded in place, and takes new
//! snapshots in format 2 beside its old objects.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// The fixture's source files, rebuilt from the recipe make-format1.sh used.
fn expected(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let o = Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import sys, hashlib
def noise(seed, n):
    out = bytearray(); i = 0
    while len(out) < n:
        out += hashlib.blake2b(f"{seed}:{i}".encode()).digest(); i += 1
    return bytes(out[:n])
d = sys.argv[1]
open(f"{d}/ct.dcm", "wb").write(noise(1, 300_000))
open(f"{d}/p1.txt", "wb").write(b"paciente consulta retorno\n" * 2000)
open(f"{d}/late.dcm", "wb").write(noise(3, 100_000))
"#,
        )
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1");
    let o = Command::new("cp")
        .arg("-a")
        .arg(&from)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}

#[test]
fn a_format_1_repository_opens_restores_and_is_upgraded() {
    let env = Env::uninit();
    copy_fixture(&env.repo);
    let want = env.path("want");
    expected(&want);
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 2);
    // The config was upgraded (the key checked against an index object first).
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(env.repo.join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], 2);
    assert_eq!(config["key_check"].as_str().unwrap().len(), 64);
    for (i, id) in ids.iter().enumerate() {
        let r = env.restore(id, &format!("r{i}")).join("uploads");
        assert_eq!(
            fs::read(r.join("exams/ct.dcm")).unwrap(),
            fs::read(want.join("ct.dcm")).unwrap()
        );
        assert_eq!(
            fs::read(r.join("records/p1.txt")).unwrap(),
            fs::read(want.join("p1.txt")).unwrap()
        );
        assert_eq!(
            fs::read_link(r.join("records/link")).unwrap(),
            Path::new("../exams/ct.dcm")
        );
        assert!(r.join("records/empty").is_dir());
        assert_eq!(r.join("records/p2.txt").exists(), i == 1);
    }
    // The pack a killed run left (a format-1 header, no index) is checked blob by
    // blob and reused: a new snapshot of the same file adds nothing for it.
    let src = env.path("uploads");
    fs::create_dir_all(src.join("exams")).unwrap();
    fs::copy(want.join("late.dcm"), src.join("exams/late.dcm")).unwrap();
    let s = env.snapshot(&[&src]);
    assert!(s["bytes_added"].as_u64().unwrap() < 20_000, "{s}");
    let r = env.restore("latest", "r-new").join("uploads");
    assert_eq!(
        fs::read(r.join("exams/late.dcm")).unwrap(),
        fs::read(want.join("late.dcm")).unwrap()
    );
    let v = env.run(&["verify", "--read-data"]);
    assert!(v.status.success(), "{}", out(&v));
    // A new machine (no catalog) opens the upgraded copy with the same password.
    fs::remove_dir_all(&env.cache).unwrap();
    assert_eq!(env.snapshot_ids().len(), 3);
}

/// A format-1 copy planted with another key set under the same password: the
/// key is checked against the objects already there before the upgrade.
#[test]
fn a_format_1_repository_refuses_a_planted_key_before_upgrading() {
    use hcbackup::crypto::{KdfAlgorithm, KdfParams, KeyFile, MasterKey};
    let env = Env::uninit();
    copy_fixture(&env.repo);
    let config: hcbackup::repo::RepoConfig =
        serde_json::from_slice(&fs::read(env.repo.join("config")).unwrap()).unwrap();
    let cheap = KdfParams {
        algorithm: KdfAlgorithm::Argon2id,
        m_kib: 64,
        t: 1,
        p: 1,
    };
    let kf = KeyFile::wrap(
        &MasterKey::generate(),
        PASSWORD.as_bytes(),
        &config.id_bytes(),
        cheap,
        "now".into(),
    );
    fs::write(env.repo.join("keys").join("0".repeat(64)), kf.to_json()).unwrap();
    let o = env.run(&["snapshots"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("holds keys that are not this repository's")
    );
    let after: hcbackup::repo::RepoConfig =
        serde_json::from_slice(&fs::read(env.repo.join("config")).unwrap()).unwrap();
    let real = after.key_check.unwrap();
    // The check value is the real key's: the planted one was not used.
    assert_eq!(real.len(), 64);
    let o = env.run(&["snapshots"]);
    assert!(o.status.success(), "{}", out(&o));
}

/// One damaged object does not lock the owner out of a format-1 repository: its
/// key is checked against the first few index objects and manifests.
#[test]
fn a_format_1_repository_with_a_damaged_index_object_still_opens() {
    let env = Env::uninit();
    copy_fixture(&env.repo);
    let mut index: Vec<_> = fs::read_dir(env.repo.join("index"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    index.sort();
    flip_byte(&index[0], 40);
    assert_eq!(env.snapshot_ids().len(), 2);
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(env.repo.join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], 2);
}

/// Attack (with a guessed password): make a format-1 repository's key check
/// accept the attacker's key by planting an index object sealed under it and a
/// key file for it. The key must open most of a random sample of the objects
/// there, so the planted one does not carry it.
#[test]
fn a_format_1_repository_refuses_a_key_that_opens_only_a_planted_object() {
    use hcbackup::crypto::{KdfAlgorithm, KdfParams, KeyFile, Kind, MasterKey};
    let env = Env::uninit();
    copy_fixture(&env.repo);
    let config: hcbackup::repo::RepoConfig =
        serde_json::from_slice(&fs::read(env.repo.join("config")).unwrap()).unwrap();
    let theirs = MasterKey::generate();
    let plain = b"an index object of the attacker's";
    let id = theirs.id_of(plain);
    let sealed = hcbackup::codec::encode(&theirs, Kind::Index, &id, plain);
    fs::write(env.repo.join("index").join(hex::encode(id)), sealed).unwrap();
    let cheap = KdfParams {
        algorithm: KdfAlgorithm::Argon2id,
        m_kib: 64,
        t: 1,
        p: 1,
    };
    let kf = KeyFile::wrap(
        &theirs,
        PASSWORD.as_bytes(),
        &config.id_bytes(),
        cheap,
        "now".into(),
    );
    fs::write(env.repo.join("keys").join("0".repeat(64)), kf.to_json()).unwrap();
    let o = env.run(&["snapshots"]);
    assert!(o.status.success(), "{}", out(&o));
    let after: hcbackup::repo::RepoConfig =
        serde_json::from_slice(&fs::read(env.repo.join("config")).unwrap()).unwrap();
    assert_eq!(
        after.key_matches(&theirs),
        Some(false),
        "upgraded to the attacker's key"
    );
}
