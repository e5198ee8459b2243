//! File-system facts: metadata → tree nodes, a quick scan for totals, and names.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use serde_bytes::ByteBuf;

use crate::model::tree::{Node, NodeKind};

/// A node with everything but content/subtree/target filled from `meta`.
pub fn base_node(name: &[u8], meta: &Metadata) -> Node {
    let ft = meta.file_type();
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
    Node {
        name: ByteBuf::from(name.to_vec()),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: mtime_ns(meta),
        size: if kind == NodeKind::File {
            meta.len()
        } else {
            0
        },
        content: Vec::new(),
        lists: Vec::new(),
        subtree: None,
        target: None,
        rdev: if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
            meta.rdev()
        } else {
            0
        },
    }
}

pub fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

pub fn ctime_ns(meta: &Metadata) -> i64 {
    meta.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.ctime_nsec())
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
