//! Rows in primary-key order inside pg_dump's own custom-format archive.
//!
//! pg_dump writes each table's rows in physical order. In a database that has
//! lived, new rows fill free space all over a table, so a day's 1% of new rows
//! touches most of the dump and defeats deduplication (measured in
//! docs/decisions/002-database-dumps.md). So pg_dump is run with
//! `--exclude-table-data` for every table with a primary key, and this reader
//! passes its `-Fc -Z0` archive through, adding for each of those tables the
//! "TABLE DATA" entry pg_dump would have written (same fields, a new dump id, the
//! table as its dependency) at the end of the data section of the table of
//! contents, and its data block after pg_dump's own blocks: the same columns read
//! by `COPY (SELECT … FROM ONLY t ORDER BY pk) TO STDOUT` in the same exported
//! snapshot, framed as pg_dump frames rows. The result is a stock custom-format
//! archive: `pg_restore` (also `-j`, also from a pipe) reads it; the rows are the
//! same, only their order differs; each table is read once.
//!
//! Since pg_dump left those tables' rows out, nothing here may fail quietly: an
//! archive this code does not understand, or a table whose definition is not in
//! it, is an error, and the dump is reported failed.

use std::io::{self, BufRead, BufReader, Read};

use super::session::{CopyOut, Session};
use super::tables::KeyedTable;

const BLK_DATA: u8 = 1;
const SECTION_DATA: i64 = 3;
const SECTION_POST_DATA: i64 = 4;
const OFFSET_POS_NOT_SET: u8 = 1;
/// Archive versions 1.12 (PostgreSQL 11) to 1.16 (17) are understood.
pub const MIN_VERSION: (u8, u8) = (1, 12);
pub const MAX_VERSION: (u8, u8) = (1, 16);

impl KeyedTable {
    fn copy_stmt(&self) -> String {
        format!("COPY {} ({}) FROM stdin;\n", self.qualified, self.columns)
    }

    fn query(&self) -> String {
        format!(
            "COPY (SELECT {} FROM ONLY {} ORDER BY {}) TO STDOUT",
            self.columns, self.qualified, self.key
        )
    }
}

pub struct Reorder<'s, R: Read> {
    src: BufReader<R>,
    session: &'s Session,
    keyed: Vec<KeyedTable>,
    /// Bytes ready to hand out, from `pos`.
    out: Vec<u8>,
    pos: usize,
    state: State<'s>,
    /// pg_dump's integer width, from the archive header.
    int_size: usize,
    /// Dump ids given to the added entries, in `keyed` order.
    ids: Vec<i64>,
    next_table: usize,
}

enum State<'s> {
    Start,
    /// pg_dump's own data blocks, passed through.
    Theirs,
    /// Our rows for `keyed[next_table - 1]`.
    Ours(CopyOut<'s>),
    Done,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// pg_dump's integer: a sign byte, then `int_size` bytes little-endian.
fn put_int(int_size: usize, to: &mut Vec<u8>, v: i64) {
    to.push(u8::from(v < 0));
    let a = v.unsigned_abs();
    for i in 0..int_size {
        to.push(if i < 8 { (a >> (8 * i)) as u8 } else { 0 });
    }
}

fn put_str(int_size: usize, to: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        None => put_int(int_size, to, -1),
        Some(s) => {
            put_int(int_size, to, s.len() as i64);
            to.extend_from_slice(s);
        }
    }
}

/// The values of an archive read so far, and how to read more of them.
struct Archive<'a, R: Read> {
    src: &'a mut R,
    version: (u8, u8),
    int_size: usize,
    off_size: usize,
}

impl<R: Read> Archive<'_, R> {
    /// `n` bytes, also appended to `to`. Read in steps: a length that lies (a
    /// damaged archive) ends at the end of the input, not in a huge allocation.
    fn bytes(&mut self, n: usize, to: &mut Vec<u8>) -> io::Result<Vec<u8>> {
        let mut b = Vec::with_capacity(n.min(1 << 16));
        (&mut *self.src).take(n as u64).read_to_end(&mut b)?;
        if b.len() != n {
            return Err(bad("the archive ends in the middle of an entry"));
        }
        to.extend_from_slice(&b);
        Ok(b)
    }

    fn int(&mut self, to: &mut Vec<u8>) -> io::Result<i64> {
        let b = self.bytes(1 + self.int_size, to)?;
        let mut v: i64 = 0;
        for (i, x) in b[1..].iter().enumerate().take(8) {
            v |= (*x as i64) << (8 * i);
        }
        Ok(if b[0] != 0 { v.wrapping_neg() } else { v })
    }

    fn string(&mut self, to: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
        let n = self.int(to)?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.bytes(n as usize, to)?))
    }
}

