//! The audit log: one event per operation (snapshot, restore, verify, restore test,
//! forget, prune, mirror, repair, key change, hold, import, export), chained by keyed
//! hash so that changing, removing or reordering any event is detected.
//!
//! An event is JSON; its id is the keyed BLAKE3 of those bytes (the repository's id
//! key, as for every object), and it names the id of the event before it (`prev`;
//! the repository id for the first). Each event lives twice: in the catalog (table
//! `audit`, read by `audit` and `status`) and sealed in the repository as
//! `audit/<id>` (kind 7), which `mirror` copies, so the record survives the server.
//! Without the password nobody can forge an id, so an edit cannot be covered up by
//! recomputing the chain. See docs/audit.md.

mod chain;

pub use chain::{check, Broken};

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::{AuditRow, Catalog};
use crate::codec;
use crate::crypto::{Kind, MasterKey};
use crate::error::{exit, Error, Result};
use crate::storage::Backend;

/// Largest event object accepted when reading `audit/`.
const MAX_EVENT: usize = 1 << 20;

/// One audit event, as hashed and stored. Field order is fixed by this struct; the
/// stored bytes, not a re-serialization, are what the chain hashes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// UTC, RFC 3339.
    pub time: String,
    pub operation: String,
    /// The OS user and host that ran it.
    pub user: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The copies it touched: `local` and destination names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
    /// Bytes added, restored, copied or freed, as the operation counts them.
    #[serde(default)]
    pub bytes: u64,
    /// `ok`, `incomplete` (exit 3: some sources failed) or `failed`.
    pub result: String,
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why (restores, holds): what the operator said with `--reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A short summary (`3 snapshots removed`, `key 1a2b3c4d added`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How long the operation took (seconds): measured restore times for the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// `forget`: the snapshots (hex ids) it removed, so that every machine can
    /// tell a snapshot forgotten on purpose from one hidden behind its back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forgotten: Vec<String>,
    /// `forget`: WAL archived before this file's position (segment name) was
    /// removed with the base backups that needed it (history files and what
    /// held base backups need stay), so every machine tells such WAL from WAL
    /// deleted behind its back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_before: Option<String>,
    /// `init`, `key add`, `key passwd`: the key file written, as `<id>:<BLAKE3 of
    /// its bytes>`, so that `mirror` and `verify` know a key file swapped since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_files: Vec<String>,
    /// The id (hex) of the event before, or the repository id for the first.
    pub prev: String,
}

