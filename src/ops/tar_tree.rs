//! A tar.gz streamed into a folder's tree (for `import-legacy`): each member
//! becomes a node with its mode, owner, mtime, symlink target; hard links copies
//! of their target; folders the archive only implies get plain ones. Nothing is
//! extracted to disk.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_bytes::ByteBuf;
use time::OffsetDateTime;

use super::archive::Archiver;
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::model::tree::{escape, Node, NodeKind, Tree};

/// A file node with no content yet (the fields a tar member or a dump fills in).
pub(super) fn file_node(name: &[u8], mode: u32, size: u64, mtime: OffsetDateTime) -> Node {
    Node {
        name: ByteBuf::from(name.to_vec()),
        kind: NodeKind::File,
        mode,
        uid: 0,
        gid: 0,
        mtime_ns: mtime.unix_timestamp_nanos() as i64,
        size,
        content: Vec::new(),
        lists: Vec::new(),
        subtree: None,
        target: None,
        rdev: 0,
        link: 0,
    }
}

/// A folder being rebuilt from tar members: its own node (from its member, when
/// the tar has one) and its children.
#[derive(Default)]
struct Dir {
    node: Option<Node>,
    children: BTreeMap<Vec<u8>, Entry>,
}

enum Entry {
    Leaf(Node),
    Dir(Dir),
}

