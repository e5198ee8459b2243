//! The format documents, proved by a second program: `tests/reader/hcbread.py`,
//! written from docs/format.md and docs/crypto.md alone (Python, `cryptography`,
//! `blake3`, `zstandard`, `cbor2`), restores what this binary writes — every kind
//! of entry and its metadata, across a key rotation, after a prune, a database
//! dump, a format-1 repository — byte for byte as `hcbackup restore` does. The
//! other way round, this binary restores and verifies `tests/fixtures/vectors`, a
//! repository the second implementation wrote (tests/reader/make_vectors.py).
//! scripts/test.sh installs the reader's packages and names its Python in
//! HCBACKUP_TEST_READER_PYTHON.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::pg::Server;
use common::tree::{chmod, generate, set_mtime};
use common::*;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run the second reader with the test password.
fn reader(args: &[&OsStr]) -> Output {
    let python = std::env::var_os("HCBACKUP_TEST_READER_PYTHON").unwrap_or_else(|| {
        panic!("HCBACKUP_TEST_READER_PYTHON is not set: run the tests with scripts/test.sh, which installs the second reader's packages")
    });
    Command::new(python)
        .arg(root().join("tests/reader/hcbread.py"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HCBACKUP_PASSWORD", PASSWORD)
        .output()
        .unwrap()
}

fn reader_ok(args: &[&OsStr]) -> String {
    let o = reader(args);
    assert!(o.status.success(), "hcbread {args:?}: {}", out(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// The second reader's restore of `snapshot` into a new folder `into`.
fn read_back(env: &Env, snapshot: &str, into: &str) -> PathBuf {
    let t = env.path(into);
    reader_ok(&[
        "restore".as_ref(),
        env.repo.as_os_str(),
        snapshot.as_ref(),
        t.as_os_str(),
        "--privileged".as_ref(),
    ]);
    t
}

/// hcbackup's own restore, privileged like the reader's.
fn restore_privileged(env: &Env, snapshot: &str, into: &str) -> PathBuf {
    let t = env.path(into);
    env.ok(&[
        "restore",
        snapshot,
        "--target",
        t.to_str().unwrap(),
        "--restore-privileged",
    ]);
    t
}

fn copy_fixture(name: &str, to: &Path) {
    let o = Command::new("cp")
        .arg("-a")
        .arg(root().join("tests/fixtures").join(name))
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}

#[test]
fn the_second_reader_checks_the_documents_test_vectors() {
    let said = reader_ok(&[
        "vectors".as_ref(),
        root().join("docs/vectors.json").as_os_str(),
    ]);
    assert_eq!(said.trim(), "all test vectors match");
}

/// What generate() makes, plus what only a root-run backup meets: a device
/// node, a socket, a hard link, a setgid folder, another owner.
fn every_kind_of_entry(src: &Path) {
    generate(src);
    let dev = src.join("perms/null-device");
    let c = std::ffi::CString::new(dev.as_os_str().as_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o620, libc::makedev(1, 3)) },
        0
    );
    drop(std::os::unix::net::UnixListener::bind(src.join("agenda.sock")).unwrap());
    fs::hard_link(src.join("empty.pdf"), src.join("empty-again.pdf")).unwrap();
    fs::create_dir(src.join("shared")).unwrap();
    write(&src.join("shared/laudo.pdf"), &noise(11, 5 << 20));
    std::os::unix::fs::lchown(src.join("shared/laudo.pdf"), Some(2001), Some(2002)).unwrap();
    chmod(&src.join("shared"), 0o2750);
    set_mtime(&src.join("shared"), 1_700_000_000, 999_999_999);
}

/// A digest of `src` as a restore gives it back: sockets are not recreated.
fn restorable(src: &Path) -> std::collections::BTreeMap<Vec<u8>, Entry> {
    let mut d = digest(src);
    d.retain(|k, _| !k.ends_with(b".sock"));
    d
}

#[test]
fn the_second_reader_restores_every_kind_of_entry_across_rotation_and_prune() {
    let env = Env::new();
    let src = env.path("uploads");
    every_kind_of_entry(&src);
    let day1 = restorable(&src);
    let first = env.snapshot(&[&src]);
    let first = first["id"].as_str().unwrap().to_string();

    // A key rotation between the snapshots: the second is sealed in epoch 1.
    env.ok(&["key", "rotate"]);
    write(&src.join("exams/new-exam.dcm"), &noise(9, 2 << 20));
    fs::remove_file(src.join("exams/video/teleconsulta-2026-01-15.mp4")).unwrap();
    let second = env.snapshot(&[&src]);
    let second = second["id"].as_str().unwrap().to_string();

    for (id, want, n) in [(&first, &day1, 1), (&second, &restorable(&src), 2)] {
        let ours = read_back(&env, id, &format!("py{n}"));
        assert_eq!(&digest(&ours.join("uploads")), want, "snapshot {n}");
        let theirs = restore_privileged(&env, id, &format!("hcb{n}"));
        assert_same_tree(&theirs, &ours);
    }
    // The hard link came back as one, from both readers.
    for r in ["py1", "hcb1"] {
        let ino = |f: &str| {
            fs::metadata(env.path(r).join("uploads").join(f))
                .unwrap()
                .ino()
        };
        assert_eq!(ino("empty.pdf"), ino("empty-again.pdf"), "{r}");
    }
    // The device node came back as one.
    let m = fs::symlink_metadata(env.path("py1/uploads/perms/null-device")).unwrap();
    assert_eq!(
        (m.mode() & libc::S_IFMT, m.rdev()),
        (libc::S_IFCHR, libc::makedev(1, 3))
    );

    // Without --privileged the setuid bit stays off, as hcbackup's restore does.
    let plain = env.path("plain");
    reader_ok(&[
        "restore".as_ref(),
        env.repo.as_os_str(),
        second.as_ref(),
        plain.as_os_str(),
    ]);
    let mode = fs::metadata(plain.join("uploads/perms/setuid-tool"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert!(!plain.join("uploads/perms/null-device").exists());

    // Forget the first snapshot and prune: the video's packs go, the rest is
    // repacked or kept; the reader still restores the second byte for byte.
    let packs_before = pack_files(&env.repo);
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(env.snapshot_ids(), vec![second.clone()]);
    assert_ne!(
        pack_files(&env.repo),
        packs_before,
        "prune removed the video's packs"
    );
    let after = read_back(&env, &second, "py-after-prune");
    assert_eq!(digest(&after.join("uploads")), restorable(&src));
    let gone = reader(&[
        "restore".as_ref(),
        env.repo.as_os_str(),
        first.as_ref(),
        env.path("gone").as_os_str(),
    ]);
    assert!(
        !gone.status.success() && out(&gone).contains("0 snapshots match"),
        "{}",
        out(&gone)
    );
    let v = env.json(&["verify", "--read-data"]);
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn the_second_reader_restores_the_database_dump() {
    let server = Server::from_env();
    let db = server.create("reader");
    db.psql(
        "CREATE TABLE patients (id int PRIMARY KEY, name text, born date); \
         INSERT INTO patients SELECT g, 'paciente ' || g, date '1950-01-01' + g \
         FROM generate_series(1, 20000) g;",
    );
    let env = Env::new();
    let o = env
        .pg_cmd(&server, &db.name)
        .args(["--json", "snapshot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = snap["id"].as_str().unwrap();

    let (ours, globals) = (env.path("reader.dump"), env.path("globals.sql"));
    reader_ok(&[
        "dump".as_ref(),
        env.repo.as_os_str(),
        id.as_ref(),
        db.name.as_ref(),
        ours.as_os_str(),
        "--globals".as_ref(),
        globals.as_os_str(),
    ]);
    let theirs = env.path("export.dump");
    env.ok(&["export", id, "--db-dump", theirs.to_str().unwrap()]);
    let dump = fs::read(&ours).unwrap();
    assert!(dump.starts_with(b"PGDMP"), "pg_restore's custom format");
    assert!(
        dump.len() > 200_000,
        "a dump of 20,000 rows, several chunk lists"
    );
    assert_eq!(dump, fs::read(&theirs).unwrap());
    let globals = fs::read_to_string(&globals).unwrap();
    assert!(globals.contains("CREATE ROLE hcbackup_test"), "{globals}");
    assert_eq!(
        fs::metadata(&ours).unwrap().permissions().mode() & 0o777,
        0o600
    );
    env.verified();
}

#[test]
fn the_second_reader_restores_a_format_1_repository() {
    let env = Env::uninit();
    copy_fixture("format1", &env.repo);
    let before = read_back(&env, "latest", "py-format1");
    // hcbackup upgrades the config on open (format 2, key check); both read it.
    let theirs = restore_privileged(&env, "latest", "hcb");
    assert_same_tree(&theirs, &before);
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(env.repo.join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], 2);
    let after = read_back(&env, "latest", "py-upgraded");
    assert_same_tree(&theirs, &after);
}

/// The other way round: the repository the second implementation wrote from the
/// documents, restored and verified by this binary.
#[test]
fn hcbackup_restores_the_repository_the_vectors_describe() {
    let env = Env::uninit();
    copy_fixture("vectors", &env.repo);
    let vectors: serde_json::Value =
        serde_json::from_slice(&fs::read(root().join("docs/vectors.json")).unwrap()).unwrap();
    let t = restore_privileged(&env, "latest", "hcb");
    let ours = read_back(&env, "latest", "py");
    assert_same_tree(&t, &ours);
    for (path, want) in vectors["restored"].as_object().unwrap() {
        let p = t.join(path);
        let want = want.as_str().unwrap();
        let m = fs::symlink_metadata(&p).unwrap();
        if let Some(target) = want.strip_prefix("-> ") {
            assert_eq!(fs::read_link(&p).unwrap(), Path::new(target));
        } else if m.is_dir() {
            assert_eq!(fs::read_dir(&p).unwrap().count(), 0);
        } else {
            assert_eq!(fs::read(&p).unwrap(), want.as_bytes(), "{path}");
        }
        assert_eq!((m.uid(), m.gid()), (1000, 1000), "{path}");
        assert_eq!(
            (m.mtime(), m.mtime_nsec()),
            (1_796_040_000, 123_456_789),
            "{path}"
        );
    }
    let a = fs::metadata(t.join("uploads/a.txt")).unwrap();
    assert_eq!(a.mode() & 0o7777, 0o640);
    let v = env.json(&["verify", "--read-data"]);
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
}
