//! `restore`: write a snapshot's files back, byte-exact, with their metadata.
//!
//! Folders are restored in parallel; a file's chunks are fetched, checked (AEAD and
//! id re-hash in `Repository::read_blob`) and written at their offsets in parallel.
//! Ownership, mode and times are set after the content, and a folder's own metadata
//! after its children, so read-only folders and old mtimes come back as they were.
//! A file that cannot be restored is reported with the pack at fault; the rest goes on.
//!
//! The target is hostile ground: other users may plant links there before and
//! during the restore. Every entry is made relative to its open parent folder and
//! nothing is ever followed (`safe_fs`), so a restore run as root writes inside
//! its target and nowhere else.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use rustix::fs::FileType;

use super::restore_marker::{self, Start};
use super::safe_fs::{self, Existing, Meta, Place};
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
    /// Also restore setuid/setgid bits and device nodes (`--restore-privileged`):
    /// off by default, since a snapshot written by a compromised client could
    /// otherwise plant a setuid-root program or a raw disk device.
    pub privileged: bool,
}

#[derive(Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub errors: Vec<String>,
    /// Entries whose setuid/setgid bits were left off (no `--restore-privileged`).
    pub setid_dropped: u64,
    /// Device nodes not created (no `--restore-privileged`).
    pub devices_skipped: u64,
    /// Files found complete from an earlier, unfinished run of the same restore
    /// and kept (counted in `files` and `bytes` too).
    pub kept: u64,
}

struct Restorer<'a> {
    repo: &'a Repository,
    include: Option<GlobSet>,
    existing: Existing,
    /// Finishing an earlier run: a file already complete in place is kept.
    resume: bool,
    privileged: bool,
    progress: &'a dyn Progress,
    report: Mutex<RestoreReport>,
    setid_dropped: AtomicU64,
    devices_skipped: AtomicU64,
    is_root: bool,
    links: super::hard_links::Links,
}

/// Where an entry of a tree goes: its folder, name and path, and the names of
/// its siblings (which part names must not take).
struct Entry<'d, 'p> {
    dir: &'d Dir<'p>,
    name: &'d OsStr,
    path: &'d Path,
    siblings: &'d std::collections::HashSet<&'d [u8]>,
}

/// A folder of the target, made (and opened) when the first entry needs it.
struct Dir<'p> {
    parent: Option<&'p Dir<'p>>,
    name: &'p OsStr,
    path: PathBuf,
    fd: OnceLock<std::result::Result<OwnedFd, String>>,
    /// Nobody but us can change its entries (every folder restore makes; the
    /// target itself when it is ours and not writable by others).
    private: bool,
    depth: usize,
}

