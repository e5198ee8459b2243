//! Output of `stats` and `tag`.

use super::render::size;
use super::Ctx;
use crate::ops::stats::Stats;

pub fn stats(ctx: &Ctx, s: &Stats) {
    if ctx.json {
        let v = serde_json::to_string_pretty(s).expect("json serializes");
        return crate::cli::render::emit_raw(&v);
    }
    let r = &s.repository;
    outln!(
        "{} snapshots hold {}; their distinct data {}; the repository stores {} blobs in {}: deduplication {}x, compression {}x",
        s.snapshots,
        size(r.logical_bytes),
        size(r.raw_bytes),
        r.blobs,
        size(r.stored_bytes),
        r.dedup_ratio,
        r.compression_ratio
    );
    if !s.sources.is_empty() {
        outln!("");
        outln!(
            "{:<28} {:>9} {:>11} {:>11} {:>11} {:>11} {:>7}",
            "source",
            "snapshots",
            "latest",
            "all",
            "distinct",
            "stored",
            "dedup"
        );
    }
    for src in &s.sources {
        outln!(
            "{:<28} {:>9} {:>11} {:>11} {:>11} {:>11} {:>6}x",
            crate::model::tree::escape(src.source.as_bytes()),
            src.snapshots,
            size(src.latest_bytes),
            size(src.logical_bytes),
            size(src.raw_bytes),
            size(src.stored_bytes),
            src.dedup_ratio
        );
    }
    if !s.per_snapshot.is_empty() {
        outln!(
            "\n{:<10} {:<25} {:>11} {:>11}",
            "snapshot",
            "time",
            "holds",
            "added"
        );
    }
    for p in &s.per_snapshot {
        outln!(
            "{:<10} {:<25} {:>11} {:>11}",
            p.short_id,
            p.time,
            size(p.bytes),
            size(p.bytes_added)
        );
    }
}

/// `tag`: each snapshot's new id and tags; `selected` snapshots were looked at.
pub fn retagged(ctx: &Ctx, done: &[crate::ops::tag::Retagged], selected: usize) {
    if ctx.json {
        let v = serde_json::to_string_pretty(done).expect("json serializes");
        return crate::cli::render::emit_raw(&v);
    }
    if ctx.quiet {
        return;
    }
    for r in done {
        outln!(
            "snapshot {} is now {} (tags: {})",
            &r.old_id[..8],
            &r.new_id[..8],
            if r.tags.is_empty() {
                "none".to_string()
            } else {
                r.tags.join(", ")
            }
        );
    }
    outln!("{} of {} snapshots changed", done.len(), selected);
}
