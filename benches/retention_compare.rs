//! Retention at scale against restic (Debian package), in one run, side by side:
//! a repository of HCBACKUP_BENCH_SNAPSHOTS (default 1000) daily snapshots of a
//! small clinic tree that changes a little every day (dated with `--time`), then
//! `forget --prune` with the seed's S3 policy (90 days, 12 monthly, 20 yearly), then
//! `verify` / `check` (structure) and `verify --read-data` / `check --read-data`.
//! Time and peak memory (GNU time), repository size before and after.
//!
//! `cargo bench --bench retention_compare` (release build). Work folder:
//! HCBACKUP_BENCH_DIR (default a temp folder). Needs restic and GNU time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{dir_size, timed, Measure};

#[path = "../tests/common/data.rs"]
mod data;
use data::{noise, text};

fn put(p: &Path, d: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, d).unwrap();
}

/// Day 0: 200 records (text), 20 exam images (incompressible), 2 MiB each at most.
fn generate(src: &Path) {
    for i in 0..200u64 {
        put(
            &src.join(format!("prontuarios/{:03}/p{i}.txt", i % 20)),
            &text(i, 8_000 + (i as usize % 7) * 3_000),
        );
    }
    for i in 0..20u64 {
        put(
            &src.join(format!("exames/rx-{i}.jpg")),
            &noise(1000 + i, 256 << 10),
        );
    }
}

/// A day: one new exam, two records edited, every 10th day an old exam removed.
fn next_day(src: &Path, d: u64) {
    put(
        &src.join(format!("exames/dia-{d}.jpg")),
        &noise(10_000 + d, 96 << 10),
    );
    for k in 0..2 {
        let i = (d * 7 + k * 13) % 200;
        let p = src.join(format!("prontuarios/{:03}/p{i}.txt", i % 20));
        let mut b = fs::read(&p).unwrap();
        b.extend_from_slice(format!("\nretorno em {d}: sem queixas\n").as_bytes());
        fs::write(&p, b).unwrap();
    }
    if d % 10 == 0 && d >= 30 {
        let _ = fs::remove_file(src.join(format!("exames/dia-{}.jpg", d - 30)));
    }
}

struct Tool {
    name: &'static str,
    repo: PathBuf,
    work: PathBuf,
}

impl Tool {
    fn cmd(&self) -> Command {
        let mut c = if self.name == "hcbackup" {
            let mut c = Command::new(env!("CARGO_BIN_EXE_hcbackup"));
            // Deleting in the run, as `restic forget --prune` does (issue #20:
            // the default marks first and deletes a day later).
            c.env("HCBACKUP_PASSWORD", "bench")
                .env("HCBACKUP_CACHE_DIR", self.work.join("hcb-cache"))
                .env("HCBACKUP_PRUNE_GRACE_SECS", "0")
                .arg("-q")
                .arg("--repo")
                .arg(&self.repo);
            c
        } else {
            let mut c = Command::new("restic");
            c.env("RESTIC_PASSWORD", "bench")
                .env("RESTIC_CACHE_DIR", self.work.join("restic-cache"))
                .arg("-q")
                .arg("-r")
                .arg(&self.repo);
            c
        };
        c.current_dir(&self.work);
        c
    }

    fn run(&self, args: &[&str]) -> Measure {
        let mut c = self.cmd();
        c.args(args);
        timed(&mut c)
    }

    fn snapshot(&self, src: &Path, day: u64) -> Measure {
        // 2024-01-01 plus `day` days, 03:00 UTC.
        let t = time_of(day);
        let mut c = self.cmd();
        if self.name == "hcbackup" {
            c.arg("snapshot").arg(src).args(["--time", &t.0]);
        } else {
            c.arg("backup").arg(src).args(["--time", &t.1]);
        }
        timed(&mut c)
    }
}

/// (RFC 3339, restic's "YYYY-MM-DD HH:MM:SS") for a day number.
fn time_of(day: u64) -> (String, String) {
    let d = time::macros::date!(2024 - 01 - 01) + time::Duration::days(day as i64);
    let s = format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day());
    (format!("{s}T03:00:00Z"), format!("{s} 03:00:00"))
}

fn row(label: &str, a: &Measure, b: &Measure) {
    println!(
        "{label:<34} {:>9.2} s {:>8} MiB {:>9.2} s {:>8} MiB   time {:.2}x, memory {:.2}x",
        a.secs,
        a.peak_kib / 1024,
        b.secs,
        b.peak_kib / 1024,
        b.secs / a.secs.max(0.001),
        b.peak_kib as f64 / a.peak_kib.max(1) as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`, `cargo test --benches`: nothing to list
    }
    let n: u64 = std::env::var("HCBACKUP_BENCH_SNAPSHOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let base = std::env::var("HCBACKUP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::temp_dir().join(format!("hcb-retention-{}", std::process::id()))
        });
    let _ = fs::remove_dir_all(&base);
    let src = base.join("uploads");
    generate(&src);
    let tools: Vec<Tool> = ["hcbackup", "restic"]
        .iter()
        .map(|name| Tool {
            name,
            repo: base.join(format!("{name}-repo")),
            work: base.clone(),
        })
        .collect();
    for t in &tools {
        let o = t.cmd().arg("init").output().unwrap();
        assert!(
            o.status.success(),
            "{} init: {}",
            t.name,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let mut total = [0.0f64; 2];
    for day in 0..n {
        if day > 0 {
            next_day(&src, day);
        }
        for (i, t) in tools.iter().enumerate() {
            total[i] += t.snapshot(&src, day).secs;
        }
        if day % 100 == 99 {
            eprintln!("{} snapshots taken", day + 1);
        }
    }
    println!(
        "{n} daily snapshots of a {:.1} MiB tree; columns: hcbackup, restic {}",
        dir_size(&src) as f64 / 1048576.0,
        common::version("restic", "version")
    );
    println!(
        "{:<34} {:>9.1} s {:>12} {:>9.1} s",
        "all snapshots (sum)", total[0], "", total[1]
    );
    let sizes = |label: &str| {
        println!(
            "{label:<34} {:>9.1} MiB {:>8} {:>9.1} MiB",
            dir_size(&tools[0].repo) as f64 / 1048576.0,
            "",
            dir_size(&tools[1].repo) as f64 / 1048576.0
        );
    };
    sizes("repository before forget");
    let policy = [
        "--keep-within",
        "90d",
        "--keep-monthly",
        "12",
        "--keep-yearly",
        "20",
    ];
    let forget: Vec<&str> = ["forget"]
        .iter()
        .chain(policy.iter())
        .chain(["--prune"].iter())
        .copied()
        .collect();
    let f = [tools[0].run(&forget), tools[1].run(&forget)];
    row("forget --prune (S3 policy)", &f[0], &f[1]);
    sizes("repository after");
    let v = [tools[0].run(&["verify"]), tools[1].run(&["check"])];
    row("verify / check", &v[0], &v[1]);
    let r = [
        tools[0].run(&["verify", "--read-data"]),
        tools[1].run(&["check", "--read-data"]),
    ];
    row("verify / check --read-data", &r[0], &r[1]);
    if std::env::var_os("HCBACKUP_BENCH_KEEP").is_none() {
        let _ = fs::remove_dir_all(&base);
    }
}
