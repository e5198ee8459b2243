//! Which snapshots a retention policy keeps, with restic's semantics: walking from
//! the newest snapshot back, each `--keep-<period> N` keeps the newest snapshot of
//! each of the N most recent periods that have a snapshot (periods without one do
//! not count); `--keep-last N` the N newest; `--keep-within SPAN` every snapshot
//! within SPAN of the newest one; `--keep-tag T` every snapshot tagged T. A legal
//! hold keeps a snapshot whatever the policy. Pure: the time is an input.
//!
//! `--keep-within` counts from the newest snapshot, not from the clock (as restic
//! does), so backups that stop do not age the window out. Snapshots dated after
//! `now` are left alone and do not count.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::span::Span;

/// A retention policy. All counts 0 and no span or tag: keeps nothing (callers
/// refuse to apply an empty policy).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_last: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_hourly: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_daily: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_weekly: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_monthly: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keep_yearly: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<Span>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_tag: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// The policy in the CLI's words, e.g. `--keep-within 90d --keep-monthly 12`.
    pub fn describe(&self) -> String {
        let mut out = Vec::new();
        for (name, n) in self.counts() {
            if n > 0 {
                out.push(format!("--keep-{name} {n}"));
            }
        }
        if let Some(s) = &self.keep_within {
            out.push(format!("--keep-within {s}"));
        }
        for t in &self.keep_tag {
            out.push(format!("--keep-tag {t}"));
        }
        if out.is_empty() {
            "(none)".into()
        } else {
            out.join(" ")
        }
    }

    fn counts(&self) -> [(&'static str, u32); 6] {
        [
            ("last", self.keep_last),
            ("hourly", self.keep_hourly),
            ("daily", self.keep_daily),
            ("weekly", self.keep_weekly),
            ("monthly", self.keep_monthly),
            ("yearly", self.keep_yearly),
        ]
    }
}

/// What the policy sees of a snapshot.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// `None`: the time could not be read (such a snapshot is always kept).
    pub time: Option<OffsetDateTime>,
    pub tags: Vec<String>,
    /// The reason of a legal hold, when one is placed.
    pub hold: Option<String>,
}

/// The verdict on one candidate: kept when `reasons` is not empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub keep: bool,
    pub reasons: Vec<String>,
}

/// A period (year, month, day …), comparable within one kind of bucket.
type Period = (i64, i64, i64);

/// The period a snapshot falls in, for each kind of bucket.
fn period(kind: &str, t: OffsetDateTime, index: usize) -> Period {
    let (y, m, d, h) = (
        t.year() as i64,
        t.month() as i64,
        t.day() as i64,
        t.hour() as i64,
    );
    match kind {
        "last" => (index as i64, 0, 0),
        "hourly" => (y, m * 100 + d, h),
        "daily" => (y, m, d),
        "weekly" => {
            let (iy, w, _) = t.to_iso_week_date();
            (iy as i64, w as i64, 0)
        }
        "monthly" => (y, m, 0),
        _ => (y, 0, 0),
    }
}