impl Event {
    /// Decode an event's JSON (from the catalog or an `audit/` object).
    pub fn from_json(text: &str) -> std::result::Result<Event, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// What an operation tells the log about itself while it runs.
#[derive(Clone, Debug, Default)]
pub struct Draft {
    pub operation: String,
    pub snapshot: Option<String>,
    pub destinations: Vec<String>,
    pub bytes: u64,
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// The step it was at (alerts name it when it fails).
    pub step: Option<String>,
    /// What went wrong when the command ends with a failing code but no error
    /// (a database that did not dump, a destination that did not mirror).
    pub problems: Vec<String>,
    /// What needs a look although the command succeeded (a source that shrank):
    /// alerted as a warning.
    pub warnings: Vec<String>,
    /// How long it took, when known.
    pub duration_secs: Option<f64>,
    /// The snapshots a forget removed (hex ids).
    pub forgotten: Vec<String>,
    /// WAL before this segment removed (forget).
    pub wal_before: Option<String>,
    /// Key files written (`<id>:<BLAKE3 hex>`).
    pub key_files: Vec<String>,
}

/// How a key file is recorded in the log: `<id>:<BLAKE3 hex of its bytes>`.
pub fn key_file_record(id: &str, bytes: &[u8]) -> String {
    format!("{id}:{}", blake3::hash(bytes).to_hex())
}

impl Draft {
    pub fn new(operation: &str) -> Draft {
        Draft {
            operation: operation.to_string(),
            ..Default::default()
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub exit_code: i32,
    pub error: Option<String>,
}

impl Outcome {
    pub fn of(r: &Result<i32>) -> Outcome {
        match r {
            Ok(code) => Outcome {
                exit_code: *code,
                error: None,
            },
            Err(e) => Outcome {
                exit_code: e.exit_code(),
                error: Some(e.to_string()),
            },
        }
    }

    pub fn ok() -> Outcome {
        Outcome {
            exit_code: exit::OK,
            error: None,
        }
    }

    /// `ok`, `incomplete` or `failed`.
    pub fn result(&self) -> &'static str {
        match self.exit_code {
            exit::OK => "ok",
            exit::INCOMPLETE => "incomplete",
            _ => "failed",
        }
    }

    pub fn failed(&self) -> bool {
        self.exit_code != exit::OK
    }
}

fn parse(r: &AuditRow) -> Result<Event> {
    Event::from_json(&r.event).map_err(|e| Error::corrupt(format!("audit event #{}", r.seq), e))
}

/// Appends to and checks one repository's log. Holds its own handles so it can
/// record an operation after the repository it ran on is gone.
pub struct AuditLog {
    backend: Arc<dyn Backend>,
    catalog: Arc<Catalog>,
    key: MasterKey,
    genesis: String,
}

/// What `audit verify` found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verification {
    pub ok: bool,
    /// Events in the catalog and in the repository.
    pub events: u64,
    pub stored: u64,
    /// The last event's seq and id.
    pub head: Option<(u64, String)>,
    /// The first broken link of the catalog's chain, then of the repository's.
    pub catalog_broken: Option<Broken>,
    pub repository_broken: Option<Broken>,
    /// Every other difference between the two (events in one and not the other).
    pub problems: Vec<String>,
    /// Events the repository lacked and received now (their upload had failed).
    pub uploaded: u64,
}

impl AuditLog {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        catalog: Arc<Catalog>,
        key: MasterKey,
        repo_id: &str,
    ) -> AuditLog {
        AuditLog {
            backend,
            catalog,
            key,
            genesis: repo_id.to_string(),
        }
    }

    /// Record an operation. The event is in the catalog when this returns; the
    /// repository's copy follows at once (and any earlier one whose write failed).
    /// A catalog that cannot take it (damaged, its disk full) does not lose it:
    /// it goes to the repository alone, and the catalog learns it from there.
    pub fn append(&self, d: &Draft, o: &Outcome) -> Result<Event> {
        // One appender at a time across machines, each after the events the
        // others appended: one chain, however many catalogs take turns.
        let _turn = crate::repo::audit_turn(
            self.backend.clone(),
            &self.key,
            std::time::Duration::from_secs(20),
        );
        match self.append_to_catalog(d, o) {
            Err(
                e @ (Error::Catalog { .. } | Error::CatalogDamaged { .. } | Error::DiskFull(_)),
            ) => {
                tracing::warn!(
                    "audit log: the catalog cannot take the event ({e}); writing it to the repository alone"
                );
                self.append_to_repository(d, o)
            }
            other => other,
        }
    }

    fn append_to_catalog(&self, d: &Draft, o: &Outcome) -> Result<Event> {
        if self.catalog.audit_count()? == 0 {
            // A new catalog (a new machine, a deleted cache): continue the chain the
            // repository holds, not a new one.
            self.import()?;
        } else if let Err(e) = self.sync() {
            tracing::warn!("audit log: could not read the repository's events ({e}); recording here, the next command catches up");
        }
        let mut event = draft_event(d, o);
        self.catalog.append_audit(|head| {
            let after = match head {
                Some((seq, id)) => (seq, hex::encode(id)),
                None => (0, self.genesis.clone()),
            };
            self.chained(&mut event, after)
        })?;
        // Recorded in the catalog: a repository that cannot take it now (a full
        // disk, an unreachable bucket) gets it with the next event or `audit verify`.
        if let Err(e) = self.store_pending() {
            tracing::warn!(
                "audit event #{} is in the catalog; writing it to the repository failed ({e}); the next command retries",
                event.seq
            );
        }
        Ok(event)
    }

