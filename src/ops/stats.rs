//! `stats`: what the snapshots hold and what it costs to keep them. Sizes come
//! from three places: the manifests (what each snapshot held), the trees (which
//! chunks each source uses, every unchanged folder walked once) and the catalog
//! (each chunk's size before and after compression and encryption).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::scratch::BlobSet;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::model::snapshot::SnapshotEntry;
use crate::model::tree::NodeKind;
use crate::repo::Repository;

#[derive(Debug, Serialize)]
pub struct Stats {
    pub snapshots: usize,
    pub repository: Totals,
    pub sources: Vec<SourceStats>,
    pub per_snapshot: Vec<SnapshotStats>,
}

/// The selected snapshots' totals; `stored_bytes`, `blobs` and the compression
/// ratio are the whole repository's (every chunk and tree, every pack).
#[derive(Debug, Serialize)]
pub struct Totals {
    /// What the selected snapshots hold, added up (files and dumps): what copying
    /// each of them whole would take.
    pub logical_bytes: u64,
    /// The selected snapshots' distinct data chunks, before compression.
    pub raw_bytes: u64,
    /// The pack files.
    pub stored_bytes: u64,
    pub blobs: u64,
    /// `logical_bytes / raw_bytes`: how many times over deduplication saves.
    pub dedup_ratio: f64,
    /// `raw_bytes / stored_bytes`.
    pub compression_ratio: f64,
}

/// One source (a folder, by its name in the snapshots, or a database) across
/// the selected snapshots.
#[derive(Debug, Serialize)]
pub struct SourceStats {
    /// The folder's name (`uploads`) or `database NAME`.
    pub source: String,
    pub snapshots: usize,
    /// Its size in the newest selected snapshot that holds it.
    pub latest_bytes: u64,
    /// Its sizes in every selected snapshot, added up.
    pub logical_bytes: u64,
    /// Its distinct chunks, before and after compression and encryption.
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub dedup_ratio: f64,
}

#[derive(Debug, Serialize)]
pub struct SnapshotStats {
    pub id: String,
    pub short_id: String,
    pub time: String,
    /// Files and dumps it holds.
    pub bytes: u64,
    /// New data it stored when it was made.
    pub bytes_added: u64,
}

/// The source named `name`, made on first use (its chunk set in a scratch
/// file in `dir`).
fn source<'s>(
    sources: &'s mut BTreeMap<String, Source>,
    name: String,
    dir: &Path,
) -> Result<&'s mut Source> {
    if !sources.contains_key(&name) {
        sources.insert(name.clone(), Source::new(dir)?);
    }
    Ok(sources.get_mut(&name).expect("just inserted"))
}

