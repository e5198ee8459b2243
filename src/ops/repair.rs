//! `repair`: heal one copy from the others.
//!
//! `verify` (with the same read mode) lists what is wrong in the copy. Then:
//! - a damaged or missing pack, snapshot manifest or index object is replaced by
//!   the first other copy's object of the same name that checks good (a pack must
//!   hash to its name; a manifest or index object must authenticate and hash to its
//!   id) — a bad copy is never spread;
//! - packs that hold needed data but no index object lists are indexed again from
//!   their authenticated headers (no other copy needed);
//! - needed blobs no pack here holds are looked up in the other copies' catalogs
//!   and their packs copied over, checked, then indexed.
//!
//! `verify` runs again at the end; what it still finds is what could not be healed,
//! with the snapshots and files it affects.

use std::collections::BTreeSet;

use crate::crypto::Kind;
use crate::error::Result;
use crate::id::{BlobId, ObjectId, PackId};
use crate::ops::verify::{self, ReadMode, VerifyReport};
use crate::repo::Repository;
use crate::storage::pack_path;

#[derive(Debug, Default, serde::Serialize)]
pub struct RepairReport {
    pub copy: String,
    pub location: String,
    /// Objects replaced or added, each with the copy it came from.
    pub healed: Vec<String>,
    /// Index objects written for packs that had lost theirs.
    pub indexes_written: u64,
    /// The verify run after the repair: its problems are what could not be healed.
    pub after: VerifyReport,
}

/// Heal `target` (named `copy`) from `sources` (name, copy).
pub fn run(
    target: &Repository,
    copy: &str,
    sources: &[(String, &Repository)],
    read: ReadMode,
) -> Result<RepairReport> {
    let before = verify::run(target, copy, read)?;
    let mut r = RepairReport {
        copy: copy.to_string(),
        location: target.backend().location(),
        ..Default::default()
    };
    {
        // Shared: a prune must not run meanwhile; snapshots and mirrors may.
        let _lock = target.lock(false, "repair")?;
        let mut wanted: BTreeSet<String> = before.damaged.iter().cloned().collect();
        // Needed blobs no pack here holds: find their packs elsewhere.
        for (kind, blob) in &before.missing_blobs {
            for (_, src) in sources {
                if let Some(loc) = src.catalog().lookup(*kind, &BlobId(*blob))? {
                    wanted.insert(pack_path(&loc.pack));
                    break;
                }
            }
        }
        for path in &wanted {
            for (name, src) in sources {
                if let Some(data) = good_copy(src, path) {
                    target.backend().put(path, &data)?;
                    r.healed.push(format!("{path} from {name}"));
                    break;
                }
            }
        }
        // Packs copied in, and packs whose index object was lost, get indexed.
        let lost_indexes: Vec<&String> = wanted
            .iter()
            .filter(|p| p.starts_with("index/") && !r.healed.iter().any(|h| h.starts_with(*p)))
            .collect();
        if !r.healed.is_empty() || !before.unindexed.is_empty() || !lost_indexes.is_empty() {
            // An unreadable index object with no good copy anywhere has nothing
            // left to say: it goes first (the new index object for the same packs
            // may well have its very name), and its packs count as unindexed,
            // even where this catalog loaded it while it still read back. A crash
            // before the new index is written leaves packs found by their headers.
            for p in &lost_indexes {
                if let Some(id) = p.strip_prefix("index/").and_then(ObjectId::from_hex) {
                    target.catalog().forget_index(&id)?;
                }
                target.backend().delete(p)?;
            }
            target.recover_packs()?;
            r.indexes_written = target.write_index()?.len() as u64;
            for p in lost_indexes {
                r.healed.push(format!(
                    "{p} removed (unreadable; its packs are indexed again)"
                ));
            }
        }
    }
    r.after = verify::run(target, copy, read)?;
    Ok(r)
}

/// `path` from `src` when that copy's object checks good.
fn good_copy(src: &Repository, path: &str) -> Option<Vec<u8>> {
    let (dir, name) = path.split_once('/')?;
    let data = src.backend().get(path).ok()?;
    let ok = match dir {
        "packs" => {
            let id = PackId::from_hex(name.rsplit('/').next()?)?;
            blake3::hash(&data).as_bytes() == &id.0
        }
        "snapshots" | "index" => {
            let id = ObjectId::from_hex(name)?;
            let kind = if dir == "index" {
                Kind::Index
            } else {
                Kind::Snapshot
            };
            crate::codec::decode(src.key(), kind, &id.0, &data, 512 << 20)
                .is_ok_and(|plain| src.key().id_of(&plain) == id.0)
        }
        _ => false,
    };
    ok.then_some(data)
}
