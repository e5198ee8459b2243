//! Human output of `forget`, `prune` and `hold` (their JSON is printed by the callers).

use super::render::size;
use super::Ctx;
use crate::ops::forget::ForgetReport;
use crate::ops::prune::PruneReport;
use crate::repo::Hold;

pub fn forget(ctx: &Ctx, r: &ForgetReport) {
    if ctx.json || ctx.quiet {
        return;
    }
    outln!(
        "{} ({}): policy {} [{}]{}",
        r.copy,
        r.location,
        r.policy,
        r.policy_source,
        if r.dry_run {
            " — dry run, nothing removed"
        } else {
            ""
        }
    );
    for g in &r.groups {
        let mut what = g.paths.join(", ");
        if !g.databases.is_empty() {
            what.push_str(&format!(
                "{}database {}",
                if what.is_empty() { "" } else { " + " },
                g.databases.join(", ")
            ));
        }
        if g.safety_dumps {
            what.push_str(" (safety dumps taken before restores)");
        }
        outln!("  host {} — {what}", g.host);
        for s in &g.snapshots {
            outln!(
                "    {} {:<25} {:<6} {}",
                s.short_id,
                s.time,
                if s.keep { "keep" } else { "remove" },
                s.reasons.join(", ")
            );
        }
    }
    outln!(
        "  {} kept, {} {}",
        r.kept,
        r.removed,
        if r.dry_run {
            "would be removed"
        } else {
            "removed"
        }
    );
    if let Some(w) = &r.wal {
        let verb = if r.dry_run { "would go" } else { "removed" };
        if let Some(why) = &w.held_back {
            outln!("  WAL: {} archived files kept, none removed: {why}", w.kept);
            return;
        }
        match w.before.as_str() {
            "" => outln!(
                "  WAL: {} archived files kept: no base backup is kept by the policy",
                w.kept
            ),
            before => outln!(
                "  WAL: {} archived files kept, {} {verb} (before {before}, the first of the oldest base backup kept)",
                w.kept,
                w.removed
            ),
        }
    }
}

pub fn prune(ctx: &Ctx, copy: &str, r: &PruneReport) {
    if ctx.json || ctx.quiet {
        return;
    }
    let verb = if r.dry_run { "would free" } else { "freed" };
    outln!(
        "prune {copy} ({}): {} snapshots use {} blobs; {} packs deleted, {} condemned ({} of them repacked into {}, {} downloaded), {} recovered, {} waiting (a condemned pack is deleted {}, once the snapshots running at its mark have ended); {verb} {} of {}; {} unused left in packs below the threshold",
        r.location,
        r.snapshots,
        r.blobs_used,
        r.packs_deleted,
        r.packs_condemned,
        r.packs_repacked,
        r.packs_written,
        size(r.bytes_downloaded),
        r.packs_recovered,
        r.packs_waiting,
        match r.grace_secs {
            0 => "in the same run".to_string(),
            g => format!("by a prune {} later", crate::util::human_secs(g)),
        },
        size(r.bytes_deleted.saturating_sub(r.bytes_written)),
        size(r.bytes_before),
        size(r.bytes_unused_kept),
    );
}

pub fn hold_changed(ctx: &Ctx, what: &str, snapshot: &str, reason: &str) {
    super::render::line(
        ctx,
        &format!(
            "hold {what} on snapshot {}: {reason}",
            &snapshot[..8.min(snapshot.len())]
        ),
        serde_json::json!({ "snapshot": snapshot, "hold": what, "reason": reason }),
    );
}

pub fn holds(ctx: &Ctx, holds: &[Hold]) {
    if ctx.json {
        crate::cli::render::emit_raw(&serde_json::to_string_pretty(holds).expect("json"));
        return;
    }
    if holds.is_empty() && !ctx.quiet {
        outln!("no holds");
    }
    for h in holds {
        outln!(
            "{} held since {} by {}@{}: {}",
            &h.snapshot[..8],
            h.time,
            h.user,
            h.host,
            h.reason
        );
    }
}
