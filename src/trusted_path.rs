//! Opening a folder the operator named by path (a restore target, a USB mount
//! point, the repository), when other users may write folders on the way (`/tmp`,
//! a share). A path resolved by the kernel in one call follows every link on the
//! way, including one another user planted, or swapped in between a check and
//! the open.
//!
//! Here the path is walked one component at a time from `/` (or the working
//! folder) with `O_NOFOLLOW`. A link on the way is followed only if it belongs to
//! root or to this user (the operator's own `/var/backups -> /data/backups`); it
//! is examined through a descriptor of the link itself (`O_PATH`), so what is
//! checked is what is read. A link of anyone else is refused.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

/// Links followed at most (as the kernel's own limit).
const MAX_LINKS: usize = 40;

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Open the folder `path`; with `create`, make missing folders (0700) on the way.
/// Errors: a link of another user on the way (`PermissionDenied`, the message
/// naming it), a file where a folder belongs, and the usual ones.
pub fn open_dir(path: &Path, create: bool) -> io::Result<OwnedFd> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut todo: VecDeque<OsString> = VecDeque::new();
    let mut cur = start(path, &mut todo)?;
    let mut seen = PathBuf::from(if path.is_absolute() { "/" } else { "." });
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c.is_empty() || c == "." {
            continue;
        }
        seen.push(&c);
        let next = match rustix::fs::openat(&cur, c.as_os_str(), dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                match rustix::fs::mkdirat(&cur, c.as_os_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                rustix::fs::openat(&cur, c.as_os_str(), dir_flags(), Mode::empty())?
            }
            Err(Errno::LOOP | Errno::NOTDIR) => {
                let target = link_target(cur.as_fd(), &c, me, &seen)?;
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let mut rest = VecDeque::new();
                if target.is_absolute() {
                    cur = rustix::fs::open("/", dir_flags(), Mode::empty())?;
                }
                push_components(&target, &mut rest);
                rest.extend(todo.drain(..));
                todo = rest;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        cur = next;
    }
    Ok(cur)
}

/// The folder a walk of `path` starts from, and its components.
fn start(path: &Path, todo: &mut VecDeque<OsString>) -> io::Result<OwnedFd> {
    push_components(path, todo);
    let from = if path.is_absolute() { "/" } else { "." };
    Ok(rustix::fs::openat(CWD, from, dir_flags(), Mode::empty())?)
}

fn push_components(path: &Path, todo: &mut VecDeque<OsString>) {
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {}
            Component::CurDir => {}
            Component::ParentDir => todo.push_back("..".into()),
            Component::Normal(n) => todo.push_back(n.to_os_string()),
        }
    }
}

/// Where the link `name` in `dir` points, if it is a link of root or `me`; a
/// `NotADirectory` error when it is a file, `PermissionDenied` when it is a link
/// of someone else.
fn link_target(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &OsStr,
    me: u32,
    seen: &Path,
) -> io::Result<PathBuf> {
    let l = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = rustix::fs::fstat(&l)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a folder", seen.display()),
        ));
    }
    if st.st_uid != me && st.st_uid != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is a link that belongs to uid {}: give the real path",
                seen.display(),
                st.st_uid
            ),
        ));
    }
    let target = rustix::fs::readlinkat(&l, "", Vec::new())?;
    Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
}

/// Whether `path` (or the deepest part of it that exists, links resolved) is
/// in a system folder of devices or kernel files: /dev (but /dev/shm), /proc,
/// /sys. Nothing hcbackup writes belongs there.
pub fn in_system_folder(path: &Path) -> bool {
    let mut p = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let real = loop {
        if let Ok(r) = std::fs::canonicalize(&p) {
            break r;
        }
        if !p.pop() {
            return false;
        }
    };
    (real.starts_with("/dev") && !real.starts_with("/dev/shm"))
        || real.starts_with("/proc")
        || real.starts_with("/sys")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::AtFlags;

    #[test]
    fn own_links_are_followed_and_others_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir_all(real.join("inner")).unwrap();
        let mine = d.path().join("mine");
        std::os::unix::fs::symlink(&real, &mine).unwrap();
        let rel = d.path().join("rel");
        std::os::unix::fs::symlink("real/inner", &rel).unwrap();
        for p in [
            mine.join("inner"),
            rel.clone(),
            d.path().join("real/../real/inner"),
        ] {
            let fd = open_dir(&p, false).unwrap();
            let st = rustix::fs::fstat(&fd).unwrap();
            let want = std::fs::metadata(real.join("inner")).unwrap();
            assert_eq!(
                st.st_ino as u64,
                std::os::unix::fs::MetadataExt::ino(&want),
                "{}",
                p.display()
            );
        }
        // Made on the way when asked.
        open_dir(&mine.join("new/deeper"), true).unwrap();
        assert!(real.join("new/deeper").is_dir());
        // A link of another user is refused, and nothing is made through it.
        let theirs = d.path().join("theirs");
        std::os::unix::fs::symlink(&real, &theirs).unwrap();
        rustix::fs::chownat(
            CWD,
            &theirs,
            Some(rustix::fs::Uid::from_raw_unchecked(65534)),
            Some(rustix::fs::Gid::from_raw_unchecked(65534)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        let e = open_dir(&theirs.join("x"), true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("belongs to uid 65534"), "{e}");
        assert!(!real.join("x").exists());
        // A file where a folder belongs.
        std::fs::write(d.path().join("file"), b"x").unwrap();
        assert!(open_dir(&d.path().join("file/x"), false).is_err());
    }
}