/// The statistics of `snaps` (oldest first). The chunk sets are on disk
/// (scratch files beside the catalog): memory does not grow with the
/// repository.
pub fn run(repo: &Repository, snaps: &[SnapshotEntry]) -> Result<Stats> {
    let _lock = repo.lock(false, "stats")?;
    let dir: PathBuf = repo
        .catalog()
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let mut per_snapshot = Vec::new();
    let mut logical = 0u64;
    for s in snaps {
        let mut bytes = s.snapshot.summary.bytes;
        let root = repo.load_tree(s.snapshot.tree)?;
        for n in &root.nodes {
            let name = String::from_utf8_lossy(&n.name).into_owned();
            let src = source(&mut sources, name, &dir)?;
            let before = src.bytes;
            src.add_node(repo, n)?;
            src.snapshot_done(src.bytes - before);
        }
        for d in s.snapshot.databases.iter().filter(|d| d.ok()) {
            let src = source(&mut sources, format!("database {}", d.db), &dir)?;
            let before = src.bytes;
            if let Some(t) = d.tree {
                src.walk(repo, t, 0)?;
            }
            let size = src.bytes - before;
            bytes += size;
            src.snapshot_done(size);
        }
        if let Some(p) = s.snapshot.physical.as_ref().filter(|p| p.ok()) {
            let name = format!("base backup {}:{}", p.host, p.port);
            let src = source(&mut sources, name, &dir)?;
            let before = src.bytes;
            if let Some(t) = p.tree {
                src.walk(repo, t, 0)?;
            }
            let size = src.bytes - before;
            bytes += size;
            src.snapshot_done(size);
        }
        logical += bytes;
        per_snapshot.push(SnapshotStats {
            id: s.id.to_hex(),
            short_id: s.id.short(),
            time: s.snapshot.time.clone(),
            bytes,
            bytes_added: s.snapshot.summary.bytes_added,
        });
    }
    let (blobs, all_raw) = repo.catalog().blob_totals()?;
    let stored = repo.catalog().pack_bytes()?;
    // The selected snapshots' distinct data: every source's chunks, once.
    let mut union = BlobSet::new(&dir)?;
    for s in sources.values_mut() {
        s.chunks.for_each(|k| union.add(k))?;
    }
    let (raw, _) = sizes_of(repo, &mut union)?;
    Ok(Stats {
        snapshots: snaps.len(),
        repository: Totals {
            logical_bytes: logical,
            raw_bytes: raw,
            stored_bytes: stored,
            blobs,
            dedup_ratio: ratio(logical, raw),
            compression_ratio: ratio(all_raw, stored),
        },
        sources: sources
            .into_iter()
            .map(|(name, s)| s.finish(repo, name))
            .collect::<Result<_>>()?,
        per_snapshot,
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        ((a as f64 / b as f64) * 100.0).round() / 100.0
    }
}

/// The sizes (before compression, sealed) of the data chunks in `set`.
fn sizes_of(repo: &Repository, set: &mut BlobSet) -> Result<(u64, u64)> {
    repo.catalog().data_sizes_in(set.written()?)
}

/// What the walk gathers of one source.
struct Source {
    snapshots: usize,
    latest: u64,
    logical: u64,
    /// Bytes of the snapshot being walked (files' sizes).
    bytes: u64,
    chunks: BlobSet,
    /// Each tree walked, with the file bytes below it: an unchanged folder is
    /// walked once however many snapshots hold it.
    trees: HashMap<TreeId, u64>,
}

impl Source {
    fn new(dir: &Path) -> Result<Source> {
        Ok(Source {
            snapshots: 0,
            latest: 0,
            logical: 0,
            bytes: 0,
            chunks: BlobSet::new(dir)?,
            trees: HashMap::new(),
        })
    }

    fn snapshot_done(&mut self, size: u64) {
        self.snapshots += 1;
        self.latest = size;
        self.logical += size;
    }

    fn add_node(&mut self, repo: &Repository, n: &crate::model::tree::Node) -> Result<()> {
        match (n.kind, n.subtree) {
            (NodeKind::Dir, Some(t)) => self.walk(repo, t, 0),
            (NodeKind::File, _) => {
                self.bytes += n.size;
                for c in repo.node_content(n)?.iter() {
                    self.chunks.add((Kind::Data, c.0))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn walk(&mut self, repo: &Repository, id: TreeId, depth: usize) -> Result<()> {
        if let Some(b) = self.trees.get(&id) {
            self.bytes += b;
            return Ok(());
        }
        if depth > crate::model::tree::MAX_DEPTH {
            return Err(Error::corrupt(
                format!("tree {}", id.short()),
                crate::model::tree::too_deep("a folder"),
            ));
        }
        let before = self.bytes;
        for n in &repo.load_tree(id)?.nodes {
            match (n.kind, n.subtree) {
                (NodeKind::Dir, Some(t)) => self.walk(repo, t, depth + 1)?,
                _ => self.add_node(repo, n)?,
            }
        }
        self.trees.insert(id, self.bytes - before);
        Ok(())
    }

    fn finish(mut self, repo: &Repository, source: String) -> Result<SourceStats> {
        let (raw, stored) = sizes_of(repo, &mut self.chunks)?;
        Ok(SourceStats {
            source,
            snapshots: self.snapshots,
            latest_bytes: self.latest,
            logical_bytes: self.logical,
            raw_bytes: raw,
            stored_bytes: stored,
            dedup_ratio: ratio(self.logical, raw),
        })
    }
}
