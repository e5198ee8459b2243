//! All that hcbackup writes on stdout: human lines, or one JSON document with --json.

use std::time::Duration;

use serde_json::json;

use super::Ctx;
use crate::error::{exit, Result};
use crate::model::snapshot::SnapshotEntry;
use crate::model::tree::escape;
use crate::model::tree::NodeKind;
use crate::ops::ls::{display_path, walk};
use crate::ops::restore::RestoreReport;
use crate::repo::{KeyInfo, Repository};

pub(crate) fn print_json(v: &serde_json::Value) {
    emit_raw(&serde_json::to_string_pretty(v).expect("json serializes"));
}

/// Print one line of human output (see `outln!`): escaped, and a closed pipe
/// (`hcbackup ls latest | head`) ends the process quietly instead of panicking.
pub fn emit_line(line: &str) {
    emit_raw(&crate::model::tree::sanitize(line));
}

/// Print a document (JSON, a report) as it is, ending quietly on a closed pipe.
/// On stderr when the command's data goes to stdout (`--db-file /dev/stdout`).
pub fn emit_raw(text: &str) {
    use std::io::Write;
    if crate::ops::output_file::stdout_taken() {
        eprintln!("{text}");
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(crate::error::exit::OK);
        }
        eprintln!("hcbackup: writing the output: {e}");
        std::process::exit(crate::error::exit::ERROR);
    }
}

/// Bytes in binary units, as people read them.
pub fn size(n: u64) -> String {
    crate::util::human_bytes(n)
}

pub fn line(ctx: &Ctx, human: &str, doc: serde_json::Value) {
    if ctx.json {
        print_json(&doc);
    } else if !ctx.quiet {
        outln!("{human}");
    }
}

pub fn init(ctx: &Ctx, repo: &Repository) {
    line(
        ctx,
        &format!(
            "created repository {} at {}",
            repo.config().id,
            repo.backend().location()
        ),
        json!({ "id": repo.config().id, "location": repo.backend().location() }),
    );
}

fn snapshot_json(e: &SnapshotEntry) -> serde_json::Value {
    let s = &e.snapshot;
    json!({
        "id": e.id.to_hex(),
        "short_id": e.id.short(),
        "time": s.time,
        "host": s.host,
        "tags": s.tags,
        "paths": s.paths,
        "sources": s.names,
        "files": s.summary.files,
        "dirs": s.summary.dirs,
        "bytes": s.summary.bytes,
        "bytes_read": s.summary.bytes_read,
        "bytes_added": s.summary.bytes_added,
        "blobs_added": s.summary.blobs_added,
        "duration_secs": s.summary.duration_secs,
        "excluded": s.summary.excluded,
        "incomplete": s.incomplete(),
        "written": s.written,
        "original": s.original,
        "errors": s.errors,
        "physical": s.physical,
        "databases": s.databases.iter().map(|d| json!({
            "db": d.db,
            "host": d.host,
            "port": d.port,
            "server_version": d.server_version,
            "format": d.format,
            "rows_by_primary_key": d.rows_by_primary_key,
            "dump_bytes": d.dump_bytes,
            "tables": d.tables.len(),
            "rows": d.tables.iter().map(|t| t.rows).sum::<u64>(),
            "ok": d.ok(),
            "error": d.error,
            "warnings": d.warnings,
            "duration_secs": d.duration_secs,
        })).collect::<Vec<_>>(),
    })
}