/// Apply `policy` to `snaps` (any order) as of `now`; one verdict per snapshot, in
/// the same order.
pub fn apply(policy: &Policy, snaps: &[Candidate], now: OffsetDateTime) -> Vec<Verdict> {
    let mut out = vec![Verdict::default(); snaps.len()];
    // Newest first; only snapshots at or before `now` take part.
    let mut order: Vec<usize> = (0..snaps.len())
        .filter(|&i| snaps[i].time.is_some_and(|t| t <= now))
        .collect();
    order.sort_by(|&a, &b| snaps[b].time.cmp(&snaps[a].time).then(b.cmp(&a)));
    let newest = order.first().and_then(|&i| snaps[i].time);
    let within_from = match (&policy.keep_within, newest) {
        (Some(s), Some(n)) => Some(s.before(n)),
        _ => None,
    };
    let mut buckets: Vec<(&str, u32, Option<Period>)> = policy
        .counts()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k, n, None))
        .collect();
    for (pos, &i) in order.iter().enumerate() {
        let t = snaps[i].time.expect("filtered");
        let reasons = &mut out[i].reasons;
        for (kind, left, last) in buckets.iter_mut() {
            if *left == 0 {
                continue;
            }
            let p = period(kind, t, pos);
            if *last != Some(p) {
                *last = Some(p);
                *left -= 1;
                reasons.push(format!("{kind} snapshot"));
            }
        }
        if let (Some(from), Some(s)) = (within_from, &policy.keep_within) {
            if t >= from {
                reasons.push(format!("within {s} of the newest"));
            }
        }
    }
    for (i, s) in snaps.iter().enumerate() {
        let reasons = &mut out[i].reasons;
        match s.time {
            None => reasons.push("time unreadable".into()),
            Some(t) if t > now => reasons.push("newer than --now".into()),
            Some(_) => {}
        }
        for tag in s.tags.iter().filter(|t| policy.keep_tag.contains(t)) {
            reasons.push(format!("tag {tag}"));
        }
        if let Some(why) = &s.hold {
            reasons.push(format!("legal hold: {why}"));
        }
        out[i].keep = !reasons.is_empty();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn at(times: &[OffsetDateTime]) -> Vec<Candidate> {
        times
            .iter()
            .map(|t| Candidate {
                time: Some(*t),
                tags: vec![],
                hold: None,
            })
            .collect()
    }

    fn kept(p: &Policy, c: &[Candidate], now: OffsetDateTime) -> Vec<usize> {
        apply(p, c, now)
            .iter()
            .enumerate()
            .filter(|(_, v)| v.keep)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn newest_of_each_day_and_gaps_do_not_count() {
        let c = at(&[
            datetime!(2026-01-01 03:00 UTC),
            datetime!(2026-01-01 15:00 UTC),
            datetime!(2026-01-02 03:00 UTC),
            // 3, 4 missing
            datetime!(2026-01-05 03:00 UTC),
            datetime!(2026-01-05 04:00 UTC),
        ]);
        let p = Policy {
            keep_daily: 3,
            ..Default::default()
        };
        // Days with a snapshot: 5th (newest 04:00), 2nd, 1st (newest 15:00).
        assert_eq!(kept(&p, &c, datetime!(2026-02-01 0:00 UTC)), vec![1, 2, 4]);
    }

    #[test]
    fn last_within_tag_hold_and_future_snapshots() {
        let mut c = at(&[
            datetime!(2020-01-01 0:00 UTC),
            datetime!(2020-03-01 0:00 UTC),
            datetime!(2020-03-20 0:00 UTC),
            datetime!(2020-03-31 0:00 UTC),
            datetime!(2021-01-01 0:00 UTC),
        ]);
        c[0].tags = vec!["before-migration".into()];
        c[1].hold = Some("court order 123".into());
        let p = Policy {
            keep_last: 1,
            keep_within: Some("15d".parse().unwrap()),
            keep_tag: vec!["before-migration".into()],
            ..Default::default()
        };
        let v = apply(&p, &c, datetime!(2020-04-01 0:00 UTC));
        assert_eq!(v[0].reasons, vec!["tag before-migration"]);
        assert_eq!(v[1].reasons, vec!["legal hold: court order 123"]);
        assert_eq!(v[2].reasons, vec!["within 15d of the newest"]);
        assert_eq!(
            v[3].reasons,
            vec!["last snapshot", "within 15d of the newest"]
        );
        assert_eq!(v[4].reasons, vec!["newer than --now"]);
    }

    #[test]
    fn weekly_uses_iso_weeks() {
        // 2026-01-04 is a Sunday (ISO week 1 of 2026), 2026-01-05 Monday (week 2).
        let c = at(&[
            datetime!(2025-12-29 0:00 UTC), // Monday, ISO 2026-W01
            datetime!(2026-01-04 0:00 UTC), // Sunday, ISO 2026-W01
            datetime!(2026-01-05 0:00 UTC), // Monday, ISO 2026-W02
        ]);
        let p = Policy {
            keep_weekly: 5,
            ..Default::default()
        };
        assert_eq!(kept(&p, &c, datetime!(2026-02-01 0:00 UTC)), vec![1, 2]);
    }

    #[test]
    fn unreadable_time_is_kept() {
        let c = vec![Candidate {
            time: None,
            tags: vec![],
            hold: None,
        }];
        let v = apply(&Policy::default(), &c, datetime!(2026-01-01 0:00 UTC));
        assert!(v[0].keep);
    }
}
