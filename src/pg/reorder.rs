//! Rows in primary-key order inside pg_dump's own custom-format archive.
//!
//! pg_dump writes each table's rows in physical order. In a database that has
//! lived, new rows fill free space all over a table, so a day's 1% of new rows
//! touches most of the dump and defeats deduplication (measured in
//! docs/decisions/002-database-dumps.md). This reader passes pg_dump's `-Fc -Z0`
//! stream through unchanged, except the data block of every table with a primary
//! key: its rows are replaced by the same columns read by
//! `COPY (SELECT … FROM ONLY t ORDER BY pk) TO STDOUT` in the same exported
//! snapshot, framed as pg_dump frames them (one length word and one row at a time).
//! The result is still a stock custom-format archive: `pg_restore` (also `-j`)
//! reads it, and the rows and their count are the same.
//!
//! Anything unexpected (an archive version this code does not know, a compressed
//! archive, a COPY statement it cannot parse, a table whose ordered COPY the server
//! refuses) leaves that part as pg_dump wrote it.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};

use super::session::{literal, CopyOut, Session};

const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
/// Archive versions 1.12 (PostgreSQL 11) to 1.16 (17) are understood.
const MIN_VERSION: (u8, u8) = (1, 12);
const MAX_VERSION: (u8, u8) = (1, 16);

pub struct Reorder<'s, R: Read> {
    src: BufReader<R>,
    session: &'s Session,
    /// Bytes ready to hand out, from `pos`.
    out: Vec<u8>,
    pos: usize,
    state: State<'s>,
    version: (u8, u8),
    int_size: usize,
    off_size: usize,
    /// dumpId → ordered COPY query, for the tables that get one.
    plans: HashMap<i64, String>,
    /// Tables whose rows went out in primary-key order.
    pub ordered: usize,
    enabled: bool,
}

enum State<'s> {
    Start,
    Blocks,
    /// Our ordered rows for a block; pg_dump's own rows are skipped afterwards.
    Ours(CopyOut<'s>),
    /// Raw copy of whatever is left (unknown archive or block type).
    Raw,
    Done,
}

impl<'s, R: Read> Reorder<'s, R> {
    /// `enabled` false passes the archive through untouched.
    pub fn new(src: R, session: &'s Session, enabled: bool) -> Self {
        Reorder {
            src: BufReader::with_capacity(1 << 20, src),
            session,
            out: Vec::with_capacity(1 << 20),
            pos: 0,
            state: State::Start,
            version: (0, 0),
            int_size: 4,
            off_size: 8,
            plans: HashMap::new(),
            ordered: 0,
            enabled,
        }
    }

    fn bytes(&mut self, n: usize, emit: bool) -> io::Result<Vec<u8>> {
        let mut b = vec![0; n];
        self.src.read_exact(&mut b)?;
        if emit {
            self.out.extend_from_slice(&b);
        }
        Ok(b)
    }

    fn byte(&mut self, emit: bool) -> io::Result<u8> {
        Ok(self.bytes(1, emit)?[0])
    }

    /// pg_dump's integer: a sign byte, then `int_size` bytes little-endian.
    fn int(&mut self, emit: bool) -> io::Result<i64> {
        let b = self.bytes(1 + self.int_size, emit)?;
        let mut v: i64 = 0;
        for (i, x) in b[1..].iter().enumerate() {
            v |= (*x as i64) << (8 * i);
        }
        Ok(if b[0] != 0 { -v } else { v })
    }

    fn put_int(&mut self, v: usize) {
        self.out.push(0);
        for i in 0..self.int_size {
            self.out.push((v >> (8 * i)) as u8);
        }
    }

