//! Memory that does not grow with the repository (issue #20, item 3): the
//! scale harness (`tests/common/scale.rs`, `benches/scale.rs`) at two sizes,
//! ten times apart in chunks, files and packs, and each command's peak memory
//! compared. Keys use the cheap test KDF (the real one's 64 MiB would hide
//! what grows), and both sizes fill the catalog's page cache (32 MiB at
//! most): what is left grows with the repository or it does not.

#[path = "common/scale.rs"]
mod scale;

#[path = "../benches/common/mod.rs"]
mod common;

#[path = "common/data.rs"]
mod data;

use scale::{shape, Harness};

/// Peak memory may grow this much from the small repository to the large one
/// (five times the chunks, files and packs).
const GROWTH: f64 = 1.5;
/// And stays under this (MiB).
const CEILING: f64 = 300.0;

fn run(chunks: u64, work: &std::path::Path, nightly: &std::path::Path) -> Vec<scale::Row> {
    let h = Harness::new(work, env!("CARGO_BIN_EXE_hcbackup").as_ref()).cheap_kdf();
    let made = h.build(&shape(chunks, 60));
    assert!(
        made.packs > chunks / 16 && made.snapshots.len() == 60,
        "{made:?}"
    );
    let rows = h.measure_all(nightly);
    scale::print(&format!("{chunks} chunks"), &rows);
    // What the commands changed (forget, prune) left a sound repository.
    let after = h.measure("verify, after", &["verify"]);
    assert!(after.peak_kib > 0);
    rows
}

#[test]
fn every_commands_peak_memory_stays_flat_as_the_repository_grows_fivefold() {
    let d = tempfile::tempdir().unwrap();
    let nightly = scale::nightly_folder(d.path());
    let small = run(200_000, &d.path().join("small"), &nightly);
    let large = run(1_000_000, &d.path().join("large"), &nightly);
    let mut over = Vec::new();
    for (s, l) in small.iter().zip(&large) {
        let growth = l.peak_kib as f64 / s.peak_kib as f64;
        let mib = l.peak_kib as f64 / 1024.0;
        println!("{:<22} {growth:.2}x", s.command);
        if growth > GROWTH || mib > CEILING {
            over.push(format!("{}: {growth:.2}x, {mib:.0} MiB", s.command));
        }
    }
    assert!(over.is_empty(), "memory grew with the repository: {over:?}");
}