pub fn snapshot_done(ctx: &Ctx, e: &SnapshotEntry) {
    let s = &e.snapshot;
    for err in &s.errors {
        eprintln!("hcbackup: could not read {}", escape(err.as_bytes()));
    }
    let mut db_part = String::new();
    for d in &s.databases {
        for w in &d.warnings {
            eprintln!("hcbackup: database {}: {w}", d.db);
        }
        match &d.error {
            Some(err) => eprintln!("hcbackup: database {} NOT saved: {err}", d.db),
            None => db_part.push_str(&format!(
                "database {} ({} dump, {} tables), ",
                d.db,
                size(d.dump_bytes),
                d.tables.len()
            )),
        }
    }
    if let Some(p) = &s.physical {
        match &p.error {
            Some(err) => eprintln!("hcbackup: base backup NOT saved: {err}"),
            None => db_part.push_str(&format!(
                "base backup ({}, WAL from {} to {} on timeline {}), ",
                size(p.bytes),
                p.start_lsn,
                p.stop_lsn,
                p.timeline
            )),
        }
    }
    let failed_dbs = s.databases.iter().filter(|d| d.error.is_some()).count()
        + usize::from(s.physical.as_ref().is_some_and(|p| p.error.is_some()));
    let excluded = match s.summary.excluded {
        0 => String::new(),
        n => format!(", {n} entries excluded"),
    };
    let human = format!(
        "snapshot {} saved{}: {db_part}{} files, {} ({} read), {} added{excluded} in {:.1} s",
        e.id.short(),
        match (s.errors.len(), failed_dbs) {
            (0, 0) => String::new(),
            (n, 0) => format!(" INCOMPLETE ({n} entries unreadable)"),
            (0, f) => format!(" INCOMPLETE ({f} database(s) not saved)"),
            (n, f) => format!(" INCOMPLETE ({n} entries unreadable, {f} database(s) not saved)"),
        },
        s.summary.files,
        size(s.summary.bytes),
        size(s.summary.bytes_read),
        size(s.summary.bytes_added),
        s.summary.duration_secs
    );
    line(ctx, &human, snapshot_json(e));
}

/// `snapshot --dry-run`: what a snapshot would save and add, each entry it
/// would leave out (with `-v`, or the first few), and what it could not read.
pub fn snapshot_dry_run(ctx: &Ctx, d: &crate::ops::snapshot::DryRun) {
    for err in &d.errors {
        eprintln!("hcbackup: could not read {}", escape(err.as_bytes()));
    }
    if ctx.json {
        return print_json(&serde_json::to_value(d).unwrap_or_default());
    }
    if ctx.quiet {
        return;
    }
    const SHOWN: usize = 20;
    for e in d.excluded_entries.iter().take(SHOWN) {
        outln!("excluded {}: {}", escape(e.path.as_bytes()), e.why);
    }
    if d.excluded as usize > SHOWN {
        outln!(
            "… and {} more excluded (--json lists the first {})",
            d.excluded as usize - SHOWN,
            crate::ops::archive::EXCLUDED_NAMED
        );
    }
    for db in &d.databases {
        outln!("database {db}: dumped by the snapshot (a dry run does not run pg_dump)");
    }
    outln!(
        "dry run, nothing written: a snapshot would save {} files in {} folders, {} ({} to read), add {}, exclude {} entries",
        d.files,
        d.dirs,
        size(d.bytes),
        size(d.bytes_read),
        size(d.bytes_added),
        d.excluded
    );
}

pub fn snapshots(ctx: &Ctx, list: &[SnapshotEntry]) {
    if ctx.json {
        print_json(&serde_json::Value::Array(
            list.iter().map(snapshot_json).collect(),
        ));
        return;
    }
    outln!(
        "{:<10} {:<25} {:>8} {:>10} {:>10}  {:<16} tags",
        "id",
        "time",
        "files",
        "size",
        "added",
        "sources"
    );
    for e in list {
        let s = &e.snapshot;
        outln!(
            "{:<10} {:<25} {:>8} {:>10} {:>10}  {:<16} {}{}",
            e.id.short(),
            s.time,
            s.summary.files,
            size(s.summary.bytes),
            size(s.summary.bytes_added),
            s.names
                .iter()
                .cloned()
                .chain(s.databases.iter().map(|d| format!("db:{}", d.db)))
                .collect::<Vec<_>>()
                .join(","),
            s.tags.join(","),
            [
                (s.incomplete(), " (incomplete)"),
                (s.written.is_some(), " (backdated)"),
                (s.in_future(crate::util::now()), " (dated in the future)"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, mark)| *mark)
            .collect::<String>()
        );
    }
}

