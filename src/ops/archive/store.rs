//! What archiving needs from a repository, and no more: blob ids, a place for
//! new blobs, and the file cache. The repository with its pack writer is one
//! such store; the unit tests use one in memory, so the walk and the chunk
//! pipeline are tested without a repository on disk.

use crate::catalog::{DirCache, DirRow};
use crate::crypto::Kind;
use crate::error::Result;
use crate::id::ChunkId;
use crate::repo::{BlobWriter, Repository};

pub trait Store: Sync {
    /// A blob's id: the keyed hash of its plaintext.
    fn id_of(&self, data: &[u8]) -> [u8; 32];
    /// A keyed hash for `domain` (file-cache keys, hard-link groups).
    fn derived_hash(&self, domain: &str, data: &[u8]) -> [u8; 32];
    /// Store a blob unless it is stored already; true when it was new.
    fn add(&self, kind: Kind, id: [u8; 32], plain: &[u8]) -> Result<bool>;
    /// A folder's file-cache row.
    fn dir_cache(&self, key: &[u8; 32]) -> Result<DirRow>;
    /// For each chunk list, whether every chunk of it is stored.
    fn has_all_many(&self, lists: &[&[ChunkId]]) -> Result<Vec<bool>>;
    /// Replace a folder's file-cache row, written by run `run`.
    fn put_dir_cache(&self, key: &[u8; 32], entries: &DirCache, run: i64) -> Result<()>;
}

/// A repository and the pack writer of this run.
pub struct RepoStore<'a> {
    pub repo: &'a Repository,
    pub writer: &'a BlobWriter<'a>,
}

impl Store for RepoStore<'_> {
    fn id_of(&self, data: &[u8]) -> [u8; 32] {
        self.repo.key().id_of(data)
    }

    fn derived_hash(&self, domain: &str, data: &[u8]) -> [u8; 32] {
        self.repo.key().derived_hash(domain, data)
    }

    fn add(&self, kind: Kind, id: [u8; 32], plain: &[u8]) -> Result<bool> {
        self.writer.add(kind, id, plain)
    }

    fn dir_cache(&self, key: &[u8; 32]) -> Result<DirRow> {
        self.repo.catalog().dir_cache(key)
    }

    fn has_all_many(&self, lists: &[&[ChunkId]]) -> Result<Vec<bool>> {
        self.repo.catalog().has_all_many(lists)
    }

    fn put_dir_cache(&self, key: &[u8; 32], entries: &DirCache, run: i64) -> Result<()> {
        self.repo.catalog().put_dir_cache(key, entries, run)
    }
}
