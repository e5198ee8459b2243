//! `wal-fetch` fetching ahead (issue #19): recovery runs `restore_command`
//! once per segment, and each run opening the repository (the key's unlock,
//! the catalog) costs more than the segment's bytes. So a fetch of segment N
//! also writes the next segments of its timeline, as far as they are
//! archived (`AHEAD`), into `hcbackup-prefetch/` beside `%p` (in `pg_wal`,
//! the data folder's own, private to the server's user); a later fetch of
//! one of them moves it into place without opening the repository, as
//! pgBackRest's asynchronous archive-get does.
//!
//! Only what this user wrote is served: there is a spool only where `%p`'s
//! folder is this user's and no one else may write in it; the spool must be
//! a private folder of this user's and the file a regular file of this
//! user's (never a link), all checked on open handles and moved relative to
//! them; and the spool must come from the same repository (`.source`). The
//! files were checked against their records (size and BLAKE3) before they
//! were written. When recovery asks for a name that is not archived (its
//! end: PostgreSQL then looks for the next timeline), the folder is emptied.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::model::wal::{kind_of, position, WalFile, WalRecord};
use crate::repo::Repository;

/// Segments fetched ahead (16 MiB each by default).
const AHEAD: usize = 8;

const SPOOL: &str = "hcbackup-prefetch";
/// In the spool: the repository (as `--repo` names it) the files came from.
const SOURCE: &str = ".source";

fn me() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The folder of `dest` (`%p`), when it is this user's and no one else may
/// change what is in it (PostgreSQL's `pg_wal` is 0700): only then is there
/// a spool, and no entry in it can be swapped behind this process's back.
fn trusted_parent(dest: &Path) -> Option<OwnedFd> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fd = rustix::fs::open(
        parent,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    (st.st_uid == me() && st.st_mode & 0o022 == 0).then_some(fd)
}

/// The spool folder in `parent`: a real folder of this user's, private.
fn spool_dir(parent: &OwnedFd) -> Option<OwnedFd> {
    let fd = rustix::fs::openat(
        parent,
        SPOOL,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    (st.st_uid == me() && st.st_mode & 0o077 == 0).then_some(fd)
}

/// Whether `name` in `dir` is a regular file of this user's (not followed).
fn our_file(dir: &OwnedFd, name: &str) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
        st.st_uid == me() && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
    })
}

/// The repository the spool's files came from.
fn source_of(dir: &OwnedFd) -> Option<String> {
    if !our_file(dir, SOURCE) {
        return None;
    }
    let fd = rustix::fs::openat(
        dir,
        SOURCE,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::fs::File::from(fd), 4096),
        &mut text,
    )
    .ok()?;
    Some(text)
}

/// Move `name`, fetched ahead from the repository `source`, to `dest`: true
/// when it was there.
pub fn serve(name: &str, dest: &Path, source: &str) -> bool {
    if kind_of(name) != Some(WalFile::Segment) {
        return false;
    }
    let (Some(parent), Some(file)) = (trusted_parent(dest), dest.file_name()) else {
        return false;
    };
    let Some(dir) = spool_dir(&parent) else {
        return false;
    };
    source_of(&dir).as_deref() == Some(source)
        && our_file(&dir, name)
        && rustix::fs::renameat(&dir, name, &parent, file).is_ok()
}

/// Empty the spool beside `dest` (recovery has reached the end).
pub fn clear(dest: &Path) {
    let Some(parent) = trusted_parent(dest) else {
        return;
    };
    let Some(dir) = spool_dir(&parent) else {
        return;
    };
    if let Ok(entries) = rustix::fs::Dir::read_from(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_bytes();
            if name != b"." && name != b".." {
                let _ = rustix::fs::unlinkat(&dir, e.file_name(), AtFlags::empty());
            }
        }
    }
    let _ = rustix::fs::unlinkat(&parent, SPOOL, AtFlags::REMOVEDIR);
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

/// After `record`'s segment was fetched to `dest` from the repository
/// `source`: the following ones that are archived, into the spool. Best
/// effort: a failure here is only logged (the fetch it belongs to
/// succeeded; a later direct fetch reports it).
pub fn prefetch(repo: &Repository, record: &WalRecord, dest: &Path, source: &str) {
    if kind_of(&record.name) != Some(WalFile::Segment) {
        return;
    }
    let Some(parent) = trusted_parent(dest) else {
        return;
    };
    let _ = rustix::fs::mkdirat(&parent, SPOOL, Mode::from_raw_mode(0o700));
    let Some(dir) = spool_dir(&parent) else {
        tracing::warn!(
            "{SPOOL} beside {} is not a private folder of this user's: nothing fetched ahead",
            dest.display()
        );
        return;
    };
    if source_of(&dir).as_deref() != Some(source) {
        // Files of another repository (or none): start afresh.
        clear(dest);
        let _ = rustix::fs::mkdirat(&parent, SPOOL, Mode::from_raw_mode(0o700));
        let Some(fresh) = spool_dir(&parent) else {
            return;
        };
        let written = rustix::fs::openat(
            &fresh,
            SOURCE,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(std::io::Error::from)
        .map(std::fs::File::from)
        .and_then(|mut f| std::io::Write::write_all(&mut f, source.as_bytes()));
        if written.is_err() {
            return;
        }
    }
    let spool = dest.with_file_name(SPOOL);
    for next in following(&record.name, record.size, AHEAD) {
        if our_file(&dir, &next) {
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
        // By path: the folders on it are this user's and no one else's to change.
        if let Err(e) = super::wal::write_record(repo, &found, &spool.join(&next)) {
            tracing::warn!("fetching {next} ahead: {e}");
            let _ = rustix::fs::unlinkat(&dir, next.as_str(), AtFlags::empty());
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
