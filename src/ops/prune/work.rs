//! Prune's working set, on disk (issue #20: memory that does not grow with
//! the repository): the index objects, packs and blobs the copy holds, the
//! blobs its snapshots use, and the plan's decisions (the pack that keeps each
//! used blob, each pack's fate) in a scratch SQLite file beside the catalog,
//! computed there by queries. Only one index object's packs are in memory at a
//! time. The file goes when prune ends.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::catalog::scratch::{sql, KeyTable, Scratch};
use crate::crypto::Kind;
use crate::error::Result;
use crate::id::{ObjectId, PackId, TreeId};
use crate::model::index::{Index, IndexedPack};
use crate::pack::{BlobKey, PackEntry};

use super::plan::Fate;

const SCHEMA: &str = "
CREATE TABLE ix(id BLOB PRIMARY KEY, written INTEGER NOT NULL, npacks INTEGER NOT NULL,
                superseded INTEGER NOT NULL, new INTEGER NOT NULL DEFAULT 0,
                affected INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE ixpack(ix BLOB NOT NULL, pos INTEGER NOT NULL, pack BLOB NOT NULL,
                    PRIMARY KEY(ix, pos)) WITHOUT ROWID;
CREATE TABLE ixsup(ix BLOB NOT NULL, pos INTEGER NOT NULL, sup BLOB NOT NULL,
                   PRIMARY KEY(ix, pos)) WITHOUT ROWID;
CREATE TABLE mark(ix BLOB NOT NULL, pack BLOB NOT NULL, at INTEGER NOT NULL,
                  PRIMARY KEY(ix, pack)) WITHOUT ROWID;
CREATE TABLE pack(id BLOB PRIMARY KEY, size INTEGER NOT NULL, present INTEGER,
                  indexed INTEGER, marked INTEGER, total INTEGER NOT NULL DEFAULT 0,
                  kept INTEGER NOT NULL DEFAULT 0, nkept INTEGER NOT NULL DEFAULT 0)
                  WITHOUT ROWID;
CREATE TABLE blob(pack BLOB NOT NULL, pos INTEGER NOT NULL, kind INTEGER NOT NULL,
                  id BLOB NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
                  raw_length INTEGER NOT NULL, PRIMARY KEY(pack, pos)) WITHOUT ROWID;
CREATE TABLE listed(id BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE chosen(kind INTEGER NOT NULL, id BLOB NOT NULL, pack BLOB NOT NULL,
                    length INTEGER NOT NULL, PRIMARY KEY(kind, id)) WITHOUT ROWID;
CREATE TABLE fate(pack BLOB PRIMARY KEY, fate INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE used_bytes(pack BLOB PRIMARY KEY, bytes INTEGER NOT NULL) WITHOUT ROWID;
";

/// What the plan needs of one pack.
#[derive(Clone, Copy, Debug)]
pub struct PackState {
    pub present: bool,
    /// Its size in the listing (0 when absent).
    pub present_size: u64,
    /// The latest mark, if condemned.
    pub marked: Option<i64>,
    /// When the latest index object listing it was written (`None`: none does).
    pub indexed: Option<i64>,
    /// Used blobs it keeps.
    pub nkept: u64,
    /// Bytes of all its blobs, and of those it keeps.
    pub total: u64,
    pub kept: u64,
}

/// The columns `PackState::from_row` reads, after any before them.
const STATE_COLUMNS: &str = "present, marked, indexed, nkept, total, kept";

impl PackState {
    /// A pack's state from a row whose columns `at..` are `STATE_COLUMNS`.
    fn from_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<PackState> {
        let present: Option<i64> = r.get(at)?;
        Ok(PackState {
            present: present.is_some(),
            present_size: present.unwrap_or(0) as u64,
            marked: r.get(at + 1)?,
            indexed: r.get(at + 2)?,
            nkept: r.get::<_, i64>(at + 3)? as u64,
            total: r.get::<_, i64>(at + 4)? as u64,
            kept: r.get::<_, i64>(at + 5)? as u64,
        })
    }

    /// The share of its blob bytes prune would not keep there.
    pub fn unused_share(&self) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        (self.total - self.kept.min(self.total)) as f64 / self.total as f64
    }
}

/// A used blob a pack that goes also holds, and where its kept copy is.
pub struct KeptCopy {
    pub key: BlobKey,
    pub pack: PackId,
    pub entry: PackEntry,
}

pub struct Work {
    s: Scratch,
    used: KeyTable,
    seen: KeyTable,
}

fn id32(b: Vec<u8>) -> [u8; 32] {
    <[u8; 32]>::try_from(b.as_slice()).unwrap_or([0; 32])
}

fn entry(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<PackEntry> {
    let kind: i64 = r.get(at)?;
    Ok(PackEntry {
        kind: Kind::from_u8(kind as u8).unwrap_or(Kind::Data),
        id: id32(r.get(at + 1)?),
        offset: r.get::<_, i64>(at + 2)? as u64,
        length: r.get::<_, i64>(at + 3)? as u32,
        raw_length: r.get::<_, i64>(at + 4)? as u32,
    })
}

impl Work {
    /// An empty working set in a scratch file in `dir` (the catalog's folder).
    pub fn new(dir: &Path) -> Result<Work> {
        let s = Scratch::new(dir)?;
        s.conn.execute_batch(SCHEMA).map_err(sql)?;
        let used = KeyTable::create(&s.conn, "used")?;
        let seen = KeyTable::create(&s.conn, "seen")?;
        Ok(Work { s, used, seen })
    }

    fn conn(&self) -> &Connection {
        &self.s.conn
    }

    /// Note a blob some snapshot needs.
    pub fn use_blob(&mut self, key: BlobKey) -> Result<()> {
        self.used.add(&mut self.s.conn, key)
    }

    /// True the first time tree `id` is seen by the walk.
    pub fn first_visit(&mut self, id: TreeId) -> Result<bool> {
        self.seen.insert(&mut self.s.conn, (Kind::Tree, id.0))
    }

    pub fn used_count(&mut self) -> Result<u64> {
        self.used.count(&mut self.s.conn)
    }

    /// Record index object `id` (its marks as they count: see
    /// `count_marks_from_sight`). A pack listed by several keeps the first
    /// listing's size and blobs. `new`: one this prune wrote.
    pub fn add_index(
        &mut self,
        id: &ObjectId,
        ix: &Index,
        superseded: bool,
        new: bool,
    ) -> Result<()> {
        let tx = self.s.conn.transaction().map_err(sql)?;
        tx.execute(
            "INSERT OR REPLACE INTO ix(id, written, npacks, superseded, new) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&id.0[..], ix.written, ix.packs.len() as i64, superseded, new],
        )
        .map_err(sql)?;
        for (pos, p) in ix.packs.iter().enumerate() {
            tx.execute(
                "INSERT OR REPLACE INTO ixpack(ix, pos, pack) VALUES (?1, ?2, ?3)",
                params![&id.0[..], pos as i64, &p.id.0[..]],
            )
            .map_err(sql)?;
            insert_pack(&tx, p)?;
        }
        for (pack, at) in &ix.condemned {
            tx.execute(
                "INSERT OR REPLACE INTO mark(ix, pack, at) VALUES (?1, ?2, ?3)",
                params![&id.0[..], &pack.0[..], at],
            )
            .map_err(sql)?;
        }
        for (pos, sup) in ix.supersedes.iter().enumerate() {
            tx.execute(
                "INSERT OR REPLACE INTO ixsup(ix, pos, sup) VALUES (?1, ?2, ?3)",
                params![&id.0[..], pos as i64, &sup.0[..]],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)
    }

    /// Record a pack no index lists, whose header was checked.
    pub fn add_pack(&mut self, p: &IndexedPack) -> Result<()> {
        let tx = self.s.conn.transaction().map_err(sql)?;
        insert_pack(&tx, p)?;
        tx.commit().map_err(sql)
    }

    /// Record the listing of `packs/`.
    pub fn add_listed(&mut self, listing: impl Iterator<Item = (PackId, u64)>) -> Result<()> {
        let tx = self.s.conn.transaction().map_err(sql)?;
        {
            let mut st = tx
                .prepare("INSERT OR REPLACE INTO listed(id, size) VALUES (?1, ?2)")
                .map_err(sql)?;
            for (id, size) in listing {
                st.execute(params![&id.0[..], size as i64]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Listed packs that are not the size their index gives: dropped from the
    /// listing (they count as missing), and returned.
    pub fn drop_wrong_sizes(&mut self) -> Result<Vec<PackId>> {
        let wrong: Vec<PackId> = self.ids(
            "SELECT l.id FROM listed l JOIN pack p ON p.id = l.id WHERE l.size != p.size ORDER BY l.id",
            [],
        )?;
        for id in &wrong {
            self.conn()
                .execute("DELETE FROM listed WHERE id = ?1", [&id.0[..]])
                .map_err(sql)?;
        }
        Ok(wrong)
    }

    /// Listed packs no index lists, with their sizes.
    pub fn listed_unindexed(&self) -> Result<Vec<(PackId, u64)>> {
        self.rows(
            "SELECT id, size FROM listed WHERE id NOT IN (SELECT id FROM pack) ORDER BY id",
            [],
            |r| Ok((PackId(id32(r.get(0)?)), r.get::<_, i64>(1)? as u64)),
        )
    }

    /// (packs, bytes) listed.
    pub fn listed_totals(&self) -> Result<(u64, u64)> {
        self.conn()
            .query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM listed",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(sql)
    }

    /// The rows query `q` gives, each made by `f` (the statement is cached).
    fn rows<T>(
        &self,
        q: &str,
        p: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn().prepare_cached(q).map_err(sql)?;
        let rows = st.query_map(p, f).map_err(sql)?;
        rows.collect::<rusqlite::Result<_>>().map_err(sql)
    }

    /// The ids (first column) query `q` gives.
    fn ids<T: From<[u8; 32]>>(&self, q: &str, p: impl rusqlite::Params) -> Result<Vec<T>> {
        self.rows(q, p, |r| Ok(T::from(id32(r.get(0)?))))
    }

    /// Everything the fates need, per pack: presence, latest mark, when
    /// indexed, and which pack keeps each used blob (live packs before
    /// condemned ones, then the most-used present packs first, so duplicates
    /// leave the emptier packs). Returns the missing packs that alone held
    /// used blobs.
    pub fn settle(&mut self) -> Result<Vec<PackId>> {
        self.used.flush(&mut self.s.conn)?;
        self.conn()
            .execute_batch(
                "DELETE FROM chosen; DELETE FROM fate; DELETE FROM used_bytes;
                 UPDATE ix SET affected = 0;
                 CREATE INDEX IF NOT EXISTS blob_key ON blob(kind, id);
                 CREATE INDEX IF NOT EXISTS ixpack_pack ON ixpack(pack);
                 CREATE INDEX IF NOT EXISTS mark_pack ON mark(pack);
                 CREATE INDEX IF NOT EXISTS chosen_pack ON chosen(pack);
                 UPDATE pack SET
                   present = (SELECT size FROM listed WHERE listed.id = pack.id),
                   marked = (SELECT max(at) FROM mark WHERE mark.pack = pack.id),
                   indexed = (SELECT max(ix.written) FROM ixpack JOIN ix ON ix.id = ixpack.ix
                              WHERE ixpack.pack = pack.id);
                 DROP TABLE IF EXISTS hold;
                 CREATE TABLE hold AS
                   SELECT b.kind AS kind, b.id AS id, b.pack AS pack, b.length AS length
                   FROM used u JOIN blob b ON b.kind = u.kind AND b.id = u.id
                   JOIN pack p ON p.id = b.pack WHERE p.present IS NOT NULL;
                 INSERT INTO used_bytes(pack, bytes)
                   SELECT pack, sum(length) FROM hold GROUP BY pack;
                 INSERT INTO chosen(kind, id, pack, length)
                   SELECT kind, id, pack, length FROM (
                     SELECT h.kind AS kind, h.id AS id, h.pack AS pack, h.length AS length,
                            row_number() OVER (PARTITION BY h.kind, h.id
                              ORDER BY p.marked IS NOT NULL, ub.bytes DESC, h.pack) AS rn
                     FROM hold h JOIN pack p ON p.id = h.pack
                     JOIN used_bytes ub ON ub.pack = h.pack)
                   WHERE rn = 1;
                 DROP TABLE hold;
                 UPDATE pack SET
                   kept = (SELECT coalesce(sum(length), 0) FROM chosen c WHERE c.pack = pack.id),
                   nkept = (SELECT count(*) FROM chosen c WHERE c.pack = pack.id);",
            )
            .map_err(sql)?;
        // Missing packs are few: from them to their blobs, not from every
        // used blob.
        self.ids(
            "SELECT DISTINCT p.id FROM pack p CROSS JOIN blob b ON b.pack = p.id
             CROSS JOIN used u ON u.kind = b.kind AND u.id = b.id
             WHERE p.present IS NULL
               AND NOT EXISTS (SELECT 1 FROM chosen c WHERE c.kind = b.kind AND c.id = b.id)
             ORDER BY p.id",
            [],
        )
    }

    /// Decide each pack's fate with `f`, one pack at a time.
    pub fn decide_fates(&mut self, mut f: impl FnMut(&PackState) -> Fate) -> Result<()> {
        let tx = self.s.conn.transaction().map_err(sql)?;
        {
            let mut read = tx
                .prepare(&format!("SELECT id, {STATE_COLUMNS} FROM pack"))
                .map_err(sql)?;
            let mut write = tx
                .prepare("INSERT OR REPLACE INTO fate(pack, fate) VALUES (?1, ?2)")
                .map_err(sql)?;
            let mut rows = read.query([]).map_err(sql)?;
            while let Some(r) = rows.next().map_err(sql)? {
                let id: Vec<u8> = r.get(0).map_err(sql)?;
                let st = PackState::from_row(r, 1).map_err(sql)?;
                write.execute(params![id, f(&st) as i64]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// A pack's fate and latest mark.
    pub fn fate(&self, id: &PackId) -> Result<Option<(Fate, Option<i64>)>> {
        self.conn()
            .query_row(
                "SELECT f.fate, p.marked FROM fate f JOIN pack p ON p.id = f.pack WHERE f.pack = ?1",
                [&id.0[..]],
                |r| Ok((Fate::from_code(r.get(0)?), r.get(1)?)),
            )
            .optional()
            .map_err(sql)
    }

    /// A pack's state, for the report.
    pub fn state(&self, id: &PackId) -> Result<PackState> {
        self.conn()
            .query_row(
                &format!("SELECT {STATE_COLUMNS} FROM pack WHERE id = ?1"),
                [&id.0[..]],
                |r| PackState::from_row(r, 0),
            )
            .map_err(sql)
    }

    /// The packs of one of `fates`, in id order.
    pub fn packs_with(&self, fates: &[Fate]) -> Result<Vec<PackId>> {
        let list: Vec<String> = fates.iter().map(|f| (*f as i64).to_string()).collect();
        self.ids(
            &format!(
                "SELECT pack FROM fate WHERE fate IN ({}) ORDER BY pack",
                list.join(",")
            ),
            [],
        )
    }

    /// A number the query `q` gives for fate `f` (its `?1`).
    fn number(&self, q: &str, f: Fate) -> Result<u64> {
        self.conn()
            .query_row(q, [f as i64], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(sql)
    }

    /// How many packs have fate `f`.
    pub fn count(&self, f: Fate) -> Result<u64> {
        self.number("SELECT count(*) FROM fate WHERE fate = ?1", f)
    }

    /// The size in the listing of packs of fate `f`.
    pub fn present_bytes(&self, f: Fate) -> Result<u64> {
        self.number(
            "SELECT coalesce(sum(p.present), 0) FROM fate f JOIN pack p ON p.id = f.pack WHERE f.fate = ?1",
            f,
        )
    }

    /// Unused bytes left in kept packs.
    pub fn unused_kept_bytes(&self) -> Result<u64> {
        self.number(
            "SELECT coalesce(sum(p.total - p.kept), 0) FROM fate f JOIN pack p ON p.id = f.pack WHERE f.fate = ?1",
            Fate::Keep,
        )
    }

    /// Mark as affected (to be replaced) the index objects that name a pack
    /// of one of `rewrite` fates, the superseded ones, and the small ones
    /// (fewer than `small` packs) once there are `merge_at` of them. Returns
    /// them in id order.
    pub fn affect(
        &mut self,
        rewrite: &[Fate],
        small: usize,
        merge_at: usize,
    ) -> Result<Vec<ObjectId>> {
        let smalls: i64 = self
            .conn()
            .query_row(
                "SELECT count(*) FROM ix WHERE npacks < ?1 AND new = 0",
                [small as i64],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let list: Vec<String> = rewrite.iter().map(|f| (*f as i64).to_string()).collect();
        self.conn()
            .execute(
                &format!(
                    "UPDATE ix SET affected = 1 WHERE new = 0 AND (superseded = 1
                       OR (?1 AND npacks < ?2)
                       OR EXISTS (SELECT 1 FROM ixpack ip JOIN fate f ON f.pack = ip.pack
                                  WHERE ip.ix = ix.id AND f.fate IN ({})))",
                    list.join(",")
                ),
                params![smalls as usize >= merge_at, small as i64],
            )
            .map_err(sql)?;
        self.ids("SELECT id FROM ix WHERE affected = 1 ORDER BY id", [])
    }

    /// Kept, repacked or condemned packs no index object lists, in id order.
    pub fn unindexed_staying(&self) -> Result<Vec<PackId>> {
        self.ids(
            &format!(
                "SELECT f.pack FROM fate f JOIN pack p ON p.id = f.pack
                 WHERE p.indexed IS NULL AND f.fate IN ({}, {}, {}) ORDER BY f.pack",
                Fate::Keep as i64,
                Fate::Repack as i64,
                Fate::Condemn as i64
            ),
            [],
        )
    }

    /// Queue the packs that stay in the new index objects: those the
    /// affected index objects list (every fate but Delete and Forget), then
    /// `unindexed`, each once. Returns how many.
    pub fn queue_staying(&mut self, unindexed: &[PackId]) -> Result<u64> {
        let tx = self.s.conn.transaction().map_err(sql)?;
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS staying;
             CREATE TABLE staying(seq INTEGER PRIMARY KEY, pack BLOB NOT NULL UNIQUE);
             INSERT OR IGNORE INTO staying(pack)
               SELECT DISTINCT ip.pack FROM ixpack ip JOIN ix ON ix.id = ip.ix
               JOIN fate ON fate.pack = ip.pack
               WHERE ix.affected = 1 AND fate.fate NOT IN ({}, {}) ORDER BY ip.pack;",
            Fate::Delete as i64,
            Fate::Forget as i64
        ))
        .map_err(sql)?;
        for id in unindexed {
            tx.execute(
                "INSERT OR IGNORE INTO staying(pack) VALUES (?1)",
                [&id.0[..]],
            )
            .map_err(sql)?;
        }
        let n: i64 = tx
            .query_row("SELECT count(*) FROM staying", [], |r| r.get(0))
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(n as u64)
    }

    /// Page `page` (of `size`) of the queued packs.
    pub fn staying_page(&self, page: u64, size: usize) -> Result<Vec<PackId>> {
        self.ids(
            "SELECT pack FROM staying ORDER BY seq LIMIT ?1 OFFSET ?2",
            params![size as i64, (page * size as u64) as i64],
        )
    }

    /// The index objects the affected ones replaced, in order.
    pub fn supersedes_of_affected(&self) -> Result<Vec<ObjectId>> {
        self.ids(
            "SELECT s.sup FROM ixsup s JOIN ix ON ix.id = s.ix WHERE ix.affected = 1 ORDER BY s.ix, s.pos",
            [],
        )
    }

    /// Pack `id` with its blobs, as an index lists it.
    pub fn pack(&self, id: &PackId) -> Result<IndexedPack> {
        let size: i64 = self
            .conn()
            .query_row("SELECT size FROM pack WHERE id = ?1", [&id.0[..]], |r| {
                r.get(0)
            })
            .map_err(sql)?;
        let blobs = self.rows(
            "SELECT kind, id, offset, length, raw_length FROM blob WHERE pack = ?1 ORDER BY pos",
            [&id.0[..]],
            |r| entry(r, 0),
        )?;
        Ok(IndexedPack {
            id: *id,
            size: size as u64,
            blobs,
        })
    }

    /// The blobs of pack `id` it keeps, in its order.
    pub fn kept_blobs(&self, id: &PackId) -> Result<Vec<PackEntry>> {
        self.rows(
            "SELECT b.kind, b.id, b.offset, b.length, b.raw_length FROM blob b
             JOIN chosen c ON c.kind = b.kind AND c.id = b.id AND c.pack = b.pack
             WHERE b.pack = ?1 ORDER BY b.pos",
            [&id.0[..]],
            |r| entry(r, 0),
        )
    }

    /// Used blobs that packs of fate Delete also hold, with their copy in a
    /// pack that stays (Keep, Repack, Recover), each once.
    pub fn kept_copies(&self, mut f: impl FnMut(KeptCopy) -> Result<()>) -> Result<()> {
        let mut st = self
            .conn()
            .prepare(&format!(
                "SELECT b.kind, b.id, c.pack, min(k.pos) FROM fate d
                 JOIN blob b ON b.pack = d.pack
                 JOIN chosen c ON c.kind = b.kind AND c.id = b.id AND c.pack != d.pack
                 JOIN fate s ON s.pack = c.pack AND s.fate IN ({}, {}, {})
                 JOIN blob k ON k.pack = c.pack AND k.kind = b.kind AND k.id = b.id
                 WHERE d.fate = {} GROUP BY b.kind, b.id ORDER BY b.kind, b.id",
                Fate::Keep as i64,
                Fate::Repack as i64,
                Fate::Recover as i64,
                Fate::Delete as i64
            ))
            .map_err(sql)?;
        let mut at = self
            .conn()
            .prepare("SELECT kind, id, offset, length, raw_length FROM blob WHERE pack = ?1 AND pos = ?2")
            .map_err(sql)?;
        let mut rows = st.query([]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            let pack: Vec<u8> = r.get(2).map_err(sql)?;
            let pos: i64 = r.get(3).map_err(sql)?;
            let entry = at
                .query_row(params![&pack, pos], |r| entry(r, 0))
                .map_err(sql)?;
            f(KeptCopy {
                key: entry.key(),
                pack: PackId(id32(pack)),
                entry,
            })?;
        }
        Ok(())
    }

    /// The packs index object `id` lists.
    pub fn packs_of_index(&self, id: &ObjectId) -> Result<Vec<PackId>> {
        self.ids(
            "SELECT pack FROM ixpack WHERE ix = ?1 ORDER BY pos",
            [&id.0[..]],
        )
    }

    /// Every index object recorded (those read and those written).
    pub fn index_ids(&self) -> Result<Vec<(ObjectId, bool)>> {
        self.rows("SELECT id, new FROM ix ORDER BY id", [], |r| {
            Ok((ObjectId(id32(r.get(0)?)), r.get(1)?))
        })
    }

    /// Index object `id` as recorded (its marks as they count).
    pub fn index(&self, id: &ObjectId) -> Result<Index> {
        let written: i64 = self
            .conn()
            .query_row("SELECT written FROM ix WHERE id = ?1", [&id.0[..]], |r| {
                r.get(0)
            })
            .map_err(sql)?;
        let packs = self
            .packs_of_index(id)?
            .iter()
            .map(|p| self.pack(p))
            .collect::<Result<_>>()?;
        let condemned = self.rows(
            "SELECT pack, at FROM mark WHERE ix = ?1 ORDER BY pack",
            [&id.0[..]],
            |r| Ok((PackId(id32(r.get(0)?)), r.get(1)?)),
        )?;
        let supersedes = self.ids(
            "SELECT sup FROM ixsup WHERE ix = ?1 ORDER BY pos",
            [&id.0[..]],
        )?;
        Ok(Index {
            written,
            packs,
            condemned,
            supersedes,
        })
    }

    /// Every pack not of fate Delete, to `f` (S3 Object Lock extension).
    pub fn staying_packs(&self, mut f: impl FnMut(PackId) -> Result<()>) -> Result<()> {
        let mut st = self
            .conn()
            .prepare("SELECT pack FROM fate WHERE fate != ?1 ORDER BY pack")
            .map_err(sql)?;
        let mut rows = st.query([Fate::Delete as i64]).map_err(sql)?;
        while let Some(r) = rows.next().map_err(sql)? {
            f(PackId(id32(r.get(0).map_err(sql)?)))?;
        }
        Ok(())
    }
}

fn insert_pack(tx: &rusqlite::Transaction<'_>, p: &IndexedPack) -> Result<()> {
    let total: u64 = p.blobs.iter().map(|b| b.length as u64).sum();
    let added = tx
        .execute(
            "INSERT OR IGNORE INTO pack(id, size, total) VALUES (?1, ?2, ?3)",
            params![&p.id.0[..], p.size as i64, total as i64],
        )
        .map_err(sql)?;
    if added == 0 {
        return Ok(());
    }
    let mut st = tx
        .prepare_cached(
            "INSERT INTO blob(pack, pos, kind, id, offset, length, raw_length) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(sql)?;
    for (pos, b) in p.blobs.iter().enumerate() {
        st.execute(params![
            &p.id.0[..],
            pos as i64,
            b.kind as i64,
            &b.id[..],
            b.offset as i64,
            b.length as i64,
            b.raw_length as i64
        ])
        .map_err(sql)?;
    }
    Ok(())
}