impl Dir<'_> {
    /// The path of `name` in this folder, as components below the target.
    fn components(&self, name: &OsStr) -> Vec<std::ffi::OsString> {
        let mut out = vec![name.to_os_string()];
        let mut d = self;
        while let Some(p) = d.parent {
            out.push(d.name.to_os_string());
            d = p;
        }
        out.reverse();
        out
    }

    fn fd(&self, existing: Existing) -> Result<BorrowedFd<'_>> {
        let made = self.fd.get_or_init(|| {
            let parent = self.parent.expect("the target is opened before the walk");
            let up = parent.fd(existing).map_err(|e| e.to_string())?;
            safe_fs::make_dir(up, self.name, &self.path, existing).map_err(|e| e.to_string())
        });
        match made {
            Ok(fd) => Ok(fd.as_fd()),
            Err(e) => Err(Error::Failed(e.clone())),
        }
    }
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
    let root = repo.load_tree(snap.snapshot.tree)?;
    if root
        .nodes
        .iter()
        .any(|n| n.name == restore_marker::NAME.as_bytes())
    {
        return Err(Error::Usage(format!(
            "snapshot {} holds an entry named {} at its top, the name restore keeps for its note: get it with `hcbackup export {} --tar FILE`",
            snap.id.short(),
            restore_marker::NAME,
            snap.id.short()
        )));
    }
    let target_was_there = opts.target.symlink_metadata().is_ok();
    let target = safe_fs::open_target(&opts.target)?;
    let start = restore_marker::decide(
        &target,
        &opts.target,
        (&snap.id, &opts.includes),
        opts.overwrite,
    )?;
    let _lock = repo.lock(false, "restore")?;
    crate::util::failpoint("restore-after-check");
    if start == Start::Resume {
        tracing::warn!(
            "{} holds an unfinished restore of snapshot {}: finishing it (files already in place are kept)",
            opts.target.display(),
            snap.id.short()
        );
    }
    restore_marker::write(target.fd.as_fd(), &opts.target, (&snap.id, &opts.includes))?;
    let mut r = Restorer {
        repo,
        include,
        existing: if start == Start::Fresh {
            Existing::Refuse
        } else {
            Existing::Replace
        },
        resume: start == Start::Resume,
        privileged: opts.privileged,
        progress,
        report: Mutex::default(),
        setid_dropped: AtomicU64::new(0),
        devices_skipped: AtomicU64::new(0),
        // SAFETY: geteuid cannot fail.
        is_root: unsafe { libc::geteuid() } == 0,
        links: Default::default(),
    };
    let root_dir = Dir {
        parent: None,
        name: OsStr::new(""),
        path: opts.target.clone(),
        private: target.private,
        fd: OnceLock::from(Ok(target.fd)),
        depth: 0,
    };
    let any = r.tree(&root, &root_dir, "", r.include.is_none());
    let target_fd = root_dir.fd(Existing::Refuse)?;
    std::mem::take(&mut r.links).link_all(target_fd, |p, e| r.fail(p, e));
    let failed = !r
        .report
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .errors
        .is_empty();
    if !failed {
        restore_marker::remove(target_fd, &opts.target)?;
    }
    if !any && !opts.includes.is_empty() && !failed {
        if !target_was_there {
            // Made for this restore and left empty: not left behind.
            let _ = std::fs::remove_dir(&opts.target);
        }
        let source = root
            .nodes
            .first()
            .map(|n| crate::model::tree::escape(&n.name))
            .unwrap_or_else(|| "uploads".into());
        return Err(Error::Usage(format!(
            "nothing in snapshot {} matches --include {}: paths start with the source's name, such as {source}/** (see `hcbackup ls {}`)",
            snap.id.short(),
            opts.includes.join(" --include "),
            snap.id.short()
        )));
    }
    let mut report = r.report.into_inner().unwrap_or_else(|p| p.into_inner());
    report.setid_dropped = r.setid_dropped.into_inner();
    report.devices_skipped = r.devices_skipped.into_inner();
    Ok(report)
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

    /// Restore a tree's entries into `dir` (made when the first entry needs it).
    /// Returns whether anything was restored.
    fn tree(&self, tree: &Tree, dir: &Dir<'_>, rel: &str, selected: bool) -> bool {
        let names: std::collections::HashSet<&[u8]> =
            tree.nodes.iter().map(|n| &n.name[..]).collect();
        tree.nodes
            .par_iter()
            .map(|n| {
                // Tree::from_bytes refused any name that is not a plain file name.
                let name = OsStr::from_bytes(&n.name);
                let path = dir.path.join(name);
                let rel = if rel.is_empty() {
                    name.to_string_lossy().into_owned()
                } else {
                    format!("{rel}/{}", name.to_string_lossy())
                };
                let sel = selected || self.include.as_ref().is_some_and(|g| g.is_match(&rel));
                let at = Entry {
                    dir,
                    name,
                    path: &path,
                    siblings: &names,
                };
                match self.node(n, &at, &rel, sel) {
                    Ok(done) => done,
                    Err(e) => {
                        self.fail(&path, e);
                        false
                    }
                }
            })
            .reduce(|| false, |a, b| a | b)
    }

    fn node(&self, n: &Node, at: &Entry<'_, '_>, rel: &str, selected: bool) -> Result<bool> {
        let Entry {
            dir, name, path, ..
        } = *at;
        if n.kind == NodeKind::Dir {
            let sub = self.repo.load_tree(
                n.subtree
                    .ok_or_else(|| Error::corrupt("tree", "folder without subtree"))?,
            )?;
            if dir.depth >= safe_fs::MAX_DEPTH {
                return Err(Error::Failed(format!(
                    "more than {} folders deep: not restored",
                    safe_fs::MAX_DEPTH
                )));
            }
            let child = Dir {
                parent: Some(dir),
                name,
                path: path.to_path_buf(),
                fd: OnceLock::new(),
                private: true,
                depth: dir.depth + 1,
            };
            if selected {
                child.fd(self.existing)?;
            }
            let any = self.tree(&sub, &child, rel, selected);
            if selected || any {
                // A folder's own mode and times after its children: a read-only
                // folder is filled first, and its mtime is not moved by them.
                safe_fs::set_meta(child.fd(self.existing)?, path, &self.meta(n))?;
                self.report.lock().unwrap_or_else(|p| p.into_inner()).dirs += 1;
            }
            return Ok(selected || any);
        }
        if !selected {
            return Ok(false);
        }
        let parent = dir.fd(self.existing)?;
        let place = Place {
            dir: parent,
            private: dir.private,
            how: self.existing,
        };
        let meta = self.meta(n);
        match n.kind {
            NodeKind::File => {
                let kept = self.resume && safe_fs::is_restored_file(parent, name, &meta, n.size);
                if kept {
                    self.progress.bytes_done(n.size);
                } else {
                    let part = safe_fs::part_name(name, |p| at.siblings.contains(p));
                    self.write_file(n, place, (name, &part), path, &meta)?;
                }
                let mut rep = self.report.lock().unwrap_or_else(|p| p.into_inner());
                rep.files += 1;
                rep.bytes += n.size;
                rep.kept += u64::from(kept);
                drop(rep);
                if n.link != 0 {
                    self.links.restored(n.link, dir.components(name), path);
                }
                self.progress.file_done(path, n.size);
            }
            NodeKind::Symlink => {
                let target =
                    OsStr::from_bytes(n.target.as_deref().map(|t| &t[..]).unwrap_or_default());
                safe_fs::make_symlink(place, name, target, path, &meta)?;
            }
            NodeKind::Fifo => safe_fs::make_special(place, name, (FileType::Fifo, 0), path, &meta)?,
            NodeKind::CharDevice | NodeKind::BlockDevice => {
                if !self.privileged {
                    self.devices_skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                let t = if n.kind == NodeKind::CharDevice {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                safe_fs::make_special(place, name, (t, n.rdev), path, &meta)?
            }
            NodeKind::Socket => return Ok(false), // sockets are recreated by their servers
            NodeKind::Dir => unreachable!(),
        }
        Ok(true)
    }

    /// The owner (as root only), mode and mtime to give `n`. Without
    /// `--restore-privileged` setuid and setgid bits are left off.
    fn meta(&self, n: &Node) -> Meta {
        let mut mode = n.mode & 0o7777;
        // Setgid on a folder only sets the group of what is made in it: kept.
        let risky = if n.kind == NodeKind::Dir {
            0o4000
        } else {
            0o6000
        };
        if !self.privileged && mode & risky != 0 && n.kind != NodeKind::Symlink {
            mode &= !risky;
            self.setid_dropped.fetch_add(1, Ordering::Relaxed);
        }
        Meta {
            owner: self.is_root.then_some((n.uid, n.gid)),
            mode,
            mtime_ns: n.mtime_ns,
        }
    }

    /// Write the file under its part name, give it its metadata, and only then
    /// rename it to its own name: a killed restore never leaves a truncated file
    /// that looks whole, and a rerun knows a file under its own name is complete.
    fn write_file(
        &self,
        n: &Node,
        place: Place<'_>,
        (name, part): (&OsStr, &OsStr),
        path: &Path,
        meta: &Meta,
    ) -> Result<()> {
        let part_path = path.with_file_name(part);
        // The part name is ours alone: whatever is there is a killed run's leftover.
        let f = safe_fs::create_file(place.dir, part, &part_path, Existing::Replace)?;
        let written = self
            .content(n, &f, path)
            .and_then(|()| safe_fs::set_meta(f.as_fd(), path, meta))
            .and_then(|()| {
                crate::util::failpoint("restore-before-rename");
                safe_fs::move_into((place.dir, part), place, name, path, "a file")
            });
        if written.is_err() {
            let _ = rustix::fs::unlinkat(place.dir, part, rustix::fs::AtFlags::empty());
        }
        written
    }

    fn content(&self, n: &Node, f: &File, path: &Path) -> Result<()> {
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
                let data = self.repo.read_blob_from(Kind::Data, (*c).into(), loc)?;
                crate::util::failpoint("restore-chunk");
                self.progress.bytes_done(data.len() as u64);
                // A chunk of zeros is left as a hole: a sparse file (a VM
                // image, a preallocated video) comes back sparse, not full size.
                if is_zeros(&data) {
                    return Ok(());
                }
                f.write_all_at(&data, *off)
                    .ctx(|| format!("writing {}", path.display()))
            })?;
        // Always: trailing holes need the length, and a size that differs from
        // the chunks' (a tree hcbackup did not write) wins.
        f.set_len(n.size)
            .ctx(|| format!("sizing {}", path.display()))?;
        Ok(())
    }
}

/// Whether `data` is all zero bytes (a hole in a sparse file). 64 bytes at a
/// time, which the compiler turns into vector instructions.
fn is_zeros(data: &[u8]) -> bool {
    let mut blocks = data.chunks_exact(64);
    blocks.all(|b| b.iter().fold(0u8, |acc, &x| acc | x) == 0)
        && blocks.remainder().iter().all(|&b| b == 0)
}
