//! Writing into a folder other users can write to (a restore target): every step
//! relative to an open folder descriptor, never by a path that could run through a
//! link someone planted.
//!
//! Folders are made with `mkdirat`, opened with `O_NOFOLLOW | O_DIRECTORY`, and
//! checked (on the descriptor) to be ours: a folder someone swapped in between
//! the two steps is refused, and an existing folder reused by `--overwrite` is
//! first taken over (owned by us, mode 0700) until its own metadata is set last.
//! So every folder below the target is private while the restore works in it:
//! nobody else can rename anything into it, and metadata set by name there (on
//! links) reaches what restore made. Files are created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` and get owner, mode and times on the open
//! descriptor. Links and special files for a target folder others can write to
//! are made in a private staging folder inside it and renamed into place. A link
//! found where a folder or file is to go is replaced only when the caller allows
//! it (`--overwrite`) and then only the link itself is removed, never what it
//! points to; otherwise the entry is refused with a message that says what was
//! found. Nothing here ever follows a link, so a restore run as root writes inside
//! its target and nowhere else, whatever is planted there before or during the run.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Timestamps};
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

pub use crate::model::tree::MAX_DEPTH;

/// The restore target, open, and whether nobody but us can change its entries.
#[derive(Debug)]
pub struct Target {
    pub fd: OwnedFd,
    pub private: bool,
}

/// Open (or create, with its parents) the restore target. The target itself
/// must be a real folder: a link there is refused rather than followed; the
/// folders on the way are reached without following anyone else's link
/// (`trusted_path`: `/tmp/x` made a link by another user is refused).
pub fn open_target(path: &Path) -> Result<Target> {
    let path = &plain_path(path)?;
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            n,
        ),
        _ => return Err(not_a_folder(path)),
    };
    let up = crate::trusted_path::open_dir(parent, true).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied if e.raw_os_error().is_none() => {
            Error::Usage(format!("target {}: {e}", path.display()))
        }
        _ => Error::io_path("opening the folder of the target", parent, e),
    })?;
    let fd = match open_dir(up.as_fd(), name) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            match rustix::fs::mkdirat(&up, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(io_err("creating the target", path, e)),
            }
            open_dir(up.as_fd(), name).map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => not_a_folder(path),
                e => io_err("opening the target", path, e),
            })?
        }
        Err(Errno::LOOP | Errno::NOTDIR) => return Err(not_a_folder(path)),
        Err(e) => return Err(io_err("opening the target", path, e)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err("inspecting the target", path, e))?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let private = st.st_uid == me && st.st_mode & 0o022 == 0;
    Ok(Target { fd, private })
}

/// The target as given, without a trailing `/` or `/.` (which would make the
/// kernel follow a final link despite `O_NOFOLLOW`); `..` as its last part is refused.
fn plain_path(path: &Path) -> Result<std::path::PathBuf> {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        out.push(c.as_os_str());
    }
    match out.components().next_back() {
        Some(Component::Normal(_)) => Ok(out),
        _ => Err(Error::Usage(format!(
            "target {}: give the folder by its own name, not ending in . or ..",
            path.display()
        ))),
    }
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
    remove_at(dir, name, path, 0)
}