    /// Append the event after the head of the repository's own chain, without
    /// the catalog.
    fn append_to_repository(&self, d: &Draft, o: &Outcome) -> Result<Event> {
        let (rows, _) = self.read_repository()?;
        let (_, head) = follow(rows, (0, self.genesis.clone()));
        let mut event = draft_event(d, o);
        let row = self.chained(&mut event, head);
        self.put_event(&row)?;
        Ok(event)
    }

    /// Place `event` in the chain after `(seq, id hex)`: its row, not yet stored.
    fn chained(&self, event: &mut Event, (seq, prev): (u64, String)) -> AuditRow {
        event.seq = seq + 1;
        event.prev = prev;
        let json = serde_json::to_string(&event).expect("event serializes");
        AuditRow {
            id: self.key.id_of(json.as_bytes()),
            seq: event.seq,
            time: event.time.clone(),
            event: json,
            stored: false,
        }
    }

    /// Seal one event and write it to the repository's `audit/`.
    fn put_event(&self, r: &AuditRow) -> Result<()> {
        let sealed = codec::encode(&self.key, Kind::Audit, &r.id, r.event.as_bytes());
        self.backend
            .put(&format!("audit/{}", hex::encode(r.id)), &sealed)?;
        Ok(())
    }

    /// Write every event the repository lacks (`stored = 0`).
    fn store_pending(&self) -> Result<u64> {
        let mut n = 0;
        for r in self.catalog.audit_unstored()? {
            self.put_event(&r)?;
            crate::util::failpoint("audit-after-put");
            self.catalog.mark_audit_stored(&r.id)?;
            n += 1;
        }
        Ok(n)
    }

    /// Every event of the repository's `audit/` but those in `skip`, each opened
    /// and checked against its name; those that do not open are problems.
    fn read_repository_but(
        &self,
        skip: &std::collections::HashSet<[u8; 32]>,
    ) -> Result<(Vec<AuditRow>, Vec<String>)> {
        let mut rows = Vec::new();
        let mut problems = Vec::new();
        for (name, _) in self.backend.list("audit")? {
            let mut id = [0u8; 32];
            if hex::decode_to_slice(&name, &mut id).is_err() {
                problems.push(format!("audit/{name}: not an event name"));
                continue;
            }
            if skip.contains(&id) {
                continue;
            }
            match self.read_event(&name, id)? {
                Ok(row) => rows.push(row),
                Err(p) => problems.push(p),
            }
        }
        rows.sort_by(|a, b| a.seq.cmp(&b.seq).then(a.id.cmp(&b.id)));
        Ok((rows, problems))
    }

    /// The snapshots that events in the repository but not in this catalog's
    /// chain say were forgotten: an event appended beside another (a fork,
    /// when a turn could not be had) is left out of the chain, but it is
    /// sealed with the key, so what it says was done was done.
    pub(crate) fn forgotten_off_chain(&self) -> Result<std::collections::HashSet<String>> {
        let known = self.catalog.audit_ids()?;
        let (rows, _) = self.read_repository_but(&known)?;
        Ok(rows
            .iter()
            .filter_map(|r| Event::from_json(&r.event).ok())
            .flat_map(|e| e.forgotten)
            .collect())
    }

    /// Every event of the repository's `audit/` (see `read_repository_but`).
    fn read_repository(&self) -> Result<(Vec<AuditRow>, Vec<String>)> {
        self.read_repository_but(&Default::default())
    }

    /// One event object: its row, or why it is no event (a storage failure is
    /// the outer error).
    fn read_event(
        &self,
        name: &str,
        id: [u8; 32],
    ) -> Result<std::result::Result<AuditRow, String>> {
        let sealed = match self.backend.get(&format!("audit/{name}")) {
            Ok(s) => s,
            Err(crate::storage::StorageError::NotFound(_)) => {
                return Ok(Err(format!("audit/{name} went away while being read")))
            }
            Err(e) => return Err(e.into()),
        };
        let plain = match codec::decode(&self.key, Kind::Audit, &id, &sealed, MAX_EVENT) {
            Ok(p) => p,
            Err(e) => return Ok(Err(format!("audit/{name} does not open: {e}"))),
        };
        let Ok(text) = String::from_utf8(plain) else {
            return Ok(Err(format!("audit/{name}: not UTF-8")));
        };
        Ok(match Event::from_json(&text) {
            Ok(e) => Ok(AuditRow {
                id,
                seq: e.seq,
                time: e.time,
                event: text,
                stored: true,
            }),
            Err(e) => Err(format!("audit/{name}: not an event: {e}")),
        })
    }

