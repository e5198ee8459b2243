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

/// The name of the WAL segment holding the byte before `stop` (an LSN
/// `X/Y`), on the timeline of `start_wal`, with the segment size that puts
/// `start` in `start_wal`.
fn last_segment(start: &str, start_wal: &str, stop: &str) -> Option<String> {
    let lsn = |s: &str| {
        let (hi, lo) = s.split_once('/')?;
        Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
    };
    let (start, stop) = (lsn(start)?, lsn(stop)?);
    if start_wal.len() != 24 || stop <= start {
        return None;
    }
    let tl = &start_wal[..8];
    let name = |size: u64, at: u64| {
        let per = (1u64 << 32) / size;
        let seg = at / size;
        format!("{tl}{:08X}{:08X}", seg / per, seg % per)
    };
    (20..=30)
        .map(|bits| 1u64 << bits)
        .find(|size| name(*size, start) == start_wal)
        .map(|size| name(size, stop - 1))
}

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
    let last = match last_segment(&label.start_lsn, &label.start_wal, &stop) {
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

#[cfg(test)]
mod tests {
    use super::last_segment;

    #[test]
    fn the_last_segment_is_found_with_the_segment_size_the_start_implies() {
        // 16 MiB segments.
        assert_eq!(
            last_segment("0/2000028", "000000010000000000000002", "0/2000100").as_deref(),
            Some("000000010000000000000002")
        );
        assert_eq!(
            last_segment("0/2000028", "000000010000000000000002", "1/5000000").as_deref(),
            Some("000000010000000100000004")
        );
        // 64 MiB segments, timeline 3.
        assert_eq!(
            last_segment("0/8000028", "000000030000000000000002", "0/C000010").as_deref(),
            Some("000000030000000000000003")
        );
        assert_eq!(last_segment("x", "000000010000000000000002", "0/1"), None);
        assert_eq!(last_segment("0/2000028", "short", "0/3000000"), None);
    }
}