/// The sizes of the archive the rewrite read.
struct ReadSizes {
    version: (u8, u8),
    int_size: usize,
    off_size: usize,
}

/// The rewritten header and table of contents: the bytes, pg_dump's integer
/// width, and the dump ids given to the entries added (in `keyed` order).
pub struct Toc {
    pub bytes: Vec<u8>,
    pub int_size: usize,
    pub ids: Vec<i64>,
}

/// One entry of an archive's table of contents: its bytes as read, and the
/// fields the rewrite and the table selection (`pg::select`) look at.
pub struct TocEntry {
    pub raw: Vec<u8>,
    pub id: i64,
    pub section: i64,
    pub desc: Option<Vec<u8>>,
    pub tag: Option<Vec<u8>>,
    pub namespace: Option<Vec<u8>>,
    pub oid: Option<Vec<u8>>,
    pub owner: Option<Vec<u8>>,
    /// The dump ids it depends on.
    pub deps: Vec<i64>,
}

impl TocEntry {
    pub fn desc_is(&self, d: &str) -> bool {
        self.desc.as_deref() == Some(d.as_bytes())
    }
}

/// An archive's header and table of contents, read.
pub struct ReadToc {
    /// The header's bytes (up to the entry count).
    pub head: Vec<u8>,
    pub version: (u8, u8),
    pub int_size: usize,
    pub off_size: usize,
    pub compression: i64,
    pub entries: Vec<TocEntry>,
}

/// Read an archive's header and table of contents from `src`. The input is
/// untrusted (pg_dump's output, an old backup being imported, a dump read
/// back for a table restore): fuzzed (`fuzz/`).
pub fn read_toc<R: Read>(src: &mut R) -> io::Result<ReadToc> {
    let mut a = Archive {
        src,
        version: (0, 0),
        int_size: 4,
        off_size: 8,
    };
    let mut head = Vec::new();
    if a.bytes(5, &mut head)? != b"PGDMP" {
        return Err(bad("pg_dump's output is not a custom-format archive"));
    }
    let v = a.bytes(3, &mut head)?;
    a.version = (v[0], v[1]);
    if a.version < MIN_VERSION || a.version > MAX_VERSION {
        return Err(bad(format!(
            "archive version {}.{} is not one hcbackup knows (1.12 to 1.16)",
            v[0], v[1]
        )));
    }
    let sizes = a.bytes(3, &mut head)?;
    a.int_size = sizes[0] as usize;
    a.off_size = sizes[1] as usize;
    if !(1..=8).contains(&a.int_size) || !(1..=16).contains(&a.off_size) || sizes[2] != 1 {
        return Err(bad("unexpected sizes or format in the archive header"));
    }
    let compression = if a.version >= (1, 15) {
        a.bytes(1, &mut head)?[0] as i64
    } else {
        a.int(&mut head)?
    };
    for _ in 0..7 {
        a.int(&mut head)?; // creation time
    }
    for _ in 0..3 {
        a.string(&mut head)?; // database, server version, pg_dump version
    }
    let count = a.int(&mut Vec::new())?;
    if count < 0 {
        return Err(bad("a negative number of archive entries"));
    }
    let mut entries = Vec::new();
    for _ in 0..count {
        let mut raw = Vec::new();
        let id = a.int(&mut raw)?;
        a.int(&mut raw)?; // hadDumper
        a.string(&mut raw)?; // tableoid
        let oid = a.string(&mut raw)?;
        let tag = a.string(&mut raw)?;
        let desc = a.string(&mut raw)?;
        let section = a.int(&mut raw)?;
        a.string(&mut raw)?; // defn
        a.string(&mut raw)?; // dropStmt
        a.string(&mut raw)?; // copyStmt
        let namespace = a.string(&mut raw)?;
        a.string(&mut raw)?; // tablespace
        a.string(&mut raw)?; // tableam
        if a.version >= (1, 16) {
            a.int(&mut raw)?; // relkind
        }
        let owner = a.string(&mut raw)?;
        a.string(&mut raw)?; // "false" (was WITH OIDS)
        let mut deps = Vec::new();
        while let Some(d) = a.string(&mut raw)? {
            if let Some(d) = std::str::from_utf8(&d).ok().and_then(|d| d.parse().ok()) {
                deps.push(d);
            }
        }
        let off = 1 + a.off_size;
        a.bytes(off, &mut raw)?; // data offset
        entries.push(TocEntry {
            raw,
            id,
            section,
            desc,
            tag,
            namespace,
            oid,
            owner,
            deps,
        });
    }
    Ok(ReadToc {
        head,
        version: a.version,
        int_size: a.int_size,
        off_size: a.off_size,
        compression,
        entries,
    })
}

