//! A synthetic repository for the scale harness (issue #20, `benches/scale.rs`,
//! `tests/scale.rs`): the metadata of a large repository — index objects,
//! trees, daily snapshots — made quickly, without its content.
//!
//! Data packs are placeholders of the size their index gives (written by the
//! caller: a sparse file on a local folder, zeros in a bucket), so every command
//! that reads only metadata — prune, forget, verify without `--read-data`,
//! stats, snapshots, a catalog rebuild, a nightly snapshot of other files —
//! runs on it as on a real repository of that size. Reading the data fails, as
//! it should. Trees and manifests are real, sealed objects.
//!
//! The shape: `files` files in folders of `FILES_PER_DIR`, sharing the first
//! chunks, in one archive folder every snapshot holds; each day adds one file
//! of `daily_chunks` new chunks of its own.

use super::{BlobWriter, Repository};
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ChunkId, ObjectId, PackId, TreeId};
use crate::model::index::{self, Index, IndexedPack};
use crate::model::snapshot::{Snapshot, Summary};
use crate::model::tree::{Node, NodeKind, Tree};
use crate::pack::PackEntry;
use crate::storage::pack_path;

/// Files per folder of the archive.
pub const FILES_PER_DIR: u64 = 1000;
/// The length the index gives each synthetic chunk (bytes of placeholder).
pub const CHUNK_LEN: u32 = 64;

/// What to make.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Data chunks in all.
    pub chunks: u64,
    /// Files in the archive every snapshot holds.
    pub files: u64,
    /// Daily snapshots.
    pub snapshots: u64,
    /// New chunks each day (one new file).
    pub daily_chunks: u64,
    /// Chunks per pack (16: 1 MiB file chunks in 16 MiB packs).
    pub blobs_per_pack: u64,
}

/// What was made.
#[derive(Debug, Default)]
pub struct Made {
    pub packs: u64,
    pub index_objects: u64,
    pub trees: u64,
    pub snapshots: Vec<ObjectId>,
}

impl Shape {
    /// Chunks the archive's files share (the rest are the days' own).
    fn archive_chunks(&self) -> Result<u64> {
        let daily = self.snapshots * self.daily_chunks;
        match self.chunks.checked_sub(daily) {
            Some(a) if a >= self.files && self.blobs_per_pack > 0 => Ok(a),
            _ => Err(Error::Usage(
                "synthetic shape: too few chunks for its files and days".into(),
            )),
        }
    }
}

/// Make the repository's metadata. `put_pack(path, size)` stores a placeholder
/// pack of `size` bytes at `path`.
pub fn generate(
    repo: &Repository,
    shape: &Shape,
    put_pack: &mut dyn FnMut(&str, u64) -> Result<()>,
) -> Result<Made> {
    let _lock = repo.lock_to_write("synthetic")?;
    let archive = shape.archive_chunks()?;
    let mut made = Made::default();
    data_packs(repo, shape, put_pack, &mut made)?;
    let writer = BlobWriter::new(repo);
    let shared = archive_tree(repo, &writer, shape, archive, &mut made);
    let roots = shared.and_then(|s| daily_roots(repo, &writer, shape, archive, s, &mut made));
    let roots = writer.flush_after(roots)?;
    made.index_objects += repo.write_index()?.len() as u64;
    let first = crate::util::now() - time::Duration::days(shape.snapshots as i64);
    for (d, root) in roots.into_iter().enumerate() {
        let t = first + time::Duration::days(d as i64);
        made.snapshots
            .push(repo.write_snapshot(&manifest(t, root))?);
    }
    Ok(made)
}

fn chunk_id(repo: &Repository, n: u64) -> ChunkId {
    ChunkId(repo.key().derived_hash("synthetic chunk", &n.to_le_bytes()))
}

/// The data packs and the index objects listing them, a full index object
/// at a time.
fn data_packs(
    repo: &Repository,
    shape: &Shape,
    put_pack: &mut dyn FnMut(&str, u64) -> Result<()>,
    made: &mut Made,
) -> Result<()> {
    let mut batch: Vec<IndexedPack> = Vec::new();
    let mut ranges = pack_ranges(shape, shape.archive_chunks()?).peekable();
    while let Some(range) = ranges.next() {
        let (next, n) = (range.start, range.end - range.start);
        let blobs: Vec<PackEntry> = (0..n)
            .map(|k| PackEntry {
                kind: Kind::Data,
                id: chunk_id(repo, next + k).0,
                offset: k * CHUNK_LEN as u64,
                length: CHUNK_LEN,
                raw_length: CHUNK_LEN,
            })
            .collect();
        let id = PackId(
            repo.key()
                .derived_hash("synthetic pack", &next.to_le_bytes()),
        );
        let size = n * CHUNK_LEN as u64;
        put_pack(&pack_path(&id), size)?;
        batch.push(IndexedPack { id, size, blobs });
        made.packs += 1;
        if batch.len() == super::PACKS_PER_INDEX || ranges.peek().is_none() {
            let ix = Index::of(std::mem::take(&mut batch));
            repo.write_object(Kind::Index, "index", &index::encode(&ix))?;
            made.index_objects += 1;
        }
    }
    Ok(())
}

