//! `find PATTERN`: which snapshots hold a file, and when it changed. The pattern
//! is a glob on the entry's name (`*.pdf`, `laudo-2026-*`), or on its whole path
//! when it holds a `/` (`uploads/exams/**/*.dcm`). Each tree is searched once
//! however many snapshots share it, so twenty years of nightly snapshots of a
//! mostly unchanged tree cost about one walk of it.

use std::collections::HashMap;
use std::sync::Arc;

use globset::{Glob, GlobMatcher};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::model::snapshot::SnapshotEntry;
use crate::model::tree::{escape, NodeKind, MAX_DEPTH};
use crate::repo::Repository;

#[derive(Clone, Debug, Serialize)]
pub struct Found {
    pub snapshot: String,
    pub time: String,
    pub path: String,
    pub kind: String,
    pub size: u64,
    pub mtime_ns: i64,
}

/// A match below a tree: its path relative to the tree, and what it is.
#[derive(Clone)]
struct Hit {
    path: String,
    kind: String,
    size: u64,
    mtime_ns: i64,
}

pub struct Finder<'r> {
    repo: &'r Repository,
    glob: GlobMatcher,
    whole_path: bool,
    /// Matches below each tree already searched (paths relative to it), by
    /// tree id and, for whole-path patterns, the folder it sits at.
    seen: HashMap<(TreeId, String), Arc<Vec<Hit>>>,
}

impl<'r> Finder<'r> {
    pub fn new(repo: &'r Repository, pattern: &str) -> Result<Self> {
        let glob = Glob::new(pattern.trim_start_matches('/'))
            .map_err(|e| Error::Usage(format!("bad pattern {pattern}: {e}")))?
            .compile_matcher();
        Ok(Finder {
            repo,
            glob,
            whole_path: pattern.contains('/'),
            seen: HashMap::new(),
        })
    }

    /// The matches in `snaps`, oldest snapshot first.
    pub fn run(&mut self, snaps: &[SnapshotEntry]) -> Result<Vec<Found>> {
        let _lock = self.repo.lock(false, "find")?;
        let mut out = Vec::new();
        for s in snaps {
            for h in self.tree(s.snapshot.tree, "", 0)?.iter() {
                out.push(Found {
                    snapshot: s.id.to_hex(),
                    time: s.snapshot.time.clone(),
                    path: h.path.clone(),
                    kind: h.kind.clone(),
                    size: h.size,
                    mtime_ns: h.mtime_ns,
                });
            }
        }
        Ok(out)
    }

    /// Matches below tree `id`, which sits at `dir`.
    fn tree(&mut self, id: TreeId, dir: &str, depth: usize) -> Result<Arc<Vec<Hit>>> {
        let key = (
            id,
            if self.whole_path {
                dir.to_string()
            } else {
                String::new()
            },
        );
        if let Some(h) = self.seen.get(&key) {
            return Ok(h.clone());
        }
        if depth > MAX_DEPTH {
            return Ok(Arc::default());
        }
        let mut hits = Vec::new();
        for n in self.repo.load_tree(id)?.nodes {
            let name = escape(&n.name);
            let path = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let subject = if self.whole_path { &path } else { &name };
            if self.glob.is_match(subject) {
                hits.push(Hit {
                    path: name.clone(),
                    kind: format!("{:?}", n.kind).to_lowercase(),
                    size: n.size,
                    mtime_ns: n.mtime_ns,
                });
            }
            if let (NodeKind::Dir, Some(t)) = (n.kind, n.subtree) {
                for h in self.tree(t, &path, depth + 1)?.iter() {
                    hits.push(Hit {
                        path: format!("{name}/{}", h.path),
                        ..h.clone()
                    });
                }
            }
        }
        let hits = Arc::new(hits);
        self.seen.insert(key, hits.clone());
        Ok(hits)
    }
}
