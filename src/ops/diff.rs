//! `diff SNAP1 SNAP2`: what changed between two snapshots — entries added,
//! removed, changed (content or kind) and changed in metadata only (mode, owner,
//! mtime). Folders whose tree ids are equal are the same down to the last byte
//! and are not opened: comparing two nightly snapshots of a large, mostly
//! unchanged uploads tree reads only the folders that changed.

use serde::Serialize;

use crate::error::Result;
use crate::id::TreeId;
use crate::model::tree::{Node, NodeKind, MAX_DEPTH};
use crate::repo::Repository;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
    Metadata,
}

#[derive(Debug, Serialize)]
pub struct Difference {
    pub path: String,
    pub change: Change,
    /// `file`, `dir`, … (of the newer entry, or the removed one).
    pub kind: String,
}

/// The differences between the trees `a` (older) and `b`, in path order.
pub fn run(repo: &Repository, a: TreeId, b: TreeId) -> Result<Vec<Difference>> {
    let _lock = repo.lock(false, "diff")?;
    let mut out = Vec::new();
    trees(repo, Some(a), Some(b), "", 0, &mut out)?;
    Ok(out)
}

fn trees(
    repo: &Repository,
    a: Option<TreeId>,
    b: Option<TreeId>,
    dir: &str,
    depth: usize,
    out: &mut Vec<Difference>,
) -> Result<()> {
    if a == b || depth > MAX_DEPTH {
        return Ok(());
    }
    let load = |t: Option<TreeId>| -> Result<Vec<Node>> {
        Ok(match t {
            Some(t) => repo.load_tree(t)?.nodes,
            None => Vec::new(),
        })
    };
    let (old, new) = (load(a)?, load(b)?);
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (x, y) = match order {
            std::cmp::Ordering::Less => (old.get(i), None),
            std::cmp::Ordering::Greater => (None, new.get(j)),
            std::cmp::Ordering::Equal => (old.get(i), new.get(j)),
        };
        i += usize::from(x.is_some());
        j += usize::from(y.is_some());
        entry(repo, x, y, dir, depth, out)?;
    }
    Ok(())
}

fn entry(
    repo: &Repository,
    x: Option<&Node>,
    y: Option<&Node>,
    dir: &str,
    depth: usize,
    out: &mut Vec<Difference>,
) -> Result<()> {
    let n = y.or(x).expect("one side is present");
    let name = crate::model::tree::escape(&n.name);
    let path = if dir.is_empty() {
        name
    } else {
        format!("{dir}/{name}")
    };
    let change = match (x, y) {
        (None, Some(_)) => Some(Change::Added),
        (Some(_), None) => Some(Change::Removed),
        (Some(x), Some(y)) if x.kind != y.kind || !same_content(x, y) => Some(Change::Changed),
        (Some(x), Some(y))
            if (x.mode, x.uid, x.gid, x.mtime_ns) != (y.mode, y.uid, y.gid, y.mtime_ns) =>
        {
            Some(Change::Metadata)
        }
        _ => None,
    };
    // A folder's own mtime moves whenever an entry in it does: the entries
    // below say more, so a folder whose mtime alone changed is not listed.
    let folder_noise = match (x, y) {
        (Some(x), Some(y)) => {
            x.kind == NodeKind::Dir
                && y.kind == NodeKind::Dir
                && (x.mode, x.uid, x.gid) == (y.mode, y.uid, y.gid)
        }
        _ => false,
    } && change == Some(Change::Metadata);
    if let Some(change) = change.filter(|_| !folder_noise) {
        out.push(Difference {
            path: path.clone(),
            change,
            kind: format!("{:?}", n.kind).to_lowercase(),
        });
    }
    let sub = |n: Option<&Node>| {
        n.filter(|n| n.kind == NodeKind::Dir)
            .and_then(|n| n.subtree)
    };
    if sub(x).is_some() || sub(y).is_some() {
        trees(repo, sub(x), sub(y), &path, depth + 1, out)?;
    }
    Ok(())
}

/// Same bytes: the same chunk ids (or chunk lists), size, link target and device.
fn same_content(x: &Node, y: &Node) -> bool {
    x.content == y.content
        && x.lists == y.lists
        && x.size == y.size
        && x.target == y.target
        && x.rdev == y.rdev
        && (x.kind == NodeKind::Dir || x.subtree == y.subtree)
}
