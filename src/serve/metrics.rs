//! `/metrics`: the status in Prometheus' text exposition format (version 0.0.4).
//! Gauges only; times as Unix seconds, sizes in bytes, ages in seconds.

use std::fmt::Write;

use crate::ops::status::Status;

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn unix(t: &str) -> Option<i64> {
    crate::util::parse_rfc3339(t).map(|t| t.unix_timestamp())
}

struct Out(String);

impl Out {
    fn gauge(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} gauge");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let _ = write!(self.0, "{name}");
        if !labels.is_empty() {
            let ls: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", ls.join(","));
        }
        let _ = writeln!(self.0, " {}", number(v));
    }
}

/// Prometheus numbers: integers without a fraction, `+Inf`/`NaN` spelled its way.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

pub fn render(s: &Status) -> String {
    let mut o = Out(String::new());
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    o.gauge(
        "hcbackup_fresh",
        "1 when nothing is stale (what `hcbackup status` exits 0 for)",
    );
    o.sample("hcbackup_fresh", &[], b(s.fresh));
    o.gauge("hcbackup_problems", "Problems `hcbackup status` lists");
    o.sample("hcbackup_problems", &[], s.problems.len() as f64);
    o.gauge("hcbackup_snapshots", "Snapshots in the repository");
    o.sample("hcbackup_snapshots", &[], s.snapshots as f64);
    o.gauge(
        "hcbackup_stored_bytes",
        "Bytes of packs stored (after dedup, compression, encryption)",
    );
    o.sample("hcbackup_stored_bytes", &[], s.stored_bytes as f64);
    o.gauge(
        "hcbackup_latest_snapshot_bytes",
        "Bytes the newest snapshot holds",
    );
    o.sample("hcbackup_latest_snapshot_bytes", &[], s.latest_bytes as f64);
    o.gauge(
        "hcbackup_dedup_ratio",
        "Bytes all snapshots hold over bytes stored",
    );
    o.sample("hcbackup_dedup_ratio", &[], s.dedup_ratio);

    o.gauge(
        "hcbackup_last_good_snapshot_timestamp_seconds",
        "Time of each source's newest good snapshot",
    );
    for src in &s.sources {
        if let Some(t) = src.last_good.as_ref().and_then(|r| unix(&r.time)) {
            let l = [("kind", src.kind.as_str()), ("source", src.name.as_str())];
            o.sample(
                "hcbackup_last_good_snapshot_timestamp_seconds",
                &l,
                t as f64,
            );
        }
    }
    o.gauge(
        "hcbackup_last_good_snapshot_age_seconds",
        "Age of each source's newest good snapshot",
    );
    for src in &s.sources {
        if let Some(r) = &src.last_good {
            let l = [("kind", src.kind.as_str()), ("source", src.name.as_str())];
            o.sample(
                "hcbackup_last_good_snapshot_age_seconds",
                &l,
                (r.age_hours * 3600.0).round(),
            );
        }
    }
    o.gauge(
        "hcbackup_source_bytes",
        "Bytes of each source in its newest good snapshot",
    );
    for src in &s.sources {
        let l = [("kind", src.kind.as_str()), ("source", src.name.as_str())];
        o.sample("hcbackup_source_bytes", &l, src.bytes as f64);
    }
    o.gauge(
        "hcbackup_last_attempt_success",
        "1 when each source's newest snapshot got it whole",
    );
    for src in &s.sources {
        let l = [("kind", src.kind.as_str()), ("source", src.name.as_str())];
        o.sample("hcbackup_last_attempt_success", &l, b(src.last_ok));
    }

    o.gauge(
        "hcbackup_destination_snapshots_behind",
        "Snapshots of the repository a destination lacks (by the mirror's record)",
    );
    for d in &s.destinations {
        if let Some(n) = d.snapshots_behind {
            o.sample(
                "hcbackup_destination_snapshots_behind",
                &[("destination", &d.name)],
                n as f64,
            );
        }
    }
    o.gauge(
        "hcbackup_destination_lag_seconds",
        "Age of the oldest snapshot a destination lacks (0: up to date)",
    );
    for d in &s.destinations {
        if let Some(h) = d.lag_hours {
            o.sample(
                "hcbackup_destination_lag_seconds",
                &[("destination", &d.name)],
                (h * 3600.0).round(),
            );
        }
    }
    o.gauge(
        "hcbackup_last_mirror_timestamp_seconds",
        "Time of the last run that copied to a destination",
    );
    for d in &s.destinations {
        if let Some(t) = d.last_mirror.as_deref().and_then(unix) {
            o.sample(
                "hcbackup_last_mirror_timestamp_seconds",
                &[("destination", &d.name)],
                t as f64,
            );
        }
    }

    if let Some(v) = &s.last_verify {
        o.gauge(
            "hcbackup_last_verify_success",
            "1 when the last verify found no problem",
        );
        o.sample("hcbackup_last_verify_success", &[], b(v.result == "ok"));
        if let Some(t) = unix(&v.time) {
            o.gauge(
                "hcbackup_last_verify_timestamp_seconds",
                "Time of the last verify",
            );
            o.sample("hcbackup_last_verify_timestamp_seconds", &[], t as f64);
        }
    }
    if let Some(t) = &s.last_restore_test {
        o.gauge(
            "hcbackup_last_restore_test_success",
            "1 when the last restore test passed",
        );
        o.sample("hcbackup_last_restore_test_success", &[], b(t.passed));
        if let Some(ts) = unix(&t.time) {
            o.gauge(
                "hcbackup_last_restore_test_timestamp_seconds",
                "Time of the last restore test",
            );
            o.sample(
                "hcbackup_last_restore_test_timestamp_seconds",
                &[],
                ts as f64,
            );
        }
        o.gauge(
            "hcbackup_last_restore_test_duration_seconds",
            "Measured restore time of the last restore test",
        );
        o.sample(
            "hcbackup_last_restore_test_duration_seconds",
            &[],
            t.restore_secs,
        );
        o.gauge(
            "hcbackup_restore_test_rto_seconds",
            "The recovery time objective the restore test is held to",
        );
        o.sample("hcbackup_restore_test_rto_seconds", &[], t.rto_secs);
    }
    if let Some(w) = &s.wal {
        wal(&mut o, w);
    }
    o.0
}

/// Point-in-time recovery: the newest archived segment and the window.
fn wal(o: &mut Out, w: &crate::ops::status_wal::WalStatus) {
    o.gauge(
        "hcbackup_wal_files",
        "Files PostgreSQL archived into the repository",
    );
    o.sample("hcbackup_wal_files", &[], w.files as f64);
    if let Some(t) = unix(&w.last_archived_time) {
        o.gauge(
            "hcbackup_wal_last_archived_timestamp_seconds",
            "When the newest WAL segment was archived",
        );
        o.sample(
            "hcbackup_wal_last_archived_timestamp_seconds",
            &[],
            t as f64,
        );
    }
    let window = w.recovery_window.as_ref();
    for (name, help, t) in [
        (
            "hcbackup_recovery_window_start_timestamp_seconds",
            "The earliest moment point-in-time recovery reaches",
            window.and_then(|w| unix(&w.from)),
        ),
        (
            "hcbackup_recovery_window_end_timestamp_seconds",
            "The latest moment point-in-time recovery reaches",
            window.and_then(|w| unix(&w.to)),
        ),
    ] {
        if let Some(t) = t {
            o.gauge(name, help);
            o.sample(name, &[], t as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_numbers_follow_the_format() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
