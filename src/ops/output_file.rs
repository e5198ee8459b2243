//! Files hcbackup writes for the user (a database dump, a tar export, a report).
//!
//! Written under a part name beside the final one and renamed when complete and
//! on disk, so a killed run never leaves a truncated dump or archive that looks
//! whole, and a rerun finds the name free. Neither name is ever written through
//! a link someone planted: the folder is reached without following another
//! user's link, the part is created new in it (`O_EXCL | O_NOFOLLOW`), and the
//! rename replaces a link at the final name rather than following it.
//!
//! A path that names a stream rather than a file (`/dev/stdout`, `/dev/fd/N`, a
//! terminal, `/dev/null`, a named pipe) is written straight through: nothing is
//! renamed or replaced there (see [`stream`]).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// A file being written; it appears under its name only by [`OutputFile::commit`].
pub struct OutputFile {
    file: File,
    path: PathBuf,
    /// `None`: a stream, written straight through.
    part: Option<Part>,
}

/// The part file beside the final name, renamed over it by `commit`.
struct Part {
    /// The folder, reached without following anyone else's link.
    dir: OwnedFd,
    part: OsString,
    name: OsString,
    overwrite: bool,
    committed: bool,
}

impl OutputFile {
    /// Start writing `path` (mode 0600). An existing file is refused unless
    /// `overwrite`, here and again at the rename; a folder always. The folder
    /// is opened as `restore --target` opens its parent: a link another user
    /// planted on the way (in a shared /tmp) is refused, not followed.
    pub fn create(path: &Path, overwrite: bool) -> Result<OutputFile> {
        if let Some(file) = stream(path)? {
            return Ok(OutputFile {
                file,
                path: path.to_path_buf(),
                part: None,
            });
        }
        let (dir, name) = free_name(path, overwrite)?;
        let name = name.as_bytes();
        let mut part = format!(".hcbackup-part-{:016x}-", rand::random::<u64>()).into_bytes();
        part.extend_from_slice(&name[..name.len().min(200)]);
        let part = OsString::from_vec(part);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, &part, flags, Mode::from_raw_mode(0o600))
            .map_err(|e| Error::io_path("creating", path, e.into()))?;
        Ok(OutputFile {
            file: File::from(fd),
            path: path.to_path_buf(),
            part: Some(Part {
                dir,
                part,
                name: OsString::from_vec(name.to_vec()),
                overwrite,
                committed: false,
            }),
        })
    }

    /// Put the complete file on disk and under its name (a stream: flush it).
    pub fn commit(mut self) -> Result<()> {
        let Some(p) = self.part.as_mut() else {
            return self
                .file
                .flush()
                .map_err(|e| Error::io_path("writing", &self.path, e));
        };
        self.file
            .sync_all()
            .map_err(|e| Error::io_path("writing", &self.path, e))?;
        let how = if p.overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        match rustix::fs::renameat_with(&p.dir, &p.part, &p.dir, &p.name, how) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Err(exists(&self.path)),
            Err(Errno::ISDIR) => return Err(is_folder(&self.path)),
            Err(e) => return Err(Error::io_path("renaming", &self.path, e.into())),
        }
        p.committed = true;
        let _ = rustix::fs::fsync(&p.dir);
        Ok(())
    }
}

