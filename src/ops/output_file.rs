//! Files hcbackup writes for the user (a database dump, a tar export, a report).
//!
//! Written under a part name beside the final one and renamed when complete and
//! on disk, so a killed run never leaves a truncated dump or archive that looks
//! whole, and a rerun finds the name free. Neither name is ever written through
//! a link someone planted: the part is created new (`O_EXCL | O_NOFOLLOW`), and
//! the rename replaces a link at the final name rather than following it.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::RenameFlags;
use rustix::io::Errno;

use crate::error::{Error, Result};

/// A file being written; it appears under its name only by [`OutputFile::commit`].
pub struct OutputFile {
    file: File,
    part: PathBuf,
    path: PathBuf,
    overwrite: bool,
    committed: bool,
}

impl OutputFile {
    /// Start writing `path` (mode 0600). An existing file is refused unless
    /// `overwrite`, here and again at the rename; a folder always.
    pub fn create(path: &Path, overwrite: bool) -> Result<OutputFile> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => return Err(is_folder(path)),
            Ok(_) if !overwrite => return Err(exists(path)),
            _ => {}
        }
        let name = path.file_name().ok_or_else(|| is_folder(path))?.as_bytes();
        let mut part = format!(".hcbackup-part-{:016x}-", rand::random::<u64>()).into_bytes();
        part.extend_from_slice(&name[..name.len().min(200)]);
        let part = path.with_file_name(std::ffi::OsStr::from_bytes(&part));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&part)
            .map_err(|e| Error::io_path("creating", path, e))?;
        Ok(OutputFile {
            file,
            part,
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
        let cwd = rustix::fs::CWD;
        match rustix::fs::renameat_with(cwd, &self.part, cwd, &self.path, how) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Err(exists(&self.path)),
            Err(Errno::ISDIR) => return Err(is_folder(&self.path)),
            Err(e) => return Err(Error::io_path("renaming", &self.path, e.into())),
        }
        self.committed = true;
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
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
            let _ = std::fs::remove_file(&self.part);
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
