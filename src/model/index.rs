//! Index objects: which blobs live in which pack, at which offset; which packs a
//! prune has condemned (marked for deletion) and since when; which index objects
//! this one replaces.
//!
//! ```text
//! index v2 = u8 version(2) ‖ i64le written ‖ u32le packs ‖ packs × pack ‖
//!            u32le c ‖ c × (pack_id[32] ‖ i64le marked_at) ‖
//!            u32le s ‖ s × index_id[32]
//! index v1 = u8 version(1) ‖ u32le packs ‖ packs × pack
//! pack     = pack_id[32] ‖ u64le size ‖ u32le n ‖
//!            n × (u8 kind ‖ id[32] ‖ u64le offset ‖ u32le length ‖ u32le raw_length)
//! ```
//! Times are Unix seconds of the writer's clock. A condemned pack is one of this
//! object's packs (its blobs stay readable; no new snapshot deduplicates against
//! it). Version 1 is read as version 2 with no time, condemnations or
//! replacements; only version 2 is written. Sealed (zstd + AES-GCM) as kind
//! Index; its object id is the keyed hash of this plaintext and its file name.

use crate::crypto::Kind;
use crate::id::{ObjectId, PackId};
use crate::pack::PackEntry;

const VERSION: u8 = 2;
const ENTRY_LEN: usize = 1 + 32 + 8 + 4 + 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedPack {
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<PackEntry>,
}

/// One index object's content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// When it was written (0: unknown, a version 1 object).
    pub written: i64,
    pub packs: Vec<IndexedPack>,
    /// Packs of `packs` a prune condemned, and when.
    pub condemned: Vec<(PackId, i64)>,
    /// Index objects this one replaces (a prune's rewrite).
    pub supersedes: Vec<ObjectId>,
}

impl Index {
    /// An index object listing `packs`, written now.
    pub fn of(packs: Vec<IndexedPack>) -> Index {
        Index {
            written: crate::util::now().unix_timestamp(),
            packs,
            ..Index::default()
        }
    }
}

pub fn encode(ix: &Index) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend_from_slice(&ix.written.to_le_bytes());
    out.extend_from_slice(&(ix.packs.len() as u32).to_le_bytes());
    for p in &ix.packs {
        out.extend_from_slice(&p.id.0);
        out.extend_from_slice(&p.size.to_le_bytes());
        out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
        for b in &p.blobs {
            out.push(b.kind as u8);
            out.extend_from_slice(&b.id);
            out.extend_from_slice(&b.offset.to_le_bytes());
            out.extend_from_slice(&b.length.to_le_bytes());
            out.extend_from_slice(&b.raw_length.to_le_bytes());
        }
    }
    out.extend_from_slice(&(ix.condemned.len() as u32).to_le_bytes());
    for (id, at) in &ix.condemned {
        out.extend_from_slice(&id.0);
        out.extend_from_slice(&at.to_le_bytes());
    }
    out.extend_from_slice(&(ix.supersedes.len() as u32).to_le_bytes());
    for id in &ix.supersedes {
        out.extend_from_slice(&id.0);
    }
    out
}

pub fn decode(b: &[u8]) -> Result<Index, &'static str> {
    let mut r = Reader(b);
    let version = r.take(1)?[0];
    if version != 1 && version != VERSION {
        return Err("unknown index version");
    }
    let written = if version == 1 { 0 } else { r.i64()? };
    let n = r.u32()? as usize;
    let mut packs = Vec::with_capacity(n.min(b.len() / 44));
    for _ in 0..n {
        packs.push(pack(&mut r)?);
    }
    let mut ix = Index {
        written,
        packs,
        ..Index::default()
    };
    if version == VERSION {
        let c = r.count(40)?;
        let mut listed: std::collections::HashSet<PackId> = std::collections::HashSet::new();
        if c > 0 {
            listed.extend(ix.packs.iter().map(|p| p.id));
        }
        for _ in 0..c {
            let id = PackId(r.take(32)?.try_into().unwrap());
            let at = r.i64()?;
            // Removed once condemned: a second condemnation of it is refused too.
            if !listed.remove(&id) {
                return Err("a condemned pack is not among the index's packs, or condemned twice");
            }
            ix.condemned.push((id, at));
        }
        let s = r.count(32)?;
        for _ in 0..s {
            ix.supersedes
                .push(ObjectId(r.take(32)?.try_into().unwrap()));
        }
    }
    if !r.0.is_empty() {
        return Err("trailing bytes after index");
    }
    Ok(ix)
}

fn pack(r: &mut Reader<'_>) -> Result<IndexedPack, &'static str> {
    let id = PackId(r.take(32)?.try_into().unwrap());
    let size = r.u64()?;
    let m = r.count(ENTRY_LEN)?;
    let mut blobs = Vec::with_capacity(m);
    for _ in 0..m {
        let kind = Kind::from_u8(r.take(1)?[0])
            .filter(|k| matches!(k, Kind::Data | Kind::Tree))
            .ok_or("bad blob kind")?;
        let id = r.take(32)?.try_into().unwrap();
        let offset = r.u64()?;
        let length = r.u32()?;
        let raw_length = r.u32()?;
        if offset
            .checked_add(length as u64)
            .is_none_or(|end| end > size)
        {
            return Err("blob lies outside its pack");
        }
        blobs.push(PackEntry {
            kind,
            id,
            offset,
            length,
            raw_length,
        });
    }
    Ok(IndexedPack { id, size, blobs })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("index truncated");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn i64(&mut self) -> Result<i64, &'static str> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    /// A count of items `len` bytes each, checked against what is left.
    fn count(&mut self, len: usize) -> Result<usize, &'static str> {
        let n = self.u32()? as usize;
        if n.checked_mul(len).is_none_or(|l| l > self.0.len()) {
            return Err("index entry count exceeds its length");
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Index {
        Index {
            written: 1_700_000_000,
            packs: vec![IndexedPack {
                id: PackId([9; 32]),
                size: 100,
                blobs: vec![
                    PackEntry {
                        kind: Kind::Data,
                        id: [1; 32],
                        offset: 0,
                        length: 40,
                        raw_length: 50,
                    },
                    PackEntry {
                        kind: Kind::Tree,
                        id: [2; 32],
                        offset: 40,
                        length: 30,
                        raw_length: 20,
                    },
                ],
            }],
            condemned: vec![(PackId([9; 32]), 1_700_000_100)],
            supersedes: vec![ObjectId([7; 32])],
        }
    }

    #[test]
    fn round_trip() {
        let ix = sample();
        assert_eq!(decode(&encode(&ix)).unwrap(), ix);
    }

    #[test]
    fn version_1_reads_as_packs_alone() {
        let ix = sample();
        let v2 = encode(&ix);
        // v1: the version byte, then the packs section as v2 has it.
        let packs_end = v2.len() - (4 + 40) - (4 + 32);
        let mut v1 = vec![1];
        v1.extend_from_slice(&v2[9..packs_end]);
        let read = decode(&v1).unwrap();
        assert_eq!(read.packs, ix.packs);
        assert_eq!(
            (read.written, read.condemned.len(), read.supersedes.len()),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_condemned_pack_must_be_listed_once() {
        let mut ix = sample();
        ix.condemned = vec![(PackId([8; 32]), 5)];
        assert!(decode(&encode(&ix)).is_err());
        ix.condemned = vec![(PackId([9; 32]), 5), (PackId([9; 32]), 6)];
        assert!(decode(&encode(&ix)).is_err());
    }

    proptest! {
        #[test]
        fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&b);
        }
    }
}
