//! `mount`: the snapshots as a read-only FUSE file system (fuser), browsable
//! with a file manager:
//!
//! ```text
//! MOUNTPOINT/ids/3f2a9c1e/uploads/…          each snapshot, by short id
//! MOUNTPOINT/snapshots/2026-11-28T03:00:00Z  a link to ../ids/<id>, by date
//! MOUNTPOINT/latest                          a link to the newest (never a safety dump)
//! ```
//!
//! Entries keep their stored modes, owners and times; nothing can be written.
//! Trees are read when first listed; a file's chunks are read and checked as
//! its bytes are asked for, the last few kept for the next read.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, Request,
};

use crate::crypto::Kind;
use crate::error::Result;
use crate::id::{ChunkId, TreeId};
use crate::model::snapshot::SnapshotEntry;
use crate::model::tree::{Node, NodeKind};
use crate::repo::Repository;

/// Nothing in a snapshot changes: the kernel may keep what it was told.
const TTL: Duration = Duration::from_secs(3600);
/// Chunks kept decoded (the kernel reads 128 KiB at a time; a chunk is ~1 MiB).
const CHUNKS_KEPT: usize = 16;

enum Kind2 {
    /// A folder of the mount itself (`/`, `ids`, `snapshots`), its entries given.
    Virtual(Vec<(OsString, u64)>),
    /// A link of the mount itself (`latest`, `snapshots/DATE`).
    Link(OsString),
    /// A snapshot's folder: its tree, its node (none for a snapshot's root) and,
    /// once listed, its entries.
    Tree(TreeId, Option<Node>, Option<Vec<(OsString, u64)>>),
    /// Any other entry of a snapshot.
    Entry(Node),
}

struct Inodes {
    all: Vec<Kind2>,
    /// Each file's chunks and where each starts, once read.
    layouts: HashMap<u64, Arc<Vec<(u64, ChunkId)>>>,
    chunks: Vec<(ChunkId, Arc<Vec<u8>>)>,
}

pub struct SnapshotFs {
    repo: Repository,
    state: Mutex<Inodes>,
    /// The newest snapshot's time: the mount's own folders carry it.
    time: SystemTime,
}

