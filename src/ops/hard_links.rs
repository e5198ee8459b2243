//! Hard links on restore. Files of a snapshot with the same `link` group were
//! one file: the first restored (the leader) stays; each later one (a follower)
//! is restored as a file of its own during the walk, then, once the walk is
//! done, replaced by a hard link to the leader: linked under a part name and
//! renamed over it, so a failure leaves the follower a correct copy. The
//! folder's times are put back after (a link changes its mtime). Both folders
//! are reached from the target one component at a time, never through a link.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps};

use crate::error::{Error, Result};

/// A restored file's place: its path's components below the target.
type At = Vec<OsString>;

#[derive(Default)]
pub struct Links {
    leaders: Mutex<HashMap<u64, At>>,
    followers: Mutex<Vec<(u64, At, PathBuf)>>,
}

impl Links {
    /// A file of group `group` is in place at `at` (shown as `path`).
    pub fn restored(&self, group: u64, at: At, path: &Path) {
        let mut leaders = self.leaders.lock().unwrap_or_else(|p| p.into_inner());
        match leaders.entry(group) {
            std::collections::hash_map::Entry::Occupied(_) => self
                .followers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((group, at, path.to_path_buf())),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(at);
            }
        }
    }

    /// Replace every follower with a hard link to its leader; each failure goes
    /// to `fail` (the follower stays a copy).
    pub fn link_all(self, root: BorrowedFd<'_>, fail: impl Fn(&Path, Error)) {
        let leaders = self.leaders.into_inner().unwrap_or_else(|p| p.into_inner());
        let followers = self
            .followers
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        for (group, at, path) in followers {
            if let Some(leader) = leaders.get(&group) {
                if let Err(e) = link(root, leader, &at, &path) {
                    fail(&path, e);
                }
            }
        }
    }
}

fn link(
    root: BorrowedFd<'_>,
    leader: &[OsString],
    follower: &[OsString],
    path: &Path,
) -> Result<()> {
    let io = |what: &str, e: rustix::io::Errno| {
        Error::Failed(format!(
            "hard link {}: {what}: {} (restored as a copy)",
            path.display(),
            std::io::Error::from(e)
        ))
    };
    let (ldir, lname) = parent(root, leader).map_err(|e| io("reaching its first name", e))?;
    let (fdir, fname) = parent(root, follower).map_err(|e| io("reaching its folder", e))?;
    let st = rustix::fs::statat(&ldir, lname, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io("checking its first name", e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io(
            "its first name is no longer a file",
            rustix::io::Errno::INVAL,
        ));
    }
    let times = rustix::fs::fstat(&fdir).map_err(|e| io("reading its folder's times", e))?;
    let part = super::safe_fs::part_name(fname, |_| false);
    let _ = rustix::fs::unlinkat(&fdir, part.as_os_str(), AtFlags::empty());
    rustix::fs::linkat(&ldir, lname, &fdir, part.as_os_str(), AtFlags::empty())
        .map_err(|e| io("linking", e))?;
    if let Err(e) = rustix::fs::renameat(&fdir, part.as_os_str(), &fdir, fname) {
        let _ = rustix::fs::unlinkat(&fdir, part.as_os_str(), AtFlags::empty());
        return Err(io("renaming the link into place", e));
    }
    #[allow(clippy::unnecessary_cast)]
    let ts = |sec: i64, nsec: i64| rustix::fs::Timespec {
        tv_sec: sec as _,
        tv_nsec: nsec as _,
    };
    #[allow(clippy::unnecessary_cast)]
    let put_back = Timestamps {
        last_access: ts(times.st_atime as i64, times.st_atime_nsec as i64),
        last_modification: ts(times.st_mtime as i64, times.st_mtime_nsec as i64),
    };
    rustix::fs::futimens(&fdir, &put_back).map_err(|e| io("putting its folder's times back", e))
}

/// The open folder holding `at` and its last component, reached from `root`
/// one folder at a time without following a link.
fn parent<'a>(
    root: BorrowedFd<'_>,
    at: &'a [OsString],
) -> rustix::io::Result<(OwnedFd, &'a OsStr)> {
    let (name, folders) = at.split_last().ok_or(rustix::io::Errno::INVAL)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir = rustix::fs::openat(root, ".", flags, Mode::empty())?;
    for f in folders {
        if f.as_bytes().contains(&b'/') {
            return Err(rustix::io::Errno::INVAL);
        }
        dir = rustix::fs::openat(dir.as_fd(), f.as_os_str(), flags, Mode::empty())?;
    }
    Ok((dir, name.as_os_str()))
}
