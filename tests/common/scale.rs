//! The scale harness (issue #20), shared by `benches/scale.rs` and
//! `tests/scale.rs`: a synthetic repository of a given shape
//! (`hcbackup::repo::synth`) on a local folder, and each command measured on
//! it — peak memory and time (GNU time), storage requests
//! (`HCBACKUP_REQUESTS_FILE`) and the catalog's size afterwards. The crate
//! including it has `common` (`benches/common`: GNU time) and `data`
//! (`tests/common/data.rs`) modules.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use hcbackup::repo::synth::{self, Made, Shape};
use hcbackup::repo::Repository;
use hcbackup::storage::LocalBackend;

/// One command's figures.
#[derive(Clone, Debug)]
pub struct Row {
    pub command: &'static str,
    pub peak_kib: u64,
    pub secs: f64,
    pub requests: u64,
    pub catalog_bytes: u64,
}

pub struct Harness {
    pub work: PathBuf,
    pub repo: PathBuf,
    pub cache: PathBuf,
    bin: PathBuf,
    cheap_kdf: bool,
}

const PASSWORD: &str = "scale harness";

impl Harness {
    /// A harness working in `work` (emptied), running `bin`.
    pub fn new(work: &Path, bin: &Path) -> Harness {
        let _ = fs::remove_dir_all(work);
        fs::create_dir_all(work).unwrap();
        Harness {
            work: work.to_path_buf(),
            repo: work.join("repo"),
            cache: work.join("cache"),
            bin: bin.to_path_buf(),
            cheap_kdf: false,
        }
    }

    /// Keys made with the test suite's cheap KDF (debug builds): its 64 MiB
    /// no longer hide what grows.
    pub fn cheap_kdf(mut self) -> Harness {
        self.cheap_kdf = true;
        self
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("HCBACKUP_PASSWORD", PASSWORD)
            .env("HCBACKUP_CACHE_DIR", &self.cache)
            .env("HCBACKUP_PRUNE_GRACE_SECS", "0")
            .env("HCBACKUP_LOCK_WAIT", "0")
            .env_remove("HCBACKUP_CONFIG")
            .arg("-q")
            .arg("--repo")
            .arg(&self.repo)
            .current_dir(&self.work);
        if self.cheap_kdf {
            c.env("HCBACKUP_TEST_KDF", "1");
        }
        c
    }

    /// Initialise the repository and make the synthetic metadata of `shape`;
    /// the catalog used to make it is dropped.
    pub fn build(&self, shape: &Shape) -> Made {
        let o = self.cmd().arg("init").output().unwrap();
        assert!(
            o.status.success(),
            "init: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let gen_cache = self.work.join("gen-cache");
        let made = {
            let backend = Arc::new(LocalBackend::new(&self.repo));
            let mut pw = || Ok(zeroize::Zeroizing::new(PASSWORD.to_string()));
            let repo = Repository::open(backend, &mut pw, &gen_cache).unwrap();
            let root = self.repo.clone();
            // A sparse file of the size the index gives: no bytes on disk.
            let mut put = |path: &str, size: u64| -> hcbackup::Result<()> {
                let p = root.join(path);
                let sparse = fs::create_dir_all(p.parent().unwrap())
                    .and_then(|_| fs::File::create(&p))
                    .and_then(|f| f.set_len(size));
                sparse.map_err(|e| hcbackup::Error::Failed(e.to_string()))
            };
            synth::generate(&repo, shape, &mut put).unwrap()
        };
        fs::remove_dir_all(&gen_cache).unwrap();
        made
    }

    /// Run `args`; it must succeed. Its figures, under `command`.
    pub fn measure(&self, command: &'static str, args: &[&str]) -> Row {
        let requests = self.work.join("requests.json");
        let _ = fs::remove_file(&requests);
        let mut c = self.cmd();
        c.env("HCBACKUP_REQUESTS_FILE", &requests).args(args);
        let m = crate::common::timed(&mut c);
        let counted: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&requests).unwrap()).unwrap();
        Row {
            command,
            peak_kib: m.peak_kib,
            secs: m.secs,
            requests: counted["total"].as_u64().unwrap(),
            catalog_bytes: crate::common::dir_size(&self.cache),
        }
    }

    /// Every command, in a clinic's order: a new machine's catalog, the
    /// listing, a nightly snapshot of `nightly` (real files), its restore,
    /// stats, verify, forget with the default policy (and its prune), and a
    /// prune with nothing to delete.
    pub fn measure_all(&self, nightly: &Path) -> Vec<Row> {
        let restored = self.work.join("restored");
        let _ = fs::remove_dir_all(&restored);
        let nightly = nightly.to_str().unwrap();
        vec![
            self.measure("catalog rebuild", &["catalog", "rebuild"]),
            self.measure("snapshots", &["snapshots"]),
            self.measure("snapshot (nightly)", &["snapshot", nightly]),
            self.measure(
                "restore (nightly)",
                &["restore", "latest", "--target", restored.to_str().unwrap()],
            ),
            self.measure("stats", &["stats"]),
            self.measure("verify", &["verify"]),
            self.measure(
                "forget --prune",
                &[
                    "forget",
                    "--keep-daily",
                    "30",
                    "--keep-monthly",
                    "12",
                    "--keep-yearly",
                    "20",
                    "--prune",
                ],
            ),
            self.measure("prune", &["prune"]),
        ]
    }
}

/// A shape of `chunks` chunks: a file per 10 chunks, `snapshots` days of one
/// new chunk each, 16 chunks a pack (1 MiB chunks in 16 MiB packs).
pub fn shape(chunks: u64, snapshots: u64) -> Shape {
    Shape {
        chunks,
        files: (chunks / 10).max(1),
        snapshots,
        daily_chunks: 1,
        blobs_per_pack: 16,
    }
}

/// A folder of 20 records (text), the nightly snapshot's, in `dir`.
pub fn nightly_folder(dir: &Path) -> PathBuf {
    let nightly = dir.join("nightly");
    fs::create_dir_all(&nightly).unwrap();
    for i in 0..20u64 {
        fs::write(
            nightly.join(format!("laudo-{i}.pdf")),
            crate::data::text(i, 20_000),
        )
        .unwrap();
    }
    nightly
}

/// The table, one row per command.
pub fn print(label: &str, rows: &[Row]) {
    println!("{label}");
    println!(
        "{:<22} {:>10} {:>9} {:>9} {:>12}",
        "command", "peak MiB", "seconds", "requests", "catalog MiB"
    );
    for r in rows {
        println!(
            "{:<22} {:>10.1} {:>9.2} {:>9} {:>12.1}",
            r.command,
            r.peak_kib as f64 / 1024.0,
            r.secs,
            r.requests,
            r.catalog_bytes as f64 / 1048576.0
        );
    }
}
