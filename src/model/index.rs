//! Index objects: which blobs live in which pack, at which offset.
//!
//! ```text
//! index = u8 version(1) ‖ u32le packs ‖ packs × (pack_id[32] ‖ u64le size ‖ u32le n ‖
//!         n × (u8 kind ‖ id[32] ‖ u64le offset ‖ u32le length ‖ u32le raw_length))
//! ```
//! Sealed (zstd + AES-GCM) as kind Index; its object id is the keyed hash of this
//! plaintext and its file name.

use crate::crypto::Kind;
use crate::id::PackId;
use crate::pack::PackEntry;

const VERSION: u8 = 1;
const ENTRY_LEN: usize = 1 + 32 + 8 + 4 + 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedPack {
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<PackEntry>,
}

pub fn encode(packs: &[IndexedPack]) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend_from_slice(&(packs.len() as u32).to_le_bytes());
    for p in packs {
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
    out
}

pub fn decode(b: &[u8]) -> Result<Vec<IndexedPack>, &'static str> {
    let mut r = Reader(b);
    if r.take(1)?[0] != VERSION {
        return Err("unknown index version");
    }
    let n = r.u32()? as usize;
    let mut packs = Vec::with_capacity(n.min(b.len() / 44));
    for _ in 0..n {
        let id = PackId(r.take(32)?.try_into().unwrap());
        let size = r.u64()?;
        let m = r.u32()? as usize;
        if m.checked_mul(ENTRY_LEN).is_none_or(|l| l > r.0.len()) {
            return Err("index entry count exceeds its length");
        }
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
        packs.push(IndexedPack { id, size, blobs });
    }
    if !r.0.is_empty() {
        return Err("trailing bytes after index");
    }
    Ok(packs)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let packs = vec![IndexedPack {
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
        }];
        assert_eq!(decode(&encode(&packs)).unwrap(), packs);
    }

    proptest! {
        #[test]
        fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&b);
        }
    }
}