pub(super) struct TarResult {
    pub root: Node,
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

/// Stream a tar.gz into the tree of a folder named `name`.
pub(super) fn read(arch: &Archiver, path: &Path, name: &[u8]) -> Result<TarResult> {
    let file = std::fs::File::open(path).map_err(|e| Error::io_path("reading", path, e))?;
    let bad = |e: std::io::Error| {
        Error::Failed(format!(
            "{}: not a readable tar.gz ({e}); was it made with tar czf?",
            path.display()
        ))
    };
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let mut root = Dir::default();
    let (mut files, mut bytes) = (0u64, 0u64);
    // Content by member path, for hard links to earlier members.
    let mut seen: BTreeMap<Vec<u8>, Node> = BTreeMap::new();
    for member in ar.entries().map_err(bad)? {
        let mut m = member.map_err(bad)?;
        let h = m.header().clone();
        let raw = m.path_bytes().into_owned();
        let Some(parts) = components(&raw) else {
            return Err(Error::Failed(format!(
                "{}: member {} leaves the folder (..); refusing it",
                path.display(),
                escape(&raw)
            )));
        };
        if parts.len() > crate::model::tree::MAX_DEPTH {
            return Err(Error::Failed(format!(
                "{}: member {}...: {}",
                path.display(),
                escape(&raw[..raw.len().min(64)]),
                crate::model::tree::too_deep("it")
            )));
        }
        let mtime = h.mtime().unwrap_or(0) as i64 * 1_000_000_000;
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let (uid, gid) = (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32);
        let leaf = parts.last().cloned().unwrap_or_default();
        let mut node = Node {
            name: ByteBuf::from(leaf),
            mode,
            uid,
            gid,
            mtime_ns: mtime,
            ..file_node(b"", mode, 0, OffsetDateTime::UNIX_EPOCH)
        };
        node.mtime_ns = mtime;
        let et = h.entry_type();
        if et.is_dir() {
            node.kind = NodeKind::Dir;
        } else if et.is_symlink() {
            node.kind = NodeKind::Symlink;
            let target = m
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            node.target = Some(ByteBuf::from(target));
        } else if et.is_hard_link() {
            let target = m
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let Some(t) = components(&target).and_then(|p| seen.get(&p.join(&b'/')).cloned())
            else {
                return Err(Error::Failed(format!(
                    "{}: hard link {} names {}, which is not an earlier member of the archive (or leaves the folder); refusing it",
                    path.display(),
                    escape(&raw),
                    escape(&target)
                )));
            };
            node.content = t.content.clone();
            node.size = t.size;
            files += 1;
            bytes += t.size;
        } else if et.is_fifo() {
            node.kind = NodeKind::Fifo;
        } else if et.is_file() || et == tar::EntryType::Continuous {
            let size = h.size().unwrap_or(0);
            let (content, n) = arch
                .chunk_stream(arch.chunker(), (&mut m).take(size), Some(size))?
                .map_err(bad)?;
            node.content = content;
            node.size = n;
            files += 1;
            bytes += n;
        } else {
            // Character and block devices, GNU extensions tar itself resolves.
            tracing::warn!(
                "{}: member {} ({:?}) is not a file, folder, link or FIFO: left out",
                path.display(),
                escape(&raw),
                et
            );
            continue;
        }
        if node.kind == NodeKind::File {
            seen.insert(parts.join(&b'/'), node.clone());
        }
        insert(&mut root, &parts, node);
    }
    let mut dirs = 0;
    let mut root_node = root.node.take().unwrap_or_else(|| Node {
        kind: NodeKind::Dir,
        mode: 0o755,
        ..file_node(b"", 0o755, 0, OffsetDateTime::UNIX_EPOCH)
    });
    root_node.name = ByteBuf::from(name.to_vec());
    root_node.kind = NodeKind::Dir;
    root_node.subtree = Some(store(arch, root, &mut dirs)?);
    Ok(TarResult {
        root: root_node,
        files,
        dirs: dirs + 1,
        bytes,
    })
}

/// A member's path as components: `./` and empty parts dropped; `None` for `..`.
fn components(raw: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for p in raw.split(|&b| b == b'/') {
        match p {
            b"" | b"." => {}
            b".." => return None,
            p => out.push(p.to_vec()),
        }
    }
    Some(out)
}

/// Put `node` at `parts` (the root itself when `parts` is empty).
fn insert(root: &mut Dir, parts: &[Vec<u8>], node: Node) {
    let Some((last, parents)) = parts.split_last() else {
        if node.kind == NodeKind::Dir {
            root.node = Some(node);
        }
        return;
    };
    let mut dir = root;
    for p in parents {
        let e = dir
            .children
            .entry(p.clone())
            .or_insert_with(|| Entry::Dir(Dir::default()));
        if let Entry::Leaf(n) = e {
            // tar -x would write through the link; a backup keeps a folder.
            tracing::warn!(
                "member {} has members below it: it becomes a folder",
                escape(&n.name)
            );
            *e = Entry::Dir(Dir::default());
        }
        let Entry::Dir(d) = e else { unreachable!() };
        dir = d;
    }
    if node.kind == NodeKind::Dir {
        match dir
            .children
            .entry(last.clone())
            .or_insert_with(|| Entry::Dir(Dir::default()))
        {
            Entry::Dir(d) => d.node = Some(node),
            e => {
                *e = Entry::Dir(Dir {
                    node: Some(node),
                    children: BTreeMap::new(),
                })
            }
        }
    } else {
        // A later member of the same name replaces the earlier, as tar -x does.
        dir.children.insert(last.clone(), Entry::Leaf(node));
    }
}

/// Store a rebuilt folder's tree (children first).
fn store(arch: &Archiver, dir: Dir, count: &mut u64) -> Result<TreeId> {
    let mut nodes = Vec::new();
    for (name, e) in dir.children {
        match e {
            Entry::Leaf(n) => nodes.push(n),
            Entry::Dir(d) => {
                *count += 1;
                let mut n = d.node.clone().unwrap_or_else(|| Node {
                    kind: NodeKind::Dir,
                    ..file_node(&name, 0o755, 0, OffsetDateTime::UNIX_EPOCH)
                });
                n.name = ByteBuf::from(name);
                n.kind = NodeKind::Dir;
                n.subtree = Some(store(arch, d, count)?);
                nodes.push(n);
            }
        }
    }
    arch.store_tree(Tree::new(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        assert_eq!(
            components(b"./a/b/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(components(b"./").unwrap(), Vec::<Vec<u8>>::new());
        assert!(components(b"a/../../etc").is_none());
    }
}
