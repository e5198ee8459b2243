//! `verify`: check that every snapshot of one copy can be restored, without
//! restoring it.
//!
//! Structure: every snapshot manifest and index object reads back (authenticated,
//! id re-hashed), every snapshot's trees (files and database dumps) load, every
//! chunk a file needs is indexed, and every indexed pack exists with its recorded
//! size. Reading data (all packs, the N-th of M slices, or `auto`:
//! the packs read longest ago, a twelfth of the data a run) also reads packs: a
//! pack's bytes must hash to its name, its header must authenticate, and every blob
//! in it must decrypt and hash to its id. The catalog remembers which pack was read
//! when, per copy, so monthly `auto` runs cover all data within a year.
//!
//! Problems are collected, each naming the object; damaged or missing data is then
//! traced to the snapshots and files that need it. The caller turns a non-empty list
//! into exit 1.

use std::collections::{HashMap, HashSet};

use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId, TreeId};
use crate::model::tree::NodeKind;
use crate::pack::BlobKey;
use crate::repo::Repository;
use crate::storage::pack_path;

mod finding;

pub use finding::{Finding, Object, Problem};

/// Which packs to read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Structure only.
    None,
    All,
    /// Slice `n` (1-based) of `m`: packs whose id, as a number, is n-1 modulo m.
    Subset {
        n: u32,
        m: u32,
    },
    /// Never-read and least recently read packs: at least a twelfth of the bytes,
    /// and every pack last read more than 330 days ago.
    Auto,
}

impl ReadMode {
    /// From `--read-data` and `--read-data-subset`.
    pub fn from_flags(read_data: bool, subset: Option<ReadMode>) -> ReadMode {
        match (read_data, subset) {
            (true, _) => ReadMode::All,
            (false, Some(m)) => m,
            (false, None) => ReadMode::None,
        }
    }
}

impl std::str::FromStr for ReadMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<ReadMode, String> {
        if s == "auto" {
            return Ok(ReadMode::Auto);
        }
        let bad =
            || format!("--read-data-subset {s}: give N/M (such as 3/12, N from 1 to M) or auto");
        let (n, m) = s.split_once('/').ok_or_else(bad)?;
        let (n, m): (u32, u32) = (n.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m == 0 || n == 0 || n > m {
            return Err(bad());
        }
        Ok(ReadMode::Subset { n, m })
    }
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    /// `local` or the destination's name.
    pub copy: String,
    pub location: String,
    pub snapshots: u64,
    pub trees: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub bytes_read: u64,
    pub blobs_read: u64,
    /// What is wrong, in the order found.
    pub findings: Vec<Finding>,
    /// The snapshots and files that damaged or missing data affects.
    pub affected: Vec<String>,
    /// Needed blobs that no index lists and no pack here holds.
    pub missing_blobs: Vec<BlobKey>,
    /// Files PostgreSQL archived here (`wal-push`).
    pub wal_files: u64,
    /// From when to when this copy can recover the cluster (`restore
    /// --pgdata`): none without a base backup whose WAL is whole.
    pub recovery_window: Option<crate::model::wal_chain::Window>,
}

impl VerifyReport {
    fn add(&mut self, object: Object, problem: Problem, message: impl Into<String>) {
        self.findings.push(Finding::new(object, problem, message));
    }

    /// One line per finding.
    pub fn problems(&self) -> Vec<&str> {
        self.findings.iter().map(|f| f.message.as_str()).collect()
    }

    /// Stored objects to replace with a good copy (`repair`): damaged or
    /// missing packs, unreadable snapshot manifests and index objects; by
    /// path, once each.
    pub fn damaged(&self) -> Vec<&Object> {
        let mut out: Vec<&Object> = self
            .findings
            .iter()
            .filter(|f| f.replaceable())
            .map(|f| &f.object)
            .collect();
        out.sort_by_key(|o| o.path());
        out.dedup();
        out
    }

    /// Packs holding needed data that no index object lists (`repair` indexes them).
    pub fn unindexed(&self) -> Vec<PackId> {
        self.findings
            .iter()
            .filter_map(|f| match (&f.object, f.problem) {
                (Object::Pack(id), Problem::Unindexed) => Some(*id),
                _ => None,
            })
            .collect()
    }
}

