//! Files hcbackup writes for the user (a database dump, a tar export, a report).
//!
//! Written under a part name beside the final one and renamed when complete and
//! on disk, so a killed run never leaves a truncated dump or archive that looks
//! whole, and a rerun finds the name free. Neither name is ever written through
//! a link someone planted: the folder is reached without following another
//! user's link, the part is created new in it (`O_EXCL | O_NOFOLLOW`), and the
//! rename replaces a link at the final name rather than following it.

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
    /// The folder, reached without following anyone else's link.
    dir: OwnedFd,
    part: OsString,
    name: OsString,
    path: PathBuf,
    overwrite: bool,
    committed: bool,
}

impl OutputFile {
    /// Start writing `path` (mode 0600). An existing file is refused unless
    /// `overwrite`, here and again at the rename; a folder always. The folder
    /// is opened as `restore --target` opens its parent: a link another user
    /// planted on the way (in a shared /tmp) is refused, not followed.
    pub fn create(path: &Path, overwrite: bool) -> Result<OutputFile> {
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
            dir,
            part,
            name: OsString::from_vec(name.to_vec()),
            path: path.to_path_buf(),
            overwrite,
            committed: false,
        })
    }

    /// Put the complete file on disk and under its name.
    pub fn commit(mut self) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| Error::io_path("writing", &self.path, e))?;
        let how = if self.overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        match rustix::fs::renameat_with(&self.dir, &self.part, &self.dir, &self.name, how) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Err(exists(&self.path)),
            Err(Errno::ISDIR) => return Err(is_folder(&self.path)),
            Err(e) => return Err(Error::io_path("renaming", &self.path, e.into())),
        }
        self.committed = true;
        let _ = rustix::fs::fsync(&self.dir);
        Ok(())
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

impl Drop for OutputFile {
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
