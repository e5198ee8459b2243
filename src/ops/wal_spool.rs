//! `wal-fetch` fetching ahead (issue #19): recovery runs `restore_command`
//! once per segment, and each run opening the repository (the key's unlock,
//! the catalog) costs more than the segment's bytes. So a fetch of segment N
//! also writes the next segments of its timeline, as far as they are
//! archived (`AHEAD`), into `hcbackup-prefetch/` beside `%p` (in `pg_wal`,
//! the data folder's own, private to the server's user); a later fetch of
//! one of them moves it into place without opening the repository, as
//! pgBackRest's asynchronous archive-get does. `restore --pgdata` fills the
//! spool of the data folder it lays out with the first segments recovery
//! will ask for (`prefill`), as far as the target needs them.
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
/// Segments laid out by `restore --pgdata` before recovery starts.
pub const PREFILL: usize = 2 * AHEAD;
/// Segments fetched ahead after the one a target picks (see `fill`).
const PAST: u8 = 2;

/// The spool's folder, beside `%p` (in `pg_wal`).
pub const SPOOL: &str = "hcbackup-prefetch";
/// In the spool: the repository (as `--repo` names it) the files came from.
const SOURCE: &str = ".source";

fn me() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// The folder of `dest` (`%p`), when it is this user's and no one else may
/// change what is in it (PostgreSQL's `pg_wal` is 0700): only then is there
/// a spool, and no entry in it can be swapped behind this process's back.
pub(super) fn trusted_parent(dest: &Path) -> Option<OwnedFd> {
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
pub(super) fn spool_dir(parent: &OwnedFd) -> Option<OwnedFd> {
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
pub(super) fn our_file(dir: &OwnedFd, name: &str) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
        st.st_uid == me() && FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
    })
}

/// The repository the spool's files came from.
pub(super) fn source_of(dir: &OwnedFd) -> Option<String> {
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
    let names = following(&record.name, record.size, AHEAD);
    let _ = fill(repo, names, record.size, dest, source, &|_| false);
}

/// Before recovery starts (`restore --pgdata`): the first segments it will
/// ask for, from the base backup's first segment `first` on, into the spool
/// in `pg_wal` of the new data folder, so that the first fetches open no
/// repository. As far as they are archived, at most `PREFILL`, and none
/// after the one `last` picks and `PAST` more. Best effort, as `prefetch`.
/// What is left to fetch ahead (for `Feeder`), if anything.
pub fn prefill(
    repo: &Repository,
    first: &str,
    pg_wal: &Path,
    source: &str,
    last: &dyn Fn(&WalRecord) -> bool,
) -> Option<Ahead> {
    let record = repo.wal(first).ok()??;
    let mut names = vec![first.to_string()];
    names.extend(following(first, record.size, PREFILL - 1));
    let dest = pg_wal.join(first);
    // Only what this run fetched: never a spool that came with the tar.
    clear(&dest);
    let next = fill(repo, names, record.size, &dest, source, last)?;
    Some(Ahead {
        next,
        size: record.size,
    })
}

/// Where fetching ahead goes on: the next segment's name, and their size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ahead {
    pub next: String,
    pub size: u64,
}

/// `restore --start`: while the copy recovers, this run, its repository
/// open, keeps the spool up to `PREFILL` segments ahead of recovery, so
/// that no fetch needs an unlock of its own however long the recovery.
pub struct Feeder<'a> {
    pub repo: &'a Repository,
    /// A name in the copy's `pg_wal` (the spool is beside it).
    pub dest: std::path::PathBuf,
    pub source: String,
    pub ahead: Option<Ahead>,
    /// Whether recovery stops in this segment (none after it is needed).
    pub last: &'a dyn Fn(&WalRecord) -> bool,
    /// The history file of the timeline recovery will probe for next
    /// (`super::wal_absent`).
    pub probe: Option<String>,
}

