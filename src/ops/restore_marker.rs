//! The note a restore leaves in its target while it works, so that a restore
//! that was killed (or failed on some files) can be run again and finish,
//! without `--overwrite` and without writing again what is already in place.
//!
//! `.hcbackup-restore-incomplete` is made in the target before the first entry
//! and removed when every entry was restored; it names the snapshot. A rerun
//! resumes only when the note is a plain file of ours naming the same snapshot
//! and nobody else can change the target's entries: in a folder others can
//! write to, anyone could plant such a note to have a restore adopt files they
//! prepared. What "resume" does is decided here, as a value, before anything
//! in the target is touched.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use super::safe_fs::Target;
use crate::error::{Error, Result};
use crate::id::ObjectId as Id;

/// The note's name in the target.
pub const NAME: &str = ".hcbackup-restore-incomplete";

/// How a restore starts in its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// The target is empty.
    Fresh,
    /// An earlier run of the same restore did not finish: files already in
    /// place are kept, the rest is written (entries found in the way replaced).
    Resume,
    /// `--overwrite`: whatever is in the target is replaced.
    Overwrite,
}

#[derive(Serialize, Deserialize)]
struct Note {
    hcbackup_restore: u32,
    snapshot: String,
    /// The restore's `--include` globs: a rerun with others is another restore.
    #[serde(default)]
    includes: Vec<String>,
    started: String,
}

/// A restore: the snapshot and its `--include` globs.
pub type Which<'a> = (&'a Id, &'a [String]);

/// Decide how the restore of `snapshot` into `target` starts.
pub fn decide(
    target: &Target,
    path: &Path,
    (snapshot, includes): Which<'_>,
    overwrite: bool,
) -> Result<Start> {
    if overwrite {
        return Ok(Start::Overwrite);
    }
    if super::safe_fs::is_empty(target.fd.as_fd(), path)? {
        return Ok(Start::Fresh);
    }
    let left = match read(target.fd.as_fd()) {
        Ok(left) => left,
        Err(why) => {
            return Err(Error::Usage(format!(
                "target {} is not empty and its {NAME} {why}: choose an empty folder, or pass --overwrite",
                path.display()
            )))
        }
    };
    match left {
        None => Err(Error::Usage(format!(
            "target {} is not empty: choose an empty folder, or pass --overwrite",
            path.display()
        ))),
        Some((id, _)) if id != snapshot.to_hex() => Err(Error::Usage(format!(
            "target {} holds an unfinished restore of snapshot {}: finish it (hcbackup restore {} --target {}), or choose an empty folder, or pass --overwrite",
            path.display(),
            &id[..id.len().min(8)],
            &id[..id.len().min(8)],
            path.display()
        ))),
        Some((_, given)) if same_globs(&given) != same_globs(includes) => Err(Error::Usage(format!(
            "target {} holds an unfinished restore of the same snapshot with {}: run it again with the same --include to finish it, or choose an empty folder, or pass --overwrite",
            path.display(),
            if given.is_empty() {
                "no --include".to_string()
            } else {
                format!("--include {}", given.join(" --include "))
            }
        ))),
        Some(_) if !target.private => Err(Error::Usage(format!(
            "target {} holds an unfinished restore, but others can write to it, so what is there cannot be trusted: pass --overwrite to write everything again",
            path.display()
        ))),
        Some(_) => Ok(Start::Resume),
    }
}

/// The snapshot named by the note in `dir`: `Ok(None)` when there is none,
/// `Err(why)` when something else stands there (a link, someone else's file,
/// not a note).
type Left = Option<(String, Vec<String>)>;

fn read(dir: BorrowedFd<'_>) -> std::result::Result<Left, &'static str> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(dir, NAME, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(_) => return Err("cannot be opened as a file"),
    };
    let st = rustix::fs::fstat(&fd).map_err(|_| "cannot be read")?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile
        || st.st_uid != me
        || st.st_mode & 0o022 != 0
    {
        return Err("is not a file of ours");
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|_| "cannot be read")?;
    let note: Note = serde_json::from_str(&text).map_err(|_| "is not a restore note")?;
    if note.hcbackup_restore != 1 || Id::from_hex(&note.snapshot).is_none() {
        return Err("is not a restore note");
    }
    Ok(Some((note.snapshot, note.includes)))
}

/// Leave the note naming `snapshot` in the target (replacing one there), on disk
/// before the first entry is written.
pub fn write(dir: BorrowedFd<'_>, path: &Path, (snapshot, includes): Which<'_>) -> Result<()> {
    let err = |e: Errno| Error::io_path("writing", &path.join(NAME), std::io::Error::from(e));
    match rustix::fs::unlinkat(dir, NAME, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(err(e)),
    }
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, NAME, flags, Mode::from_raw_mode(0o600)).map_err(err)?;
    let note = Note {
        hcbackup_restore: 1,
        snapshot: snapshot.to_hex(),
        includes: includes.to_vec(),
        started: crate::util::rfc3339(crate::util::now()),
    };
    let mut f = std::fs::File::from(fd);
    let body = serde_json::to_string(&note).expect("note serializes");
    f.write_all(body.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io_path("writing", &path.join(NAME), e))?;
    rustix::fs::fsync(dir).map_err(err)
}

/// Remove the note: the restore is complete.
pub fn remove(dir: BorrowedFd<'_>, path: &Path) -> Result<()> {
    match rustix::fs::unlinkat(dir, NAME, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::io_path(
            "removing",
            &path.join(NAME),
            std::io::Error::from(e),
        )),
    }
}

/// Globs as a restore reads them: in any order, a leading `/` or not.
fn same_globs(globs: &[String]) -> Vec<&str> {
    let mut g: Vec<&str> = globs.iter().map(|g| g.trim_start_matches('/')).collect();
    g.sort_unstable();
    g.dedup();
    g
}
