//! `snapshot --physical`: a base backup of the cluster streamed through the
//! engine into the snapshot (issue #19, step 2; docs/decisions/008). A failed
//! base backup is recorded in the entry and the rest of the snapshot is saved
//! (exit 3), as a failed dump is; only a repository failure is an error.

use std::time::Instant;

use crate::chunker::{Chunker, DB_CHUNKS};
use crate::config::PgTarget;
use crate::error::{Error, Result};
use crate::model::snapshot::PhysicalEntry;
use crate::model::tree::Tree;
use crate::ops::archive::Archiver;
use crate::pg::basebackup::{parse_label, parse_manifest, BaseBackup};
use crate::repo::Repository;

pub fn base_backup(arch: &Archiver, repo: &Repository, t: &PgTarget) -> Result<PhysicalEntry> {
    let started = Instant::now();
    let mut entry = PhysicalEntry {
        host: t.host.clone(),
        port: t.port,
        user: t.user.clone(),
        ..Default::default()
    };
    let label = format!("hcbackup {}", crate::util::rfc3339(crate::util::now()));
    let mut b = match BaseBackup::start(t, &label) {
        Ok(b) => b,
        Err(e) => {
            entry.error = Some(e.to_string());
            return Ok(entry);
        }
    };
    // Relation files change a page (8 KiB) here and there: small chunks keep
    // the next day's base backup small (decided by measurement in a later step).
    let chunker = Chunker::new(DB_CHUNKS, repo.key().gear_table());
    let (read, label_bytes, manifest) = {
        let mut r = b.reader();
        let read = arch.chunk_stream(&chunker, &mut r, None)?;
        (read, r.label.take(), r.manifest.take())
    };
    let finished = b.finish();
    let ended = crate::util::rfc3339(crate::util::now());
    let (content, size) = match (read, finished) {
        (_, Err(e)) => {
            entry.error = Some(e.to_string());
            return Ok(entry);
        }
        (Err(e), _) => {
            entry.error = Some(format!("reading pg_basebackup's output: {e}"));
            return Ok(entry);
        }
        (Ok(r), Ok(())) => r,
    };
    let described = (|| -> Result<_> {
        let label =
            parse_label(&label_bytes.ok_or_else(|| {
                Error::Failed("pg_basebackup's tar holds no backup_label".into())
            })?)?;
        let range = parse_manifest(&manifest.ok_or_else(|| {
            Error::Failed(
                "pg_basebackup's tar holds no backup_manifest (PostgreSQL 13 or later makes one)"
                    .into(),
            )
        })?)?;
        Ok((label, range))
    })();
    let (label, (timeline, _, stop)) = match described {
        Ok(d) => d,
        Err(e) => {
            entry.error = Some(e.to_string());
            return Ok(entry);
        }
    };
    // With -X none, the backup is restorable only from archived WAL: its last
    // segment must be in this repository (pg_basebackup waited for it).
    let last = match crate::model::wal::last_segment(&label.start_lsn, &label.start_wal, &stop) {
        Some(n) => n,
        None => {
            entry.error = Some(format!(
                "the base backup's WAL positions do not parse ({} in {}, stop {stop})",
                label.start_lsn, label.start_wal
            ));
            return Ok(entry);
        }
    };
    if repo.wal(&last)?.is_none() {
        entry.error = Some(format!(
            "its last WAL segment {last} is not in this repository: without it the base backup cannot be restored; turn WAL archiving on into this repository (archive_mode = on, archive_command = 'hcbackup --repo … wal-push %p')"
        ));
        return Ok(entry);
    }
    let lists = arch.store_lists(&content)?;
    let node = super::database::stream_node(PhysicalEntry::TAR_NAME, lists, size);
    entry.tree = Some(arch.store_tree(Tree::new(vec![node]))?);
    entry.end_time = ended;
    entry.label = label.label;
    entry.start_lsn = label.start_lsn;
    entry.start_wal = label.start_wal;
    entry.start_time = label.start_time;
    entry.timeline = timeline.max(label.timeline);
    entry.stop_lsn = stop;
    entry.bytes = size;
    entry.duration_secs = started.elapsed().as_secs_f64();
    Ok(entry)
}
