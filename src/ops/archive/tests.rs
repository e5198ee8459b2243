//! The walk and the chunk pipeline against a store in memory: what is stored,
//! what is stored once, and what the file cache spares.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::*;
use crate::catalog::DirRow;
use crate::chunker::FILE_CHUNKS;
use crate::crypto::MasterKey;
use crate::progress::NoProgress;

type Blobs = HashMap<[u8; 32], (Kind, Vec<u8>)>;

/// Blobs and the file cache in memory.
struct MemStore {
    key: MasterKey,
    blobs: Mutex<Blobs>,
    dirs: Mutex<HashMap<[u8; 32], (DirCache, i64)>>,
    /// Blobs that were new when added.
    added: AtomicU64,
}

impl MemStore {
    fn new() -> MemStore {
        MemStore {
            key: MasterKey::generate(),
            blobs: Mutex::default(),
            dirs: Mutex::default(),
            added: AtomicU64::new(0),
        }
    }

    fn blob(&self, id: &[u8; 32]) -> Vec<u8> {
        self.blobs.lock().unwrap()[id].1.clone()
    }

    fn tree(&self, id: TreeId) -> Tree {
        Tree::from_bytes(&self.blob(&id.0)).unwrap()
    }

    fn content(&self, node: &Node) -> Vec<u8> {
        node.content.iter().flat_map(|c| self.blob(&c.0)).collect()
    }
}

impl Store for MemStore {
    fn id_of(&self, data: &[u8]) -> [u8; 32] {
        self.key.id_of(data)
    }

    fn derived_hash(&self, domain: &str, data: &[u8]) -> [u8; 32] {
        self.key.derived_hash(domain, data)
    }

    fn add(&self, kind: Kind, id: [u8; 32], plain: &[u8]) -> Result<bool> {
        assert_eq!(id, self.key.id_of(plain), "a blob added under another id");
        let new = self
            .blobs
            .lock()
            .unwrap()
            .insert(id, (kind, plain.to_vec()))
            .is_none();
        if new {
            self.added.fetch_add(1, Ordering::Relaxed);
        }
        Ok(new)
    }

    fn dir_cache(&self, key: &[u8; 32]) -> Result<DirRow> {
        Ok(match self.dirs.lock().unwrap().get(key) {
            Some((files, run)) => DirRow {
                files: files.clone(),
                run: *run,
            },
            None => DirRow::default(),
        })
    }

    fn has_all_many(&self, lists: &[&[ChunkId]]) -> Result<Vec<bool>> {
        let blobs = self.blobs.lock().unwrap();
        Ok(lists
            .iter()
            .map(|l| l.iter().all(|c| blobs.contains_key(&c.0)))
            .collect())
    }

    fn put_dir_cache(&self, key: &[u8; 32], entries: &DirCache, run: i64) -> Result<()> {
        self.dirs
            .lock()
            .unwrap()
            .insert(*key, (entries.clone(), run));
        Ok(())
    }
}

/// Archive `root` as run `run`, trusting the file-cache rows of `trusted`:
/// the root's node and how many bytes were read.
fn archive(store: &MemStore, root: &Path, run: i64, trusted: &[i64]) -> (Node, u64) {
    let chunker = Chunker::new(FILE_CHUNKS, store.key.gear_table());
    let arch = Archiver::new(
        store,
        chunker,
        &NoProgress,
        run,
        trusted.iter().copied().collect(),
    );
    let st = Stat::from(&std::fs::symlink_metadata(root).unwrap());
    let node = arch.node(root, b"uploads", &st).unwrap().unwrap();
    assert!(arch.take_errors().is_empty());
    (node, arch.counters.bytes_read.load(Ordering::Relaxed))
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn by_name<'t>(t: &'t Tree, name: &str) -> &'t Node {
    t.nodes
        .iter()
        .find(|n| n.name.as_slice() == name.as_bytes())
        .unwrap_or_else(|| panic!("no {name} in the tree"))
}