/// The chunks of each pack: the archive's `blobs_per_pack` at a time, then
/// each day's in packs of their own (so a forgotten day's pack is wholly
/// unused: prune condemns it, and never has to repack a placeholder).
fn pack_ranges(shape: &Shape, archive: u64) -> impl Iterator<Item = std::ops::Range<u64>> + '_ {
    let per = shape.blobs_per_pack;
    let split = move |r: std::ops::Range<u64>| {
        (r.start..r.end)
            .step_by(per as usize)
            .map(move |s| s..(s + per).min(r.end))
    };
    let days = (0..shape.snapshots).map(move |d| {
        let s = archive + d * shape.daily_chunks;
        s..s + shape.daily_chunks
    });
    std::iter::once(0..archive).chain(days).flat_map(split)
}

fn store(
    repo: &Repository,
    w: &BlobWriter<'_>,
    nodes: Vec<Node>,
    made: &mut Made,
) -> Result<TreeId> {
    let bytes = Tree::new(nodes).to_bytes();
    let id = repo.key().id_of(&bytes);
    if w.add(Kind::Tree, id, &bytes)? {
        made.trees += 1;
    }
    Ok(TreeId(id))
}

fn node(name: String, kind: NodeKind) -> Node {
    Node {
        name: name.into_bytes().into(),
        kind,
        mode: if kind == NodeKind::Dir { 0o750 } else { 0o640 },
        uid: 1000,
        gid: 1000,
        mtime_ns: 1_700_000_000_000_000_000,
        size: 0,
        content: Vec::new(),
        lists: Vec::new(),
        subtree: None,
        target: None,
        rdev: 0,
        link: 0,
    }
}

fn file(repo: &Repository, name: String, chunks: std::ops::Range<u64>) -> Node {
    let mut n = node(name, NodeKind::File);
    n.size = (chunks.end - chunks.start) << 20;
    n.content = chunks.map(|c| chunk_id(repo, c)).collect();
    n
}

fn dir(name: &str, subtree: TreeId) -> Node {
    let mut n = node(name.to_string(), NodeKind::Dir);
    n.subtree = Some(subtree);
    n
}

/// The archive: `files` files over the first `archive` chunks, in folders.
fn archive_tree(
    repo: &Repository,
    w: &BlobWriter<'_>,
    shape: &Shape,
    archive: u64,
    made: &mut Made,
) -> Result<TreeId> {
    let span = |f: u64| f * archive / shape.files..(f + 1) * archive / shape.files;
    let mut dirs = Vec::new();
    for d in 0..shape.files.div_ceil(FILES_PER_DIR) {
        let files = (d * FILES_PER_DIR..((d + 1) * FILES_PER_DIR).min(shape.files))
            .map(|f| file(repo, format!("exame-{f:08}.dcm"), span(f)))
            .collect();
        dirs.push(dir(&format!("{d:05}"), store(repo, w, files, made)?));
    }
    store(repo, w, dirs, made)
}

/// Each day's root: the archive, and that day's own file.
fn daily_roots(
    repo: &Repository,
    w: &BlobWriter<'_>,
    shape: &Shape,
    archive: u64,
    shared: TreeId,
    made: &mut Made,
) -> Result<Vec<TreeId>> {
    let mut roots = Vec::new();
    for d in 0..shape.snapshots {
        let first = archive + d * shape.daily_chunks;
        let day = file(
            repo,
            format!("dia-{d:05}.mp4"),
            first..first + shape.daily_chunks,
        );
        let novos = store(repo, w, vec![day], made)?;
        roots.push(store(
            repo,
            w,
            vec![dir("arquivo", shared), dir("novos", novos)],
            made,
        )?);
    }
    Ok(roots)
}

fn manifest(t: time::OffsetDateTime, root: TreeId) -> Snapshot {
    Snapshot {
        version: 1,
        time: crate::util::rfc3339(t),
        host: "clinica".into(),
        user: "backup".into(),
        tags: Vec::new(),
        paths: vec!["/srv/clinica/uploads".into()],
        names: vec!["uploads".into()],
        tree: root,
        summary: Summary::default(),
        errors: Vec::new(),
        databases: Vec::new(),
        written: crate::model::snapshot::written(t, crate::util::now()),
        original: None,
        physical: None,
    }
}
