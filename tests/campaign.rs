//! The fault campaign (issue #15): snapshot, prune, forget, restore, mirror and
//! verify killed with SIGKILL at random moments and at their dangerous steps,
//! rounds of them run at once from several catalog folders (several machines),
//! and catalogs damaged between steps. After every step each snapshot reported
//! saved restores byte for byte (the newest and one other), and a killed restore
//! is finished by running it again; at every checkpoint `verify --read-data` and
//! `audit verify` pass, and once a prune ran no temporary file or lock of a dead
//! run is left in the repository.
//!
//! CI runs it bounded (`HCBACKUP_CAMPAIGN_KILLS`, default 24;
//! `HCBACKUP_CAMPAIGN_ROUNDS`, default 4). The long run of a release:
//! `HCBACKUP_CAMPAIGN_KILLS=200 HCBACKUP_CAMPAIGN_ROUNDS=20 cargo test --test
//! campaign -- --nocapture`; it prints its figures, and `HCBACKUP_CAMPAIGN_SEED`
//! repeats a run.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};

use common::*;

type Digest = BTreeMap<Vec<u8>, Entry>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Snapshot,
    Prune,
    Forget,
    Restore,
    Mirror,
    Verify,
}

const OPS: [Op; 6] = [
    Op::Snapshot,
    Op::Prune,
    Op::Forget,
    Op::Restore,
    Op::Mirror,
    Op::Verify,
];

impl Op {
    /// Steps where a kill hurts most (failpoints; `name:N` fires the N-th time).
    fn failpoints(self) -> &'static [&'static str] {
        match self {
            Op::Snapshot => &[
                "archive-before-open",
                "after-pack:1",
                "after-pack:2",
                "before-index",
                "after-index",
            ],
            Op::Prune => &[
                "prune-locked",
                "prune-after-index",
                "prune-after-index-delete",
                "prune-after-repack",
            ],
            Op::Restore => &[
                "restore-after-check",
                "restore-after-mkdir:2",
                "restore-chunk:4",
                "restore-before-rename:3",
            ],
            Op::Mirror => &["mirror-locked", "mirror-copy:1", "mirror-copy:5"],
            Op::Verify => &["verify-after-list"],
            Op::Forget => &["forget-after-delete:1", "forget-after-delete:2"],
        }
    }
}

#[derive(Default, Debug)]
struct Figures {
    kills: BTreeMap<String, u32>,
    finished: BTreeMap<String, u32>,
    saved: u32,
    saved_by_killed_runs: u32,
    restores_checked: u32,
    restores_resumed: u32,
    rounds: u32,
    round_commands: u32,
    catalogs_damaged: u32,
    checkpoints: u32,
}

