//! End-to-end comparison of hcbackup with restic and borg (Debian packages) on a
//! generated clinic-like data set, in one run, side by side:
//!
//! - day 1: first snapshot; a no-change snapshot; day 2 (new, changed, moved and
//!   deleted files); restore of day 2 — time, peak memory (RSS), repository size;
//! - many small files: a no-change snapshot of 100,000 files;
//! - memory: the same day-2 snapshot on a repository holding ten times more data.
//!
//! `cargo bench --bench e2e_compare` (release build). Size: HCBACKUP_BENCH_MB (default
//! 1024); scenarios: HCBACKUP_BENCH=clinic,manyfiles,memory (default all); work folder:
//! HCBACKUP_BENCH_DIR (default a temp folder). Needs restic, borg and GNU time.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

mod common;
use common::{dir_size, timed, Measure};

#[path = "../tests/common/data.rs"]
mod data;
use data::noise;

fn text(seed: u64, n: usize) -> Vec<u8> {
    const W: [&str; 12] = [
        "paciente",
        "consulta",
        "retorno",
        "exame",
        "hemograma",
        "receita",
        "pressão",
        "glicemia",
        "Dr.",
        "CRM",
        "prontuário",
        "2026",
    ];
    let mut r = rng(seed);
    let mut v = Vec::with_capacity(n + 16);
    while v.len() < n {
        let x = r();
        v.extend_from_slice(W[(x % 12) as usize].as_bytes());
        v.extend_from_slice(format!(" {} ", x % 1000).as_bytes());
        if x % 7 == 0 {
            v.push(b'\n');
        }
    }
    v.truncate(n);
    v
}

/// DICOM-like: a text header, then 16-bit pixels with 12 significant bits.
fn dicom(seed: u64, n: usize) -> Vec<u8> {
    let mut v = text(seed, 4096);
    let mut r = rng(seed ^ 77);
    let mut level = 2000i32;
    while v.len() < n {
        level = (level + (r() % 41) as i32 - 20).clamp(0, 4095);
        v.extend_from_slice(&(level as u16).to_le_bytes());
    }
    v.truncate(n);
    v
}

fn put(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// A clinic-like tree of about `mb` MiB. Returns the file count.
fn generate(root: &Path, mb: usize, seed: u64) -> usize {
    let scale = mb as f64 / 1024.0;
    let n = |x: f64| ((x * scale).round() as usize).max(1);
    let mut files = 0;
    let mut r = rng(seed);
    for i in 0..n(2000.0) {
        let size = 20_000 + (r() % 180_000) as usize;
        put(
            &root.join(format!("prontuarios/{:03}/doc{i:05}.pdf", i % 200)),
            &text(seed + i as u64, size),
        );
        files += 1;
    }
    for i in 0..n(150.0) {
        let size = 1_000_000 + (r() % 2_000_000) as usize;
        put(
            &root.join(format!("exames/imagens/{:02}/img{i:04}.jpg", i % 20)),
            &noise(seed + 10_000 + i as u64, size),
        );
        files += 1;
    }
    for i in 0..n(40.0) {
        let size = 5_000_000 + (r() % 5_000_000) as usize;
        put(
            &root.join(format!("exames/dicom/estudo{:02}/ser{i:03}.dcm", i % 8)),
            &dicom(seed + 20_000 + i as u64, size),
        );
        files += 1;
    }
    for i in 0..n(4.0) {
        put(
            &root.join(format!("telemedicina/consulta{i:02}.mp4")),
            &noise(seed + 30_000 + i as u64, 100 << 20),
        );
        files += 1;
    }
    for i in 0..n(5000.0) {
        let size = 1000 + (r() % 3000) as usize;
        put(
            &root.join(format!("anexos/{:02}/{i:05}.txt", i % 50)),
            &text(seed + 40_000 + i as u64, size),
        );
        files += 1;
    }
    files
}

/// Day two: ~1% new data, a few changed and deleted files, one moved folder.
fn next_day(root: &Path, seed: u64) {
    let mut r = rng(seed);
    for i in 0..20 {
        put(
            &root.join(format!("prontuarios/novos/doc{i}.pdf")),
            &text(seed + 500 + i, 100_000),
        );
    }
    put(
        &root.join("exames/imagens/novo-raio-x.jpg"),
        &noise(seed + 900, 3 << 20),
    );
    put(
        &root.join("exames/dicom/novo/ser.dcm"),
        &dicom(seed + 901, 8 << 20),
    );
    for i in 0..30 {
        let p = root.join(format!("prontuarios/{:03}/doc{:05}.pdf", i * 3, i * 3));
        if p.exists() {
            let mut d = fs::read(&p).unwrap();
            let at = (r() as usize) % d.len();
            d.splice(at..at, b"ALTERACAO ".iter().copied());
            fs::write(&p, d).unwrap();
        }
    }
    for i in 0..10 {
        let _ = fs::remove_file(root.join(format!("anexos/{:02}/{:05}.txt", i % 50, i)));
    }
    if root.join("exames/dicom/estudo01").exists() {
        fs::rename(
            root.join("exames/dicom/estudo01"),
            root.join("exames/dicom/estudo01-arquivado"),
        )
        .unwrap();
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Hcbackup,
    Restic,
    Borg,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Hcbackup => "hcbackup",
            Tool::Restic => "restic",
            Tool::Borg => "borg",
        }
    }

    fn cmd(self, work: &Path, repo: &Path) -> Command {
        let mut c = match self {
            Tool::Hcbackup => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_hcbackup"));
                c.env("HCBACKUP_PASSWORD", "bench")
                    .env("HCBACKUP_CACHE_DIR", work.join("hcb-cache"))
                    .arg("-q")
                    .arg("--repo")
                    .arg(repo);
                c
            }
            Tool::Restic => {
                let mut c = Command::new("restic");
                c.env("RESTIC_PASSWORD", "bench")
                    .env("RESTIC_CACHE_DIR", work.join("restic-cache"))
                    .arg("-q")
                    .arg("-r")
                    .arg(repo);
                c
            }
            Tool::Borg => {
                let mut c = Command::new("borg");
                c.env("BORG_PASSPHRASE", "bench")
                    .env("BORG_BASE_DIR", work.join("borg-base"))
                    .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
                    .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes");
                c
            }
        };
        c.current_dir(work);
        c
    }

    fn init(self, work: &Path, repo: &Path) {
        let mut c = self.cmd(work, repo);
        match self {
            Tool::Hcbackup | Tool::Restic => c.arg("init"),
            Tool::Borg => c.args(["init", "-e", "repokey-blake2"]).arg(repo),
        };
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{} init: {}",
            self.name(),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn backup(self, work: &Path, repo: &Path, src: &Path, n: usize) -> Measure {
        let mut c = self.cmd(work, repo);
        match self {
            Tool::Hcbackup => c.arg("snapshot").arg(src),
            Tool::Restic => c.arg("backup").arg(src),
            Tool::Borg => c
                .args(["create", "--compression", "lz4"])
                .arg(format!("{}::s{n}", repo.display()))
                .arg(src),
        };
        timed(&mut c)
    }

    fn restore(self, work: &Path, repo: &Path, n: usize, target: &Path) -> Measure {
        fs::create_dir_all(target).unwrap();
        let mut c = self.cmd(work, repo);
        match self {
            Tool::Hcbackup => c.args(["restore", "latest", "--target"]).arg(target),
            Tool::Restic => c.args(["restore", "latest", "--target"]).arg(target),
            Tool::Borg => c
                .current_dir(target)
                .arg("extract")
                .arg(format!("{}::s{n}", repo.display())),
        };
        timed(&mut c)
    }
}