pub fn ls(ctx: &Ctx, repo: &Repository, snap: &SnapshotEntry, path: Option<&str>) -> Result<i32> {
    let mut rows = Vec::new();
    walk(repo, snap, path, &mut |l| {
        let n = &l.node;
        if ctx.json {
            rows.push(json!({
                "path": display_path(&l.path),
                "type": format!("{:?}", n.kind).to_lowercase(),
                "mode": format!("{:o}", n.mode),
                "size": n.size,
                "uid": n.uid,
                "gid": n.gid,
                "mtime_ns": n.mtime_ns,
            }));
        } else {
            let t = match n.kind {
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
                NodeKind::File => '-',
                _ => 'o',
            };
            let target = n
                .target
                .as_ref()
                .map(|t| format!(" -> {}", escape(t)))
                .unwrap_or_default();
            // Names come from uploads (and from whoever wrote the snapshot): shown
            // escaped, so none can move the cursor or forge a line.
            outln!(
                "{t}{:04o} {:>10} {}{}",
                n.mode,
                n.size,
                escape(&l.path),
                target
            );
        }
    })?;
    if ctx.json {
        print_json(&serde_json::Value::Array(rows));
    }
    Ok(exit::OK)
}

pub fn restore_done(ctx: &Ctx, snap: &SnapshotEntry, r: &RestoreReport, took: Duration) {
    for e in &r.errors {
        eprintln!("hcbackup: could not restore {}", escape(e.as_bytes()));
    }
    if r.setid_dropped > 0 {
        eprintln!(
            "hcbackup: {} entries were restored without their setuid/setgid bits: pass --restore-privileged to keep them",
            r.setid_dropped
        );
    }
    if r.devices_skipped > 0 {
        eprintln!(
            "hcbackup: {} device nodes were not created: pass --restore-privileged (as root) to create them",
            r.devices_skipped
        );
    }
    if !r.errors.is_empty() {
        eprintln!(
            "hcbackup: the restore is unfinished: once the cause is fixed, run the same command again to finish it (what is restored is kept)"
        );
    }
    let human = format!(
        "restored snapshot {}: {} files, {} folders, {} in {:.1} s{}{}",
        snap.id.short(),
        r.files,
        r.dirs,
        size(r.bytes),
        took.as_secs_f64(),
        if r.kept > 0 {
            format!(" ({} files kept from the unfinished run)", r.kept)
        } else {
            String::new()
        },
        if r.errors.is_empty() {
            String::new()
        } else {
            format!("; {} FAILED", r.errors.len())
        }
    );
    line(
        ctx,
        &human,
        json!({ "id": snap.id.to_hex(), "files": r.files, "dirs": r.dirs, "bytes": r.bytes,
                "duration_secs": took.as_secs_f64(), "errors": r.errors,
                "setid_dropped": r.setid_dropped, "devices_skipped": r.devices_skipped,
                "kept": r.kept }),
    );
}

pub fn keys(ctx: &Ctx, keys: &[KeyInfo]) {
    if ctx.json {
        print_json(&serde_json::to_value(keys).expect("keys serialize"));
        return;
    }
    for k in keys {
        outln!(
            "{} {}  {}  {}@{}",
            if k.current { "*" } else { " " },
            &k.id[..8],
            k.created,
            k.user,
            k.host
        );
    }
}

pub fn catalog_rebuilt(ctx: &Ctx, repo: &Repository, (indexes, packs, blobs): (u64, u64, u64)) {
    line(
        ctx,
        &format!(
            "catalog rebuilt from {indexes} index objects: {packs} packs, {blobs} blobs ({})",
            repo.catalog().path().display()
        ),
        json!({ "indexes": indexes, "packs": packs, "blobs": blobs }),
    );
}

/// Problems and the files they affect, on stderr.
pub fn verify_problems(reports: &[crate::ops::verify::VerifyReport]) {
    for r in reports {
        for p in r.problems() {
            eprintln!("hcbackup: verify {}: {p}", r.copy);
        }
        for a in &r.affected {
            eprintln!("hcbackup: verify {}: affects {a}", r.copy);
        }
    }
}