/// Read an archive's header and table of contents from `src` and add a TABLE
/// DATA entry for each of `keyed`. The input comes from pg_dump (or an old
/// backup being imported) and is checked as untrusted: fuzzed (`fuzz/`).
pub fn rewrite_toc<R: Read>(src: &mut R, keyed: &[KeyedTable]) -> io::Result<Toc> {
    let read = read_toc(src)?;
    if read.compression != 0 {
        return Err(bad("the archive is compressed (pg_dump must run with -Z0)"));
    }
    let is_keyed = |e: &TocEntry| {
        keyed.iter().any(|k| {
            e.namespace.as_deref() == Some(k.schema.as_bytes())
                && e.tag.as_deref() == Some(k.table.as_bytes())
        })
    };
    if read
        .entries
        .iter()
        .any(|e| e.desc_is("TABLE DATA") && is_keyed(e))
    {
        return Err(bad(
            "pg_dump dumped the rows of a table it was told to leave out",
        ));
    }
    let max_id = read.entries.iter().map(|e| e.id).max().unwrap_or(0).max(0);
    let count = read.entries.len() as i64;
    let (head, entries) = (read.head, read.entries);
    let a = ReadSizes {
        version: read.version,
        int_size: read.int_size,
        off_size: read.off_size,
    };
    let n = a.int_size;
    // Our entries, shaped like pg_dump's own TABLE DATA entries.
    let mut added = Vec::new();
    let mut ids = Vec::new();
    for (i, k) in keyed.iter().enumerate() {
        let table = entries
            .iter()
            .find(|e| {
                e.desc_is("TABLE")
                    && e.namespace.as_deref() == Some(k.schema.as_bytes())
                    && e.tag.as_deref() == Some(k.table.as_bytes())
            })
            .ok_or_else(|| bad(format!("table {} is not in pg_dump's archive", k.qualified)))?;
        let (table_id, oid, owner) = (table.id, &table.oid, &table.owner);
        let id = max_id
            .checked_add(1 + i as i64)
            .ok_or_else(|| bad("archive dump ids out of range"))?;
        ids.push(id);
        let mut e = Vec::new();
        put_int(n, &mut e, id);
        put_int(n, &mut e, 1); // hadDumper
        put_str(n, &mut e, Some(b"0"));
        put_str(n, &mut e, oid.as_deref());
        put_str(n, &mut e, Some(k.table.as_bytes()));
        put_str(n, &mut e, Some(b"TABLE DATA"));
        put_int(n, &mut e, SECTION_DATA);
        put_str(n, &mut e, None); // defn
        put_str(n, &mut e, None); // dropStmt
        put_str(n, &mut e, Some(k.copy_stmt().as_bytes()));
        put_str(n, &mut e, Some(k.schema.as_bytes()));
        put_str(n, &mut e, None); // tablespace
        put_str(n, &mut e, None); // tableam
        if a.version >= (1, 16) {
            put_int(n, &mut e, 0); // relkind
        }
        put_str(n, &mut e, owner.as_deref());
        put_str(n, &mut e, Some(b"false"));
        put_str(n, &mut e, Some(table_id.to_string().as_bytes()));
        put_str(n, &mut e, None); // end of dependencies
        e.push(OFFSET_POS_NOT_SET);
        e.extend(std::iter::repeat_n(0, a.off_size));
        added.push(e);
    }
    let at = entries
        .iter()
        .position(|e| e.section == SECTION_POST_DATA)
        .unwrap_or(entries.len());
    let mut out = head;
    put_int(n, &mut out, count + added.len() as i64);
    for e in &entries[..at] {
        out.extend_from_slice(&e.raw);
    }
    for e in &added {
        out.extend_from_slice(e);
    }
    for e in &entries[at..] {
        out.extend_from_slice(&e.raw);
    }
    Ok(Toc {
        bytes: out,
        int_size: n,
        ids,
    })
}

