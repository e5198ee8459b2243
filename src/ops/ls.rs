//! `ls`: the entries of a snapshot, optionally below a path, in tree order.

use std::os::unix::ffi::OsStrExt;

use crate::error::{Error, Result};
use crate::model::snapshot::SnapshotEntry;
use crate::model::tree::{Node, NodeKind};
use crate::repo::Repository;

/// One listed entry: its path inside the snapshot and its node.
pub struct Listed {
    pub path: Vec<u8>,
    pub node: Node,
}

/// Visit every entry at or below `prefix` (a path inside the snapshot, `/`-separated).
pub fn walk(
    repo: &Repository,
    snap: &SnapshotEntry,
    prefix: Option<&str>,
    visit: &mut dyn FnMut(Listed),
) -> Result<()> {
    let prefix = prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty());
    let mut tree = repo.load_tree(snap.snapshot.tree)?;
    let mut base: Vec<u8> = Vec::new();
    if let Some(p) = prefix {
        let parts: Vec<&[u8]> = p.as_bytes().split(|&b| b == b'/').collect();
        for (i, part) in parts.iter().enumerate() {
            let node = tree
                .nodes
                .iter()
                .find(|n| n.name.as_ref() as &[u8] == *part)
                .cloned()
                .ok_or_else(|| {
                    Error::Usage(format!("{p} is not in snapshot {}", snap.id.short()))
                })?;
            if !base.is_empty() {
                base.push(b'/');
            }
            base.extend_from_slice(part);
            if i + 1 == parts.len() || node.kind != NodeKind::Dir {
                if i + 1 != parts.len() {
                    return Err(Error::Usage(format!(
                        "{p} is not in snapshot {}",
                        snap.id.short()
                    )));
                }
                let sub = node.subtree;
                visit(Listed {
                    path: base.clone(),
                    node,
                });
                match sub {
                    Some(t) => tree = repo.load_tree(t)?,
                    None => return Ok(()),
                }
            } else {
                tree = repo.load_tree(
                    node.subtree
                        .ok_or_else(|| Error::corrupt("tree", "folder without subtree"))?,
                )?;
            }
        }
    }
    entries(repo, &base, tree, visit)
}

fn entries(
    repo: &Repository,
    dir: &[u8],
    tree: crate::model::tree::Tree,
    visit: &mut dyn FnMut(Listed),
) -> Result<()> {
    for n in tree.nodes {
        let mut path = dir.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&n.name);
        let sub = n.subtree;
        visit(Listed {
            path: path.clone(),
            node: n,
        });
        if let Some(sub) = sub {
            if path.iter().filter(|&&b| b == b'/').count() >= crate::model::tree::MAX_DEPTH {
                return Err(Error::corrupt(
                    format!("tree {}", sub.short()),
                    crate::model::tree::too_deep("a folder"),
                ));
            }
            entries(repo, &path, repo.load_tree(sub)?, visit)?;
        }
    }
    Ok(())
}

/// Display form of a snapshot path (non-UTF-8 bytes escaped).
pub fn display_path(p: &[u8]) -> String {
    std::ffi::OsStr::from_bytes(p)
        .to_string_lossy()
        .into_owned()
}
