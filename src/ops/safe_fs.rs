//! Writing into a folder other users can write to (a restore target): every step
//! relative to an open folder descriptor, never by a path that could run through a
//! link someone planted.
//!
//! Folders are made with `mkdirat` and opened with `O_NOFOLLOW | O_DIRECTORY`;
//! files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`; owner, mode and times
//! are set on the open descriptor (special files: on an `O_PATH` descriptor after
//! checking its type). A link found where a folder or file is to go is replaced
//! only when the caller allows it (`--overwrite`) and then only the link itself is
//! removed, never what it points to; otherwise the entry is refused with a message
//! that says what was found. Nothing here ever follows a link, so a restore run as
//! root writes inside its target and nowhere else, whatever is planted there
//! before or during the run.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timestamps, CWD};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Owner, permission bits and modification time to give an entry.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// `None`: leave the owner (only root may give files away).
    pub owner: Option<(u32, u32)>,
    pub mode: u32,
    pub mtime_ns: i64,
}

/// What to do when the name is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Refuse: the entry appeared although the target was empty.
    Refuse,
    /// Remove what is there (a link itself, never its target) and go on.
    Replace,
}

fn io_err(what: &str, path: &Path, e: Errno) -> Error {
    Error::io_path(what, path, std::io::Error::from(e))
}

/// Open (or create, with its parents) the restore target. The target itself
/// must be a real folder: a link there is refused rather than followed.
pub fn open_target(path: &Path) -> Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(Errno::LOOP | Errno::NOTDIR) => return Err(not_a_folder(path)),
        Err(e) => return Err(io_err("opening the target", path, e)),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io_path("creating", parent, e))?;
    }
    match rustix::fs::mkdir(path, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io_err("creating the target", path, e)),
    }
    rustix::fs::open(path, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => not_a_folder(path),
        e => io_err("opening the target", path, e),
    })
}

fn not_a_folder(path: &Path) -> Error {
    Error::Usage(format!(
        "target {} is a link or not a folder: give the real folder to restore into",
        path.display()
    ))
}

/// Whether the folder `dir` has no entries.
pub fn is_empty(dir: BorrowedFd<'_>, path: &Path) -> Result<bool> {
    let entries = rustix::fs::Dir::read_from(dir).map_err(|e| io_err("reading", path, e))?;
    for e in entries {
        let e = e.map_err(|e| io_err("reading", path, e))?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What is at `name` in `dir`, without following a link.
fn kind_at(dir: BorrowedFd<'_>, name: &OsStr) -> std::result::Result<FileType, Errno> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|s| FileType::from_raw_mode(s.st_mode))
}

fn describe(t: FileType) -> &'static str {
    match t {
        FileType::Symlink => "a symbolic link",
        FileType::Directory => "a folder",
        FileType::RegularFile => "a file",
        _ => "a special file",
    }
}

/// The name is taken: remove what is there when allowed, else say what it is.
fn clear(dir: BorrowedFd<'_>, name: &OsStr, path: &Path, how: Existing, want: &str) -> Result<()> {
    let found = kind_at(dir, name).map_err(|e| io_err("inspecting", path, e))?;
    if how == Existing::Refuse {
        return Err(Error::Failed(format!(
            "{} is {} where the snapshot has {want}, and it was not there when the restore began: someone else is writing in the target; refusing to touch it",
            path.display(),
            describe(found)
        )));
    }
    remove(dir, name, path)
}

/// Remove the entry `name` of `dir`; a folder with everything in it. Links are
/// removed, never followed.
pub fn remove(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<()> {
    match kind_at(dir, name) {
        Ok(FileType::Directory) => {
            let sub = open_dir(dir, name).map_err(|e| io_err("opening", path, e))?;
            let entries =
                rustix::fs::Dir::read_from(&sub).map_err(|e| io_err("reading", path, e))?;
            for e in entries {
                let e = e.map_err(|e| io_err("reading", path, e))?;
                let n = OsStr::from_bytes(e.file_name().to_bytes());
                if n != "." && n != ".." {
                    remove(sub.as_fd(), n, &path.join(n))?;
                }
            }
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
                .map_err(|e| io_err("removing", path, e))
        }
        Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty())
            .map_err(|e| io_err("removing", path, e)),
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(io_err("inspecting", path, e)),
    }
}

fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Make the folder `name` in `dir` (0700 until its metadata is set) and open it.
/// A real folder already there is used only when `how` is `Replace` (restoring
/// over an earlier restore); anything else there is replaced or refused.
pub fn make_dir(dir: BorrowedFd<'_>, name: &OsStr, path: &Path, how: Existing) -> Result<OwnedFd> {
    for attempt in 0..2 {
        match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                if how == Existing::Replace && kind_at(dir, name) == Ok(FileType::Directory) {
                    // O_NOFOLLOW: swapped for a link since the look, the open fails.
                } else if attempt == 0 {
                    clear(dir, name, path, how, "a folder")?;
                    continue;
                }
            }
            Err(e) => return Err(io_err("creating", path, e)),
        }
        return open_dir(dir, name).map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR => Error::Failed(format!(
                "{} was replaced by a link or file during the restore: refusing to follow it",
                path.display()
            )),
            e => io_err("opening", path, e),
        });
    }
    Err(Error::Failed(format!(
        "{} keeps being recreated by someone else during the restore: refusing to touch it",
        path.display()
    )))
}

