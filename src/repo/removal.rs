//! Removing objects, putting back whole ones and extending their retention
//! locks, for the operations that do (forget, tag, prune, repair): the repository stays the only writer of its
//! storage, and each change happens only while this process's lock holds.

use super::Repository;
use crate::error::Result;
use crate::id::{ObjectId, PackId};
use crate::storage::{pack_path, StorageError};

/// What a removal did.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    /// Gone (or already gone).
    Gone,
    /// Kept by a retention lock (S3 Object Lock) until it expires: why.
    Retained(String),
}

impl Repository {
    /// Remove snapshot `id`'s manifest. Unseen first: killed between the two
    /// steps, this machine does not take its own removal for a manifest
    /// hidden behind its back.
    pub fn remove_snapshot(&self, id: &ObjectId) -> Result<Removed> {
        self.check_lock()?;
        self.catalog().unsee_snapshot(id)?;
        self.remove(&format!("snapshots/{}", id.to_hex()))
    }

    /// Remove the record of the archived file `name` (its data goes with
    /// `prune`). Unseen first, as a manifest is.
    pub fn remove_wal(&self, name: &str) -> Result<Removed> {
        self.check_lock()?;
        let id = self.wal_id(name);
        self.catalog().unsee_wal(&id)?;
        self.remove(&format!("wal/{}", id.to_hex()))
    }

    /// Remove index object `id` (its packs stay).
    pub fn remove_index(&self, id: &ObjectId) -> Result<Removed> {
        self.check_lock()?;
        self.remove(&format!("index/{}", id.to_hex()))
    }

    /// Remove pack `id`.
    pub fn remove_pack(&self, id: &PackId) -> Result<Removed> {
        self.check_lock()?;
        self.remove(&pack_path(id))
    }

    /// Store a whole pack built elsewhere (prune's repacking).
    pub fn put_pack(&self, id: &PackId, bytes: &[u8]) -> Result<()> {
        self.check_lock()?;
        Ok(self.backend().put(&pack_path(id), bytes)?)
    }

    /// Put back an object at `path` whose bytes were checked against its name
    /// (repair's good copy from another copy).
    pub fn put_checked(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.check_lock()?;
        Ok(self.backend().put(path, bytes)?)
    }

    /// Keep the object at `path` under its retention lock until `until` (S3
    /// Object Lock; a no-op elsewhere): prune extends the locks of what stays.
    pub fn extend_retention(&self, path: &str, until: time::OffsetDateTime) -> Result<()> {
        self.check_lock()?;
        Ok(self.backend().extend_retention(path, until)?)
    }

    /// Remove the partial files interrupted runs left, older than `age` (a
    /// local folder's temporary files); how many.
    pub fn remove_stale_partials(&self, age: std::time::Duration) -> Result<usize> {
        self.check_lock()?;
        Ok(self.backend().remove_stale_partials(age)?)
    }

    fn remove(&self, path: &str) -> Result<Removed> {
        match self.backend().delete(path) {
            Ok(()) | Err(StorageError::NotFound(_)) => Ok(Removed::Gone),
            Err(StorageError::Retained(why)) => Ok(Removed::Retained(why)),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Outside `repo/`, nothing writes to or deletes from the repository's own
    /// storage: operations go through the methods above (mirror writes to a
    /// destination's backend, never through `Repository::backend`).
    #[test]
    fn the_repository_is_the_only_writer_of_its_storage() {
        let mut wrong = Vec::new();
        for (rel, text) in crate::source_scan::files() {
            if rel.starts_with("repo/") {
                continue;
            }
            let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let calls = [
                "put(",
                "put_new(",
                "delete(",
                "extend_retention(",
                "remove_stale_partials(",
                "create_layout(",
            ];
            for call in calls {
                if text.contains(&format!("backend().{call}")) {
                    wrong.push(format!("{rel}: backend().{call}"));
                }
            }
        }
        assert!(wrong.is_empty(), "writes around the repository: {wrong:?}");
    }
}