fn remove_at(dir: BorrowedFd<'_>, name: &OsStr, path: &Path, depth: usize) -> Result<()> {
    match kind_at(dir, name) {
        Ok(FileType::Directory) => {
            if depth > MAX_DEPTH {
                return Err(Error::Failed(format!(
                    "{} is more than {MAX_DEPTH} folders deep: refusing to remove it",
                    path.display()
                )));
            }
            let sub = open_dir(dir, name).map_err(|e| io_err("opening", path, e))?;
            let entries =
                rustix::fs::Dir::read_from(&sub).map_err(|e| io_err("reading", path, e))?;
            for e in entries {
                let e = e.map_err(|e| io_err("reading", path, e))?;
                let n = OsStr::from_bytes(e.file_name().to_bytes());
                if n != "." && n != ".." {
                    remove_at(sub.as_fd(), n, &path.join(n), depth + 1)?;
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

fn recreated(path: &Path) -> Error {
    Error::Failed(format!(
        "{} keeps being recreated by someone else during the restore: refusing to touch it",
        path.display()
    ))
}

fn swapped(path: &Path) -> Error {
    Error::Failed(format!(
        "{} was replaced by someone else during the restore: refusing to work in it",
        path.display()
    ))
}

/// Make the folder `name` in `dir` and open it, private to us (0700, ours) until
/// its metadata is set. A folder we made must still be ours once open (else it
/// was swapped); a real folder already there is used only when `how` is
/// `Replace`, and then taken over first; anything else there is replaced or refused.
pub fn make_dir(dir: BorrowedFd<'_>, name: &OsStr, path: &Path, how: Existing) -> Result<OwnedFd> {
    for attempt in 0..2 {
        let made = match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => true,
            Err(Errno::EXIST) => {
                if how != Existing::Replace || kind_at(dir, name) != Ok(FileType::Directory) {
                    if attempt == 0 {
                        clear(dir, name, path, how, "a folder")?;
                        continue;
                    }
                    return Err(recreated(path));
                }
                false
            }
            Err(e) => return Err(io_err("creating", path, e)),
        };
        crate::util::failpoint("restore-after-mkdir");
        let opened = match open_dir(dir, name) {
            // A folder of ours an earlier run left mode 0000 (the snapshot's):
            // made 0700 first, through a descriptor that follows nothing.
            Err(Errno::ACCESS) if !made => unlock_own_dir(dir, name, path)
                .and_then(|()| open_dir(dir, name).map_err(|e| io_err("opening", path, e))),
            other => other.map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => swapped(path),
                e => io_err("opening", path, e),
            }),
        };
        let fd = opened?;
        make_private(&fd, path, made)?;
        return Ok(fd);
    }
    Err(recreated(path))
}

/// Give our own folder `name`, which we may not open (mode 0000), mode 0700:
/// reached with `O_PATH | O_NOFOLLOW` (no permission needed, never a link),
/// checked to be ours, and changed through `/proc/self/fd`.
fn unlock_own_dir(dir: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty())
        .map_err(|e| io_err("opening", path, e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io_err("inspecting", path, e))?;
    // SAFETY: geteuid cannot fail.
    if st.st_uid != unsafe { libc::geteuid() } {
        return Err(io_err("opening", path, Errno::ACCESS));
    }
    let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmod(by_fd.as_str(), Mode::from_raw_mode(0o700))
        .map_err(|e| io_err("chmod", path, e))
}

/// A folder we made must be ours (else someone swapped another in before we
/// opened it); one we reuse becomes ours, mode 0700, for the time we work in it.
fn make_private(fd: &OwnedFd, path: &Path, made: bool) -> Result<()> {
    let st = rustix::fs::fstat(fd).map_err(|e| io_err("inspecting", path, e))?;
    // SAFETY: geteuid and getegid cannot fail.
    let (me, my_group) = unsafe { (libc::geteuid(), libc::getegid()) };
    if made && (st.st_uid != me || st.st_mode & 0o077 != 0) {
        return Err(swapped(path));
    }
    if st.st_uid != me {
        rustix::fs::fchown(fd, Some(uid(me)), Some(gid(my_group)))
            .map_err(|e| io_err("taking over", path, e))?;
    }
    // Exactly 0700: private, and writable by us even when an earlier run gave
    // it a read-only mode from the snapshot (0500) before it was interrupted.
    if st.st_mode & 0o777 != 0o700 {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(0o700)).map_err(|e| io_err("chmod", path, e))?;
    }
    Ok(())
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
    Err(recreated(path))
}

/// Where a link or special file goes: its folder, whether nobody else can change
/// that folder's entries, and what to do with an entry already there.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub dir: BorrowedFd<'a>,
    pub private: bool,
    pub how: Existing,
}

/// Create the symbolic link `name` → `target` and give it owner and time.
pub fn make_symlink(
    at: Place<'_>,
    name: &OsStr,
    target: &OsStr,
    path: &Path,
    meta: &Meta,
) -> Result<()> {
    let create = |d: BorrowedFd<'_>, n: &OsStr| rustix::fs::symlinkat(target, d, n);
    make_node(at, name, path, "a symbolic link", &create, &|d, n| {
        meta_by_name(d, n, path, meta, false)
    })
}