/// The `--json` document: findings as the lines and paths it has always had.
impl serde::Serialize for VerifyReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct View<'a> {
            copy: &'a str,
            location: &'a str,
            snapshots: u64,
            trees: u64,
            packs: u64,
            packs_read: u64,
            bytes_read: u64,
            blobs_read: u64,
            problems: Vec<&'a str>,
            affected: &'a [String],
            damaged: Vec<String>,
            unindexed: Vec<String>,
            #[serde(skip_serializing_if = "is_zero")]
            wal_files: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            recovery_window: &'a Option<crate::model::wal_chain::Window>,
        }
        fn is_zero(n: &u64) -> bool {
            *n == 0
        }
        View {
            copy: &self.copy,
            location: &self.location,
            snapshots: self.snapshots,
            trees: self.trees,
            packs: self.packs,
            packs_read: self.packs_read,
            bytes_read: self.bytes_read,
            blobs_read: self.blobs_read,
            problems: self.problems(),
            affected: &self.affected,
            damaged: self.damaged().iter().filter_map(|o| o.path()).collect(),
            unindexed: self.unindexed().iter().map(|p| p.to_hex()).collect(),
            wal_files: self.wal_files,
            recovery_window: &self.recovery_window,
        }
        .serialize(s)
    }
}

/// Days after which `auto` reads a pack again whatever its share.
const AUTO_MAX_AGE_DAYS: i64 = 330;

pub fn run(repo: &Repository, copy: &str, read: ReadMode) -> Result<VerifyReport> {
    // No prune or forget meanwhile: what they remove would read as lost here.
    let _maintenance = repo.lock_maintenance_shared("verify")?;
    let _lock = repo.lock(false, "verify")?;
    let mut r = VerifyReport {
        copy: copy.to_string(),
        location: repo.backend().location(),
        ..Default::default()
    };
    // Packs no index lists (an interrupted run's, or a lost index object's) join the
    // catalog by their headers, so what they hold is known.
    let present = repo.recover_packs()?;
    crate::util::failpoint("verify-after-list");
    let (snapshots, unreadable) = repo.snapshots_checked()?;
    // A snapshot that ended on another machine since this one opened the
    // repository has an index object the catalog has not loaded yet (prune
    // does the same after its listing).
    repo.sync_catalog()?;
    for (id, e) in unreadable {
        let problem = match e {
            Error::Missing { .. } => Problem::Missing,
            _ => Problem::Damaged,
        };
        r.add(Object::Snapshot(id), problem, e.to_string());
    }
    // Index objects are few and small: each is read back, whatever the catalog holds.
    for (name, _) in repo.backend().list("index")? {
        let Some(id) = ObjectId::from_hex(&name) else {
            continue;
        };
        match repo.read_index(&id) {
            Ok(_) => {}
            // Damaged: `repair` may replace it (or drop it once its packs are
            // indexed again). Any other failure (the network, say) is only reported.
            Err(e @ (Error::Corrupt { .. } | Error::Missing { .. })) => {
                r.add(Object::Index(id), Problem::Damaged, e.to_string());
            }
            Err(e) => r.add(Object::Index(id), Problem::Unreadable, e.to_string()),
        }
    }
    let wal = wal_records(repo, &mut r)?;
    wal_chain(repo, &snapshots, &wal, &mut r)?;
    // Packs left by an interrupted run (or kept by a retention lock after a repack)
    // are normal; one that alone holds data a snapshot needs was listed by an index
    // object that is gone. The walk notes which of their blobs are needed.
    let unindexed = repo.catalog().unindexed_packs()?;
    let mut w = Walk {
        watched: unindexed
            .iter()
            .flat_map(|p| p.blobs.iter().map(|b| b.key()))
            .collect(),
        ..Walk::default()
    };
    for rec in &wal {
        let label = format!("WAL {}", rec.name);
        check_tree(repo, rec.tree, &label, "", &mut w, &mut r)?;
    }
    for s in &snapshots {
        r.snapshots += 1;
        let label = format!("snapshot {}", s.id.short());
        for (t, path) in roots(s) {
            check_tree(repo, t, &label, &path, &mut w, &mut r)?;
        }
    }
    for p in unindexed {
        let mut lost = false;
        for b in p.blobs.iter().filter(|b| w.needed.contains(&b.key())) {
            if !repo
                .catalog()
                .has_indexed_blob(b.kind, &crate::id::BlobId(b.id))?
            {
                lost = true;
                break;
            }
        }
        if lost {
            r.add(
                Object::Pack(p.id),
                Problem::Unindexed,
                format!(
                    "pack {} holds data snapshots need but no index object lists it (an index object is missing): run `hcbackup repair`",
                    p.id.to_hex()
                ),
            );
        }
    }
    let Walk { mut bad, .. } = w;
    for (kind, b) in &bad {
        if !repo
            .catalog()
            .has_stored_blob(*kind, &crate::id::BlobId(*b))?
        {
            r.missing_blobs.push((*kind, *b));
        }
    }
    let sizes: HashMap<PackId, u64> = present.iter().copied().collect();
    for (id, size) in repo.catalog().packs()? {
        r.packs += 1;
        // Not in the listing taken at the start: a run beside this one (a
        // snapshot holds a shared lock too) may have written it since. Only what
        // is not there now is missing.
        let now = match sizes.get(&id) {
            Some(&s) => Some(s),
            None => match repo.backend().stat(&pack_path(&id)) {
                Ok(s) => Some(s),
                Err(
                    crate::storage::StorageError::NotFound(_)
                    | crate::storage::StorageError::Permanent(_),
                ) => None,
                Err(e) => return Err(e.into()),
            },
        };
        let (problem, message) = match now.as_ref() {
            None => (Problem::Missing, format!("pack {} is missing", id.to_hex())),
            Some(&actual) if actual != size => (
                Problem::Damaged,
                format!(
                    "pack {} has {actual} bytes, the index says {size}",
                    id.to_hex()
                ),
            ),
            Some(_) => continue,
        };
        r.add(Object::Pack(id), problem, message);
        bad.extend(repo.catalog().pack_blob_ids(&id)?);
    }
    let location = repo.backend().location();
    let chosen = choose(repo, &location, &present, read)?;
    let mut read_ok = Vec::new();
    for (id, size) in &chosen {
        let before = r.findings.len();
        read_pack(repo, id, *size, &mut bad, &mut r);
        if r.findings.len() == before {
            read_ok.push(*id);
        }
    }
    repo.catalog().record_pack_reads(
        &location,
        &read_ok,
        &crate::util::rfc3339(crate::util::now()),
    )?;
    if !bad.is_empty() {
        r.affected = affected(repo, &snapshots, &bad)?;
    }
    Ok(r)
}