struct Campaign {
    env: Env,
    src: PathBuf,
    caches: Vec<PathBuf>,
    rng: StdRng,
    /// Snapshots reported saved, with the source as it was.
    saved: BTreeMap<String, Digest>,
    /// Restores that were killed: their target and snapshot, to finish.
    unfinished: Vec<(PathBuf, String)>,
    /// The source a killed snapshot was saving: a snapshot that appears in the
    /// listing without having said saved (killed after its manifest) is it.
    killed_snapshot: Option<Digest>,
    /// Every snapshot id ever listed.
    known: std::collections::BTreeSet<String>,
    /// The snapshot saved last: what a restore beside a forget reads (a forget
    /// keeps the newest, so it cannot go away under the restore).
    newest: Option<String>,
    /// Restores read `newest` rather than any saved snapshot.
    restore_newest: bool,
    targets: u32,
    edits: u64,
    figures: Figures,
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Campaign {
    fn new(seed: u64) -> Campaign {
        let env = Env::new();
        env.usb_destination();
        let src = env.path("uploads");
        for i in 0..40 {
            write(&src.join(format!("records/p{i:02}.txt")), &text(i, 40_000));
        }
        for i in 0..2 {
            write(
                &src.join(format!("exams/v{i}.mp4")),
                &noise(7000 + i, 4 << 20),
            );
        }
        let caches = (0..3).map(|i| env.path(&format!("machine-{i}"))).collect();
        Campaign {
            env,
            src,
            caches,
            rng: StdRng::seed_from_u64(seed),
            saved: BTreeMap::new(),
            unfinished: Vec::new(),
            killed_snapshot: None,
            known: Default::default(),
            newest: None,
            restore_newest: false,
            targets: 0,
            edits: 0,
            figures: Figures::default(),
        }
    }

    /// The binary as machine `m` (its own catalog folder) runs it.
    fn cmd(&self, m: usize) -> Command {
        let mut c = self.env.cmd();
        c.env("HCBACKUP_CACHE_DIR", &self.caches[m])
            .env("HCBACKUP_LOCK_WAIT", "300");
        c
    }

    /// Change the uploads as a day at the clinic does: a record edited, one
    /// added, now and then one removed or an exam replaced.
    fn edit_source(&mut self) {
        self.edits += 1;
        let e = self.edits;
        let n = self.rng.gen_range(0..40);
        write(
            &self.src.join(format!("records/p{n:02}.txt")),
            &text(1000 + e, 40_000),
        );
        write(
            &self.src.join(format!("records/new-{e}.txt")),
            &text(5000 + e, 8_000),
        );
        if self.rng.gen_bool(0.3) {
            let old = self.rng.gen_range(1..=e);
            let _ = fs::remove_file(self.src.join(format!("records/new-{old}.txt")));
        }
        if self.rng.gen_bool(0.1) {
            write(
                &self.src.join(format!("exams/v{}.mp4", e % 2)),
                &noise(9000 + e, 4 << 20),
            );
        }
    }

    /// Start `op` as machine `m`; returns the child and, for a snapshot, the
    /// source as it is being saved, for a restore its target and snapshot.
    fn start(&mut self, op: Op, m: usize, failpoint: Option<&str>) -> Running {
        let mut c = self.cmd(m);
        if let Some(fp) = failpoint {
            c.env("HCBACKUP_FAILPOINT", fp);
        }
        let mut digest_now = None;
        let mut restore = None;
        match op {
            Op::Snapshot => {
                digest_now = Some(digest(&self.src));
                c.args(["--json", "snapshot", self.src.to_str().unwrap()]);
            }
            Op::Prune => {
                c.arg("prune");
            }
            Op::Forget => {
                c.args(["forget", "--keep-last", "5"]);
            }
            Op::Mirror => {
                c.arg("mirror");
            }
            Op::Verify => {
                c.arg("verify");
            }
            Op::Restore => {
                let id = match (&self.newest, self.restore_newest) {
                    (Some(n), true) => n.clone(),
                    _ => self.pick_saved(),
                };
                self.targets += 1;
                let t = self.env.path(&format!("restores/{}", self.targets));
                c.args(["restore", &id, "--target", t.to_str().unwrap()]);
                restore = Some((t, id));
            }
        }
        let child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running {
            op,
            child,
            digest: digest_now,
            restore,
            started: Instant::now(),
        }
    }

    fn pick_saved(&mut self) -> String {
        let ids: Vec<&String> = self.saved.keys().collect();
        ids[self.rng.gen_range(0..ids.len())].clone()
    }

    /// Take in how a command ended: a snapshot that said saved is owed a
    /// byte-exact restore; a killed restore is to be finished.
    fn ended(&mut self, r: Running, o: std::process::Output, may_be_killed: bool) {
        use std::os::unix::process::ExitStatusExt;
        let name = format!("{:?}", r.op);
        let killed = o.status.signal() == Some(9);
        if killed {
            assert!(may_be_killed, "{name} died: {}", out(&o));
            *self.figures.kills.entry(name).or_default() += 1;
            if let Some(t) = r.restore {
                self.unfinished.push(t);
            }
            if r.digest.is_some() {
                self.killed_snapshot = r.digest;
            }
            return;
        }
        assert!(o.status.success(), "{name} failed: {}", out(&o));
        *self.figures.finished.entry(name).or_default() += 1;
        if let Some(d) = r.digest {
            let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let id = s["id"].as_str().unwrap().to_string();
            self.saved.insert(id.clone(), d);
            self.newest = Some(id);
            self.figures.saved += 1;
        }
        if let Some((t, id)) = r.restore {
            self.check_restored(&t, &id);
        }
    }

    fn check_restored(&mut self, target: &Path, id: &str) {
        let want = &self.saved[id];
        let got = digest(&target.join("uploads"));
        assert!(
            &got == want,
            "snapshot {id} restored into {} differs from what was saved",
            target.display()
        );
        let names: Vec<_> = fs::read_dir(target).unwrap().collect();
        assert_eq!(
            names.len(),
            1,
            "more than the snapshot in {}",
            target.display()
        );
        fs::remove_dir_all(target).unwrap();
        self.figures.restores_checked += 1;
    }

    /// One command killed: at a failpoint, or after a random time.
    fn kill_step(&mut self) {
        let op = OPS[self.rng.gen_range(0..OPS.len())];
        let op = if self.saved.is_empty() {
            Op::Snapshot
        } else {
            op
        };
        if op == Op::Snapshot {
            self.edit_source();
        }
        let m = self.rng.gen_range(0..self.caches.len());
        let fps = op.failpoints();
        let fp = (!fps.is_empty() && self.rng.gen_bool(0.5))
            .then(|| fps[self.rng.gen_range(0..fps.len())]);
        let mut r = self.start(op, m, fp);
        if fp.is_none() {
            let wait = Duration::from_millis(self.rng.gen_range(5..400));
            while r.started.elapsed() < wait {
                if r.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = r.child.kill();
        }
        let o = wait_output(&mut r.child);
        self.ended(r, o, true);
    }

    /// Several commands at once, from every machine, one of them perhaps killed.
    fn concurrent_round(&mut self) {
        self.edit_source();
        let reader = if self.saved.is_empty() {
            Op::Verify
        } else {
            Op::Restore
        };
        let mut plan = vec![(Op::Snapshot, 0), (Op::Snapshot, 1), (reader, 2)];
        let extra = [Op::Prune, Op::Forget, Op::Mirror, Op::Verify];
        for _ in 0..2 {
            plan.push((
                extra[self.rng.gen_range(0..extra.len())],
                self.rng.gen_range(0..3),
            ));
        }
        let victim = self
            .rng
            .gen_bool(0.5)
            .then(|| self.rng.gen_range(0..plan.len()));
        self.restore_newest = true;
        let mut running: Vec<Running> = plan
            .iter()
            .map(|&(op, m)| self.start(op, m, None))
            .collect();
        self.restore_newest = false;
        if let Some(v) = victim {
            std::thread::sleep(Duration::from_millis(self.rng.gen_range(20..900)));
            let _ = running[v].child.kill();
        }
        self.figures.rounds += 1;
        for (i, mut r) in running.drain(..).enumerate() {
            let o = wait_output(&mut r.child);
            self.figures.round_commands += 1;
            self.ended(r, o, victim == Some(i));
        }
    }

    /// Garbage over a page in the middle of one machine's catalog.
    fn damage_a_catalog(&mut self) {
        let m = self.rng.gen_range(0..self.caches.len());
        let Some(cat) = fs::read_dir(&self.caches[m]).ok().and_then(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
                .min_by_key(|p| p.file_name().unwrap().len())
        }) else {
            return;
        };
        let c = rusqlite::Connection::open(&cat).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        drop(c);
        let len = fs::metadata(&cat).unwrap().len();
        let pages = len / 4096;
        if pages < 3 {
            return;
        }
        let page = self.rng.gen_range(1..pages);
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&cat).unwrap();
        f.write_all_at(&noise(page, 4096), page * 4096).unwrap();
        self.figures.catalogs_damaged += 1;
    }

