//! `dump SNAPSHOT PATH`: one file of a snapshot to standard output, byte for byte
//! (each chunk checked as on restore), or a folder as a plain tar; nothing is
//! written to disk. What `restic dump` does, for `| less`, `| psql`, `> copy.pdf`.

use std::io::Write;

use crate::error::{Error, Result};
use crate::model::snapshot::SnapshotEntry;
use crate::model::tree::{Node, NodeKind};
use crate::repo::Repository;

/// What `dump` wrote.
#[derive(Debug, Default, serde::Serialize)]
pub struct DumpReport {
    /// `file` or `tar`.
    pub format: &'static str,
    pub bytes: u64,
    pub files: u64,
}

/// The node at `path` (components separated by `/`, starting with the source's
/// name, as `ls` shows them).
/// Write `path` of `snap` to `out` (a file as it is, a folder as tar), under
/// a shared lock.
pub fn run(
    repo: &Repository,
    snap: &SnapshotEntry,
    path: &str,
    out: &mut dyn Write,
) -> Result<DumpReport> {
    let _lock = repo.lock(false, "dump")?;
    let node = find(repo, snap, path)?;
    write(repo, &node, out)
}

pub fn find(repo: &Repository, snap: &SnapshotEntry, path: &str) -> Result<Node> {
    let missing = || {
        Error::Usage(format!(
            "{path} is not in snapshot {} (see `hcbackup ls {}`)",
            snap.id.short(),
            snap.id.short()
        ))
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(Error::Usage(
            "give the PATH of a file or folder, as `hcbackup ls` shows it".into(),
        ));
    }
    let mut tree = repo.load_tree(snap.snapshot.tree)?;
    for (i, part) in parts.iter().enumerate() {
        let node = tree
            .nodes
            .iter()
            .find(|n| n.name.as_ref() as &[u8] == part.as_bytes())
            .cloned()
            .ok_or_else(missing)?;
        if i + 1 == parts.len() {
            return Ok(node);
        }
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(t)) => tree = repo.load_tree(t)?,
            _ => return Err(missing()),
        }
    }
    Err(missing())
}

/// Write `n` to `out`: a file's bytes, or a folder as tar. A reader that goes
/// away (`| head`) ends it quietly.
pub fn write(repo: &Repository, n: &Node, out: &mut dyn Write) -> Result<DumpReport> {
    let quiet_pipe = |r: Result<DumpReport>| match r {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(DumpReport::default())
        }
        other => other,
    };
    match n.kind {
        NodeKind::File => quiet_pipe(file(repo, n, out)),
        NodeKind::Dir => quiet_pipe(super::export_tar::write_entry(repo, n, &n.name, out).map(
            |r| DumpReport {
                format: "tar",
                bytes: r.bytes,
                files: r.files,
            },
        )),
        _ => Err(Error::Usage(format!(
            "{} is a {:?}, not a file or folder: see it with `hcbackup ls`",
            crate::model::tree::escape(&n.name),
            n.kind
        ))),
    }
}

fn file(repo: &Repository, n: &Node, out: &mut dyn Write) -> Result<DumpReport> {
    let mut written = 0u64;
    for c in repo.node_content(n)?.iter() {
        let data = repo.read_blob(crate::crypto::Kind::Data, (*c).into())?;
        out.write_all(&data)
            .map_err(|e| Error::io("writing to standard output", e))?;
        written += data.len() as u64;
    }
    // A size the chunks do not reach (a tree hcbackup did not write): zeros, as restore.
    if written < n.size {
        let mut zeros = std::io::Read::take(std::io::repeat(0), n.size - written);
        std::io::copy(&mut zeros, out).map_err(|e| Error::io("writing to standard output", e))?;
    }
    out.flush()
        .map_err(|e| Error::io("writing to standard output", e))?;
    Ok(DumpReport {
        format: "file",
        bytes: n.size,
        files: 1,
    })
}
