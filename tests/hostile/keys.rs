//! Hostile storage against the keys: planted key files, a flood of them, and a
//! copy whose config and keys were replaced wholesale.

use hcbackup::crypto::{KdfAlgorithm, KdfParams, KeyFile, Kind, MasterKey};
use hcbackup::repo::RepoConfig;

use super::storage::Store;
use crate::common::*;

/// The test suite's cheap KDF (what debug builds write and read).
const CHEAP: KdfParams = KdfParams {
    algorithm: KdfAlgorithm::Argon2id,
    m_kib: 64,
    t: 1,
    p: 1,
};

fn config(store: &Store) -> RepoConfig {
    serde_json::from_slice(&store.raw.get("config").unwrap()).unwrap()
}

fn plant_key(store: &Store, name: &str, key: &MasterKey, password: &str, kdf: KdfParams) {
    let kf = KeyFile::wrap(
        key,
        password.as_bytes(),
        &config(store).id_bytes(),
        kdf,
        "2026-01-01T00:00:00Z".into(),
    );
    store
        .raw
        .put(&format!("keys/{name}"), &kf.to_json())
        .unwrap();
}

fn forget_this_machine(store: &Store) {
    std::fs::remove_dir_all(&store.env.cache).unwrap();
}

/// Attack: a key file wrapping the attacker's own master key under the clinic's
/// password (guessed), named to be tried first. Once, every later snapshot was
/// sealed under the attacker's key.
fn a_planted_key_file_is_refused(store: Store) {
    let src = store.env.path("uploads");
    write(&src.join("exams/a.pdf"), &noise(31, 200_000));
    store.snapshot(&src);
    let theirs = MasterKey::generate();
    plant_key(&store, &"0".repeat(64), &theirs, PASSWORD, CHEAP);
    // A second one with settings too weak to be ours, that must not even be tried.
    plant_key(
        &store,
        &format!("{}1", "0".repeat(63)),
        &theirs,
        PASSWORD,
        KdfParams {
            m_kib: 1024,
            ..CHEAP
        },
    );
    forget_this_machine(&store);
    write(&src.join("exams/b.pdf"), &noise(32, 200_000));
    let o = store.run(&["--json", "snapshot", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("holds keys that are not this repository's"),
        "{err}"
    );
    assert!(err.contains("weaker than hcbackup ever writes"), "{err}");
    // The attacker's key opens nothing written since.
    let id = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sealed = store.raw.get(&format!("snapshots/{id}")).unwrap();
    let oid = hcbackup::id::ObjectId::from_hex(&id).unwrap();
    assert!(hcbackup::codec::decode(&theirs, Kind::Snapshot, &oid.0, &sealed, 1 << 20).is_err());
    assert_same_tree(&src, &store.restore("latest", "r"));
}

#[test]
fn a_planted_key_file_in_a_local_copy_is_refused() {
    a_planted_key_file_is_refused(Store::local());
}

#[test]
fn a_planted_key_file_in_s3_is_refused() {
    a_planted_key_file_is_refused(Store::s3());
}

/// Attack: hundreds of planted key files, so that opening the repository tries
/// them all (each a costly KDF run). At most 16 are tried; this machine tries
/// the key it used last first; a new machine gets a message saying what to check.
#[test]
fn a_flood_of_key_files_costs_at_most_sixteen_attempts() {
    let store = Store::local();
    let src = store.env.path("uploads");
    write(&src.join("a.txt"), b"a");
    store.snapshot(&src);
    for i in 0..40 {
        plant_key(
            &store,
            &format!("{:064x}", i),
            &MasterKey::generate(),
            "another password",
            CHEAP,
        );
    }
    store.snapshot(&src);
    forget_this_machine(&store);
    let o = store.run(&["snapshots"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tried 16 of the 41 key files") && err.contains("HCBACKUP_KEY_ID"),
        "{err}"
    );
    // The operator names their key file: it is tried first.
    let (real, _) = store
        .raw
        .list("keys")
        .unwrap()
        .into_iter()
        .find(|(n, _)| !n.starts_with("000000"))
        .unwrap();
    let o = store
        .cmd()
        .env("HCBACKUP_KEY_ID", &real[..8])
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}

/// Attack: replace the config and every key file with the attacker's (same
/// repository id, a key set of their own under the same password), so that new
/// snapshots would be sealed for them. A machine that used the repository before
/// refuses it.
#[test]
fn a_copy_whose_keys_were_replaced_is_refused_by_a_machine_that_knew_it() {
    let store = Store::local();
    let src = store.env.path("uploads");
    write(&src.join("a.txt"), b"a");
    store.snapshot(&src);
    let old = config(&store);
    let theirs = MasterKey::generate();
    let forged = RepoConfig::new_v2(old.id.clone(), old.created.clone(), &theirs, 0);
    for (name, _) in store.raw.list("keys").unwrap() {
        store.raw.delete(&format!("keys/{name}")).unwrap();
    }
    plant_key(&store, &"f".repeat(64), &theirs, PASSWORD, CHEAP);
    store.raw.put("config", &forged.to_json()).unwrap();
    let o = store.run(&["snapshot", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("holds other keys than the ones this machine used"),
        "{}",
        out(&o)
    );
    assert_eq!(
        store.raw.list("snapshots").unwrap().len(),
        1,
        "nothing was written"
    );
}

/// `key rotate`: new objects are sealed under the next epoch's key; everything
/// stays readable, on this machine, a new one, and a mirror.
#[test]
fn a_rotated_key_keeps_every_snapshot_readable() {
    let store = Store::local();
    let src = store.env.path("uploads");
    write(&src.join("a.txt"), &text(41, 50_000));
    let first = store.snapshot(&src);
    let o: serde_json::Value =
        serde_json::from_str(&store.ok(&["--json", "key", "rotate"])).unwrap();
    assert_eq!(o["epoch"], 1);
    assert_eq!(config(&store).key_epoch, 1);
    let status: serde_json::Value =
        serde_json::from_slice(&store.run(&["--json", "status"]).stdout).unwrap();
    assert_eq!(
        (
            status["key_epoch"].as_u64(),
            status["blobs_in_epoch"].as_u64()
        ),
        (Some(1), Some(0))
    );
    write(&src.join("b.txt"), &text(42, 50_000));
    store.snapshot(&src);
    forget_this_machine(&store);
    let old = store.restore(first["id"].as_str().unwrap(), "r1");
    assert!(old.join("a.txt").is_file() && !old.join("b.txt").exists());
    assert_same_tree(&src, &store.restore("latest", "r2"));
    store.ok(&["verify", "--read-data"]);
}