/// The records of the files PostgreSQL archived that open; each that does not
/// is a finding (`repair` puts back a good copy from another copy).
fn wal_records(
    repo: &Repository,
    r: &mut VerifyReport,
) -> Result<Vec<crate::model::wal::WalRecord>> {
    let (good, bad) = repo.wal_records_checked()?;
    for (id, e) in bad {
        let problem = match e {
            Error::Missing { .. } => Problem::Missing,
            Error::Corrupt { .. } => Problem::Damaged,
            _ => Problem::Unreadable,
        };
        r.add(Object::Wal(id), problem, e.to_string());
    }
    Ok(good)
}

/// The WAL chain from each base backup: one whose own segments are not all
/// archived is a finding (its missing segment, which `repair` may bring back);
/// the copy's recovery window is reported.
fn wal_chain(
    repo: &Repository,
    snapshots: &[crate::model::snapshot::SnapshotEntry],
    wal: &[crate::model::wal::WalRecord],
    r: &mut VerifyReport,
) -> Result<()> {
    use crate::model::wal_chain::{follow, Archived, Base};
    let bases = Base::of(snapshots);
    r.wal_files = wal.len() as u64;
    if wal.is_empty() {
        return Ok(());
    }
    for name in crate::model::wal::gaps(wal, gaps_from(repo, &bases)?) {
        r.add(
            Object::Wal(repo.wal_id(&name)),
            Problem::Missing,
            format!("WAL segment {name} is missing: a gap in the archived WAL that recovery cannot pass; `hcbackup repair` brings it back from a copy that has it"),
        );
    }
    if bases.is_empty() {
        return Ok(());
    }
    let archived: Vec<Archived> = wal
        .iter()
        .map(|w| Archived {
            name: w.name.clone(),
            time: w.time.clone(),
            size: w.size,
        })
        .collect();
    let chain = follow(&bases, &archived);
    for (snap, seg) in chain.inconsistent {
        r.add(
            Object::Wal(repo.wal_id(&seg)),
            Problem::Missing,
            format!(
                "the base backup of snapshot {} cannot be made consistent: its WAL segment {seg} is missing; `hcbackup repair` brings it back from a copy that has it",
                &snap[..8.min(snap.len())]
            ),
        );
    }
    r.recovery_window = chain.window;
    Ok(())
}