const TOOLS: [Tool; 3] = [Tool::Hcbackup, Tool::Restic, Tool::Borg];

fn row(label: &str, vals: &[String]) {
    println!(
        "{label:<34} {:>14} {:>14} {:>14}",
        vals[0], vals[1], vals[2]
    );
}

fn ratio_row(label: &str, v: &[f64]) {
    row(
        label,
        &v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>(),
    );
    row(
        "  ratio to hcbackup",
        &v.iter()
            .map(|x| format!("{:.2}x", x / v[0]))
            .collect::<Vec<_>>(),
    );
}

fn clinic(work: &Path, mb: usize) {
    fs::create_dir_all(work).unwrap();
    let src = work.join("uploads");
    let files = generate(&src, mb, 1);
    let data = dir_size(&src);
    println!(
        "\n== clinic data set: {files} files, {:.0} MiB ==",
        data as f64 / 1048576.0
    );
    row(
        "",
        &TOOLS
            .iter()
            .map(|t| t.name().to_string())
            .collect::<Vec<_>>(),
    );
    let mut first = vec![];
    let mut nochange = vec![];
    let mut day2 = vec![];
    let mut restore = vec![];
    let mut size1 = vec![];
    let mut size2 = vec![];
    for t in TOOLS {
        let repo = work.join(format!("repo-{}", t.name()));
        t.init(work, &repo);
        first.push(t.backup(work, &repo, &src, 1));
        size1.push(dir_size(&repo) as f64 / 1048576.0);
        nochange.push(t.backup(work, &repo, &src, 2));
    }
    next_day(&src, 2);
    for (i, t) in TOOLS.iter().enumerate() {
        let repo = work.join(format!("repo-{}", t.name()));
        day2.push(t.backup(work, &repo, &src, 3));
        size2.push(dir_size(&repo) as f64 / 1048576.0 - size1[i]);
        let target = work.join(format!("restore-{}", t.name()));
        restore.push(t.restore(work, &repo, 3, &target));
        fs::remove_dir_all(&target).unwrap();
    }
    let mbs = |m: &[Measure]| {
        m.iter()
            .map(|x| data as f64 / 1048576.0 / x.secs.max(0.001))
            .collect::<Vec<_>>()
    };
    ratio_row("first snapshot, MiB/s", &mbs(&first));
    ratio_row(
        "first snapshot, seconds",
        &first.iter().map(|m| m.secs).collect::<Vec<_>>(),
    );
    ratio_row(
        "first snapshot, peak MiB",
        &first
            .iter()
            .map(|m| m.peak_kib as f64 / 1024.0)
            .collect::<Vec<_>>(),
    );
    ratio_row(
        "no-change snapshot, seconds",
        &nochange.iter().map(|m| m.secs).collect::<Vec<_>>(),
    );
    ratio_row(
        "day-2 snapshot, seconds",
        &day2.iter().map(|m| m.secs).collect::<Vec<_>>(),
    );
    ratio_row(
        "day-2 snapshot, peak MiB",
        &day2
            .iter()
            .map(|m| m.peak_kib as f64 / 1024.0)
            .collect::<Vec<_>>(),
    );
    ratio_row("restore, MiB/s", &mbs(&restore));
    ratio_row(
        "restore, peak MiB",
        &restore
            .iter()
            .map(|m| m.peak_kib as f64 / 1024.0)
            .collect::<Vec<_>>(),
    );
    ratio_row("repository after day 1, MiB", &size1);
    ratio_row("day-2 increment, MiB", &size2);
}

