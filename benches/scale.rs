//! The scale harness (issue #20): a synthetic repository's metadata (index
//! objects, trees, daily snapshots; placeholder packs, see
//! `hcbackup::repo::synth`) at each size in HCBACKUP_SCALE_CHUNKS (default
//! "1000000,10000000" chunks, a file per 10 chunks, HCBACKUP_SCALE_SNAPSHOTS
//! daily snapshots, default 7300), on a local folder; then every command
//! measured on it: peak memory, time, storage requests, catalog size.
//!
//! `cargo bench --bench scale` (release build). Work folder:
//! HCBACKUP_BENCH_DIR (default a temp folder; HCBACKUP_SCALE_KEEP=1 keeps the
//! repositories). Needs GNU time.
//! The figures and their extrapolation to 20 TB and 20 years: docs/scale.md.

use std::path::PathBuf;
use std::time::Instant;

mod common;

#[path = "../tests/common/scale.rs"]
mod scale;

#[path = "../tests/common/data.rs"]
mod data;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`, `cargo test --benches`: nothing to list
    }
    let sizes: Vec<u64> = env_or("HCBACKUP_SCALE_CHUNKS", "1000000,10000000")
        .split(',')
        .map(|s| s.trim().parse().expect("HCBACKUP_SCALE_CHUNKS: numbers"))
        .collect();
    let snapshots: u64 = env_or("HCBACKUP_SCALE_SNAPSHOTS", "7300").parse().unwrap();
    let base = std::env::var("HCBACKUP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("hcbackup-scale"));
    std::fs::create_dir_all(&base).unwrap();
    let nightly = scale::nightly_folder(&base);
    let mut tables = Vec::new();
    for chunks in sizes {
        let h = scale::Harness::new(
            &base.join(chunks.to_string()),
            env!("CARGO_BIN_EXE_hcbackup").as_ref(),
        );
        let t = Instant::now();
        let made = h.build(&scale::shape(chunks, snapshots));
        let label = format!(
            "{chunks} chunks, {} files, {snapshots} snapshots: {} packs, {} index objects, {} trees (made in {:.0} s)",
            chunks / 10,
            made.packs,
            made.index_objects,
            made.trees,
            t.elapsed().as_secs_f64()
        );
        let rows = h.measure_all(&nightly);
        scale::print(&label, &rows);
        tables.push(rows);
        if std::env::var_os("HCBACKUP_SCALE_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&h.work);
        }
    }
    if let [small, large] = &tables[..] {
        println!("peak memory, largest over smallest:");
        for (s, l) in small.iter().zip(large) {
            println!(
                "{:<22} {:.2}x",
                s.command,
                l.peak_kib as f64 / s.peak_kib as f64
            );
        }
    }
}