/// Where gaps start to count: after the last forget's cut (before it, WAL
/// was removed on purpose), but never after the first segment of the oldest
/// base backup no legal hold keeps (forget keeps WAL from there on): a cut
/// a damaged catalog moved on does not hide a hole.
fn gaps_from(repo: &Repository, bases: &[crate::model::wal_chain::Base]) -> Result<u64> {
    use crate::model::wal::position;
    let held: HashSet<String> = repo.holds()?.into_iter().map(|h| h.snapshot).collect();
    let oldest = bases
        .iter()
        .filter(|b| !held.contains(&b.snapshot))
        .filter_map(|b| position(&b.first))
        .min();
    let cut = repo.wal_forgotten_before()?;
    Ok(match (cut, oldest) {
        (Some(c), Some(o)) => c.min(o),
        (Some(c), None) => c,
        (None, _) => 0,
    })
}

/// A snapshot's root trees: its files, then each database dump.
fn roots(s: &crate::model::snapshot::SnapshotEntry) -> Vec<(TreeId, String)> {
    let mut out = vec![(s.snapshot.tree, String::new())];
    for d in &s.snapshot.databases {
        if let Some(t) = d.tree {
            out.push((t, format!("[database {}]", d.db)));
        }
    }
    if let Some(t) = s.snapshot.physical.as_ref().and_then(|p| p.tree) {
        out.push((t, "[base backup]".to_string()));
    }
    out
}

/// The packs to read for `mode`.
fn choose(
    repo: &Repository,
    location: &str,
    present: &[(PackId, u64)],
    mode: ReadMode,
) -> Result<Vec<(PackId, u64)>> {
    Ok(match mode {
        ReadMode::None => Vec::new(),
        ReadMode::All => present.to_vec(),
        ReadMode::Subset { n, m } => present
            .iter()
            .filter(|(id, _)| {
                u32::from_be_bytes(id.0[..4].try_into().expect("4 bytes")) % m == n - 1
            })
            .copied()
            .collect(),
        ReadMode::Auto => {
            let last = repo.catalog().pack_reads(location)?;
            let cutoff =
                crate::util::rfc3339(crate::util::now() - time::Duration::days(AUTO_MAX_AGE_DAYS));
            let mut order: Vec<(Option<&String>, PackId, u64)> = present
                .iter()
                .map(|(id, size)| (last.get(id), *id, *size))
                .collect();
            // Never read first (None sorts first), then the oldest reads.
            order.sort();
            let total: u64 = present.iter().map(|(_, s)| s).sum();
            let target = total.div_ceil(12);
            let mut taken = 0u64;
            order
                .into_iter()
                .take_while(|(when, _, size)| {
                    let due = when.is_none_or(|t| t.as_str() < cutoff.as_str());
                    let go = due || taken < target;
                    taken += size;
                    go
                })
                .map(|(_, id, size)| (id, size))
                .collect()
        }
    })
}

/// The structure walk's state: trees seen, blobs found bad, and which of the
/// blobs of packs no index lists (`watched`) snapshots need. Only those are
/// remembered: a set of every needed blob would grow with the repository
/// (issue #20).
#[derive(Default)]
struct Walk {
    seen: HashSet<TreeId>,
    bad: HashSet<BlobKey>,
    watched: HashSet<BlobKey>,
    needed: HashSet<BlobKey>,
}

impl Walk {
    fn need(&mut self, key: BlobKey) {
        if self.watched.contains(&key) {
            self.needed.insert(key);
        }
    }
}

/// A snapshot's folder or file, as a finding's object.
fn entry(snap: &str, path: &str) -> Object {
    Object::Entry {
        snapshot: snap.to_string(),
        path: if path.is_empty() { "/" } else { path }.to_string(),
    }
}

/// The problem an error reading an object means.
fn problem_of(e: &Error) -> Problem {
    match e {
        Error::Missing { .. } => Problem::Missing,
        Error::Corrupt { .. } => Problem::Damaged,
        _ => Problem::Unreadable,
    }
}

