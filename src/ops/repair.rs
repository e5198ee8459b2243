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
use crate::id::{BlobId, ObjectId};
use crate::ops::verify::{self, Object, ReadMode, VerifyReport};
use crate::repo::Repository;

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
        let mut wanted: BTreeSet<Object> = before.damaged().into_iter().cloned().collect();
        // Needed blobs no pack here holds: find their packs elsewhere.
        for (kind, blob) in &before.missing_blobs {
            for (_, src) in sources {
                if let Some(loc) = src.catalog().lookup(*kind, &BlobId(*blob))? {
                    wanted.insert(Object::Pack(loc.pack));
                    break;
                }
            }
        }
        let mut healed: BTreeSet<&Object> = BTreeSet::new();
        for object in &wanted {
            let Some(path) = object.path() else { continue };
            for (name, src) in sources {
                if let Some(data) = good_copy(src, object) {
                    target.put_checked(&path, &data)?;
                    r.healed.push(format!("{path} from {name}"));
                    healed.insert(object);
                    break;
                }
            }
        }
        // Packs copied in, and packs whose index object was lost, get indexed.
        let lost_indexes: Vec<ObjectId> = wanted
            .iter()
            .filter(|o| !healed.contains(o))
            .filter_map(|o| match o {
                Object::Index(id) => Some(*id),
                _ => None,
            })
            .collect();
        if !healed.is_empty() || !before.unindexed().is_empty() || !lost_indexes.is_empty() {
            // An unreadable index object with no good copy anywhere has nothing
            // left to say: it goes first (the new index object for the same packs
            // may well have its very name), and its packs count as unindexed,
            // even where this catalog loaded it while it still read back. A crash
            // before the new index is written leaves packs found by their headers.
            for id in &lost_indexes {
                target.catalog().forget_index(id)?;
                target.remove_index(id)?;
            }
            target.recover_packs()?;
            r.indexes_written = target.write_index()?.len() as u64;
            for id in lost_indexes {
                r.healed.push(format!(
                    "index/{} removed (unreadable; its packs are indexed again)",
                    id.to_hex()
                ));
            }
        }
    }
    r.after = verify::run(target, copy, read)?;
    Ok(r)
}

/// `object` from `src` when that copy's is good: a pack must hash to its name;
/// a manifest or index object must authenticate and hash to its id.
fn good_copy(src: &Repository, object: &Object) -> Option<Vec<u8>> {
    let data = src.backend().get(&object.path()?).ok()?;
    let ok = match object {
        Object::Pack(id) => blake3::hash(&data).as_bytes() == &id.0,
        Object::Index(id) | Object::Snapshot(id) => {
            let kind = if matches!(object, Object::Index(_)) {
                Kind::Index
            } else {
                Kind::Snapshot
            };
            crate::codec::decode(src.key(), kind, &id.0, &data, 512 << 20)
                .is_ok_and(|plain| src.key().id_of(&plain) == id.0)
        }
        // Opens under the key, sealed under its id, the record of that name.
        Object::Wal(id) => crate::codec::decode(src.key(), Kind::Wal, &id.0, &data, 1 << 20)
            .ok()
            .and_then(|plain| crate::model::wal::WalRecord::from_bytes(&plain).ok())
            .is_some_and(|w| src.wal_id(&w.name) == *id),
        Object::Entry { .. } | Object::Copy => false,
    };
    ok.then_some(data)
}
