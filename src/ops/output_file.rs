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
        let name = path.file_name().ok_or_else(|| is_folder(path))?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = crate::trusted_path::open_dir(parent, false).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied if e.raw_os_error().is_none() => {
                Error::Usage(format!("{}: {e}", path.display()))
            }
            _ => Error::io_path("opening the folder of", path, e),
        })?;
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(is_folder(path))
            }
            Ok(_) if !overwrite => return Err(exists(path)),
            _ => {}
        }
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

/// Whether `file` is this process's stdout (the same open file).
fn is_stdout(file: &File) -> bool {
    // SAFETY: borrowed for one fstat.
    let out = rustix::fs::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(1) });
    match (out, rustix::fs::fstat(file)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

/// The stream `path` names, or `None` for a file. `/dev/stdout`, `/dev/stderr`
/// and `/dev/fd/N` (or `/proc/self/fd/N`) are this process's descriptors, as in
/// GNU tools; any other path that leads to a character device or a named pipe
/// is opened if this user or root owns it (a terminal, `/dev/null`, a FIFO of
/// one's own). Another user's FIFO or device is refused: the plaintext would go
/// to them. Nothing is needed to "overwrite" a stream. When `--log-file` copies
/// stdout, the data goes to the real stdout, never into the log.
fn stream(path: &Path) -> Result<Option<File>> {
    let bytes = path.as_os_str().as_bytes();
    let number = match bytes {
        b"/dev/stdout" => Some(1),
        b"/dev/stderr" => Some(2),
        _ => [b"/dev/fd/".as_slice(), b"/proc/self/fd/"]
            .iter()
            .find_map(|p| bytes.strip_prefix(*p))
            .and_then(|n| std::str::from_utf8(n).ok()?.parse::<i32>().ok()),
    };
    let file = match number {
        Some(n) => {
            // SAFETY: only borrowed to duplicate it; a closed one fails the dup.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(n) };
            rustix::io::fcntl_dupfd_cloexec(fd, 3)
                .map(File::from)
                .map_err(|e| Error::io_path("writing to", path, e.into()))?
        }
        None => {
            let Ok(st) = rustix::fs::stat(path) else {
                return Ok(None);
            };
            let kind = FileType::from_raw_mode(st.st_mode);
            if !matches!(kind, FileType::CharacterDevice | FileType::Fifo) {
                return Ok(None);
            }
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            if st.st_uid != me && st.st_uid != 0 {
                return Err(Error::Usage(format!(
                    "{} is a {} of uid {}: the data would go to another user; give a file of your own",
                    path.display(),
                    if kind == FileType::Fifo { "named pipe" } else { "device" },
                    st.st_uid
                )));
            }
            let flags = OFlags::WRONLY | OFlags::NOCTTY | OFlags::CLOEXEC;
            let fd = rustix::fs::open(path, flags, Mode::empty())
                .map_err(|e| Error::io_path("opening", path, e.into()))?;
            let now =
                rustix::fs::fstat(&fd).map_err(|e| Error::io_path("opening", path, e.into()))?;
            if (now.st_dev, now.st_ino, now.st_uid) != (st.st_dev, st.st_ino, st.st_uid) {
                return Err(Error::Usage(format!(
                    "{} changed while it was opened: try again",
                    path.display()
                )));
            }
            File::from(fd)
        }
    };
    if is_stdout(&file) {
        STDOUT_TAKEN.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    crate::log_file::bypass(file)
        .map(Some)
        .map_err(|e| Error::io_path("writing to", path, e))
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
