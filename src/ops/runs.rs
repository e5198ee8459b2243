//! The recent runs of the operations an administrator watches (snapshot, mirror,
//! verify and restore test, restore, forget, prune), from the audit log: when,
//! how long, the result and the failure message. For the dashboard.

use serde::Serialize;

use crate::audit::Event;
use crate::error::Result;
use crate::repo::Repository;

/// The operations the dashboard lists.
const WATCHED: &[&str] = &["snapshot", "mirror", "verify", "restore", "forget", "prune"];

#[derive(Debug, Serialize)]
pub struct Run {
    /// UTC, RFC 3339.
    pub time: String,
    pub operation: String,
    /// `ok`, `incomplete` or `failed`.
    pub result: String,
    pub duration_secs: Option<f64>,
    pub snapshot: Option<String>,
    pub detail: Option<String>,
    /// The failure's message.
    pub error: Option<String>,
}

/// The `n` newest watched runs, newest first.
pub fn recent(repo: &Repository, n: usize) -> Result<Vec<Run>> {
    let watched = |e: &Event| WATCHED.contains(&e.operation.as_str());
    let events = repo
        .audit_log()
        .newest_until(|evs| evs.iter().filter(|e| watched(e)).count() >= n)?;
    Ok(events
        .into_iter()
        .rev()
        .filter(watched)
        .take(n)
        .map(|e| Run {
            error: e.error,
            time: e.time,
            operation: e.operation,
            result: e.result,
            duration_secs: e.duration_secs,
            snapshot: e.snapshot,
            detail: e.detail,
        })
        .collect())
}