    fn string(&mut self, emit: bool) -> io::Result<Option<Vec<u8>>> {
        let n = self.int(emit)?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(self.bytes(n as usize, emit)?))
    }

    /// Header and table of contents, passed through; false when not understood.
    fn header_and_toc(&mut self) -> io::Result<bool> {
        if self.bytes(5, true)? != b"PGDMP" {
            return Ok(false);
        }
        let (maj, min, _rev) = (self.byte(true)?, self.byte(true)?, self.byte(true)?);
        self.version = (maj, min);
        if self.version < MIN_VERSION || self.version > MAX_VERSION {
            return Ok(false);
        }
        self.int_size = self.byte(true)? as usize;
        self.off_size = self.byte(true)? as usize;
        let format = self.byte(true)?;
        if !(1..=8).contains(&self.int_size) || !(1..=16).contains(&self.off_size) || format != 1 {
            return Ok(false);
        }
        let compression = if self.version >= (1, 15) {
            self.byte(true)? as i64
        } else {
            self.int(true)?
        };
        if compression != 0 {
            return Ok(false);
        }
        for _ in 0..7 {
            self.int(true)?; // creation time
        }
        for _ in 0..3 {
            self.string(true)?; // database, server version, pg_dump version
        }
        let entries = self.int(true)?;
        let mut data = Vec::new();
        for _ in 0..entries {
            let dump_id = self.int(true)?;
            self.int(true)?; // hadDumper
            self.string(true)?; // tableoid
            self.string(true)?; // oid
            self.string(true)?; // tag
            let desc = self.string(true)?;
            self.int(true)?; // section
            self.string(true)?; // defn
            self.string(true)?; // dropStmt
            let copy = self.string(true)?;
            self.string(true)?; // namespace
            self.string(true)?; // tablespace
            self.string(true)?; // tableam
            if self.version >= (1, 16) {
                self.int(true)?; // relkind
            }
            self.string(true)?; // owner
            self.string(true)?; // "false" (was WITH OIDS)
            while self.string(true)?.is_some() {} // dependencies
            self.byte(true)?; // offset state
            self.bytes(self.off_size, true)?; // offset
            if desc.as_deref() == Some(b"TABLE DATA") {
                if let Some(c) = copy.and_then(|c| String::from_utf8(c).ok()) {
                    data.push((dump_id, c));
                }
            }
        }
        for (id, copy) in data.into_iter().filter(|_| self.enabled) {
            if let Some(q) = self.plan(&copy) {
                self.plans.insert(id, q);
            }
        }
        Ok(true)
    }

    /// The ordered COPY for a table data entry, when the table has a primary key.
    fn plan(&self, copy_stmt: &str) -> Option<String> {
        let (table, columns) = parse_copy(copy_stmt)?;
        let pk = self
            .session
            .value(&format!(
                "SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord) \
                 FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = {}::regclass AND i.indisprimary",
                literal(table)
            ))
            .ok()??;
        Some(format!(
            "COPY (SELECT {columns} FROM ONLY {table} ORDER BY {pk}) TO STDOUT"
        ))
    }

    /// Copy `len`-framed rows until the zero word; `emit` false skips them.
    fn frames(&mut self, emit: bool) -> io::Result<()> {
        loop {
            let n = self.int(emit)?;
            if n <= 0 {
                return Ok(());
            }
            let mut left = n as usize;
            while left > 0 {
                let buf = self.src.fill_buf()?;
                if buf.is_empty() {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let k = buf.len().min(left);
                if emit {
                    self.out.extend_from_slice(&buf[..k]);
                }
                self.src.consume(k);
                left -= k;
            }
        }
    }

    /// Produce the next piece of output into `out`; false at the end.
    fn step(&mut self) -> io::Result<bool> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Start => {
                self.state = if self.header_and_toc()? {
                    State::Blocks
                } else {
                    State::Raw
                };
            }
            State::Raw => {
                let buf = self.src.fill_buf()?;
                if buf.is_empty() {
                    return Ok(false);
                }
                let k = buf.len();
                self.out.extend_from_slice(buf);
                self.src.consume(k);
                self.state = State::Raw;
            }
            State::Blocks => {
                if self.src.fill_buf()?.is_empty() {
                    return Ok(false);
                }
                let kind = self.byte(true)?;
                match kind {
                    BLK_DATA => {
                        let id = self.int(true)?;
                        self.state = State::Blocks;
                        if let Some(q) = self.plans.get(&id).cloned() {
                            if let Some(c) = self.start_copy(&q) {
                                self.ordered += 1;
                                self.state = State::Ours(c);
                                return Ok(true);
                            }
                        }
                        self.frames(true)?;
                    }
                    BLK_BLOBS => {
                        self.int(true)?;
                        while self.int(true)? != 0 {
                            self.frames(true)?;
                        }
                        self.state = State::Blocks;
                    }
                    _ => self.state = State::Raw,
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
                for (at, len) in rows {
                    self.put_int(len);
                    self.out.extend_from_slice(&buf[at..at + len]);
                }
                if more {
                    self.state = State::Ours(c);
                } else {
                    drop(c);
                    // Release the savepoint; skip pg_dump's own rows; end the block.
                    let _ = self.session.batch("RELEASE SAVEPOINT hcbackup_copy");
                    self.frames(false)?;
                    self.put_int(0);
                    self.state = State::Blocks;
                }
            }
            State::Done => return Ok(false),
        }
        Ok(true)
    }

    /// Start an ordered COPY; None (and the transaction as it was) when refused.
    fn start_copy(&self, q: &str) -> Option<CopyOut<'s>> {
        self.session.batch("SAVEPOINT hcbackup_copy").ok()?;
        match self.session.copy_out(q) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::info!("rows left in pg_dump's order: {e}");
                let _ = self.session.batch("ROLLBACK TO SAVEPOINT hcbackup_copy");
                None
            }
        }
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

/// `COPY schema.table (a, b) FROM stdin;\n` → ("schema.table", "a, b"), the
/// identifiers as pg_dump quoted them.
pub fn parse_copy(stmt: &str) -> Option<(&str, &str)> {
    let body = stmt.strip_prefix("COPY ")?.strip_suffix(" FROM stdin;\n")?;
    let mut quoted = false;
    let mut split = None;
    for (i, ch) in body.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            ' ' if !quoted && body[i..].starts_with(" (") => {
                split = Some(i);
                break;
            }
            _ => {}
        }
    }
    let at = split?;
    let columns = body[at + 2..].strip_suffix(')')?;
    let table = &body[..at];
    if table.is_empty() || columns.is_empty() {
        return None;
    }
    Some((table, columns))
}

#[cfg(test)]
mod tests {
    use super::parse_copy;

    #[test]
    fn copy_statements() {
        assert_eq!(
            parse_copy("COPY public.patients (id, name, \"weird (col\") FROM stdin;\n"),
            Some(("public.patients", "id, name, \"weird (col\""))
        );
        assert_eq!(
            parse_copy("COPY \"my (schema\".\"t x\" (a) FROM stdin;\n"),
            Some(("\"my (schema\".\"t x\"", "a"))
        );
        assert_eq!(parse_copy("COPY public.t  FROM stdin;\n"), None);
        assert_eq!(parse_copy("SELECT 1"), None);
    }
}
