//! File-system facts: metadata → tree nodes, a quick scan for totals, and names.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde_bytes::ByteBuf;

use crate::model::tree::{Node, NodeKind};

/// What the walk needs of an entry's metadata, from an `lstat` by path (a
/// source's root) or an `fstatat`/`fstat` relative to an open folder (everything
/// below it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: NodeKind,
    /// `mode & 0o7777`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
    pub rdev: u64,
    /// How many names the entry has (hard links).
    pub nlink: u64,
}

impl Stat {
    /// Whether `other` (an `fstat` of what was opened) is the same entry: device,
    /// inode and kind. What the walk listed and what it opened must agree, or
    /// someone swapped the entry (for a link to another file) in between.
    pub fn same_entry(&self, other: &Stat) -> bool {
        (self.dev, self.ino, self.kind) == (other.dev, other.ino, other.kind)
    }
}

fn kind_of_mode(mode: u32) -> NodeKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => NodeKind::Dir,
        libc::S_IFLNK => NodeKind::Symlink,
        libc::S_IFREG => NodeKind::File,
        libc::S_IFIFO => NodeKind::Fifo,
        libc::S_IFSOCK => NodeKind::Socket,
        libc::S_IFCHR => NodeKind::CharDevice,
        _ => NodeKind::BlockDevice,
    }
}

impl From<&Metadata> for Stat {
    fn from(m: &Metadata) -> Stat {
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_file() {
            NodeKind::File
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_socket() {
            NodeKind::Socket
        } else if ft.is_char_device() {
            NodeKind::CharDevice
        } else {
            NodeKind::BlockDevice
        };
        Stat {
            kind,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.len(),
            mtime_ns: m
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.mtime_nsec()),
            ctime_ns: m
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(m.ctime_nsec()),
            ino: m.ino(),
            dev: m.dev(),
            rdev: m.rdev(),
            nlink: m.nlink(),
        }
    }
}

impl From<&rustix::fs::Stat> for Stat {
    // The field types of `struct stat` differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    fn from(s: &rustix::fs::Stat) -> Stat {
        let ns = |sec: i64, nsec: i64| sec.saturating_mul(1_000_000_000).saturating_add(nsec);
        Stat {
            kind: kind_of_mode(s.st_mode as u32),
            mode: s.st_mode as u32 & 0o7777,
            uid: s.st_uid,
            gid: s.st_gid,
            size: s.st_size as u64,
            mtime_ns: ns(s.st_mtime as i64, s.st_mtime_nsec as i64),
            ctime_ns: ns(s.st_ctime as i64, s.st_ctime_nsec as i64),
            ino: s.st_ino as u64,
            dev: s.st_dev as u64,
            rdev: s.st_rdev as u64,
            nlink: s.st_nlink as u64,
        }
    }
}

/// A node with everything but content/subtree/target filled from `st`.
pub fn base_node(name: &[u8], st: &Stat) -> Node {
    let kind = st.kind;
    Node {
        name: ByteBuf::from(name.to_vec()),
        kind,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        mtime_ns: st.mtime_ns,
        size: if kind == NodeKind::File { st.size } else { 0 },
        content: Vec::new(),
        lists: Vec::new(),
        subtree: None,
        target: None,
        rdev: if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
            st.rdev
        } else {
            0
        },
        link: 0,
    }
}

/// The name a source gets at the root of a snapshot: its last component.
pub fn source_name(path: &Path) -> Vec<u8> {
    match path.file_name() {
        Some(n) => n.as_bytes().to_vec(),
        None => b"root".to_vec(),
    }
}

/// Count files and bytes below `paths` (for progress ETA); errors are ignored here,
/// the archiver reports them.
pub fn scan_totals(paths: &[std::path::PathBuf], mut report: impl FnMut(u64, u64)) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack: Vec<std::path::PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if m.is_file() {
            files += 1;
            bytes += m.len();
            if files % 1024 == 0 {
                report(files, bytes);
            }
        }
    }
    report(files, bytes);
}
