//! Hostile storage: whoever can write the copy (the bucket's credentials, the USB
//! disk, the Drive folder) but has no password. The same attacks against a
//! local folder, S3 (moto) and Google Drive (the project's test server).

use std::ffi::OsStr;
use std::fs;
use std::process::{Command, Output};
use std::sync::Arc;

use hcbackup::storage::{Backend, DriveBackend, DriveConfig, LocalBackend, S3Backend, S3Config};

use crate::common::drive::DriveServer;
use crate::common::s3 as moto;
use crate::common::*;

/// A repository copy and the attacker's raw access to its objects.
pub struct Store {
    pub env: Env,
    pub location: String,
    drive: Option<DriveServer>,
    pub raw: Arc<dyn Backend>,
}

impl Store {
    pub fn local() -> Store {
        let env = Env::uninit();
        let location = env.repo.display().to_string();
        let raw: Arc<dyn Backend> = Arc::new(LocalBackend::new(&env.repo));
        Store::init(Store {
            env,
            location,
            drive: None,
            raw,
        })
    }

    pub fn s3() -> Store {
        let env = Env::uninit();
        let bucket = moto::new_bucket("hcb-hostile");
        let location = format!("s3://{bucket}/clinic");
        let s3_env = hcbackup::storage::S3Env::read(&hcbackup::config::lookup::Process).unwrap();
        let mut cfg = S3Config::from_url(&location, &s3_env).unwrap();
        cfg.endpoint = Some(moto::endpoint());
        let raw: Arc<dyn Backend> = Arc::new(S3Backend::new(cfg).unwrap());
        Store::init(Store {
            env,
            location,
            drive: None,
            raw,
        })
    }

    pub fn drive() -> Store {
        let env = Env::uninit();
        let server = DriveServer::start();
        let folder = server.shared_folder("hostile");
        let raw: Arc<dyn Backend> = Arc::new(
            DriveBackend::new(DriveConfig::new(
                &folder,
                &server.credentials(),
                &server.root_url,
            ))
            .unwrap(),
        );
        let location = format!("drive://{folder}");
        Store::init(Store {
            env,
            location,
            drive: Some(server),
            raw,
        })
    }

    fn init(s: Store) -> Store {
        s.ok(&["init"]);
        s
    }

    /// The binary on this copy, with what it needs to reach the cloud.
    pub fn cmd(&self) -> Command {
        let mut c = self.env.cmd_repo(OsStr::new(&self.location));
        c.env("AWS_ENDPOINT_URL", moto::endpoint());
        if let Some(d) = &self.drive {
            c.env("GOOGLE_CREDENTIALS", d.credentials())
                .env("HCBACKUP_DRIVE_ROOT_URL", &d.root_url);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} on {}: {}",
            self.location,
            out(&o)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn snapshot(&self, src: &std::path::Path) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["--json", "snapshot", src.to_str().unwrap()])).unwrap()
    }

    /// Restore `id` into a new folder `into` and return the restored source.
    pub fn restore(&self, id: &str, into: &str) -> std::path::PathBuf {
        let t = self.env.path(into);
        self.ok(&["restore", id, "--target", t.to_str().unwrap()]);
        t.join("uploads")
    }

    /// The object names under `dir`.
    pub fn names(&self, dir: &str) -> Vec<String> {
        self.raw
            .list(dir)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// Every pack: (object path, size).
    pub fn packs(&self) -> Vec<(String, u64)> {
        self.raw
            .list("packs")
            .unwrap()
            .into_iter()
            .map(|(n, s)| (format!("packs/{n}"), s))
            .collect()
    }
}

fn clinic(store: &Store) -> std::path::PathBuf {
    let src = store.env.path("uploads");
    write(&src.join("exams/ct.dcm"), &noise(21, 3 << 20));
    write(&src.join("records/p1.txt"), &text(22, 200_000));
    src
}

