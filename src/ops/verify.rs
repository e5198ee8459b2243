//! `verify`: check that every snapshot can be restored, without restoring it.
//!
//! Structure: every snapshot's trees (files and database dumps) load (authenticated, id re-hashed), every chunk
//! a file needs is indexed, and every indexed pack exists with its recorded size.
//! `--read-data` also reads every pack: its bytes must hash to its name, its header
//! must authenticate, and every blob in it must decrypt and hash to its id.
//! Problems are collected, each naming the object and, where known, the snapshot
//! and file that need it; the caller turns a non-empty list into exit 1.

use std::collections::{HashMap, HashSet};

use crate::crypto::Kind;
use crate::error::Result;
use crate::id::{PackId, TreeId};
use crate::model::tree::NodeKind;
use crate::repo::Repository;
use crate::storage::pack_path;

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub snapshots: u64,
    pub trees: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub blobs_read: u64,
    pub problems: Vec<String>,
}

pub fn run(repo: &Repository, read_data: bool) -> Result<VerifyReport> {
    let _lock = repo.lock(false, "verify")?;
    let mut r = VerifyReport::default();
    let snapshots = match repo.snapshots() {
        Ok(s) => s,
        Err(e) => {
            r.problems.push(e.to_string());
            Vec::new()
        }
    };
    let mut seen: HashSet<TreeId> = HashSet::new();
    for s in &snapshots {
        r.snapshots += 1;
        let label = format!("snapshot {}", s.id.short());
        check_tree(repo, s.snapshot.tree, &label, "", &mut seen, &mut r)?;
        for d in &s.snapshot.databases {
            if let Some(t) = d.tree {
                let path = format!("[database {}]", d.db);
                check_tree(repo, t, &label, &path, &mut seen, &mut r)?;
            }
        }
    }
    let present: Vec<(PackId, u64)> = repo
        .backend()
        .list("packs")?
        .into_iter()
        .filter_map(|(n, size)| Some((PackId::from_hex(n.rsplit('/').next()?)?, size)))
        .collect();
    let sizes: HashMap<PackId, u64> = present.iter().copied().collect();
    for (id, size) in repo.catalog().packs()? {
        r.packs += 1;
        match sizes.get(&id) {
            None => r.problems.push(format!("pack {} is missing", id.to_hex())),
            Some(&actual) if actual != size => r.problems.push(format!(
                "pack {} has {actual} bytes, the index says {size}",
                id.to_hex()
            )),
            Some(_) => {}
        }
    }
    if read_data {
        for (id, size) in &present {
            read_pack(repo, id, *size, &mut r);
        }
    }
    Ok(r)
}

fn check_tree(
    repo: &Repository,
    id: TreeId,
    snap: &str,
    path: &str,
    seen: &mut HashSet<TreeId>,
    r: &mut VerifyReport,
) -> Result<()> {
    if !seen.insert(id) {
        return Ok(());
    }
    r.trees += 1;
    let tree = match repo.load_tree(id) {
        Ok(t) => t,
        Err(e) => {
            r.problems.push(format!(
                "{snap}: folder {}: {e}",
                if path.is_empty() { "/" } else { path }
            ));
            return Ok(());
        }
    };
    for n in &tree.nodes {
        let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
        match n.kind {
            NodeKind::Dir => match n.subtree {
                Some(t) => check_tree(repo, t, snap, &p, seen, r)?,
                None => r.problems.push(format!("{snap}: folder {p} has no tree")),
            },
            NodeKind::File => {
                let content = match repo.node_content(n) {
                    Ok(c) => c,
                    Err(e) => {
                        r.problems.push(format!("{snap}: file {p}: {e}"));
                        continue;
                    }
                };
                for c in content.iter() {
                    if !repo.catalog().has_blob(&(*c).into())? {
                        r.problems.push(format!(
                            "{snap}: file {p} needs chunk {} that no index lists",
                            hex::encode(&c.0[..4])
                        ));
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn read_pack(repo: &Repository, id: &PackId, size: u64, r: &mut VerifyReport) {
    r.packs_read += 1;
    let name = id.to_hex();
    let bytes = match repo.backend().get(&pack_path(id)) {
        Ok(b) => b,
        Err(e) => return r.problems.push(format!("pack {name}: {e}")),
    };
    if blake3::hash(&bytes).as_bytes() != &id.0 {
        r.problems.push(format!(
            "pack {name}: content does not match its name (damaged)"
        ));
    }
    let entries = match repo.read_pack_header(id, size) {
        Ok(e) => e,
        Err(e) => return r.problems.push(e.to_string()),
    };
    let key = repo.key();
    for e in entries {
        r.blobs_read += 1;
        let Some(sealed) = bytes.get(e.offset as usize..(e.offset + e.length as u64) as usize)
        else {
            r.problems.push(format!(
                "pack {name}: blob {} lies outside the pack",
                hex::encode(&e.id[..4])
            ));
            continue;
        };
        let ok = crate::codec::decode(key, e.kind, &e.id, sealed, e.raw_length as usize).is_ok_and(
            |plain| key.id_of(&plain) == e.id && (e.kind == Kind::Data || e.kind == Kind::Tree),
        );
        if !ok {
            r.problems.push(format!(
                "pack {name}: {} {} is damaged",
                e.kind.name(),
                hex::encode(&e.id[..4])
            ));
        }
    }
}
