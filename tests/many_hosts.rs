//! Issue #20: eight hosts, each with its own catalog and host name, snapshot
//! their own folders and one they share into one S3 bucket (moto) at the same
//! time, while a ninth runs `forget --prune`, for several rounds with random
//! `kill -9`. Afterwards every completed snapshot still kept restores byte for
//! byte, `verify --read-data` passes, and the shared folder is stored once.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rand::{rngs::StdRng, Rng, SeedableRng};

use common::s3 as moto;
use common::*;

const HOSTS: usize = 8;
const ROUNDS: u64 = 3;

struct Bucket {
    env: Env,
    location: String,
}

impl Bucket {
    /// The binary on the bucket, with `cache` as its catalog (its machine).
    fn cmd(&self, cache: &Path) -> Command {
        let mut c = self.env.cmd_repo(OsStr::new(&self.location));
        c.env("AWS_ENDPOINT_URL", moto::endpoint())
            .env("HCBACKUP_CACHE_DIR", cache)
            .env("HCBACKUP_LOCK_WAIT", "120");
        c
    }

    fn ok(&self, cache: &Path, args: &[&str]) -> String {
        let o = self.cmd(cache).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", out(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    fn spawn(&self, cache: &Path, args: &[&str]) -> Child {
        self.cmd(cache)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

#[test]
fn eight_hosts_and_a_pruner_on_one_bucket() {
    let seed: u64 = std::env::var("HCBACKUP_HOSTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("many hosts: seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let bucket = Bucket {
        env: Env::uninit(),
        location: format!("s3://{}/clinic", moto::new_bucket("hcb-hosts")),
    };
    let cache = |h: usize| bucket.env.path(&format!("cache-{h}"));
    bucket.ok(&cache(0), &["init"]);
    // What every host holds: the group's protocols (shared), and its own exams.
    let shared = bucket.env.path("shared");
    for i in 0..2 {
        write(
            &shared.join(format!("protocol-{i}.pdf")),
            &noise(900 + i, 1 << 20),
        );
    }
    let own = |h: usize| bucket.env.path(&format!("host-{h}"));
    // Snapshot id → (host, its own folder's digest, the shared folder's).
    let mut saved: BTreeMap<String, (usize, Digest, Digest)> = BTreeMap::new();
    let shared_digest = digest(&shared);
    let mut kills = 0;
    for round in 0..ROUNDS {
        let mut digests = Vec::new();
        for h in 0..HOSTS {
            let dir = own(h);
            let _ = std::fs::remove_dir_all(&dir);
            write(
                &dir.join(format!("exam-{round}.dcm")),
                &noise(1000 * round + h as u64, 400_000),
            );
            digests.push(digest(&dir));
        }
        let mut children: Vec<(Option<usize>, Child)> = (0..HOSTS)
            .map(|h| {
                let host = format!("clinic-{h}");
                let dir = own(h);
                let args = [
                    "--json",
                    "snapshot",
                    "--host",
                    &host,
                    dir.to_str().unwrap(),
                    shared.to_str().unwrap(),
                ];
                (Some(h), bucket.spawn(&cache(h), &args))
            })
            .collect();
        let mut pruner = bucket.cmd(&cache(HOSTS));
        pruner
            .env("HCBACKUP_PRUNE_GRACE_SECS", "0")
            .args(["forget", "--keep-last", "2", "--prune"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push((None, pruner.spawn().unwrap()));
        // Two of the nine die at a random moment.
        std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(200..2500)));
        for _ in 0..2 {
            let i = rng.gen_range(0..children.len());
            let _ = children[i].1.kill();
        }
        for (host, child) in children {
            let o = child.wait_with_output().unwrap();
            use std::os::unix::process::ExitStatusExt;
            if o.status.signal() == Some(9) {
                kills += 1;
                continue;
            }
            assert!(
                o.status.success(),
                "round {round}, host {host:?}: {}",
                out(&o)
            );
            if let Some(h) = host {
                let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                let id = s["id"].as_str().unwrap().to_string();
                saved.insert(id, (h, digests[h].clone(), shared_digest.clone()));
            }
        }
    }
    println!("many hosts: {kills} kills, {} snapshots saved", saved.len());
    // A last forget and prune with nobody writing, from the ninth machine.
    let last = bucket
        .cmd(&cache(HOSTS))
        .env("HCBACKUP_PRUNE_GRACE_SECS", "0")
        .args(["forget", "--keep-last", "2", "--prune"])
        .output()
        .unwrap();
    assert!(last.status.success(), "{}", out(&last));
    let v = bucket.ok(&cache(0), &["verify", "--read-data"]);
    assert!(v.contains("no problems"), "{v}");
    // Every saved snapshot still kept restores, whichever machine restores it.
    let kept =
        ids_listed(&serde_json::from_str(&bucket.ok(&cache(0), &["--json", "snapshots"])).unwrap());
    let mut restored = 0;
    for (id, (h, own_digest, shared_digest)) in &saved {
        if !kept.contains(id) {
            continue;
        }
        let target: PathBuf = bucket.env.path(&format!("r-{id}"));
        bucket.ok(
            &cache((h + 1) % HOSTS),
            &["restore", &id[..8], "--target", target.to_str().unwrap()],
        );
        assert_eq!(
            &digest(&target.join(format!("host-{h}"))),
            own_digest,
            "{id}"
        );
        assert_eq!(&digest(&target.join("shared")), shared_digest, "{id}");
        restored += 1;
    }
    assert!(restored >= HOSTS, "only {restored} snapshots restored");
    // Stored once: the shared folder (2 MiB) beside at most two exams per host.
    let packs = bucket.ok(&cache(0), &["--json", "stats"]);
    let stats: serde_json::Value = serde_json::from_str(&packs).unwrap();
    let stored = stats["repository"]["stored_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{stats}"));
    let most = (2 << 20) + HOSTS as u64 * 2 * 400_000;
    assert!(
        stored < most + most / 5,
        "{stored} bytes stored for at most {most}: shared data stored twice"
    );
}

type Digest = BTreeMap<Vec<u8>, Entry>;