fn many_files(work: &Path) {
    fs::create_dir_all(work).unwrap();
    let src = work.join("many");
    for i in 0..100_000u64 {
        put(
            &src.join(format!("{:03}/{:03}/{i}.txt", i % 100, (i / 100) % 10)),
            format!("registro {i}\n").as_bytes(),
        );
    }
    println!("\n== 100,000 small files ==");
    row(
        "",
        &TOOLS
            .iter()
            .map(|t| t.name().to_string())
            .collect::<Vec<_>>(),
    );
    let mut first = vec![];
    let mut again = vec![];
    for t in TOOLS {
        let repo = work.join(format!("many-{}", t.name()));
        t.init(work, &repo);
        first.push(t.backup(work, &repo, &src, 1));
        again.push(t.backup(work, &repo, &src, 2));
    }
    ratio_row(
        "first snapshot, seconds",
        &first.iter().map(|m| m.secs).collect::<Vec<_>>(),
    );
    ratio_row(
        "no-change snapshot, seconds",
        &again.iter().map(|m| m.secs).collect::<Vec<_>>(),
    );
    ratio_row(
        "no-change snapshot, peak MiB",
        &again
            .iter()
            .map(|m| m.peak_kib as f64 / 1024.0)
            .collect::<Vec<_>>(),
    );
}

/// Peak memory of hcbackup's day-2 snapshot on a small repository and on one holding
/// ten times more data: it must not grow with the repository.
fn memory(work: &Path, mb: usize) {
    let small = mb / 10;
    fs::create_dir_all(work).unwrap();
    println!("\n== hcbackup peak memory against repository size ==");
    let mut peaks = vec![];
    for (label, extra) in [("1x", 0usize), ("10x", 9)] {
        let repo = work.join(format!("mem-{label}"));
        Tool::Hcbackup.init(work, &repo);
        for k in 0..extra {
            let other = work.join(format!("mem-extra-{k}"));
            generate(&other, small, 1000 + k as u64);
            Tool::Hcbackup.backup(work, &repo, &other, 0);
            fs::remove_dir_all(&other).unwrap();
        }
        let src = work.join(format!("mem-src-{label}"));
        generate(&src, small, 7);
        Tool::Hcbackup.backup(work, &repo, &src, 1);
        next_day(&src, 8);
        let m = Tool::Hcbackup.backup(work, &repo, &src, 2);
        println!(
            "repository {label:<4} {:>8.0} MiB: day-2 snapshot peak {:>6.1} MiB",
            dir_size(&repo) as f64 / 1048576.0,
            m.peak_kib as f64 / 1024.0
        );
        peaks.push(m.peak_kib as f64);
        fs::remove_dir_all(&src).unwrap();
    }
    println!("peak ratio 10x/1x: {:.2}", peaks[1] / peaks[0]);
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then only check it builds.
    if !std::env::args().any(|a| a == "--bench") || std::env::args().any(|a| a == "--list") {
        return;
    }
    for tool in ["restic", "borg", "/usr/bin/time"] {
        assert!(
            Command::new(tool).arg("--version").output().is_ok(),
            "{tool} is needed: apt-get install restic borgbackup time"
        );
    }
    let mb: usize = std::env::var("HCBACKUP_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let which =
        std::env::var("HCBACKUP_BENCH").unwrap_or_else(|_| "clinic,manyfiles,memory".into());
    let tmp;
    let work: PathBuf = match std::env::var_os("HCBACKUP_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir_in("/var/tmp").unwrap();
            tmp.path().to_path_buf()
        }
    };
    fs::create_dir_all(&work).unwrap();
    println!(
        "hcbackup vs {} vs {}",
        common::version("restic", "version"),
        common::version("borg", "--version")
    );
    if which.contains("clinic") {
        clinic(&work.join("clinic"), mb);
    }
    if which.contains("manyfiles") {
        many_files(&work.join("manyfiles"));
    }
    if which.contains("memory") {
        memory(&work.join("memory"), mb);
    }
}
