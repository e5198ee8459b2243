//! Output of the operations commands: `audit`, `audit verify`, `status`, `notify`.

use serde_json::json;

use super::Ctx;
use crate::alert::Delivery;
use crate::audit::{Event, Verification};

fn print_json(v: &impl serde::Serialize) {
    crate::cli::render::emit_raw(&serde_json::to_string_pretty(v).expect("json serializes"));
}

pub fn audit_events(ctx: &Ctx, events: &[Event]) {
    if ctx.json {
        return print_json(&events);
    }
    if events.is_empty() {
        outln!("no audit events");
        return;
    }
    for e in events {
        let mut line = format!(
            "#{:<5} {}  {:<15} {:<10} {}@{}",
            e.seq, e.time, e.operation, e.result, e.user, e.host
        );
        if let Some(s) = &e.snapshot {
            line.push_str(&format!("  snapshot {}", &s[..s.len().min(8)]));
        }
        if !e.destinations.is_empty() {
            line.push_str(&format!("  copies {}", e.destinations.join(",")));
        }
        if e.bytes > 0 {
            line.push_str(&format!("  {}", super::render::size(e.bytes)));
        }
        if let Some(d) = &e.detail {
            line.push_str(&format!("  {d}"));
        }
        if let Some(r) = &e.reason {
            line.push_str(&format!("  reason: {r}"));
        }
        if let Some(err) = &e.error {
            line.push_str(&format!("  error: {err}"));
        }
        outln!("{line}");
    }
}

pub fn audit_verify(ctx: &Ctx, v: &Verification) {
    if ctx.json {
        return print_json(&json!({
            "ok": v.ok,
            "events": v.events,
            "stored": v.stored,
            "head": v.head.as_ref().map(|(seq, id)| json!({"seq": seq, "id": id})),
            "catalog_broken": v.catalog_broken,
            "repository_broken": v.repository_broken,
            "problems": v.problems,
            "uploaded": v.uploaded,
        }));
    }
    if v.uploaded > 0 {
        outln!("stored {} event(s) the repository lacked", v.uploaded);
    }
    if let Some(b) = &v.catalog_broken {
        outln!("catalog: chain BROKEN at event #{}: {}", b.seq, b.reason);
    }
    if let Some(b) = &v.repository_broken {
        outln!("repository: chain BROKEN at event #{}: {}", b.seq, b.reason);
    }
    for p in &v.problems {
        outln!("problem: {p}");
    }
    match (&v.head, v.ok) {
        (Some((seq, id)), true) => outln!(
            "audit chain intact: {} events, head #{seq} {}",
            v.events,
            &id[..16]
        ),
        (None, true) => outln!("audit chain intact: no events yet"),
        (_, false) => outln!("audit chain NOT intact: see above"),
    }
}

pub fn deliveries(ctx: &Ctx, d: &[Delivery]) {
    if ctx.json {
        return print_json(&d);
    }
    for x in d {
        match &x.error {
            None => outln!("{}: sent", x.channel),
            Some(e) => outln!("{}: FAILED: {e}", x.channel),
        }
    }
}

fn ago(h: f64) -> String {
    if h >= 48.0 {
        format!("{:.1} days ago", h / 24.0)
    } else {
        format!("{h:.1} h ago")
    }
}

/// A recovery window: `12 snapshots, 2026-01-01T03:00:00Z to … (30.0 days)`.
fn window(w: &crate::ops::status::Window) -> String {
    match (&w.oldest, &w.newest, w.days) {
        (Some(a), Some(b), Some(d)) => {
            format!("{} snapshots, {a} to {b} ({d:.1} days)", w.snapshots)
        }
        _ => format!("{} snapshots", w.snapshots),
    }
}

pub fn status(ctx: &Ctx, s: &crate::ops::status::Status) {
    use super::render::size;
    if ctx.json {
        return print_json(s);
    }
    outln!(
        "repository {}: {}, {} stored, newest holds {}, dedup {:.1}x",
        s.repository,
        window(&s.window),
        size(s.stored_bytes),
        size(s.latest_bytes),
        s.dedup_ratio
    );
    for src in &s.sources {
        let good = match &src.last_good {
            Some(r) => format!(
                "last good {} ({}{}), {}",
                r.time,
                ago(r.age_hours),
                r.written
                    .as_ref()
                    .map(|w| format!("; backdated, made {w}"))
                    .unwrap_or_default(),
                size(src.bytes)
            ),
            None => "never backed up completely".into(),
        };
        let last = if src.last_ok {
            ""
        } else {
            "; the LAST ATTEMPT FAILED"
        };
        let judged = if src.judged {
            ""
        } else {
            " (replaced in the settings: not judged)"
        };
        outln!("  {} {}: {good}{last}{judged}", src.kind, src.name);
    }
    for d in &s.destinations {
        let behind = match (d.snapshots_behind, d.lag_hours) {
            (Some(0), _) => "up to date".to_string(),
            (Some(n), Some(h)) => format!("{n} snapshots behind ({})", ago(h)),
            _ => "not known (no mirror record on this machine)".to_string(),
        };
        outln!(
            "  destination {} ({}): last mirror {}, {behind}{}",
            d.name,
            d.location,
            d.last_mirror.as_deref().unwrap_or("never"),
            d.window
                .as_ref()
                .map(|w| format!("; holds {}", window(w)))
                .unwrap_or_default()
        );
    }
    match &s.last_verify {
        Some(v) => outln!("  last verify: {} {}", v.time, v.result),
        None => outln!("  last verify: never"),
    }
    match &s.last_restore_test {
        Some(t) => outln!(
            "  last restore test: {} ({:.1} days ago) of {} {}: restored in {:.1} s against an RTO of {:.0} s",
            t.time,
            t.age_days,
            t.database,
            if t.passed { "passed" } else { "FAILED" },
            t.restore_secs,
            t.rto_secs
        ),
        None => outln!("  last restore test: never"),
    }
    if let Some(w) = &s.wal {
        outln!(
            "  archived WAL: {} files, newest {} at {} ({:.0} min ago); {}",
            w.files,
            w.last_archived,
            w.last_archived_time,
            w.age_minutes,
            match &w.recovery_window {
                Some(r) => format!("point-in-time recovery from {} to {}", r.from, r.to),
                None => "no base backup can use it".into(),
            }
        );
    }
    for w in &s.warnings {
        outln!("  warning: {w}");
    }
    if s.fresh {
        outln!("FRESH");
    } else {
        for p in &s.problems {
            outln!("  problem: {p}");
        }
        outln!("STALE");
    }
}