impl<'s, R: Read> Reorder<'s, R> {
    /// With no keyed tables the archive passes through untouched.
    pub fn new(src: R, session: &'s Session, keyed: Vec<KeyedTable>) -> Self {
        Reorder {
            src: BufReader::with_capacity(1 << 20, src),
            session,
            keyed,
            out: Vec::with_capacity(1 << 20),
            pos: 0,
            state: State::Start,
            int_size: 4,
            ids: Vec::new(),
            next_table: 0,
        }
    }

    /// Tables whose rows went out in key order.
    pub fn ordered(&self) -> usize {
        self.keyed.len()
    }

    fn put_int(&self, to: &mut Vec<u8>, v: i64) {
        put_int(self.int_size, to, v)
    }

    /// Read the header and table of contents, add our entries, queue it all.
    fn header_and_toc(&mut self) -> io::Result<()> {
        let toc = rewrite_toc(&mut self.src, &self.keyed)?;
        self.int_size = toc.int_size;
        self.ids = toc.ids;
        self.out.extend_from_slice(&toc.bytes);
        Ok(())
    }

    /// Produce the next piece of output into `out`; false at the end.
    fn step(&mut self) -> io::Result<bool> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Start if self.keyed.is_empty() => {
                // Nothing to add: pg_dump's archive as it is.
                self.state = State::Theirs;
            }
            State::Start => {
                self.header_and_toc()?;
                self.state = State::Theirs;
            }
            State::Theirs => {
                let buf = self.src.fill_buf()?;
                if !buf.is_empty() {
                    let k = buf.len();
                    self.out.extend_from_slice(buf);
                    self.src.consume(k);
                    self.state = State::Theirs;
                } else {
                    return self.next_table();
                }
            }
            State::Ours(mut c) => {
                let mut rows: Vec<(usize, usize)> = Vec::new();
                let mut buf: Vec<u8> = Vec::new();
                let more = c
                    .fill(1 << 20, &mut |row| {
                        rows.push((buf.len(), row.len()));
                        buf.extend_from_slice(row);
                    })
                    .map_err(|e| io::Error::other(e.to_string()))?;
                let mut out = std::mem::take(&mut self.out);
                for (at, len) in rows {
                    self.put_int(&mut out, len as i64);
                    out.extend_from_slice(&buf[at..at + len]);
                }
                if more {
                    self.state = State::Ours(c);
                } else {
                    self.put_int(&mut out, 0); // end of the block
                    self.out = out;
                    return self.next_table();
                }
                self.out = out;
            }
            State::Done => return Ok(false),
        }
        Ok(true)
    }

    /// Start the next table's block after pg_dump's, or finish.
    fn next_table(&mut self) -> io::Result<bool> {
        let Some(k) = self.keyed.get(self.next_table).cloned() else {
            self.state = State::Done;
            return Ok(!self.out.is_empty());
        };
        let c = self
            .session
            .copy_out(&k.query())
            .map_err(|e| io::Error::other(format!("reading {} in key order: {e}", k.qualified)))?;
        let mut out = std::mem::take(&mut self.out);
        out.push(BLK_DATA);
        self.put_int(&mut out, self.ids[self.next_table]);
        self.out = out;
        self.next_table += 1;
        self.state = State::Ours(c);
        Ok(true)
    }
}

impl<R: Read> Read for Reorder<'_, R> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            self.out.clear();
            self.pos = 0;
            if !self.step()? {
                return Ok(0);
            }
        }
        let n = dst.len().min(self.out.len() - self.pos);
        dst[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "reorder_tests.rs"]
mod tests;
