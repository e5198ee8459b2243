//! `report`: evidence for an audit (LGPD, CFM, ISO 27001) gathered in one place —
//! the retention policy of each copy, the last backups against the RPO, restore
//! tests and restores with measured times against the RTOs, legal holds, what
//! retention removed, key changes, and the state of the audit chain. The numbers
//! come from the repository, the catalog and the audit log; nothing is estimated.

use serde::Serialize;

use crate::audit::{Event, Verification};
use crate::catalog::RestoreTestRow;
use crate::error::Result;
use crate::ops::status::Status;
use crate::repo::{Hold, Repository};

/// The recovery objectives (the seed's: database 15 min, files 30 min, whole
/// server 2 h; RPO 24 h).
#[derive(Clone, Debug, Serialize)]
pub struct Targets {
    pub rpo_hours: f64,
    pub rto_database_minutes: f64,
    pub rto_files_minutes: f64,
    pub rto_server_minutes: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CopyPolicy {
    pub copy: String,
    pub policy: String,
    /// Where it comes from: `hcbackup.toml`, `RETENTION_DAYS`, the default.
    pub source: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Removals {
    pub copy: String,
    pub operation: String,
    pub objects: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub generated: String,
    pub version: String,
    /// The period the lists cover: from this time on.
    pub since: String,
    pub targets: Targets,
    pub status: Status,
    pub policies: Vec<CopyPolicy>,
    pub restore_tests: Vec<RestoreTestRow>,
    /// Restores (files and databases) with their measured durations.
    pub restores: Vec<Event>,
    pub holds: Vec<Hold>,
    pub removals: Vec<Removals>,
    pub key_changes: Vec<Event>,
    pub audit: Verification,
}

pub struct ReportInput {
    pub status: Status,
    pub policies: Vec<CopyPolicy>,
    pub targets: Targets,
    pub since: time::OffsetDateTime,
}

pub fn run(repo: &Repository, input: ReportInput) -> Result<Report> {
    let since = crate::util::rfc3339(input.since);
    let log = repo.audit_log();
    let audit = log.verify()?;
    let events = log.events(Some(&since))?;
    let removals = repo
        .catalog()
        .removal_counts(&since)?
        .into_iter()
        .map(|(copy, operation, objects)| Removals {
            copy,
            operation,
            objects,
        })
        .collect();
    Ok(Report {
        generated: crate::util::rfc3339(crate::util::now_seconds()),
        version: env!("CARGO_PKG_VERSION").into(),
        since: since.clone(),
        targets: input.targets,
        status: input.status,
        policies: input.policies,
        restore_tests: repo.catalog().restore_tests_since(&since)?,
        restores: events
            .iter()
            .filter(|e| e.operation == "restore")
            .cloned()
            .collect(),
        holds: repo.holds()?,
        removals,
        key_changes: events
            .iter()
            .filter(|e| e.operation.starts_with("key ") || e.operation == "init")
            .cloned()
            .collect(),
        audit,
    })
}
