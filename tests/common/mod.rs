//! Shared helpers for the integration tests: a repository in a temp folder, the real
//! `hcbackup` binary run against it, generated clinic-like data, and tree digests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod cluster;
mod data;
pub mod drive;
pub mod faults;
pub mod listener;
pub mod pg;
pub mod s3;
pub mod tree;
#[allow(unused_imports)]
pub use data::{noise, text};

pub const PASSWORD: &str = "correct horse battery staple";

/// What the binary under test inherits from the test runner's environment:
/// the system's basics and the test S3 server's credentials (the AWS SDK
/// reads them itself). Tests set everything else they need on the command.
const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TZ",
    "TMPDIR",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "RUST_BACKTRACE",
    "LLVM_PROFILE_FILE",
];

pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub cache: PathBuf,
}

impl Env {
    /// A fresh, initialised repository.
    pub fn new() -> Env {
        let e = Env::uninit();
        e.ok(&["init"]);
        e
    }

    pub fn uninit() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let cache = dir.path().join("cache");
        Env { dir, repo, cache }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The binary with a clean environment: the test password, a private cache, cheap KDF.
    pub fn cmd(&self) -> Command {
        self.cmd_repo(self.repo.as_os_str())
    }

    /// `cmd` on another repository location (a cloud one, say).
    pub fn cmd_repo(&self, repo: &std::ffi::OsStr) -> Command {
        // HCBACKUP_TEST_BIN: run the tests against another build (an older release,
        // to see an attack test fail before its fix).
        let bin = std::env::var_os("HCBACKUP_TEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_hcbackup").into());
        let mut c = Command::new(bin);
        // A cleared environment and what the machine and the test servers need:
        // nothing of the developer's own settings leaks into a test.
        c.env_clear();
        for (k, v) in std::env::vars_os() {
            let Some(name) = k.to_str() else { continue };
            if INHERITED.contains(&name) || name.starts_with("LC_") {
                c.env(&k, v);
            }
        }
        // Fail at once on another run's lock (the default waits 30 minutes);
        // the tests of waiting set their own.
        c.env("HCBACKUP_PASSWORD", PASSWORD)
            .env("HCBACKUP_LOCK_WAIT", "0")
            .env("HCBACKUP_CACHE_DIR", &self.cache)
            .env("HCBACKUP_TEST_KDF", "1")
            // Prune deletes in the run that condemns (after the snapshots running
            // then); the tests of the grace period set their own.
            .env("HCBACKUP_PRUNE_GRACE_SECS", "0")
            .current_dir(self.dir.path())
            .arg("--repo")
            .arg(repo)
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run `args` with `HCBACKUP_FAILPOINT=failpoint` and require that the run
    /// was killed there (SIGKILL, as `kill -9`).
    pub fn killed_at(&self, failpoint: &str, args: &[&str]) -> Output {
        use std::os::unix::process::ExitStatusExt;
        let o = self
            .cmd()
            .env("HCBACKUP_FAILPOINT", failpoint)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(9),
            "{failpoint} did not fire: {}",
            out(&o)
        );
        o
    }

    /// Start `cmd` (this environment's, with its own variables and arguments)
    /// paused at `pause` (`name:SECS[:N]`), and return once it has reached it.
    pub fn start_until_paused(&self, mut cmd: Command, pause: &str) -> std::process::Child {
        let flag = self.path(&format!("paused-{}", pause.split(':').next().unwrap()));
        let _ = fs::remove_file(&flag);
        let child = cmd
            .env("HCBACKUP_TEST_PAUSE", pause)
            .env("HCBACKUP_TEST_PAUSED_FILE", &flag)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while !flag.exists() {
            assert!(start.elapsed().as_secs() < 60, "never reached {pause}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    /// Run and require exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "hcbackup {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// The check every test that changes a repository ends with (as restic's
    /// end with its checker): `verify --read-data` reads every pack back and
    /// finds no problem.
    pub fn verified(&self) {
        let v = self.json(&["verify", "--read-data"]);
        // One copy: its report; several: an array of them.
        let report = if v.is_array() { &v[0] } else { &v };
        assert_eq!(report["problems"], serde_json::json!([]), "{v}");
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    /// Snapshot `paths`; returns the --json document.
    pub fn snapshot(&self, paths: &[&Path]) -> serde_json::Value {
        let mut a: Vec<&str> = vec!["snapshot"];
        let ps: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        a.extend(ps.iter().map(|s| s.as_str()));
        self.json(&a)
    }

    /// Restore snapshot `id` into a new folder and return it.
    pub fn restore(&self, id: &str, into: &str) -> PathBuf {
        let t = self.path(into);
        self.ok(&["restore", id, "--target", t.to_str().unwrap()]);
        t
    }

    /// The ids of the snapshots, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        ids_listed(&self.json(&["snapshots"]))
    }

    /// Write an hcbackup.toml with one folder destination named `usb` (a USB disk);
    /// returns where that copy lives.
    pub fn usb_destination(&self) -> PathBuf {
        let usb = self.path("usb-disk/hcbackup");
        fs::write(
            self.path("hcbackup.toml"),
            format!(
                "[[destination]]\nname = \"usb\"\nurl = \"{}\"\n",
                usb.display()
            ),
        )
        .unwrap();
        usb
    }

    /// The repository's catalog file (the one ending in `.sqlite`, the primary's
    /// when destinations have theirs too).
    pub fn catalog_file(&self) -> PathBuf {
        let mut found: Vec<PathBuf> = fs::read_dir(&self.cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
            .collect();
        // The primary's is `<id>.sqlite`; a copy's `<id>.<hash>.sqlite`.
        found.sort_by_key(|p| p.file_name().unwrap().len());
        found.into_iter().next().expect("a catalog")
    }

    /// Sum of the repository's file sizes, but the audit log's (which grows by
    /// one event with every command, a dry run included).
    pub fn repo_size(&self) -> u64 {
        let audit = self.repo.join("audit");
        dir_size(&self.repo) - if audit.exists() { dir_size(&audit) } else { 0 }
    }
}

/// Wait (up to 30 s) until `repo/locks` holds a lock file, not the temporary
/// file it is written through: a run started in the background holds its lock.
/// Returns the lock file's path.
/// The snapshot ids of a `--json snapshots` listing, in its order.
pub fn ids_listed(listing: &serde_json::Value) -> Vec<String> {
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

pub fn wait_for_lock(repo: &Path) -> PathBuf {
    let start = std::time::Instant::now();
    loop {
        let found = fs::read_dir(repo.join("locks"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                !p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            });
        if let Some(lock) = found {
            return lock;
        }
        assert!(start.elapsed().as_secs() < 30, "no lock appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Pack files of a repository folder, smallest first.
pub fn pack_files(repo: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(repo.join("packs"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    out.sort_by_key(|p| fs::metadata(p).unwrap().len());
    out
}

/// Flip one bit of the byte at `at` (or the last byte) of a file.
pub fn flip_byte(p: &Path, at: usize) {
    let mut b = fs::read(p).unwrap();
    let at = at.min(b.len() - 1);
    b[at] ^= 0x40;
    fs::write(p, b).unwrap();
}

pub fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

pub fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// Everything a restore must reproduce, per relative path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub hash: [u8; 32],
    pub target: Vec<u8>,
}

pub fn digest(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<Vec<u8>, Entry>) {
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        let m = fs::symlink_metadata(&path).unwrap();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let ft = m.file_type();
        let (kind, hash, target) = if ft.is_dir() {
            walk(root, &path, out);
            ("dir", [0; 32], vec![])
        } else if ft.is_symlink() {
            (
                "symlink",
                [0; 32],
                fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if ft.is_file() {
            (
                "file",
                *blake3::hash(&fs::read(&path).unwrap()).as_bytes(),
                vec![],
            )
        } else {
            use std::os::unix::fs::FileTypeExt;
            (
                if ft.is_fifo() { "fifo" } else { "special" },
                [0; 32],
                vec![],
            )
        };
        out.insert(
            rel,
            Entry {
                kind,
                mode: if kind == "symlink" {
                    0
                } else {
                    m.mode() & 0o7777
                },
                uid: m.uid(),
                gid: m.gid(),
                mtime: (m.mtime(), m.mtime_nsec()),
                size: if kind == "file" { m.len() } else { 0 },
                hash,
                target,
            },
        );
    }
}

/// Assert a restored tree equals its source, content and metadata.
pub fn assert_same_tree(src: &Path, restored: &Path) {
    let a = digest(src);
    let b = digest(restored);
    assert_eq!(
        a.len(),
        b.len(),
        "entry count differs: {:?}",
        a.keys().filter(|k| !b.contains_key(*k)).collect::<Vec<_>>()
    );
    for (k, v) in &a {
        assert_eq!(
            Some(v),
            b.get(k),
            "entry {} differs",
            String::from_utf8_lossy(k)
        );
    }
}

/// The first file under `root` whose bytes contain `needle`.
pub fn find_in_tree(root: &Path, needle: &[u8]) -> Option<PathBuf> {
    for e in fs::read_dir(root).ok()? {
        let p = e.ok()?.path();
        let m = fs::symlink_metadata(&p).ok()?;
        if m.is_dir() {
            if let Some(f) = find_in_tree(&p, needle) {
                return Some(f);
            }
        } else if m.is_file() {
            let b = fs::read(&p).ok()?;
            if b.windows(needle.len()).any(|w| w == needle) {
                return Some(p);
            }
        }
    }
    None
}

/// Unmounts a tmpfs when dropped.
pub struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Create `dir` and mount a tmpfs of `size` (e.g. "3m") on it: a small, full-able
/// disk. Needs root (CI runs as root).
pub fn mount_tmpfs(dir: &Path, size: &str) -> Unmount {
    mount_fs(dir, "tmpfs", &format!("size={size}"))
}

/// Create `dir` and mount a ramfs on it: a file system that refuses O_DIRECT.
pub fn mount_ramfs(dir: &Path) -> Unmount {
    mount_fs(dir, "ramfs", "mode=0755")
}

/// Create `dir` and bind-mount `src` on it read-only: a write-protected USB disk.
pub fn mount_read_only(src: &Path, dir: &Path) -> Unmount {
    fs::create_dir_all(dir).unwrap();
    let bind = Command::new("mount")
        .arg("--bind")
        .arg(src)
        .arg(dir)
        .status()
        .unwrap();
    assert!(
        bind.success(),
        "cannot bind-mount {} (tests run as root in CI)",
        src.display()
    );
    let guard = Unmount(dir.to_path_buf());
    let ro = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(ro.success(), "cannot remount {} read-only", dir.display());
    guard
}

fn mount_fs(dir: &Path, fstype: &str, options: &str) -> Unmount {
    // SAFETY: geteuid cannot fail.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "this test mounts a {fstype} and must run as root (CI does)"
    );
    fs::create_dir_all(dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", fstype, "-o", options, fstype])
        .arg(dir)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "cannot mount a {fstype} on {}",
        dir.display()
    );
    Unmount(dir.to_path_buf())
}

/// A finished command's exit code, stdout and stderr, for assertion messages.
pub fn out(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