/// One line per copy checked; with --json the report (an array with `--destination all`).
pub fn verify(ctx: &Ctx, reports: &[crate::ops::verify::VerifyReport]) {
    verify_problems(reports);
    if ctx.json {
        let doc = if reports.len() == 1 {
            serde_json::to_value(&reports[0])
        } else {
            serde_json::to_value(reports)
        };
        print_json(&doc.expect("report serializes"));
        return;
    }
    if ctx.quiet {
        return;
    }
    for r in reports {
        outln!(
            "verify {}: {} snapshots, {} trees, {} packs{}: {}",
            r.copy,
            r.snapshots,
            r.trees,
            r.packs,
            if r.packs_read > 0 {
                format!(
                    " ({} read, {}, {} blobs checked)",
                    r.packs_read,
                    size(r.bytes_read),
                    r.blobs_read
                )
            } else {
                String::new()
            },
            if r.problems().is_empty() {
                "no problems".to_string()
            } else {
                format!("{} PROBLEMS", r.problems().len())
            }
        );
        if r.wal_files > 0 {
            match &r.recovery_window {
                Some(w) => outln!(
                    "  WAL: {} files archived; recovery window {} to {} (up to {}, from {} base backups)",
                    r.wal_files,
                    w.from,
                    w.to,
                    w.to_wal,
                    w.base_backups
                ),
                None => outln!(
                    "  WAL: {} files archived, but no base backup whose WAL is whole: take one with `hcbackup snapshot --physical`",
                    r.wal_files
                ),
            }
        }
    }
}

/// What `repair` healed, and what it could not (with the files affected).
pub fn repair(ctx: &Ctx, reports: &[crate::ops::repair::RepairReport]) {
    for r in reports {
        for p in r.after.problems() {
            eprintln!("hcbackup: repair {}: NOT healed: {p}", r.copy);
        }
        for a in &r.after.affected {
            eprintln!("hcbackup: repair {}: affects {a}", r.copy);
        }
    }
    if ctx.json {
        print_json(&serde_json::to_value(reports).expect("report serializes"));
        return;
    }
    if ctx.quiet {
        return;
    }
    for r in reports {
        for h in &r.healed {
            outln!("repair {}: {h}", r.copy);
        }
        outln!(
            "repair {}: {} objects healed, {} index objects written; {}",
            r.copy,
            r.healed.len(),
            r.indexes_written,
            if r.after.problems().is_empty() {
                "no problems left".to_string()
            } else {
                format!("{} PROBLEMS LEFT", r.after.problems().len())
            }
        );
    }
}

pub fn diff(
    ctx: &Ctx,
    a: &SnapshotEntry,
    b: &SnapshotEntry,
    diffs: &[crate::ops::diff::Difference],
) {
    use crate::ops::diff::Change;
    if ctx.json {
        print_json(&json!({
            "from": a.id.to_hex(),
            "to": b.id.to_hex(),
            "differences": diffs,
        }));
        return;
    }
    let count = |c: Change| diffs.iter().filter(|d| d.change == c).count();
    for d in diffs {
        let mark = match d.change {
            Change::Added => "+",
            Change::Removed => "-",
            Change::Changed => "M",
            Change::Metadata => "U",
        };
        outln!(
            "{mark}    {}{}",
            d.path,
            if d.kind == "dir" { "/" } else { "" }
        );
    }
    if !ctx.quiet {
        outln!(
            "{} → {}: {} added, {} removed, {} changed, {} metadata only",
            a.id.short(),
            b.id.short(),
            count(Change::Added),
            count(Change::Removed),
            count(Change::Changed),
            count(Change::Metadata)
        );
    }
}

pub fn found(ctx: &Ctx, found: &[crate::ops::find::Found]) {
    if ctx.json {
        print_json(&serde_json::to_value(found).expect("json"));
        return;
    }
    for f in found {
        outln!(
            "{:<10} {:<25} {:>10}  {}",
            &f.snapshot[..8],
            f.time,
            if f.kind == "file" {
                size(f.size)
            } else {
                f.kind.clone()
            },
            f.path
        );
    }
    if !ctx.quiet {
        let snaps: std::collections::HashSet<&str> =
            found.iter().map(|f| f.snapshot.as_str()).collect();
        outln!("{} matches in {} snapshots", found.len(), snaps.len());
    }
}
