//! What the database commands print: dump files, database restores, restore tests.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::render::{line, size};
use super::Ctx;
use crate::model::snapshot::{DatabaseEntry, SnapshotEntry, SAFETY_DUMP_TAG};
use crate::ops::db_restore::DbRestoreReport;
use crate::ops::restore_test::RestoreTestReport;
use crate::ops::verify::VerifyReport;

pub fn dump_written(ctx: &Ctx, d: &DatabaseEntry, path: &Path, bytes: u64, took: Duration) {
    let hint = if crate::ops::output_file::is_stream(path) {
        String::new()
    } else {
        format!("; restore it with: pg_restore -d DBNAME {}", path.display())
    };
    line(
        ctx,
        &format!(
            "wrote the dump of database {} to {} ({}, {:.1} s){hint}",
            d.db,
            path.display(),
            size(bytes),
            took.as_secs_f64(),
        ),
        json!({ "database": d.db, "file": path.display().to_string(), "bytes": bytes, "format": d.format }),
    );
}

/// The safety dump `restore --db` saved before replacing a database: on stderr,
/// so `--json`'s one document stays the restore's.
pub fn safety_dump_saved(ctx: &Ctx, db: &str, s: &SnapshotEntry, from: Option<&str>) {
    if !ctx.quiet {
        let from = from.map(|f| format!(" --from {f}")).unwrap_or_default();
        eprintln!(
            "hcbackup: safety dump of database {db} saved before replacing it: snapshot {} (tag {SAFETY_DUMP_TAG}); `hcbackup restore {}{from} --db {db}` puts it back",
            s.id.short(),
            s.id.short()
        );
    }
}

pub fn db_restored(ctx: &Ctx, r: &DbRestoreReport) {
    for w in &r.warnings {
        eprintln!("hcbackup: {w}");
    }
    let phases: Vec<String> = r
        .phases
        .iter()
        .map(|(p, s)| format!("{p} {s:.1} s"))
        .collect();
    line(
        ctx,
        &format!(
            "restored {}database {} into {}{} ({}): {}; total {:.1} s",
            if r.tables.is_empty() {
                String::new()
            } else {
                format!("{} of ", r.tables.join(", "))
            },
            r.source_db,
            r.db,
            if r.created {
                " (created)"
            } else {
                " (replaced)"
            },
            size(r.bytes),
            phases.join(", "),
            r.total_secs()
        ),
        json!({
            "database": r.db,
            "source_database": r.source_db,
            "created": r.created,
            "safety_dump": r.safety_dump,
            "streamed": r.streamed,
            "bytes": r.bytes,
            "phases": r.phases.iter().map(|(p, s)| json!({"phase": p, "secs": s})).collect::<Vec<_>>(),
            "total_secs": r.total_secs(),
            "warnings": r.warnings,
            "tables": r.tables,
        }),
    );
}

/// The restore tests; with --json one document holding the structure check too.
pub fn restore_tests(ctx: &Ctx, verify: &[VerifyReport], reports: &[RestoreTestReport]) {
    if ctx.json {
        let mut doc = if verify.len() == 1 {
            serde_json::to_value(&verify[0])
        } else {
            serde_json::to_value(verify)
        }
        .expect("report serializes");
        doc["restore_tests"] = serde_json::to_value(reports).expect("report serializes");
        crate::cli::render::emit_raw(&serde_json::to_string_pretty(&doc).expect("json"));
        return;
    }
    for r in reports {
        outln!(
            "restore test of database {} from snapshot {}: {} (restore {:.1} s, RTO {:.0} s; temporary database {} {})",
            r.database,
            &r.snapshot[..8.min(r.snapshot.len())],
            if r.passed { "PASSED" } else { "FAILED" },
            r.restore_secs,
            r.rto_secs,
            r.temp_database,
            if r.dropped { "dropped" } else { "NOT dropped" }
        );
        for c in &r.checks {
            if !c.passed || !ctx.quiet {
                outln!(
                    "  {} {}: {}",
                    if c.passed { "ok  " } else { "FAIL" },
                    c.name,
                    c.detail
                );
            }
        }
        if let Some(e) = &r.error {
            outln!("  error: {e}");
        }
    }
}