    /// Bring the catalog's copy of the log in step with the repository's (see
    /// `sync`), for a question the log answers (was a snapshot forgotten?).
    pub(crate) fn catch_up(&self) -> Result<()> {
        if self.catalog.audit_count()? == 0 {
            self.import().map(|_| ())
        } else {
            self.sync()
        }
    }

    /// Take in the events that other machines (or this one, with another copy of
    /// its catalog) appended to the repository's chain after this catalog's
    /// newest stored event, and chain this catalog's own unstored events (never
    /// in the repository) again after them. Events that do not continue the
    /// chain are left out (`audit verify` reports them).
    fn sync(&self) -> Result<()> {
        // An event written to the repository by a run killed before it could
        // mark it stored here is stored: counted as pending, it would be chained
        // again after the events others appended after it (a fork).
        // A catalog that holds no stored event (new, or rebuilt around its
        // pending events after damage) takes the whole chain from the start;
        // one that does trusts its stored events as the chain's first ones, so
        // an event removed from it is found by `audit verify`, not refilled.
        let had_stored = self.catalog.audit_stored_count()? > 0;
        let pending = self.catalog.audit_unstored()?;
        if !pending.is_empty() {
            let listed: std::collections::HashSet<String> = self
                .backend
                .list("audit")?
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            for p in pending
                .iter()
                .filter(|p| listed.contains(&hex::encode(p.id)))
            {
                self.catalog.mark_audit_stored(&p.id)?;
            }
        }
        let head = self.catalog.audit_stored_head()?;
        let whole = had_stored;
        let known = if whole {
            self.catalog.audit_ids()?
        } else {
            Default::default()
        };
        let (fresh, problems) = self.read_repository_but(&known)?;
        for p in &problems {
            tracing::warn!("audit log: {p}; run `hcbackup audit verify`");
        }
        let start = match head.filter(|_| whole) {
            Some((s, id)) => (s, hex::encode(id)),
            None => (0, self.genesis.clone()),
        };
        let (taken, mut head) = follow(fresh, start);
        if taken.is_empty() {
            return Ok(());
        }
        let pending = self.catalog.audit_unstored()?;
        let mut rebased = Vec::new();
        for p in &pending {
            let row = self.chained(&mut parse(p)?, head);
            head = (row.seq, hex::encode(row.id));
            rebased.push(row);
        }
        self.catalog.rebase_audit(&pending, &taken, &rebased)
    }

    /// Copy the repository's events into an empty catalog. Returns how many.
    /// Events that do not open are left out with a warning (`audit verify` names
    /// them): one damaged object must not stop every command from recording.
    pub fn import(&self) -> Result<u64> {
        let (rows, problems) = self.read_repository()?;
        for p in &problems {
            tracing::warn!("audit log: {p}; run `hcbackup audit verify`");
        }
        self.catalog.import_audit(&rows)?;
        Ok(rows.len() as u64)
    }

    /// Events from `since` (RFC 3339), oldest first; the repository's when this
    /// catalog has none yet.
    pub fn events(&self, since: Option<&str>) -> Result<Vec<Event>> {
        if self.catalog.audit_count()? == 0 {
            self.import()?;
        } else if let Err(e) = self.sync() {
            // The catalog's events are still worth showing (an unreachable bucket).
            tracing::warn!(
                "audit log: could not read the repository's events ({e}); showing this machine's"
            );
        }
        self.catalog.audit_rows(since)?.iter().map(parse).collect()
    }