impl SnapshotFs {
    /// The file system of `snaps` (oldest first).
    pub fn new(repo: Repository, snaps: &[SnapshotEntry], latest: Option<&SnapshotEntry>) -> Self {
        // Inode n is all[n - 1]; 1 is the root.
        let mut all = vec![Kind2::Virtual(Vec::new())];
        let add = |all: &mut Vec<Kind2>, k: Kind2| -> u64 {
            all.push(k);
            all.len() as u64
        };
        let mut ids = Vec::new();
        let mut dates = Vec::new();
        for s in snaps {
            let short = OsString::from(s.id.short());
            let ino = add(&mut all, Kind2::Tree(s.snapshot.tree, None, None));
            ids.push((short.clone(), ino));
            let mut target = OsString::from("../ids/");
            target.push(&short);
            let mut date = OsString::from(&s.snapshot.time);
            if dates.iter().any(|(d, _): &(OsString, u64)| *d == date) {
                date.push(format!("-{}", s.id.short()));
            }
            let link = add(&mut all, Kind2::Link(target));
            dates.push((date, link));
        }
        let mut root = Vec::new();
        root.push((OsString::from("ids"), add(&mut all, Kind2::Virtual(ids))));
        root.push((
            OsString::from("snapshots"),
            add(&mut all, Kind2::Virtual(dates)),
        ));
        if let Some(l) = latest {
            let target = OsString::from(format!("ids/{}", l.id.short()));
            root.push((OsString::from("latest"), add(&mut all, Kind2::Link(target))));
        }
        all[0] = Kind2::Virtual(root);
        let time = latest
            .and_then(|l| crate::util::parse_rfc3339(&l.snapshot.time))
            .map(|t| UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64))
            .unwrap_or(UNIX_EPOCH);
        SnapshotFs {
            repo,
            state: Mutex::new(Inodes {
                all,
                layouts: HashMap::new(),
                chunks: Vec::new(),
            }),
            time,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Inodes> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A folder's entries, reading its tree the first time.
    fn entries(&self, ino: u64) -> std::result::Result<Vec<(OsString, u64)>, Errno> {
        let mut st = self.state();
        let tree = match st.all.get(ino as usize - 1) {
            Some(Kind2::Virtual(e)) => return Ok(e.clone()),
            Some(Kind2::Tree(_, _, Some(e))) => return Ok(e.clone()),
            Some(Kind2::Tree(t, _, None)) => *t,
            Some(_) => return Err(Errno::ENOTDIR),
            None => return Err(Errno::ENOENT),
        };
        let nodes = self.repo.load_tree(tree).map_err(|e| {
            tracing::warn!("mount: tree {}: {e}", tree.short());
            Errno::EIO
        })?;
        let mut out = Vec::with_capacity(nodes.nodes.len());
        for n in nodes.nodes {
            let name = OsStr::from_bytes(&n.name).to_os_string();
            let k = match (n.kind, n.subtree) {
                (NodeKind::Dir, Some(t)) => Kind2::Tree(t, Some(n), None),
                _ => Kind2::Entry(n),
            };
            st.all.push(k);
            out.push((name, st.all.len() as u64));
        }
        if let Some(Kind2::Tree(_, _, e)) = st.all.get_mut(ino as usize - 1) {
            *e = Some(out.clone());
        }
        Ok(out)
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let st = self.state();
        let k = st.all.get((ino as usize).checked_sub(1)?)?;
        let mine = |kind, perm, size| FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: self.time,
            mtime: self.time,
            ctime: self.time,
            crtime: self.time,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            // SAFETY: getuid/getgid cannot fail.
            uid: unsafe { libc::getuid() },
            gid: unsafe { libc::getgid() },
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        Some(match k {
            Kind2::Virtual(_) | Kind2::Tree(_, None, _) => mine(FileType::Directory, 0o555, 0),
            Kind2::Link(t) => mine(FileType::Symlink, 0o777, t.len() as u64),
            Kind2::Tree(_, Some(n), _) | Kind2::Entry(n) => node_attr(ino, n),
        })
    }

    /// `size` bytes of file `ino` from `offset`.
    fn read_at(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let layout = self.layout(ino)?;
        let mut out = Vec::with_capacity(size as usize);
        let end = offset.saturating_add(size as u64);
        let first = layout
            .partition_point(|(start, _)| *start <= offset)
            .saturating_sub(1);
        for (start, id) in layout.iter().skip(first) {
            if *start >= end {
                break;
            }
            let data = self.chunk(*id)?;
            let from = offset.saturating_sub(*start) as usize;
            let to = ((end - start) as usize).min(data.len());
            if from < to {
                out.extend_from_slice(&data[from..to]);
            }
        }
        Ok(out)
    }

    fn layout(&self, ino: u64) -> Result<Arc<Vec<(u64, ChunkId)>>> {
        let node = {
            let st = self.state();
            if let Some(l) = st.layouts.get(&ino) {
                return Ok(l.clone());
            }
            match st.all.get(ino as usize - 1) {
                Some(Kind2::Entry(n)) if n.kind == NodeKind::File => n.clone(),
                _ => return Err(crate::Error::Usage("not a file".into())),
            }
        };
        let mut at = 0u64;
        let mut layout = Vec::new();
        for c in self.repo.node_content(&node)?.iter() {
            layout.push((at, *c));
            at += self.repo.locate(Kind::Data, (*c).into())?.raw_length as u64;
        }
        let layout = Arc::new(layout);
        self.state().layouts.insert(ino, layout.clone());
        Ok(layout)
    }

    fn chunk(&self, id: ChunkId) -> Result<Arc<Vec<u8>>> {
        if let Some((_, d)) = self.state().chunks.iter().find(|(c, _)| *c == id) {
            return Ok(d.clone());
        }
        let data = Arc::new(self.repo.read_blob(Kind::Data, id.into())?);
        let mut st = self.state();
        if st.chunks.len() >= CHUNKS_KEPT {
            st.chunks.remove(0);
        }
        st.chunks.push((id, data.clone()));
        Ok(data)
    }
}

fn node_attr(ino: u64, n: &Node) -> FileAttr {
    let mtime = if n.mtime_ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(n.mtime_ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(n.mtime_ns.unsigned_abs())
    };
    let kind = match n.kind {
        NodeKind::Dir => FileType::Directory,
        NodeKind::File => FileType::RegularFile,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
    };
    let size = match n.kind {
        NodeKind::Symlink => n.target.as_ref().map_or(0, |t| t.len() as u64),
        _ => n.size,
    };
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind,
        perm: (n.mode & 0o7777) as u16,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: n.uid,
        gid: n.gid,
        rdev: n.rdev as u32,
        blksize: 4096,
        flags: 0,
    }
}

