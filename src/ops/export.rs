//! `export`: a snapshot's database dump, or its files as tar.gz, written to one
//! file under a shared lock. A folder (or nothing: the current one) gets the
//! seed's file name (`db_backup_…dump`, `files_backup_…tar.gz`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::snapshot::{DatabaseEntry, SnapshotEntry};
use crate::ops::database::{pick, write_dump_file};
use crate::ops::export_tar::{self, TarReport};
use crate::ops::output_file::OutputFile;
use crate::repo::Repository;

/// What to export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What<'a> {
    /// The files, as tar.gz.
    Tar,
    /// A database's dump (which one, when the snapshot holds several).
    Dump(Option<&'a str>),
}

/// What was written.
pub enum Exported {
    Tar(TarReport),
    Dump {
        entry: Box<DatabaseEntry>,
        bytes: u64,
    },
}

/// The file to write: `given`, or in the folder `given` names (not a link to
/// one, which someone could have planted) the seed's name for `snap`.
pub fn file_for(given: &Path, snap: &SnapshotEntry, what: What) -> PathBuf {
    let is_folder = given.symlink_metadata().is_ok_and(|m| m.is_dir());
    if !(given.as_os_str().is_empty() || is_folder) {
        return given.to_path_buf();
    }
    let t = snap.snapshot.parsed_time().unwrap_or_else(crate::util::now);
    let (stem, ext) = match what {
        What::Tar => ("files_backup", "tar.gz"),
        What::Dump(_) => ("db_backup", "dump"),
    };
    let when = crate::util::format_time(
        t,
        time::macros::format_description!("[year]-[month]-[day]_[hour]-[minute]-[second]"),
    );
    given.join(format!("{stem}_{when}.{ext}"))
}

/// Write `what` of `snap` to `path` (mode 0600; an existing file only with
/// `overwrite`; a partial file removed).
pub fn run(
    repo: &Repository,
    snap: &SnapshotEntry,
    what: What,
    path: &Path,
    overwrite: bool,
) -> Result<Exported> {
    let _lock = repo.lock(false, "export")?;
    super::restore_job::still_there(repo, snap)?;
    match what {
        What::Tar => {
            let f = OutputFile::create(path, overwrite)?;
            let mut w = std::io::BufWriter::new(f);
            let r = export_tar::write(repo, snap, &mut w)?;
            w.into_inner()
                .map_err(|e| Error::io_path("writing", path, e.into_error()))?
                .commit()?;
            Ok(Exported::Tar(r))
        }
        What::Dump(name) => {
            let entry = pick(&snap.snapshot, name)?;
            let bytes = write_dump_file(repo, entry, path, overwrite)?;
            Ok(Exported::Dump {
                entry: Box::new(entry.clone()),
                bytes,
            })
        }
    }
}