/// Create the new file `name` in `dir` (0600 until its metadata is set).
pub fn create_file(dir: BorrowedFd<'_>, name: &OsStr, path: &Path, how: Existing) -> Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for attempt in 0..2 {
        match rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(Errno::EXIST) if attempt == 0 => clear(dir, name, path, how, "a file")?,
            Err(e) => return Err(io_err("creating", path, e)),
        }
    }
    Err(Error::Failed(format!(
        "{} keeps being recreated by someone else during the restore: refusing to touch it",
        path.display()
    )))
}

/// Create the symbolic link `name` → `target` in `dir` and give it owner and time.
pub fn make_symlink(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    target: &OsStr,
    path: &Path,
    how: Existing,
    meta: &Meta,
) -> Result<()> {
    for attempt in 0..2 {
        match rustix::fs::symlinkat(target, dir, name) {
            Ok(()) => break,
            Err(Errno::EXIST) if attempt == 0 => clear(dir, name, path, how, "a symbolic link")?,
            Err(e) => return Err(io_err("creating symlink", path, e)),
        }
    }
    // On the link itself (AT_SYMLINK_NOFOLLOW): never on what it names.
    if let Some((u, g)) = meta.owner {
        rustix::fs::chownat(
            dir,
            name,
            Some(uid(u)),
            Some(gid(g)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_err("chown", path, e))?;
    }
    rustix::fs::utimensat(dir, name, &times(meta.mtime_ns), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_err("setting times of", path, e))
}

/// Create the FIFO or device node `name` in `dir` and give it its metadata.
pub fn make_special(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    kind: FileType,
    rdev: u64,
    path: &Path,
    how: Existing,
    meta: &Meta,
) -> Result<()> {
    for attempt in 0..2 {
        match rustix::fs::mknodat(dir, name, kind, Mode::from_raw_mode(0o600), rdev) {
            Ok(()) => break,
            Err(Errno::EXIST) if attempt == 0 => clear(dir, name, path, how, "a special file")?,
            Err(e) => return Err(io_err("creating special file", path, e)),
        }
    }
    // Opening a FIFO would block and opening a device has effects: an O_PATH
    // descriptor, checked to be what was just made, is enough to set metadata.
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("opening", path, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err("inspecting", path, e))?;
    if FileType::from_raw_mode(st.st_mode) != kind {
        return Err(Error::Failed(format!(
            "{} was replaced during the restore: refusing to touch it",
            path.display()
        )));
    }
    set_meta_path_fd(&fd, path, meta)
}

/// Owner, then mode (chown clears set-uid bits), then times, on an open file or folder.
pub fn set_meta(fd: BorrowedFd<'_>, path: &Path, meta: &Meta) -> Result<()> {
    if let Some((u, g)) = meta.owner {
        rustix::fs::fchown(fd, Some(uid(u)), Some(gid(g))).map_err(|e| io_err("chown", path, e))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(|e| io_err("chmod", path, e))?;
    rustix::fs::futimens(fd, &times(meta.mtime_ns)).map_err(|e| io_err("setting times of", path, e))
}

/// `set_meta` for an `O_PATH` descriptor: through its `/proc/self/fd` entry, which
/// names that very inode (never a link's target).
fn set_meta_path_fd(fd: &OwnedFd, path: &Path, meta: &Meta) -> Result<()> {
    use std::os::fd::AsRawFd;
    if let Some((u, g)) = meta.owner {
        rustix::fs::chownat(fd, "", Some(uid(u)), Some(gid(g)), AtFlags::EMPTY_PATH)
            .map_err(|e| io_err("chown", path, e))?;
    }
    let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmodat(
        CWD,
        proc.as_str(),
        Mode::from_raw_mode(meta.mode),
        AtFlags::empty(),
    )
    .map_err(|e| io_err("chmod", path, e))?;
    rustix::fs::utimensat(CWD, proc.as_str(), &times(meta.mtime_ns), AtFlags::empty())
        .map_err(|e| io_err("setting times of", path, e))
}

fn uid(u: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw_unchecked(u)
}

fn gid(g: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw_unchecked(g)
}

fn times(mtime_ns: i64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_planted_link_is_replaced_or_refused_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("victim"), b"keep").unwrap();
        let target = d.path().join("t");
        let t = open_target(&target).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("exams")).unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), target.join("f")).unwrap();
        let e = make_dir(
            t.as_fd(),
            OsStr::new("exams"),
            &target.join("exams"),
            Existing::Refuse,
        )
        .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = create_file(
            t.as_fd(),
            OsStr::new("f"),
            &target.join("f"),
            Existing::Refuse,
        )
        .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let sub = make_dir(
            t.as_fd(),
            OsStr::new("exams"),
            &target.join("exams"),
            Existing::Replace,
        )
        .unwrap();
        let f = create_file(
            sub.as_fd(),
            OsStr::new("victim"),
            &target.join("exams/victim"),
            Existing::Replace,
        )
        .unwrap();
        set_meta(
            f.as_fd(),
            Path::new("x"),
            &Meta {
                owner: None,
                mode: 0o640,
                mtime_ns: 5_000_000_123,
            },
        )
        .unwrap();
        create_file(
            t.as_fd(),
            OsStr::new("f"),
            &target.join("f"),
            Existing::Replace,
        )
        .unwrap();
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(target.join("exams"))
            .unwrap()
            .is_dir());
        let m = std::fs::metadata(target.join("exams/victim")).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.mtime(), m.mtime_nsec()),
            (0o640, 5, 123)
        );
        // A link as the target itself is refused.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(matches!(open_target(&link), Err(Error::Usage(_))));
    }

    #[test]
    fn remove_takes_a_folder_but_not_what_links_in_it_name() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let t = d.path().join("t");
        std::fs::create_dir_all(t.join("a/b")).unwrap();
        std::os::unix::fs::symlink(&outside, t.join("a/b/link")).unwrap();
        std::fs::write(t.join("a/file"), b"y").unwrap();
        let fd = open_target(&t).unwrap();
        remove(fd.as_fd(), OsStr::new("a"), &t.join("a")).unwrap();
        assert!(!t.join("a").exists());
        assert!(outside.join("keep").exists());
        assert!(is_empty(fd.as_fd(), &t).unwrap());
    }

    #[test]
    fn fifos_get_their_metadata_without_being_opened() {
        let d = tempfile::tempdir().unwrap();
        let t = open_target(d.path()).unwrap();
        let meta = Meta {
            owner: None,
            mode: 0o604,
            mtime_ns: -1_500_000_000,
        };
        make_special(
            t.as_fd(),
            OsStr::new("p"),
            FileType::Fifo,
            0,
            &d.path().join("p"),
            Existing::Refuse,
            &meta,
        )
        .unwrap();
        let m = std::fs::symlink_metadata(d.path().join("p")).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.mtime(), m.mtime_nsec()),
            (0o604, -2, 500_000_000)
        );
    }
}