/// Attack (no key needed): copy a real pack's sealed header onto random bytes,
/// name the file by its hash so that it sorts before the real pack, and wait for
/// the next snapshot and prune. Once, the snapshot indexed the decoy, restores
/// failed and prune deleted the real pack as a duplicate, for good.
fn a_decoy_pack_loses_nothing(store: Store) {
    let src = clinic(&store);
    let first = store.snapshot(&src);
    let (real, _) = store.packs().into_iter().max_by_key(|(_, s)| *s).unwrap();
    let bytes = store.raw.get(&real).unwrap();
    let hlen = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as usize;
    let header = &bytes[bytes.len() - 4 - hlen..];
    let real_name = real.rsplit('/').next().unwrap().to_string();
    let decoy = loop {
        let mut d = noise(rand::random(), bytes.len() - header.len());
        d.extend_from_slice(header);
        let name = blake3::hash(&d).to_hex().to_string();
        if name < real_name {
            break (format!("packs/{}/{name}", &name[..2]), d);
        }
    };
    store.raw.put(&decoy.0, &decoy.1).unwrap();

    // The next snapshot never takes the decoy for the real pack (it does not
    // even list the packs), and saves its own data.
    write(&src.join("exams/new.pdf"), &noise(23, 400_000));
    let o = store.run(&["--json", "snapshot", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert_same_tree(&src, &store.restore("latest", "r-latest"));

    // Prune: the real pack stays (both snapshots need it); the decoy is refused
    // (and said so), never trusted as a copy of its blobs, never deleted as ours.
    let p = store.run(&["prune"]);
    assert!(p.status.success(), "{}", out(&p));
    assert!(
        String::from_utf8_lossy(&p.stderr).contains("belongs to another pack"),
        "{}",
        out(&p)
    );
    assert!(
        store.raw.get(&real).is_ok(),
        "prune deleted the real pack: {}",
        out(&p)
    );
    assert!(store.raw.get(&decoy.0).is_ok(), "prune deleted the decoy");
    assert_same_tree(&src, &store.restore("latest", "r-after-prune"));
    let old = store.restore(first["id"].as_str().unwrap(), "r-first");
    assert!(old.join("exams/ct.dcm").is_file() && !old.join("exams/new.pdf").exists());
    // verify names the planted object.
    let v = store.run(&["verify", "--read-data"]);
    assert_eq!(v.status.code(), Some(1), "{}", out(&v));
    let report = String::from_utf8_lossy(&v.stdout) + String::from_utf8_lossy(&v.stderr);
    let decoy_name = decoy.0.rsplit('/').next().unwrap();
    assert!(
        !report.contains("damaged:"),
        "real files blamed for a decoy: {report}"
    );
    assert!(
        report.contains(decoy_name) && report.contains("belongs to another pack"),
        "{report}"
    );
}

#[test]
fn a_decoy_pack_in_a_local_copy_loses_nothing() {
    a_decoy_pack_loses_nothing(Store::local());
}

#[test]
fn a_decoy_pack_in_s3_loses_nothing() {
    a_decoy_pack_loses_nothing(Store::s3());
}

#[test]
fn a_decoy_pack_in_drive_loses_nothing() {
    a_decoy_pack_loses_nothing(Store::drive());
}

/// Attack: the copy lists names that climb out of a folder (`keys/../../x`),
/// and the operator mirrors it to a USB folder after the server is lost.
fn hostile_names_stay_inside(store: Store) {
    let src = clinic(&store);
    store.snapshot(&src);
    let payload = b"planted by the storage";
    for planted in [
        "keys/../../../escaped-key",
        "snapshots/../../escaped-snapshot",
        "index/..",
        "audit/%2e%2e/escaped-audit",
    ] {
        store.raw.put(planted, payload).unwrap();
    }
    let usb = store.env.path("usb/copy");
    fs::write(
        store.env.path("hcbackup.toml"),
        format!(
            "[[destination]]\nname = \"usb\"\nurl = \"{}\"\n",
            usb.display()
        ),
    )
    .unwrap();
    let o = store.run(&["mirror", "--destination", "usb"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("never writes"),
        "{}",
        out(&o)
    );
    // Nothing above the USB copy: every file the test's folder holds is where it belongs.
    for bad in ["escaped-key", "escaped-snapshot", "escaped-audit"] {
        assert!(
            find_named(store.env.dir.path(), bad).is_none(),
            "{bad} escaped"
        );
    }
    assert!(find_in_tree(store.env.dir.path(), payload).is_none());
    // The copy is whole and restores.
    let copy = Store {
        env: Env {
            dir: tempfile::tempdir().unwrap(),
            repo: usb.clone(),
            cache: store.env.cache.clone(),
        },
        location: usb.display().to_string(),
        drive: None,
        raw: Arc::new(LocalBackend::new(&usb)),
    };
    assert_same_tree(&src, &copy.restore("latest", "r"));
}

fn find_named(root: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in fs::read_dir(root).ok()? {
        let e = e.ok()?;
        if e.file_name() == name {
            return Some(e.path());
        }
        if e.file_type().ok()?.is_dir() {
            if let Some(f) = find_named(&e.path(), name) {
                return Some(f);
            }
        }
    }
    None
}

#[test]
fn hostile_names_listed_by_s3_stay_inside_the_copy() {
    hostile_names_stay_inside(Store::s3());
}

#[test]
fn hostile_names_listed_by_drive_stay_inside_the_copy() {
    hostile_names_stay_inside(Store::drive());
}

/// Attack: swap two index objects, truncate a pack. Each is detected and named;
/// nothing that is still there is lost.
fn swapped_and_truncated_objects_are_named(store: Store) {
    let src = clinic(&store);
    store.snapshot(&src);
    write(&src.join("records/p2.txt"), &text(24, 100_000));
    let second = store.snapshot(&src);
    let index = store.names("index");
    assert!(index.len() >= 2);
    let (a, b) = (format!("index/{}", index[0]), format!("index/{}", index[1]));
    let (ba, bb) = (store.raw.get(&a).unwrap(), store.raw.get(&b).unwrap());
    store.raw.put(&a, &bb).unwrap();
    store.raw.put(&b, &ba).unwrap();
    // With swapped index objects the packs are found by their headers: restore works.
    assert_same_tree(
        &src,
        &store.restore(second["id"].as_str().unwrap(), "r-swapped"),
    );
    let v = store.run(&["verify"]);
    assert_eq!(v.status.code(), Some(1), "{}", out(&v));
    let report = out(&v);
    assert!(
        report.contains(&index[0]) && report.contains(&index[1]),
        "{report}"
    );
    // A truncated pack is named by verify, with the files it affects.
    let (pack, _) = store.packs().into_iter().max_by_key(|(_, s)| *s).unwrap();
    let bytes = store.raw.get(&pack).unwrap();
    store.raw.put(&pack, &bytes[..bytes.len() / 2]).unwrap();
    let v = store.run(&["verify", "--read-data"]);
    assert_eq!(v.status.code(), Some(1), "{}", out(&v));
    let report = out(&v);
    assert!(
        report.contains(pack.rsplit('/').next().unwrap()),
        "{report}"
    );
    assert!(report.contains("ct.dcm"), "{report}");
}

#[test]
fn swapped_and_truncated_objects_in_a_local_copy_are_named() {
    swapped_and_truncated_objects_are_named(Store::local());
}

#[test]
fn swapped_and_truncated_objects_in_s3_are_named() {
    swapped_and_truncated_objects_are_named(Store::s3());
}

#[test]
fn swapped_and_truncated_objects_in_drive_are_named() {
    swapped_and_truncated_objects_are_named(Store::drive());
}

/// Attack (or bad luck): the same data stored twice (two snapshots from two
/// machines at once), and the copy prune would keep is damaged. Prune once
/// deleted the good copy and kept the damaged one; now it checks the copy it
/// keeps and stops before deleting anything.
#[test]
fn prune_never_keeps_a_damaged_copy_in_place_of_a_good_one() {
    let store = Store::local();
    let src = clinic(&store);
    let other_cache = store.env.path("second-machine-cache");
    // Both runs pause after listing the repository and before writing a pack, so
    // neither knows the other's packs: every blob is stored twice.
    let start = |cache: &std::path::Path| {
        store
            .cmd()
            .env("HCBACKUP_CACHE_DIR", cache)
            .env("HCBACKUP_TEST_PAUSE", "archive-before-open:2:1")
            .args(["snapshot", src.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let a = start(&store.env.cache);
    let b = start(&other_cache);
    for mut c in [a, b] {
        assert!(c.wait().unwrap().success());
    }
    let mut data: Vec<(String, u64)> = store.packs();
    data.sort_by_key(|(_, s)| std::cmp::Reverse(*s));
    let (big1, big2) = (&data[0], &data[1]);
    assert_eq!(big1.1, big2.1, "the same data twice: {data:?}");
    // The one prune prefers on a tie is the one with the smaller name.
    let kept = std::cmp::min(&big1.0, &big2.0).clone();
    let path = store.env.repo.join(&kept);
    flip_byte(&path, 1000);
    let o = store.run(&["prune"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not read back"),
        "{}",
        out(&o)
    );
    assert_eq!(store.packs().len(), data.len(), "prune deleted a pack");
    assert_same_tree(&src, &store.restore("latest", "r"));
}

/// Attack on a folder copy (a USB disk someone else had in hand): its `holds`
/// folder made a link to the main repository's `snapshots`, a key file a link to
/// a secret of this machine, a FIFO among the manifests. Once, `mirror` deleted
/// every manifest of the main repository through the link; the secret went to
/// the cloud; the FIFO hung every command.
#[test]
fn links_and_fifos_in_a_folder_copy_are_never_followed() {
    let store = Store::local();
    let src = clinic(&store);
    store.snapshot(&src);
    let usb = store.env.path("usb");
    fs::write(
        store.env.path("hcbackup.toml"),
        format!(
            "[[destination]]\nname = \"usb\"\nurl = \"{}\"\n",
            usb.display()
        ),
    )
    .unwrap();
    store.ok(&["mirror"]);
    let manifests = store.raw.list("snapshots").unwrap();
    // The copy's holds folder now points at the primary's manifests.
    let _ = fs::remove_dir_all(usb.join("holds"));
    std::os::unix::fs::symlink(store.env.repo.join("snapshots"), usb.join("holds")).unwrap();
    let o = store.run(&["mirror"]);
    assert_ne!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("link"), "{}", out(&o));
    assert_eq!(
        store.raw.list("snapshots").unwrap(),
        manifests,
        "mirror deleted manifests through a link"
    );
    // A key file of the primary that is a link to a secret: never read, never copied.
    let secret = store.env.path("shadow");
    fs::write(&secret, b"root:SECRET-HASH-9").unwrap();
    let planted = store.env.repo.join("keys").join("0".repeat(64));
    std::os::unix::fs::symlink(&secret, &planted).unwrap();
    fs::remove_file(usb.join("holds")).unwrap();
    let o = store.run(&["mirror"]);
    assert!(
        find_in_tree(&usb, b"SECRET-HASH-9").is_none(),
        "{}",
        out(&o)
    );
    fs::remove_file(&planted).unwrap();
    // A FIFO among the manifests: listed as nothing, read by nobody.
    let fifo = store.env.repo.join("snapshots").join("f".repeat(64));
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let start = std::time::Instant::now();
    assert_eq!(
        store.ok(&["--json", "snapshots"]).matches("\"id\"").count(),
        1
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    assert_same_tree(&src, &store.restore("latest", "r"));
}

/// Attack: put back an index object a prune removed (a replay). Its packs are
/// gone; once, the catalog believed it, and later snapshots referenced the
/// missing data and were "saved" without it.
#[test]
fn a_replayed_index_object_does_not_make_later_snapshots_incomplete() {
    let store = Store::local();
    let src = clinic(&store);
    write(&src.join("b.bin"), &noise(71, 500_000));
    store.snapshot(&src);
    let saved = |dir: &str| -> Vec<(String, Vec<u8>)> {
        store
            .raw
            .list(dir)
            .unwrap()
            .into_iter()
            .map(|(n, _)| (n.clone(), store.raw.get(&format!("{dir}/{n}")).unwrap()))
            .collect()
    };
    let (index, packs) = (saved("index"), saved("packs"));
    fs::remove_file(src.join("b.bin")).unwrap();
    store.snapshot(&src);
    store.ok(&["forget", "--keep-last", "1", "--prune"]);
    // Put the old index objects back, and junk under the names of the packs
    // prune removed; on this machine (which saw the prune) and on a new one.
    for (n, bytes) in &index {
        store.raw.put(&format!("index/{n}"), bytes).unwrap();
    }
    for (n, _) in &packs {
        let path = format!("packs/{n}");
        if store.raw.stat(&path).is_err() {
            store.raw.put(&path, b"junk").unwrap();
        }
    }
    write(&src.join("b.bin"), &noise(71, 500_000));
    for fresh in [false, true] {
        if fresh {
            fs::remove_dir_all(&store.env.cache).unwrap();
        }
        let o = store.run(&["snapshot", src.to_str().unwrap()]);
        assert!(o.status.success(), "{}", out(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("a replay") || err.contains("not in the repository"),
            "{err}"
        );
        assert_same_tree(&src, &store.restore("latest", &format!("r-{fresh}")));
    }
    // The next prune takes the replayed objects away.
    store.ok(&["prune"]);
    let left = store.names("index");
    for (n, _) in &index {
        assert!(!left.contains(n), "replayed index/{n} is still there");
    }
}

/// Attack: delete a legal hold's object (no password needed) to have forget
/// delete the held snapshot everywhere. The audit log says no `hold remove`
/// lifted it: the snapshot stays, and mirror keeps the hold at the copies.
#[test]
fn a_deleted_hold_object_still_holds() {
    let store = Store::local();
    let src = clinic(&store);
    let held = store.snapshot(&src);
    write(&src.join("later.txt"), b"later");
    store.snapshot(&src);
    let id = held["id"].as_str().unwrap();
    store.ok(&["hold", "add", id, "--reason", "processo 123"]);
    let usb = store.env.path("usb");
    fs::write(
        store.env.path("hcbackup.toml"),
        format!(
            "[[destination]]\nname = \"usb\"\nurl = \"{}\"\n",
            usb.display()
        ),
    )
    .unwrap();
    store.ok(&["mirror"]);
    fs::remove_file(store.env.repo.join("holds").join(id)).unwrap();
    let o = store.run(&["mirror"]);
    assert!(
        usb.join("holds").join(id).exists(),
        "mirror lifted the hold at the copy: {}",
        out(&o)
    );
    let o = store.run(&["forget", "--keep-last", "1", "--prune"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no `hold remove` lifted it"),
        "{}",
        out(&o)
    );
    assert!(
        store.ok(&["snapshots"]).contains(&id[..8]),
        "the held snapshot was forgotten"
    );
}

/// Attack: a junk file among the manifests. It once hid every other snapshot
/// from restore, status and forget; now it is named and left out.
#[test]
fn a_junk_manifest_hides_no_other_snapshot() {
    let store = Store::local();
    let src = clinic(&store);
    store.snapshot(&src);
    store
        .raw
        .put(&format!("snapshots/{}", "e".repeat(64)), &noise(72, 300))
        .unwrap();
    let o = store.run(&[
        "restore",
        "latest",
        "--target",
        store.env.path("r").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&"e".repeat(64)),
        "{}",
        out(&o)
    );
    // Asked for by its whole id, it says why.
    let o = store.run(&[
        "restore",
        &"e".repeat(64),
        "--target",
        store.env.path("r2").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    // Prune, which must know every snapshot, refuses to delete anything.
    let o = store.run(&["prune"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
}

/// `repair` of the only index object, damaged: its packs are indexed again (once,
/// repair removed it and wrote none, and a new machine could restore nothing).
#[test]
fn repair_indexes_again_the_packs_of_a_damaged_index_object() {
    let store = Store::local();
    let src = clinic(&store);
    store.snapshot(&src);
    let (name, _) = store.raw.list("index").unwrap().remove(0);
    let path = store.env.repo.join("index").join(&name);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..50]).unwrap();
    let o = store.run(&["repair"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        !store.raw.list("index").unwrap().is_empty(),
        "no index object left"
    );
    fs::remove_dir_all(&store.env.cache).unwrap();
    assert_same_tree(&src, &store.restore("latest", "r"));
}

/// Attack (on every copy, through the primary): someone who can write the local
/// repository folder, but has no password, replaces objects while the nightly
/// mirror runs (after it opened the repository): the escrow key file, the key
/// file in use, the config's check value, a manifest, an index object, every
/// audit event and a hold. None of it may reach the copy, over the good objects
/// there: the copy still opens with either password, lists and restores every
/// snapshot, verifies clean, and its audit log holds. The mirror says what it
/// refused (exit 1).
#[test]
fn a_tampered_primary_does_not_spread_to_its_copies() {
    let env = Env::new();
    let usb = env.usb_destination();
    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(71, 400_000));
    let escrow = env.path("escrow-pw");
    fs::write(&escrow, "escrow password for the notary\n").unwrap();
    env.ok(&[
        "key",
        "add",
        "--new-password-file",
        escrow.to_str().unwrap(),
    ]);
    let first = env.snapshot(&[&src]);
    let first = first["id"].as_str().unwrap().to_string();
    write(&src.join("exams/b.dcm"), &noise(72, 300_000));
    env.snapshot(&[&src]);
    env.ok(&["hold", "add", &first[..8], "--reason", "processo 7"]);
    env.ok(&["mirror"]);

    let mirror = env
        .cmd()
        .env("HCBACKUP_TEST_PAUSE", "mirror-locked:3")
        .arg("mirror")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_lock(&env.repo);
    let junk = |p: &std::path::Path, seed: u64| fs::write(p, noise(seed, 777)).unwrap();
    for (i, e) in fs::read_dir(env.repo.join("keys")).unwrap().enumerate() {
        fs::write(e.unwrap().path(), format!("{{\"junk\":{i}}}")).unwrap();
    }
    let config = fs::read_to_string(env.repo.join("config")).unwrap();
    let c: serde_json::Value = serde_json::from_str(&config).unwrap();
    let check = c["key_check"].as_str().unwrap();
    let other = format!(
        "{}{}",
        if check.starts_with('0') { "1" } else { "0" },
        &check[1..]
    );
    fs::write(env.repo.join("config"), config.replace(check, &other)).unwrap();
    junk(&env.repo.join("snapshots").join(&first), 73);
    let index = fs::read_dir(env.repo.join("index"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    junk(&index, 74);
    for (i, e) in fs::read_dir(env.repo.join("audit")).unwrap().enumerate() {
        junk(&e.unwrap().path(), 100 + i as u64);
    }
    junk(&env.repo.join("holds").join(&first), 75);
    let o = mirror.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not mirrored"),
        "{}",
        out(&o)
    );

    // The copy, seen from a new machine with either password.
    let on_usb = |pw: &str, args: &[&str]| {
        env.cmd_repo(usb.as_os_str())
            .env("HCBACKUP_PASSWORD", pw)
            .env(
                "HCBACKUP_CACHE_DIR",
                env.path(&format!("usb-cache-{}", pw.len())),
            )
            .args(args)
            .output()
            .unwrap()
    };
    for pw in [PASSWORD, "escrow password for the notary"] {
        let o = on_usb(pw, &["--json", "snapshots"]);
        assert!(o.status.success(), "{}", out(&o));
        let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    }
    let o = on_usb(PASSWORD, &["verify", "--read-data"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = on_usb(PASSWORD, &["audit", "verify"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = on_usb(PASSWORD, &["hold", "list"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("processo 7"),
        "{}",
        out(&o)
    );
    let target = env.path("from-usb");
    let o = on_usb(
        PASSWORD,
        &["restore", &first[..8], "--target", target.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", out(&o));
    assert!(target.join("uploads/exams/a.dcm").exists());
}

/// Attack: someone with access to the storage hides the newest manifest (moves it
/// away) before the clinic restores. `restore latest` must not hand back the
/// older snapshot as if it were the newest; `verify` names the hidden one, `prune`
/// does not delete its data meanwhile, and `repair` brings it back from the copy.
#[test]
fn a_hidden_newest_manifest_is_noticed_and_repaired() {
    let env = Env::new();
    env.usb_destination();
    let src = env.path("uploads");
    write(&src.join("a.txt"), &text(81, 5000));
    env.snapshot(&[&src]);
    write(&src.join("b.txt"), &text(82, 5000));
    let newest = env.snapshot(&[&src])["id"].as_str().unwrap().to_string();
    fs::rename(
        env.repo.join("snapshots").join(&newest),
        env.path("hidden-manifest"),
    )
    .unwrap();

    let target = env.path("r");
    let o = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0), "{}", out(&o));
    assert!(
        out(&o).contains(&newest[..8]) && out(&o).contains("repair"),
        "{}",
        out(&o)
    );
    assert!(
        !target.join("uploads/a.txt").exists(),
        "an older snapshot was restored as the latest"
    );
    let v = env.run(&["verify"]);
    assert_eq!(v.status.code(), Some(1), "{}", out(&v));
    assert!(out(&v).contains(&newest[..8]), "{}", out(&v));
    let p = env.run(&["prune"]);
    assert!(
        !p.status.success(),
        "prune ran beside a hidden snapshot: {}",
        out(&p)
    );

    env.ok(&["repair"]);
    let r = env.restore("latest", "r2");
    assert_same_tree(&src, &r.join("uploads"));
    assert!(env.ok(&["verify", "--read-data"]).contains("no problems"));
}

/// Attack (on the copies, through key files, holds and index objects that are
/// authentic or look it): someone who can write the local folder copies the key
/// file in use over the escrow key file before its first mirror and plants
/// copies of it under new names; puts back a hold that `hold remove` lifted; and
/// puts back index objects a prune removed. None of it reaches the copy: the
/// escrow key is checked against the hash the audit log recorded at `key add`,
/// planted copies are refused, the lifted hold stays lifted there, and the
/// replayed index objects stay here. Once the escrow file is put right, it goes.
#[test]
fn swapped_keys_replayed_holds_and_index_objects_do_not_spread() {
    let env = Env::new();
    let usb = env.usb_destination();
    let src = env.path("uploads");
    write(&src.join("a.txt"), &text(91, 4000));
    let first = env.snapshot(&[&src])["id"].as_str().unwrap().to_string();
    let escrow = env.path("escrow-pw");
    fs::write(&escrow, "escrow password for the notary\n").unwrap();
    let added = env.json(&[
        "key",
        "add",
        "--new-password-file",
        escrow.to_str().unwrap(),
    ]);
    let k2 = added["id"].as_str().unwrap().to_string();
    let keys = env.repo.join("keys");
    let k1 = fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| *n != k2)
        .unwrap();
    let k2_bytes = fs::read(keys.join(&k2)).unwrap();
    fs::copy(keys.join(&k1), keys.join(&k2)).unwrap();
    for i in 0..3 {
        fs::copy(keys.join(&k1), keys.join(format!("{}{i}", "0".repeat(63)))).unwrap();
    }
    let o = env.run(&["--json", "mirror"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failures = report[0]["failures"].to_string();
    assert!(
        failures.contains(&format!(
            "keys/{k2}: it differs from the key file the audit log recorded"
        )),
        "{failures}"
    );
    assert_eq!(
        failures.matches("a copy of another key file").count(),
        3,
        "{failures}"
    );
    let at_usb: Vec<String> = fs::read_dir(usb.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        at_usb,
        vec![k1.clone()],
        "swapped or planted key files reached the copy"
    );
    // Put right here, the escrow key goes, and opens the copy.
    fs::write(keys.join(&k2), &k2_bytes).unwrap();
    for i in 0..3 {
        fs::remove_file(keys.join(format!("{}{i}", "0".repeat(63)))).unwrap();
    }
    env.ok(&["mirror"]);
    let o = env
        .cmd_repo(usb.as_os_str())
        .env("HCBACKUP_PASSWORD", "escrow password for the notary")
        .env("HCBACKUP_CACHE_DIR", env.path("new-machine"))
        .args(["snapshots"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));

    // A lifted hold put back here stays lifted at the copy.
    env.ok(&["hold", "add", &first[..8], "--reason", "processo 9"]);
    env.ok(&["mirror"]);
    let hold = env.repo.join("holds").join(&first);
    let saved = fs::read(&hold).unwrap();
    env.ok(&["hold", "remove", &first[..8], "--reason", "caso encerrado"]);
    env.ok(&["mirror"]);
    fs::write(&hold, &saved).unwrap();
    env.ok(&["mirror"]);
    assert!(
        !usb.join("holds").join(&first).exists(),
        "a lifted hold reached the copy again"
    );
    // (Here, forget still honours the replayed object: keeping more is the safe side.)
    fs::remove_file(&hold).unwrap();

    // Index objects a prune removed, put back here, stay here.
    let old_index: Vec<(std::path::PathBuf, Vec<u8>)> = fs::read_dir(env.repo.join("index"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    write(&src.join("a.txt"), &text(92, 4000));
    env.snapshot(&[&src]);
    env.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--destination",
        "all",
        "--prune",
    ]);
    let pruned: Vec<&(std::path::PathBuf, Vec<u8>)> =
        old_index.iter().filter(|(p, _)| !p.exists()).collect();
    assert!(!pruned.is_empty(), "the prune removed no index object");
    for (p, b) in &pruned {
        fs::write(p, b).unwrap();
    }
    let o = env.run(&["mirror"]);
    assert!(out(&o).contains("a replay"), "{}", out(&o));
    for (p, _) in &pruned {
        let name = p.file_name().unwrap();
        assert!(
            !usb.join("index").join(name).exists(),
            "a replayed index object reached the copy"
        );
    }
    let o = env
        .cmd_repo(usb.as_os_str())
        .env("HCBACKUP_CACHE_DIR", env.path("new-machine-2"))
        .args(["verify", "--read-data"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}