#[test]
fn a_walk_is_stored_as_blobs_that_give_back_what_was_walked() {
    let d = tempfile::tempdir().unwrap();
    let video = noise(3 << 20, 7);
    std::fs::write(d.path().join("note.txt"), b"patient 42").unwrap();
    std::fs::create_dir_all(d.path().join("exams/empty")).unwrap();
    std::fs::write(d.path().join("exams/video.mp4"), &video).unwrap();
    std::os::unix::fs::symlink("note.txt", d.path().join("latest")).unwrap();
    let store = MemStore::new();
    let (root, read) = archive(&store, d.path(), 1, &[]);
    assert_eq!(read, video.len() as u64 + 10);
    assert_eq!(root.kind, NodeKind::Dir);
    let top = store.tree(root.subtree.unwrap());
    let names: Vec<&[u8]> = top.nodes.iter().map(|n| n.name.as_slice()).collect();
    assert_eq!(
        names,
        [&b"exams"[..], b"latest", b"note.txt"],
        "sorted by name"
    );
    assert_eq!(store.content(by_name(&top, "note.txt")), b"patient 42");
    let link = by_name(&top, "latest");
    assert_eq!(
        link.target.as_deref().map(|t| t.as_slice()),
        Some(&b"note.txt"[..])
    );
    let exams = store.tree(by_name(&top, "exams").subtree.unwrap());
    let v = by_name(&exams, "video.mp4");
    assert!(v.content.len() > 1, "a 3 MiB file is one chunk");
    assert_eq!(v.size, video.len() as u64);
    assert_eq!(store.content(v), video);
    let empty = store.tree(by_name(&exams, "empty").subtree.unwrap());
    assert!(empty.nodes.is_empty());
}

#[test]
fn identical_content_is_stored_once() {
    let d = tempfile::tempdir().unwrap();
    let scan = noise(2 << 20, 11);
    std::fs::write(d.path().join("a.dcm"), &scan).unwrap();
    std::fs::write(d.path().join("copy-of-a.dcm"), &scan).unwrap();
    let store = MemStore::new();
    let (root, _) = archive(&store, d.path(), 1, &[]);
    let top = store.tree(root.subtree.unwrap());
    let (a, b) = (by_name(&top, "a.dcm"), by_name(&top, "copy-of-a.dcm"));
    assert_eq!(a.content, b.content);
    // The chunks of one file and one tree: nothing of the copy.
    assert_eq!(
        store.added.load(Ordering::Relaxed),
        a.content.len() as u64 + 1
    );
}

#[test]
fn an_unchanged_file_is_not_read_again_and_a_changed_one_is() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("exams")).unwrap();
    std::fs::write(d.path().join("exams/old.pdf"), noise(1 << 20, 3)).unwrap();
    std::fs::write(d.path().join("today.pdf"), noise(100_000, 5)).unwrap();
    let store = MemStore::new();
    let (first, _) = archive(&store, d.path(), 1, &[]);
    let (second, read) = archive(&store, d.path(), 2, &[1]);
    assert_eq!(read, 0, "an unchanged tree was read again");
    assert_eq!(first.subtree, second.subtree);
    std::fs::write(d.path().join("today.pdf"), noise(120_000, 6)).unwrap();
    let (third, read) = archive(&store, d.path(), 3, &[1, 2]);
    assert_eq!(read, 120_000, "only the changed file is read");
    assert_ne!(third.subtree, second.subtree);
    let top = store.tree(third.subtree.unwrap());
    assert_eq!(store.content(by_name(&top, "today.pdf")), noise(120_000, 6));
}

#[test]
fn a_cached_file_whose_chunks_are_gone_is_read_again() {
    let d = tempfile::tempdir().unwrap();
    let data = noise(1 << 20, 9);
    std::fs::write(d.path().join("scan.dcm"), &data).unwrap();
    let store = MemStore::new();
    let (root, _) = archive(&store, d.path(), 1, &[]);
    let top = store.tree(root.subtree.unwrap());
    let lost = by_name(&top, "scan.dcm").content[0];
    store.blobs.lock().unwrap().remove(&lost.0);
    // Run 1 not trusted (a catalog that may have lost blobs): the chunks are checked.
    let (_, read) = archive(&store, d.path(), 2, &[]);
    assert_eq!(read, data.len() as u64);
    assert!(store.blobs.lock().unwrap().contains_key(&lost.0));
}