fn check_tree(
    repo: &Repository,
    id: TreeId,
    snap: &str,
    path: &str,
    w: &mut Walk,
    r: &mut VerifyReport,
) -> Result<()> {
    if !w.seen.insert(id) {
        return Ok(());
    }
    if path.matches('/').count() > crate::model::tree::MAX_DEPTH {
        let message = format!(
            "{snap}: {}",
            crate::model::tree::too_deep(&format!("folder {path}"))
        );
        r.add(entry(snap, path), Problem::Damaged, message);
        return Ok(());
    }
    r.trees += 1;
    w.need((Kind::Tree, id.0));
    let tree = match repo.load_tree(id) {
        Ok(t) => t,
        Err(e) => {
            w.bad.insert((Kind::Tree, id.0));
            let message = format!(
                "{snap}: folder {}: {e}",
                if path.is_empty() { "/" } else { path }
            );
            r.add(entry(snap, path), problem_of(&e), message);
            return Ok(());
        }
    };
    for n in &tree.nodes {
        let p = format!("{path}/{}", String::from_utf8_lossy(&n.name));
        match n.kind {
            NodeKind::Dir => match n.subtree {
                Some(t) => check_tree(repo, t, snap, &p, w, r)?,
                None => {
                    let message = format!("{snap}: folder {p} has no tree");
                    r.add(entry(snap, &p), Problem::Damaged, message)
                }
            },
            NodeKind::File => {
                for l in &n.lists {
                    w.need((Kind::Tree, l.0));
                }
                let content = match repo.node_content(n) {
                    Ok(c) => c,
                    Err(e) => {
                        w.bad.extend(n.lists.iter().map(|l| (Kind::Tree, l.0)));
                        r.add(
                            entry(snap, &p),
                            problem_of(&e),
                            format!("{snap}: file {p}: {e}"),
                        );
                        continue;
                    }
                };
                let mut missing = 0;
                for c in content.iter() {
                    w.need((Kind::Data, c.0));
                    if !repo.catalog().has_stored_blob(Kind::Data, &(*c).into())? {
                        w.bad.insert((Kind::Data, c.0));
                        missing += 1;
                    }
                }
                if missing > 0 {
                    let message =
                        format!("{snap}: file {p} needs {missing} chunk(s) that no index lists");
                    r.add(entry(snap, &p), Problem::Missing, message);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn read_pack(
    repo: &Repository,
    id: &PackId,
    size: u64,
    bad: &mut HashSet<BlobKey>,
    r: &mut VerifyReport,
) {
    r.packs_read += 1;
    read_pack_checks(repo, id, size, bad, r);
}

fn read_pack_checks(
    repo: &Repository,
    id: &PackId,
    size: u64,
    bad: &mut HashSet<BlobKey>,
    r: &mut VerifyReport,
) {
    let name = id.to_hex();
    let all_bad = |bad: &mut HashSet<BlobKey>| {
        if let Ok(ids) = repo.catalog().pack_blob_ids(id) {
            bad.extend(ids);
        }
    };
    let bytes = match repo.backend().get(&pack_path(id)) {
        Ok(b) => b,
        Err(e) => {
            all_bad(bad);
            let problem = match e {
                crate::storage::StorageError::NotFound(_) => Problem::Missing,
                _ => Problem::Damaged,
            };
            return r.add(Object::Pack(*id), problem, format!("pack {name}: {e}"));
        }
    };
    r.bytes_read += bytes.len() as u64;
    let named_right = blake3::hash(&bytes).as_bytes() == &id.0;
    if !named_right {
        r.add(
            Object::Pack(*id),
            Problem::Damaged,
            format!("pack {name}: content does not match its name (damaged)"),
        );
    }
    let header = match repo.read_pack_header(id, size) {
        Ok(h) => h,
        Err(e) => {
            all_bad(bad);
            return r.add(Object::Pack(*id), Problem::Damaged, e.to_string());
        }
    };
    let start = header
        .entries
        .last()
        .map_or(0, |e| e.offset + e.length as u64);
    if let Some(h) = header.blobs_hash {
        let blobs = bytes.get(..start as usize).unwrap_or_default();
        // Named by its bytes, yet its blobs are not the ones its header was sealed
        // over: a real header on other bytes, planted. Nothing it lists is judged
        // by these bytes (the blobs it names may be fine elsewhere). A pack whose
        // bytes do not match its name is damaged instead: its blobs are checked.
        if named_right && blake3::hash(blobs).as_bytes() != &h {
            return r.add(
                Object::Pack(*id),
                Problem::Damaged,
                format!("pack {name}: its header belongs to another pack (planted by someone with access to the storage)"),
            );
        }
    }
    let entries = header.entries;
    let key = repo.key();
    for e in entries {
        r.blobs_read += 1;
        let Some(sealed) = bytes.get(e.offset as usize..(e.offset + e.length as u64) as usize)
        else {
            bad.insert(e.key());
            r.add(
                Object::Pack(*id),
                Problem::Damaged,
                format!(
                    "pack {name}: blob {} lies outside the pack",
                    hex::encode(&e.id[..4])
                ),
            );
            continue;
        };
        let ok = crate::codec::decode(key, e.kind, &e.id, sealed, e.raw_length as usize).is_ok_and(
            |plain| key.id_of(&plain) == e.id && (e.kind == Kind::Data || e.kind == Kind::Tree),
        );
        if !ok {
            bad.insert(e.key());
            r.add(
                Object::Pack(*id),
                Problem::Damaged,
                format!(
                    "pack {name}: {} {} is damaged",
                    e.kind.name(),
                    hex::encode(&e.id[..4])
                ),
            );
        }
    }
}

/// Files listed per snapshot at most; the rest are counted.
const FILES_SHOWN: usize = 10;

/// One line per snapshot that needs any of `bad`: its id, time and the files (or
/// folders) that cannot be restored whole.
fn affected(
    repo: &Repository,
    snapshots: &[crate::model::snapshot::SnapshotEntry],
    bad: &HashSet<BlobKey>,
) -> Result<Vec<String>> {
    let mut memo: HashMap<TreeId, Vec<String>> = HashMap::new();
    let mut out = Vec::new();
    for s in snapshots {
        let mut hit = Vec::new();
        for (t, path) in roots(s) {
            for p in damaged_in(repo, t, bad, &mut memo, 0) {
                hit.push(if path.is_empty() && p.is_empty() {
                    "/".to_string()
                } else {
                    format!("{path}{p}")
                });
            }
        }
        if hit.is_empty() {
            continue;
        }
        let shown: Vec<&str> = hit.iter().take(FILES_SHOWN).map(|s| s.as_str()).collect();
        let more = hit.len().saturating_sub(FILES_SHOWN);
        out.push(format!(
            "snapshot {} ({}): {} damaged: {}{}",
            s.id.short(),
            s.snapshot.time,
            if hit.len() == 1 {
                "1 entry".to_string()
            } else {
                format!("{} entries", hit.len())
            },
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    Ok(out)
}

/// Paths below tree `id` (relative, with a leading `/`) that need a bad blob.
fn damaged_in(
    repo: &Repository,
    id: TreeId,
    bad: &HashSet<BlobKey>,
    memo: &mut HashMap<TreeId, Vec<String>>,
    depth: usize,
) -> Vec<String> {
    if let Some(v) = memo.get(&id) {
        return v.clone();
    }
    if depth > crate::model::tree::MAX_DEPTH {
        return vec![String::new()];
    }
    let mut out = Vec::new();
    match repo.load_tree(id) {
        Err(_) => out.push(String::new()), // the folder itself is unreadable
        Ok(tree) => {
            for n in &tree.nodes {
                let name = format!("/{}", String::from_utf8_lossy(&n.name));
                match n.kind {
                    NodeKind::Dir => {
                        if let Some(t) = n.subtree {
                            for p in damaged_in(repo, t, bad, memo, depth + 1) {
                                out.push(format!("{name}{p}"));
                            }
                        }
                    }
                    NodeKind::File => {
                        let hurt = n.lists.iter().any(|l| bad.contains(&(Kind::Tree, l.0)))
                            || match repo.node_content(n) {
                                Ok(c) => c.iter().any(|c| bad.contains(&(Kind::Data, c.0))),
                                Err(Error::Missing { .. } | Error::Corrupt { .. }) => true,
                                Err(_) => false,
                            };
                        if hurt {
                            out.push(name);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    memo.insert(id, out.clone());
    out
}
