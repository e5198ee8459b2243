//! `wal-fetch` fetching ahead (issue #19): recovery runs `restore_command`
//! once per segment, and each run opening the repository (the key's unlock,
//! the catalog) costs more than the segment's bytes. So a fetch of segment N
//! also writes the next segments of its timeline, as far as they are
//! archived (`AHEAD`), into `hcbackup-prefetch/` beside `%p` (in `pg_wal`,
//! the data folder's own, private to the server's user); a later fetch of
//! one of them moves it into place without opening the repository, as
//! pgBackRest's asynchronous archive-get does.
//!
//! Only what this user wrote is served: the folder and the file must be a
//! real folder and a regular file of this user (never a link). The files
//! were checked against their records (size and BLAKE3) before they were
//! written. When recovery asks for a name that is not archived (its end:
//! PostgreSQL then looks for the next timeline), the folder is emptied.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::model::wal::{kind_of, position, WalFile, WalRecord};
use crate::repo::Repository;

/// Segments fetched ahead (16 MiB each by default).
const AHEAD: usize = 8;

/// The spool beside `dest` (`%p`).
fn spool(dest: &Path) -> Option<PathBuf> {
    Some(dest.parent()?.join("hcbackup-prefetch"))
}

/// Whether `p` is a real folder (or, with `file`, a regular file) of this user.
fn ours(p: &Path, file: bool) -> bool {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    std::fs::symlink_metadata(p).is_ok_and(|m| {
        m.uid() == me
            && if file {
                m.file_type().is_file()
            } else {
                m.file_type().is_dir()
            }
    })
}

/// Move `name`, fetched ahead, to `dest`: true when it was there.
pub fn serve(name: &str, dest: &Path) -> bool {
    if kind_of(name) != Some(WalFile::Segment) {
        return false;
    }
    let Some(dir) = spool(dest) else {
        return false;
    };
    let file = dir.join(name);
    ours(&dir, false) && ours(&file, true) && std::fs::rename(&file, dest).is_ok()
}

/// Empty the spool beside `dest` (recovery has reached the end).
pub fn clear(dest: &Path) {
    let Some(dir) = spool(dest).filter(|d| ours(d, false)) else {
        return;
    };
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let _ = std::fs::remove_dir(&dir);
}

/// The `n` segment names after `name` on its timeline, for segments of `size`.
fn following(name: &str, size: u64, n: usize) -> Vec<String> {
    let (Some(mut p), true) = (
        position(name),
        size.is_power_of_two() && (1 << 20..=1 << 30).contains(&size),
    ) else {
        return Vec::new();
    };
    let per_log = (1u64 << 32) / size;
    let mut out = Vec::new();
    for _ in 0..n {
        p = match (p & 0xffff_ffff) + 1 {
            s if s == per_log => ((p >> 32) + 1) << 32,
            _ => p + 1,
        };
        out.push(format!(
            "{}{:08X}{:08X}",
            &name[..8],
            p >> 32,
            p & 0xffff_ffff
        ));
    }
    out
}

/// After `record`'s segment was fetched to `dest`: the following ones that
/// are archived, into the spool. Best effort: a failure here is only logged
/// (the fetch it belongs to succeeded; a later direct fetch reports it).
pub fn prefetch(repo: &Repository, record: &WalRecord, dest: &Path) {
    if kind_of(&record.name) != Some(WalFile::Segment) {
        return;
    }
    let Some(dir) = spool(dest) else {
        return;
    };
    if std::fs::DirBuilder::new().mode(0o700).create(&dir).is_err() && !ours(&dir, false) {
        tracing::warn!(
            "{} is not a folder of this user's: nothing fetched ahead",
            dir.display()
        );
        return;
    }
    if !ours(&dir, false) {
        return;
    }
    for next in following(&record.name, record.size, AHEAD) {
        let path = dir.join(&next);
        if ours(&path, true) {
            continue;
        }
        let found = match repo.wal(&next) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("fetching {next} ahead: {e}");
                break;
            }
        };
        if let Err(e) = super::wal::write_record(repo, &found, &path) {
            tracing::warn!("fetching {next} ahead: {e}");
            let _ = std::fs::remove_file(&path);
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::following;

    #[test]
    fn the_following_segments_cross_a_log_boundary_on_their_timeline() {
        assert_eq!(
            following("0000000200000000000000FE", 16 << 20, 3),
            [
                "0000000200000000000000FF",
                "000000020000000100000000",
                "000000020000000100000001"
            ]
        );
        assert!(following("00000002.history", 16 << 20, 3).is_empty());
        assert!(following("000000020000000000000001", 12345, 3).is_empty());
    }
}