/// Create the FIFO or device node `name` and give it its metadata.
pub fn make_special(
    at: Place<'_>,
    name: &OsStr,
    (kind, rdev): (FileType, u64),
    path: &Path,
    meta: &Meta,
) -> Result<()> {
    let create = |d: BorrowedFd<'_>, n: &OsStr| {
        rustix::fs::mknodat(d, n, kind, Mode::from_raw_mode(0o600), rdev)
    };
    make_node(at, name, path, "a special file", &create, &|d, n| {
        meta_by_name(d, n, path, meta, true)
    })
}

type Create<'a> = &'a dyn Fn(BorrowedFd<'_>, &OsStr) -> std::result::Result<(), Errno>;
type Finish<'a> = &'a dyn Fn(BorrowedFd<'_>, &OsStr) -> Result<()>;

/// Make a link or special file: `create` makes it and `finish` sets its metadata
/// by name, which is safe only where nobody else can rename entries. So in a
/// private folder directly; in a folder others can write to (a shared target),
/// in a private staging folder inside it, then renamed into place.
fn make_node(
    at: Place<'_>,
    name: &OsStr,
    path: &Path,
    want: &str,
    create: Create<'_>,
    finish: Finish<'_>,
) -> Result<()> {
    let Place { dir, private, how } = at;
    if private {
        for attempt in 0..2 {
            match create(dir, name) {
                Ok(()) => return finish(dir, name),
                Err(Errno::EXIST) if attempt == 0 => clear(dir, name, path, how, want)?,
                Err(Errno::EXIST) => break,
                Err(e) => return Err(io_err("creating", path, e)),
            }
        }
        return Err(recreated(path));
    }
    let stage_name = format!(".hcbackup-restore-{:016x}", rand::random::<u64>());
    let stage_name = OsStr::new(&stage_name);
    let stage = make_dir(
        dir,
        stage_name,
        &path.with_file_name(stage_name),
        Existing::Refuse,
    )?;
    let placed = (|| {
        create(stage.as_fd(), name).map_err(|e| io_err("creating", path, e))?;
        finish(stage.as_fd(), name)?;
        move_into((stage.as_fd(), name), at, name, path, want)
    })();
    // Emptied through its own descriptor; the folder goes only if it is still ours and empty.
    let _ = rustix::fs::unlinkat(&stage, name, AtFlags::empty());
    let _ = rustix::fs::unlinkat(dir, stage_name, AtFlags::REMOVEDIR);
    placed
}

/// Rename `from` (an entry of a folder only we use, or one only we named) to
/// `name` at `at`, never over what is there: an entry found there is removed
/// when `at.how` allows it (a link itself, never what it names) or refused.
pub fn move_into(
    (from_dir, from): (BorrowedFd<'_>, &OsStr),
    at: Place<'_>,
    name: &OsStr,
    path: &Path,
    want: &str,
) -> Result<()> {
    for attempt in 0..2 {
        match rustix::fs::renameat_with(from_dir, from, at.dir, name, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) if attempt == 0 => clear(at.dir, name, path, at.how, want)?,
            Err(Errno::EXIST) => break,
            Err(e) => return Err(io_err("moving into place", path, e)),
        }
    }
    Err(recreated(path))
}

/// The name a file is written under until it is complete: one per file name, so
/// a rerun finds (and replaces) what a killed run left, and never one that looks
/// like a restored file.
/// `in_use` says which names the folder's own entries take: a snapshot may hold
/// a file named like a part (a killed restore's leftover that was backed up),
/// and the part name then moves on to the next free one, the same on every run.
pub fn part_name(name: &OsStr, in_use: impl Fn(&[u8]) -> bool) -> std::ffi::OsString {
    for salt in 0u32.. {
        let mut h = blake3::Hasher::new();
        h.update(name.as_bytes());
        if salt > 0 {
            h.update(&salt.to_le_bytes());
        }
        let part = format!("{PART_PREFIX}{}", &h.finalize().to_hex()[..16]);
        if !in_use(part.as_bytes()) {
            return part.into();
        }
    }
    unreachable!("a folder holds fewer than 2^32 entries")
}

/// How the names of files still being written begin.
pub const PART_PREFIX: &str = ".hcbackup-part-";

/// Whether `name` in `dir` is already the restored file: a regular file (not a
/// link) with the size, modification time, permission bits and owner a restore
/// gives it. Only a completed file is ever renamed to its real name, so on a
/// resumed restore this says the file was finished; someone else's file there
/// differs at least in owner, unless the snapshot gives it to them anyway.
pub fn is_restored_file(dir: BorrowedFd<'_>, name: &OsStr, meta: &Meta, size: u64) -> bool {
    let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    // SAFETY: geteuid and getegid cannot fail.
    let ours = unsafe { (libc::geteuid(), libc::getegid()) };
    let owner_ok = match meta.owner {
        Some((u, g)) => (st.st_uid, st.st_gid) == (u, g),
        None => st.st_uid == ours.0,
    };
    let mtime_ns = st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128;
    FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
        && owner_ok
        && st.st_mode & 0o7777 == meta.mode
        && st.st_size as u64 == size
        && mtime_ns == meta.mtime_ns as i128
}

/// Owner, mode (`with_mode`: not for links) and times of `name` in a private
/// folder, on the entry itself (AT_SYMLINK_NOFOLLOW), never on what a link names.
fn meta_by_name(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    path: &Path,
    meta: &Meta,
    with_mode: bool,
) -> Result<()> {
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
    if with_mode {
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
            .map_err(|e| io_err("chmod", path, e))?;
    }
    rustix::fs::utimensat(dir, name, &times(meta.mtime_ns), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| io_err("setting times of", path, e))
}

/// Owner, then mode (chown clears set-uid bits), then times, on an open file or folder.
pub fn set_meta(fd: BorrowedFd<'_>, path: &Path, meta: &Meta) -> Result<()> {
    if let Some((u, g)) = meta.owner {
        rustix::fs::fchown(fd, Some(uid(u)), Some(gid(g))).map_err(|e| io_err("chown", path, e))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(|e| io_err("chmod", path, e))?;
    rustix::fs::futimens(fd, &times(meta.mtime_ns)).map_err(|e| io_err("setting times of", path, e))
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
        let t = open_target(&target).unwrap().fd;
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
        let fd = open_target(&t).unwrap().fd;
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
        // Both ways: directly in a private folder, and staged in a shared one.
        let place = |private| Place {
            dir: t.fd.as_fd(),
            private,
            how: Existing::Refuse,
        };
        make_special(
            place(true),
            OsStr::new("p"),
            (FileType::Fifo, 0),
            &d.path().join("p"),
            &meta,
        )
        .unwrap();
        make_special(
            place(false),
            OsStr::new("q"),
            (FileType::Fifo, 0),
            &d.path().join("q"),
            &meta,
        )
        .unwrap();
        for n in ["p", "q"] {
            let m = std::fs::symlink_metadata(d.path().join(n)).unwrap();
            assert_eq!(
                (m.mode() & 0o7777, m.mtime(), m.mtime_nsec()),
                (0o604, -2, 500_000_000)
            );
        }
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "the staging folder is gone: {names:?}");
    }

    #[test]
    fn a_folder_swapped_in_is_refused_and_one_reused_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let t = open_target(d.path()).unwrap().fd;
        // Someone else's folder where we are to work: reused only by Replace,
        // and then made ours and private before anything goes in.
        let theirs = d.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let fd = make_dir(t.as_fd(), OsStr::new("theirs"), &theirs, Existing::Replace).unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        // SAFETY: geteuid cannot fail.
        assert_eq!(
            (st.st_uid, st.st_mode & 0o777),
            (unsafe { libc::geteuid() }, 0o700)
        );
        // A path ending in / or /. through a link, and a link owned by another user
        // on the way, are refused.
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        for p in [
            format!("{}/", link.display()),
            format!("{}/.", link.display()),
        ] {
            assert!(
                matches!(open_target(Path::new(&p)), Err(Error::Usage(_))),
                "{p}"
            );
        }
        let _ = rustix::fs::chownat(
            rustix::fs::CWD,
            &link,
            Some(uid(65534)),
            Some(gid(65534)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        let e = open_target(&link.join("deeper")).unwrap_err();
        assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        assert!(!outside.join("deeper").exists());
    }
}
