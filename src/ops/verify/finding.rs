//! What `verify` finds wrong, as values: the object and the problem, with the
//! line that tells a person. `repair` works from the object and the problem;
//! only rendering uses the line.

use crate::id::{ObjectId, PackId};
use crate::storage::pack_path;

/// What a finding is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Object {
    Pack(PackId),
    Index(ObjectId),
    Snapshot(ObjectId),
    /// The record of a file PostgreSQL archived (`wal/<id>`).
    Wal(ObjectId),
    /// A folder or file of a snapshot (its trees, chunk lists or chunks).
    Entry {
        snapshot: String,
        path: String,
    },
    /// The copy as a whole (it cannot be opened).
    Copy,
}

impl Object {
    /// The storage path of an object that is stored whole (pack, index
    /// object, snapshot manifest); `None` for an entry.
    pub fn path(&self) -> Option<String> {
        match self {
            Object::Pack(id) => Some(pack_path(id)),
            Object::Index(id) => Some(format!("index/{}", id.to_hex())),
            Object::Snapshot(id) => Some(format!("snapshots/{}", id.to_hex())),
            Object::Wal(id) => Some(format!("wal/{}", id.to_hex())),
            Object::Entry { .. } | Object::Copy => None,
        }
    }
}

/// What is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not there (or needs data no index lists).
    Missing,
    /// There, but does not read back as written.
    Damaged,
    /// Holds data snapshots need, but no index object lists it.
    Unindexed,
    /// Could not be checked (the network, the storage): not known to be bad.
    Unreadable,
}

/// One finding.
#[derive(Clone, Debug)]
pub struct Finding {
    pub object: Object,
    pub problem: Problem,
    /// The line for a person: names the object and what to do.
    pub message: String,
}

impl Finding {
    pub fn new(object: Object, problem: Problem, message: impl Into<String>) -> Finding {
        Finding {
            object,
            problem,
            message: message.into(),
        }
    }

    /// Whether a good copy of the object from another copy heals it: a stored
    /// object that is missing or damaged.
    pub fn replaceable(&self) -> bool {
        self.object.path().is_some() && matches!(self.problem, Problem::Missing | Problem::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stored_objects_that_are_bad_are_replaced() {
        let pack = Object::Pack(PackId([1; 32]));
        assert!(Finding::new(pack.clone(), Problem::Damaged, "x").replaceable());
        assert!(!Finding::new(pack.clone(), Problem::Unreadable, "x").replaceable());
        assert!(!Finding::new(pack, Problem::Unindexed, "x").replaceable());
        let entry = Object::Entry {
            snapshot: "snapshot 1".into(),
            path: "/a".into(),
        };
        assert!(!Finding::new(entry, Problem::Missing, "x").replaceable());
        assert_eq!(
            Object::Index(ObjectId([2; 32])).path().unwrap(),
            format!("index/{}", "02".repeat(32))
        );
    }
}