/// Set once data goes to stdout: the command's own lines go to stderr then.
static STDOUT_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a command writes its data to stdout (`--db-file /dev/stdout`).
pub fn stdout_taken() -> bool {
    STDOUT_TAKEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Say, before anything is printed, that `path` (when it names stdout) will
/// get the command's data: every line of its own goes to stderr from now on.
pub fn claim_stdout(path: &Path) {
    if descriptor(path) == Some(1) {
        STDOUT_TAKEN.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether `path` names a stream rather than a file (no pg_restore hint, say).
pub fn is_stream(path: &Path) -> bool {
    descriptor(path).is_some()
        || rustix::fs::lstat(path).is_ok_and(|st| {
            matches!(
                FileType::from_raw_mode(st.st_mode),
                FileType::CharacterDevice | FileType::Fifo
            )
        })
}

/// The descriptor `path` names: `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`,
/// `/proc/self/fd/N`, however spelled (`/dev//stdout`, `/dev/../dev/stderr`).
fn descriptor(path: &Path) -> Option<i32> {
    let mut parts: Vec<&[u8]> = Vec::new();
    if !path.is_absolute() {
        return None;
    }
    for c in path.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n.as_bytes()),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let n = match parts[..] {
        [b"dev", b"stdout"] => return Some(1),
        [b"dev", b"stderr"] => return Some(2),
        [b"dev", b"fd", n] | [b"proc", b"self", b"fd", n] => n,
        _ => return None,
    };
    std::str::from_utf8(n)
        .ok()?
        .parse::<u16>()
        .ok()
        .map(i32::from)
}

/// The stream `path` names, or `None` for a file.
///
/// - `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`: a descriptor this process was
///   started with (never one hcbackup opened itself: those are close-on-exec —
///   its catalog, its log), as GNU tools read them.
/// - A character device or named pipe itself (not a link to one), in a folder
///   reached without another user's link, owned by this user or root: a
///   terminal, `/dev/null`, a FIFO of one's own. A named pipe must not be
///   readable or writable by others (`mkfifo -m 600`): whoever reads it gets
///   the plaintext, whoever writes it mixes bytes into it.
///
/// Anything else under /dev, /proc or /sys is refused: a file is never put
/// there in place of a device or a link.
fn stream(path: &Path) -> Result<Option<File>> {
    let refuse = |why: String| Err(Error::Usage(format!("{}: {why}", path.display())));
    if let Some(n) = descriptor(path) {
        // SAFETY: only borrowed, to read its flags and duplicate it.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(n) };
        match rustix::io::fcntl_getfd(fd) {
            Ok(flags) if !flags.contains(rustix::io::FdFlags::CLOEXEC) => {}
            _ => {
                return refuse(format!(
                    "descriptor {n} was not given to hcbackup (open it in the shell, as `{n}> FILE`, or give a file)"
                ))
            }
        }
        let file = rustix::io::fcntl_dupfd_cloexec(fd, 3)
            .map(File::from)
            .map_err(|e| Error::io_path("writing to", path, e.into()))?;
        if n == 1 || is_stdout(&file) {
            STDOUT_TAKEN.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        return crate::log_file::bypass(file)
            .map(Some)
            .map_err(|e| Error::io_path("writing to", path, e));
    }
    let Some((dir, name, st)) = node(path)? else {
        return Ok(None);
    };
    let flags = OFlags::WRONLY | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&dir, &name, flags, Mode::empty())
        .map_err(|e| Error::io_path("opening", path, e.into()))?;
    let now = rustix::fs::fstat(&fd).map_err(|e| Error::io_path("opening", path, e.into()))?;
    if (now.st_dev, now.st_ino, now.st_uid, now.st_mode)
        != (st.st_dev, st.st_ino, st.st_uid, st.st_mode)
    {
        return refuse("it changed while it was opened: try again".into());
    }
    let file = File::from(fd);
    if is_stdout(&file) {
        STDOUT_TAKEN.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    crate::log_file::bypass(file)
        .map(Some)
        .map_err(|e| Error::io_path("writing to", path, e))
}

/// A character device or named pipe at `path` that may be written through
/// (its folder, name and stat, not opened); `None` for a file (or nothing);
/// an error for anything that must not be written: a block device, a socket,
/// another user's device or pipe, a pipe others can read or write, anything
/// else in a system folder.
fn node(path: &Path) -> Result<Option<(OwnedFd, OsString, rustix::fs::Stat)>> {
    let refuse = |why: String| Err(Error::Usage(format!("{}: {why}", path.display())));
    let (parent, Some(name)) = split(path) else {
        return Ok(None);
    };
    let Ok(dir) = crate::trusted_path::open_dir(parent, false) else {
        // The file path reports why the folder cannot be used.
        if crate::trusted_path::in_system_folder(path) {
            return refuse(SYSTEM_FOLDER.into());
        }
        return Ok(None);
    };
    let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).ok();
    let kind = st.map(|st| FileType::from_raw_mode(st.st_mode));
    let st = match (kind, st) {
        (Some(FileType::CharacterDevice | FileType::Fifo), Some(st)) => st,
        (Some(FileType::BlockDevice | FileType::Socket), _) => {
            return refuse("a device or socket, not a file: give a file name".into())
        }
        _ if crate::trusted_path::in_system_folder(path) => return refuse(SYSTEM_FOLDER.into()),
        _ => return Ok(None),
    };
    let fifo = kind == Some(FileType::Fifo);
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if st.st_uid != me && st.st_uid != 0 {
        return refuse(format!(
            "a {} of uid {}: the data would go to another user; give a file of your own",
            if fifo { "named pipe" } else { "device" },
            st.st_uid
        ));
    }
    if fifo && st.st_mode & 0o066 != 0 {
        return refuse(format!(
            "a named pipe others can read or write (mode {:o}): whoever reads it gets the data; make it with `mkfifo -m 600`",
            st.st_mode & 0o777
        ));
    }
    Ok(Some((dir, name.to_os_string(), st)))
}

const SYSTEM_FOLDER: &str = "a system folder of devices: give a file elsewhere (or /dev/stdout)";

/// Check, before anything else is written, that `path` can take the output:
/// a stream that may be written through, or a file that is free (or
/// `overwrite`) in a folder reached without another user's link. Nothing is
/// opened or created.
pub fn preflight(path: &Path, overwrite: bool) -> Result<()> {
    if descriptor(path).is_some() || node(path)?.is_some() {
        return Ok(());
    }
    free_name(path, overwrite).map(|_| ())
}

/// The folder of `path`, reached without another user's link, and its name
/// there, when that name is free (or holds a file and `overwrite`).
fn free_name(path: &Path, overwrite: bool) -> Result<(OwnedFd, &std::ffi::OsStr)> {
    let (parent, name) = split(path);
    let name = name.ok_or_else(|| is_folder(path))?;
    let dir = crate::trusted_path::open_dir(parent, false).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied if e.raw_os_error().is_none() => {
            Error::Usage(format!("{}: {e}", path.display()))
        }
        _ => Error::io_path("opening the folder of", path, e),
    })?;
    match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            Err(is_folder(path))
        }
        Ok(_) if !overwrite => Err(exists(path)),
        _ => Ok((dir, name)),
    }
}

/// `path`'s folder (`.` for a bare name) and its last component.
pub(crate) fn split(path: &Path) -> (&Path, Option<&std::ffi::OsStr>) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    (parent, path.file_name())
}

/// Whether `file` is this process's stdout (the same open file).
fn is_stdout(file: &File) -> bool {
    // SAFETY: borrowed for one fstat.
    let out = rustix::fs::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(1) });
    match (out, rustix::fs::fstat(file)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::util::failpoint("output-write");
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.committed {
            let _ = rustix::fs::unlinkat(&self.dir, &self.part, AtFlags::empty());
        }
    }
}

fn is_folder(path: &Path) -> Error {
    Error::Usage(format!("{} is a folder: give a file name", path.display()))
}

fn exists(path: &Path) -> Error {
    Error::Usage(format!(
        "{} exists: choose another file, or pass --overwrite",
        path.display()
    ))
}