    /// After every step: every saved snapshot is still there (a forget may have
    /// removed older ones; never the newest), the newest and one other restore
    /// byte for byte, and killed restores are finished by running them again.
    fn check(&mut self, forget_ran: bool) {
        let m = self.rng.gen_range(0..self.caches.len());
        let o = self.cmd(m).args(["--json", "snapshots"]).output().unwrap();
        assert!(o.status.success(), "{}", out(&o));
        let listed = ids_listed(&serde_json::from_slice(&o.stdout).unwrap());
        let newest = listed.last().cloned();
        for id in &listed {
            if self.known.insert(id.clone()) && !self.saved.contains_key(id) {
                let d = self
                    .killed_snapshot
                    .clone()
                    .unwrap_or_else(|| panic!("snapshot {id} appeared from nowhere"));
                self.saved.insert(id.clone(), d);
                self.figures.saved_by_killed_runs += 1;
            }
        }
        self.killed_snapshot = None;
        let gone: Vec<String> = self
            .saved
            .keys()
            .filter(|id| !listed.contains(id))
            .cloned()
            .collect();
        assert!(
            gone.is_empty() || forget_ran,
            "saved snapshots vanished without a forget: {gone:?}"
        );
        for id in &gone {
            self.saved.remove(id);
        }
        if self.newest.as_ref().is_some_and(|n| gone.contains(n)) {
            self.newest = None;
        }
        self.unfinished.retain(|(_, id)| !gone.contains(id));
        for (t, id) in std::mem::take(&mut self.unfinished) {
            if t.join("uploads").exists() && !t.join(".hcbackup-restore-incomplete").exists() {
                // Killed after it finished (while recording its audit event):
                // the note is gone only once every entry is in place.
                self.check_restored(&t, &id);
                continue;
            }
            self.restore_and_check(m, &t, &id);
            self.figures.restores_resumed += 1;
        }
        let mut ids: Vec<String> = newest
            .into_iter()
            .filter(|n| self.saved.contains_key(n))
            .collect();
        if !self.saved.is_empty() {
            ids.push(self.pick_saved());
        }
        for id in ids {
            self.targets += 1;
            let t = self.env.path(&format!("restores/{}", self.targets));
            self.restore_and_check(m, &t, &id);
        }
    }