impl Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.entries(parent.0) {
            Ok(e) => match e
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, i)| self.attr(*i))
            {
                Some(a) => reply.entry(&TTL, &a, Generation(0)),
                None => reply.error(Errno::ENOENT),
            },
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let st = self.state();
        match st.all.get((ino.0 as usize).saturating_sub(1)) {
            Some(Kind2::Link(t)) => reply.data(t.as_bytes()),
            Some(Kind2::Entry(n)) if n.kind == NodeKind::Symlink => {
                reply.data(n.target.as_deref().map(|t| &t[..]).unwrap_or_default())
            }
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_at(ino.0, offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => {
                tracing::warn!("mount: reading inode {}: {e}", ino.0);
                reply.error(Errno::EIO)
            }
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.entries(ino.0) {
            Ok(e) => e,
            Err(e) => return reply.error(e),
        };
        let mut all = vec![(OsString::from("."), ino.0), (OsString::from(".."), ino.0)];
        all.extend(entries);
        for (i, (name, child)) in all.into_iter().enumerate().skip(offset as usize) {
            let kind = self.attr(child).map_or(FileType::RegularFile, |a| a.kind);
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mount `fs` at `mountpoint` until it is unmounted (`umount`, `fusermount -u`).
/// Mount `fs` on `mountpoint` under a shared lock (a prune waits) until it is
/// unmounted.
pub fn mount(fs: SnapshotFs, mountpoint: &std::path::Path) -> crate::error::Result<()> {
    let _lock = fs.repo.lock(false, "mount")?;
    serve(fs, mountpoint).map_err(|e| {
        crate::error::Error::Failed(format!(
            "mounting on {}: {e}; FUSE needs /dev/fuse (modprobe fuse) and root or fusermount",
            mountpoint.display()
        ))
    })
}

fn serve(fs: SnapshotFs, mountpoint: &std::path::Path) -> std::io::Result<()> {
    let mut cfg = fuser::Config::default();
    cfg.mount_options.extend([
        fuser::MountOption::RO,
        fuser::MountOption::FSName("hcbackup".to_string()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ]);
    // SIGINT, SIGTERM and SIGHUP unmount cleanly (a process killed with the
    // file system mounted leaves "Transport endpoint is not connected"): they
    // are blocked here, before the session's thread starts, and waited for.
    // SAFETY: a sigset filled by the libc calls, then handed to them.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let session = fuser::spawn_mount(fs, mountpoint, &cfg)?;
    loop {
        // Unmounted from outside (`umount`): the session ends by itself.
        if session.guard.is_finished() {
            return session.join();
        }
        let wait = libc::timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        // SAFETY: `set` and `wait` live across the call.
        if unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &wait) } > 0 {
            return session.umount_and_join().or_else(|_| detach(mountpoint));
        }
    }
}

/// Unmount a busy mount point lazily (a file open there, a shell inside it):
/// it leaves the tree now, and what is still open there reads errors once
/// this process ends, instead of a dead mount left behind.
fn detach(mountpoint: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    tracing::warn!(
        "{} was busy: unmounted lazily; files still open there read errors from now",
        mountpoint.display()
    );
    Ok(())
}
