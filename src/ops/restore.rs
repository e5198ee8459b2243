//! `restore`: write a snapshot's files back, byte-exact, with their metadata.
//!
//! Folders are restored in parallel; a file's chunks are fetched, checked (AEAD and
//! id re-hash in `Repository::read_blob`) and written at their offsets in parallel.
//! Ownership, mode and times are set after the content, and a folder's own metadata
//! after its children, so read-only folders and old mtimes come back as they were.
//! A file that cannot be restored is reported with the pack at fault; the rest goes on.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use filetime::FileTime;
use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::crypto::Kind;
use crate::error::{Error, IoContext, Result};
use crate::model::snapshot::SnapshotEntry;
use crate::model::tree::{Node, NodeKind, Tree};
use crate::progress::Progress;
use crate::repo::Repository;

pub struct RestoreOptions {
    pub target: PathBuf,
    /// Globs over paths inside the snapshot (`uploads/exams/**`); empty = everything.
    pub includes: Vec<String>,
    pub overwrite: bool,
}

#[derive(Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
}

struct Restorer<'a> {
    repo: &'a Repository,
    include: Option<GlobSet>,
    overwrite: bool,
    progress: &'a dyn Progress,
    report: Mutex<RestoreReport>,
    is_root: bool,
}

pub fn run(
    repo: &Repository,
    snap: &SnapshotEntry,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let include = if opts.includes.is_empty() {
        None
    } else {
        let mut b = GlobSetBuilder::new();
        for g in &opts.includes {
            b.add(
                Glob::new(g.trim_start_matches('/'))
                    .map_err(|e| Error::Usage(format!("bad --include {g}: {e}")))?,
            );
        }
        Some(
            b.build()
                .map_err(|e| Error::Usage(format!("bad --include: {e}")))?,
        )
    };
    match fs::read_dir(&opts.target) {
        Ok(mut rd) => {
            if rd.next().is_some() && !opts.overwrite {
                return Err(Error::Usage(format!(
                    "target {} is not empty: choose an empty folder, or pass --overwrite",
                    opts.target.display()
                )));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(&opts.target)
            .ctx(|| format!("creating {}", opts.target.display()))?,
        Err(e) => return Err(Error::io_path("reading target", &opts.target, e)),
    }
    let _lock = repo.lock(false, "restore")?;
    let r = Restorer {
        repo,
        include,
        overwrite: opts.overwrite,
        progress,
        report: Mutex::default(),
        is_root: unsafe { libc::geteuid() } == 0,
    };
    let root = repo.load_tree(snap.snapshot.tree)?;
    r.tree(&root, &opts.target, "", r.include.is_none());
    Ok(r.report.into_inner().unwrap_or_else(|p| p.into_inner()))
}

impl Restorer<'_> {
    fn fail(&self, path: &Path, e: impl std::fmt::Display) {
        let msg = e.to_string();
        self.progress.entry_error(path, &msg);
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .errors
            .push(format!("{}: {msg}", path.display()));
    }

    /// Restore a tree's entries into `dir` (which exists when `selected`). Returns
    /// whether anything was restored.
    fn tree(&self, tree: &Tree, dir: &Path, rel: &str, selected: bool) -> bool {
        tree.nodes
            .par_iter()
            .map(|n| {
                let name = std::ffi::OsStr::from_bytes(&n.name);
                let path = dir.join(name);
                let rel = if rel.is_empty() {
                    name.to_string_lossy().into_owned()
                } else {
                    format!("{rel}/{}", name.to_string_lossy())
                };
                let sel = selected || self.include.as_ref().is_some_and(|g| g.is_match(&rel));
                match self.node(n, &path, &rel, sel) {
                    Ok(done) => done,
                    Err(e) => {
                        self.fail(&path, e);
                        false
                    }
                }
            })
            .reduce(|| false, |a, b| a | b)
    }

    fn node(&self, n: &Node, path: &Path, rel: &str, selected: bool) -> Result<bool> {
        if n.kind == NodeKind::Dir {
            let sub = self.repo.load_tree(
                n.subtree
                    .ok_or_else(|| Error::corrupt("tree", "folder without subtree"))?,
            )?;
            if selected {
                self.make_dir(path)?;
            }
            let any = self.tree(&sub, path, rel, selected);
            if selected || any {
                self.make_dir(path)?; // created lazily when only some children matched
                self.metadata(n, path)?;
                self.report.lock().unwrap_or_else(|p| p.into_inner()).dirs += 1;
            }
            return Ok(selected || any);
        }
        if !selected {
            return Ok(false);
        }
        if let Some(parent) = path.parent() {
            self.make_dir(parent)?;
        }
        if self.overwrite {
            match fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => {
                    fs::remove_dir_all(path).ctx(|| format!("replacing {}", path.display()))?
                }
                Ok(_) => fs::remove_file(path).ctx(|| format!("replacing {}", path.display()))?,
                Err(_) => {}
            }
        }
        match n.kind {
            NodeKind::File => {
                if let Err(e) = self.file(n, path) {
                    let _ = fs::remove_file(path); // never leave a silently incomplete file
                    return Err(e);
                }
            }
            NodeKind::Symlink => {
                let target = std::ffi::OsStr::from_bytes(
                    n.target.as_deref().map(|t| &t[..]).unwrap_or_default(),
                );
                std::os::unix::fs::symlink(target, path)
                    .ctx(|| format!("creating symlink {}", path.display()))?;
            }
            NodeKind::Fifo => mknod(path, libc::S_IFIFO, 0)?,
            NodeKind::CharDevice | NodeKind::BlockDevice => {
                let t = if n.kind == NodeKind::CharDevice {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                mknod(path, t, n.rdev)?
            }
            NodeKind::Socket => return Ok(false), // sockets are recreated by their servers
            NodeKind::Dir => unreachable!(),
        }
        self.metadata(n, path)?;
        Ok(true)
    }

    fn make_dir(&self, path: &Path) -> Result<()> {
        match fs::create_dir(path) {
            Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .ctx(|| format!("chmod {}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(path).ctx(|| format!("creating {}", path.display()))
            }
            Err(e) => Err(Error::io_path("creating", path, e)),
        }
    }

    fn file(&self, n: &Node, path: &Path) -> Result<()> {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .ctx(|| format!("creating {}", path.display()))?;
        let content = self.repo.node_content(n)?;
        let mut jobs = Vec::with_capacity(content.len());
        let mut offset = 0u64;
        for c in content.iter() {
            let loc = self.repo.locate(Kind::Data, (*c).into())?;
            jobs.push((*c, offset, loc));
            offset += loc.raw_length as u64;
        }
        jobs.par_iter()
            .try_for_each(|(c, off, loc)| -> Result<()> {
                let data = self.repo.read_blob_at(Kind::Data, (*c).into(), loc)?;
                f.write_all_at(&data, *off)
                    .ctx(|| format!("writing {}", path.display()))
            })?;
        if offset != n.size {
            f.set_len(n.size)
                .ctx(|| format!("sizing {}", path.display()))?;
        }
        let mut rep = self.report.lock().unwrap_or_else(|p| p.into_inner());
        rep.files += 1;
        rep.bytes += n.size;
        drop(rep);
        self.progress.file_done(path, n.size);
        Ok(())
    }

    /// Owner, then mode (chown clears set-uid bits), then times.
    fn metadata(&self, n: &Node, path: &Path) -> Result<()> {
        if self.is_root {
            std::os::unix::fs::lchown(path, Some(n.uid), Some(n.gid))
                .ctx(|| format!("chown {}", path.display()))?;
        }
        let t = FileTime::from_unix_time(
            n.mtime_ns.div_euclid(1_000_000_000),
            n.mtime_ns.rem_euclid(1_000_000_000) as u32,
        );
        if n.kind != NodeKind::Symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(n.mode))
                .ctx(|| format!("chmod {}", path.display()))?;
        }
        // utimensat on the path: never opens it (a FIFO would block an open).
        filetime::set_symlink_file_times(path, t, t)
            .ctx(|| format!("setting times of {}", path.display()))
    }
}

fn mknod(path: &Path, kind: libc::mode_t, rdev: u64) -> Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Usage("NUL in path".into()))?;
    // SAFETY: c is a valid NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, rdev as libc::dev_t) };
    if r != 0 {
        return Err(Error::io_path(
            "creating special file",
            path,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