    /// Restore `id` into `target` as machine `m` (a new restore, or the rerun
    /// that finishes a killed one) and check it byte for byte.
    fn restore_and_check(&mut self, m: usize, target: &Path, id: &str) {
        let o = self
            .cmd(m)
            .args(["restore", id, "--target", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "restoring snapshot {id}: {}", out(&o));
        self.check_restored(target, id);
    }

    /// A prune runs to the end; then no dead run's temporary file or lock is
    /// left, `verify --read-data` finds no problem and the audit chain holds.
    fn checkpoint(&mut self) {
        let m = self.rng.gen_range(0..self.caches.len());
        let o = self.cmd(m).arg("prune").output().unwrap();
        assert!(o.status.success(), "{}", out(&o));
        let leftovers = temporaries(&self.env.repo);
        assert!(leftovers.is_empty(), "left by dead runs: {leftovers:?}");
        assert_eq!(
            fs::read_dir(self.env.repo.join("locks")).unwrap().count(),
            0
        );
        let o = self
            .cmd(m)
            .args(["verify", "--read-data"])
            .output()
            .unwrap();
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("no problems"),
            "{}",
            out(&o)
        );
        let o = self
            .cmd(m)
            .args(["--json", "audit", "verify"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ok"], true, "{v}");
        self.figures.checkpoints += 1;
    }
}

struct Running {
    op: Op,
    child: Child,
    digest: Option<Digest>,
    restore: Option<(PathBuf, String)>,
    started: Instant,
}

fn wait_output(child: &mut Child) -> std::process::Output {
    let status = child.wait().unwrap();
    let read = |r: Option<&mut dyn std::io::Read>| {
        let mut b = Vec::new();
        if let Some(r) = r {
            let _ = r.read_to_end(&mut b);
        }
        b
    };
    let stdout = read(child.stdout.as_mut().map(|s| s as &mut dyn std::io::Read));
    let stderr = read(child.stderr.as_mut().map(|s| s as &mut dyn std::io::Read));
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

/// `.tmp-` files anywhere in the repository.
fn temporaries(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![repo.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
            {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn fault_campaign() {
    let kills = env_number("HCBACKUP_CAMPAIGN_KILLS", 24);
    let rounds = env_number("HCBACKUP_CAMPAIGN_ROUNDS", 4);
    let seed = std::env::var("HCBACKUP_CAMPAIGN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("fault campaign: seed {seed}, {kills} kill steps, {rounds} concurrent rounds");
    let started = Instant::now();
    let mut c = Campaign::new(seed);
    let every = (kills / rounds.max(1)).max(1) + 1;
    let forgets = |c: &Campaign| {
        c.figures.kills.get("Forget").copied().unwrap_or(0)
            + c.figures.finished.get("Forget").copied().unwrap_or(0)
    };
    let mut step = 0;
    while c.figures.kills.values().sum::<u32>() < kills || c.figures.rounds < rounds {
        step += 1;
        assert!(
            step < 10 * (kills + rounds) + 50,
            "commands keep ending before their kill"
        );
        if step % 5 == 0 {
            c.damage_a_catalog();
        }
        let before = forgets(&c);
        let kills_done = c.figures.kills.values().sum::<u32>() >= kills;
        if c.figures.rounds < rounds && (step % every == 0 || kills_done) {
            c.concurrent_round();
        } else {
            c.kill_step();
        }
        let forget_ran = forgets(&c) > before;
        c.check(forget_ran);
        if step % 8 == 0 {
            c.checkpoint();
        }
    }
    c.checkpoint();
    eprintln!(
        "fault campaign: seed {seed}, {:.0} s: {:?}",
        started.elapsed().as_secs_f64(),
        c.figures
    );
    assert!(c.figures.saved > 0 && c.figures.restores_checked > 0);
}
