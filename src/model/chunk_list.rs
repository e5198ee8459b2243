//! Chunk lists: the chunk ids of a long stream (a database dump), stored as a row
//! of list blobs instead of inline in the tree node.
//!
//! A 1 GiB dump at 8 KiB chunks has 131,072 chunk ids (4 MiB); inline, every
//! snapshot would store them again even when the dump barely changed. The ids are
//! cut into lists at content-defined points (after an id whose first two bytes,
//! read as a little-endian number, are divisible by `SPLIT`; ids are keyed hashes,
//! so about one in `SPLIT`), so a change replaces only the list around it and the
//! unchanged lists are shared between snapshots. A list blob is stored with the
//! tree blobs; its bytes are the 32-byte ids one after another.

use crate::id::ChunkId;

/// About one list every `SPLIT` ids (2 KiB lists on average).
pub const SPLIT: u16 = 64;
/// No list is longer than this many ids.
pub const MAX_IDS: usize = 1024;

/// Cut `ids` into lists at content-defined points.
pub fn split(ids: &[ChunkId]) -> Vec<&[ChunkId]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, id) in ids.iter().enumerate() {
        let boundary = u16::from_le_bytes([id.0[0], id.0[1]]) % SPLIT == 0;
        if boundary || i + 1 - start == MAX_IDS {
            out.push(&ids[start..=i]);
            start = i + 1;
        }
    }
    if start < ids.len() {
        out.push(&ids[start..]);
    }
    out
}

pub fn to_bytes(ids: &[ChunkId]) -> Vec<u8> {
    ids.iter().flat_map(|c| c.0).collect()
}

pub fn from_bytes(b: &[u8]) -> Result<Vec<ChunkId>, String> {
    if b.len() % 32 != 0 {
        return Err(format!(
            "chunk list of {} bytes is not a row of 32-byte ids",
            b.len()
        ));
    }
    Ok(b.chunks_exact(32)
        .map(|c| ChunkId(c.try_into().expect("32 bytes")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> ChunkId {
        ChunkId(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    #[test]
    fn split_is_local_and_round_trips() {
        let a: Vec<ChunkId> = (0..20_000).map(id).collect();
        let lists = split(&a);
        assert!(lists.len() > 200 && lists.len() < 500, "{}", lists.len());
        assert!(lists.iter().all(|l| l.len() <= MAX_IDS));
        assert_eq!(lists.concat(), a);
        for l in &lists {
            assert_eq!(from_bytes(&to_bytes(l)).unwrap(), l.to_vec());
        }
        // One id changed in the middle: all lists but one or two are the same.
        let mut b = a.clone();
        b[10_000] = id(99_999_999);
        let old: std::collections::HashSet<Vec<u8>> = lists.iter().map(|l| to_bytes(l)).collect();
        let new = split(&b)
            .iter()
            .filter(|l| !old.contains(&to_bytes(l)))
            .count();
        assert!(new <= 2, "{new} lists changed");
        assert!(from_bytes(&[0; 33]).is_err());
    }
}