impl Feeder<'_> {
    /// Top the spool up to `PREFILL` segments, and keep the answer to the
    /// timeline probe fresh.
    pub fn feed(&mut self) {
        self.probe =
            super::wal_absent::refresh(self.repo, self.probe.take(), &self.dest, &self.source);
        let Some(ahead) = self.ahead.take() else {
            return;
        };
        let have = spooled(&self.dest);
        if have >= PREFILL {
            self.ahead = Some(ahead);
            return;
        }
        let mut names = vec![ahead.next.clone()];
        names.extend(following(&ahead.next, ahead.size, PREFILL - have - 1));
        self.ahead = fill(
            self.repo,
            names,
            ahead.size,
            &self.dest,
            &self.source,
            self.last,
        )
        .map(|next| Ahead {
            next,
            size: ahead.size,
        });
    }
}

/// How many segments wait in the spool beside `dest`.
fn spooled(dest: &Path) -> usize {
    let Some(dir) = trusted_parent(dest).and_then(|p| spool_dir(&p)) else {
        return 0;
    };
    rustix::fs::Dir::read_from(&dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| {
                std::str::from_utf8(e.file_name().to_bytes())
                    .is_ok_and(|n| kind_of(n) == Some(WalFile::Segment))
            })
            .count()
    })
}

/// The spool beside `dest` for files of the repository `source` (emptied
/// and marked afresh when it held another's), or `None` where there is none.
pub(super) fn open_spool(dest: &Path, source: &str) -> Option<(OwnedFd, OwnedFd)> {
    let parent = trusted_parent(dest)?;
    let _ = rustix::fs::mkdirat(&parent, SPOOL, Mode::from_raw_mode(0o700));
    let Some(dir) = spool_dir(&parent) else {
        tracing::warn!(
            "{SPOOL} beside {} is not a private folder of this user's: nothing fetched ahead",
            dest.display()
        );
        return None;
    };
    if source_of(&dir).as_deref() == Some(source) {
        return Some((parent, dir));
    }
    // Files of another repository (or none): start afresh.
    clear(dest);
    let _ = rustix::fs::mkdirat(&parent, SPOOL, Mode::from_raw_mode(0o700));
    let fresh = spool_dir(&parent)?;
    rustix::fs::openat(
        &fresh,
        SOURCE,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(std::io::Error::from)
    .map(std::fs::File::from)
    .and_then(|mut f| std::io::Write::write_all(&mut f, source.as_bytes()))
    .ok()?;
    Some((parent, fresh))
}

/// The segments `names` (in order, of `size` bytes) that are archived, into
/// the spool beside `dest`; after the one `last` picks and `PAST` more (the
/// segment being written at the moment may be archived just after it, the
/// next one switched with no transaction after it in, and recovery reads on
/// to the first one), no more. The name after them
/// when all were there (fetching ahead may go on), else `None`.
fn fill(
    repo: &Repository,
    names: Vec<String>,
    size: u64,
    dest: &Path,
    source: &str,
    last: &dyn Fn(&WalRecord) -> bool,
) -> Option<String> {
    let (_parent, dir) = open_spool(dest, source)?;
    let spool = dest.with_file_name(SPOOL);
    // After `last`'s pick: how many more.
    let mut more: Option<u8> = None;
    for next in &names {
        if more == Some(0) {
            return None;
        }
        if our_file(&dir, next) {
            continue;
        }
        let found = match repo.wal(next) {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("fetching {next} ahead: {e}");
                return None;
            }
        };
        // By path: the folders on it are this user's and no one else's to change.
        if let Err(e) = super::wal::write_record(repo, &found, &spool.join(next)) {
            tracing::warn!("fetching {next} ahead: {e}");
            let _ = rustix::fs::unlinkat(&dir, next.as_str(), AtFlags::empty());
            return None;
        }
        more = match more {
            Some(n) => Some(n - 1),
            None => last(&found).then_some(PAST),
        };
    }
    if more.is_some() {
        return None;
    }
    following(names.last()?, size, 1).pop()
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