    /// The newest events, read back a page at a time until `enough` says the
    /// events so far (newest first) suffice or the log ends; oldest first. For
    /// `status` and `serve`, which need the last few of 20 years of events.
    pub fn newest_until(&self, mut enough: impl FnMut(&[Event]) -> bool) -> Result<Vec<Event>> {
        if self.catalog.audit_count()? == 0 {
            self.import()?;
        }
        let mut out: Vec<Event> = Vec::new();
        let mut before = None;
        loop {
            let page = self.catalog.audit_rows_back(before, 256)?;
            let Some(last) = page.last() else { break };
            before = Some(last.seq);
            for r in &page {
                out.push(parse(r)?);
            }
            if enough(&out) {
                break;
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Check both chains (catalog and repository) link by link and compare them.
    pub fn verify(&self) -> Result<Verification> {
        let mut v = Verification::default();
        // A new catalog takes the repository's events, read once for both uses.
        let empty = self.catalog.audit_count()? == 0;
        if !empty {
            let _turn = crate::repo::audit_turn(
                self.backend.clone(),
                &self.key,
                std::time::Duration::from_secs(20),
            );
            self.sync()?;
            v.uploaded = self.store_pending()?;
        }
        let (theirs, problems) = self.read_repository()?;
        if empty {
            self.catalog.import_audit(&theirs)?;
        }
        let ours = self.catalog.audit_rows(None)?;
        v.problems = problems;
        v.events = ours.len() as u64;
        v.stored = theirs.len() as u64;
        v.head = ours.last().map(|r| (r.seq, hex::encode(r.id)));
        v.catalog_broken = check(&self.key, &self.genesis, &ours).err();
        v.repository_broken = check(&self.key, &self.genesis, &theirs).err();
        let theirs_ids: std::collections::HashSet<[u8; 32]> = theirs.iter().map(|r| r.id).collect();
        let ours_ids: std::collections::HashSet<[u8; 32]> = ours.iter().map(|r| r.id).collect();
        for r in &ours {
            if !theirs_ids.contains(&r.id) {
                v.problems.push(format!(
                    "event #{} ({}) is in the catalog but not in the repository",
                    r.seq,
                    &hex::encode(r.id)[..16]
                ));
            }
        }
        for r in &theirs {
            if !ours_ids.contains(&r.id) {
                v.problems.push(format!(
                    "event #{} ({}) is in the repository but not in the catalog",
                    r.seq,
                    &hex::encode(r.id)[..16]
                ));
            }
        }
        v.ok = v.catalog_broken.is_none() && v.repository_broken.is_none() && v.problems.is_empty();
        Ok(v)
    }
}

/// The events of `rows` (in chain order) that continue the chain after
/// `(seq, id hex)`, and the head they end at; the others are left out.
fn follow(
    rows: Vec<AuditRow>,
    (mut seq, mut prev): (u64, String),
) -> (Vec<AuditRow>, (u64, String)) {
    let mut taken = Vec::new();
    for r in rows {
        if r.seq == seq + 1 && Event::from_json(&r.event).is_ok_and(|e| e.prev == prev) {
            seq = r.seq;
            prev = hex::encode(r.id);
            taken.push(r);
        }
    }
    (taken, (seq, prev))
}

/// The event for an operation, before its place in the chain is known.
fn draft_event(d: &Draft, o: &Outcome) -> Event {
    Event {
        time: crate::util::rfc3339(crate::util::now_seconds()),
        operation: d.operation.clone(),
        user: crate::util::username(),
        host: crate::util::hostname(),
        snapshot: d.snapshot.clone(),
        destinations: d.destinations.clone(),
        bytes: d.bytes,
        result: o.result().to_string(),
        exit_code: o.exit_code,
        error: o.error.clone(),
        reason: d.reason.clone(),
        detail: d.detail.clone(),
        forgotten: d.forgotten.clone(),
        wal_before: d.wal_before.clone(),
        key_files: d.key_files.clone(),
        duration_secs: d.duration_secs.map(|s| (s * 1000.0).round() / 1000.0),
        ..Default::default()
    }
}
