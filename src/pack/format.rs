//! Pack header encoding and the in-memory pack builder. The decoder takes untrusted
//! bytes (after authentication) and is fuzzed: it must never panic or over-allocate.

use crate::crypto::{Kind, MasterKey};
use crate::id::PackId;

/// The id under which every pack header is sealed (a pack's own id is the hash of
/// its bytes, unknown while the header is being sealed). What binds a header to
/// its pack is the hash of the blob section inside it (format 2).
pub const HEADER_ID: [u8; 32] = [0; 32];
/// Format 1: entries only. Format 2: the BLAKE3 of the blob section first.
const VERSION_1: u8 = 1;
const VERSION: u8 = 2;
const ENTRY_LEN: usize = 1 + 32 + 4 + 4;

/// A decoded header: its entries and, from format 2 on, the BLAKE3 of the bytes
/// before the header (the blobs), which a pack found only by its header must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackHeader {
    pub entries: Vec<PackEntry>,
    pub blobs_hash: Option<[u8; 32]>,
}

/// Where a blob sits in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: Kind,
    pub id: [u8; 32],
    pub offset: u64,
    /// Sealed length in the pack.
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

impl PackEntry {
    pub fn key(&self) -> super::BlobKey {
        (self.kind, self.id)
    }
}

/// Format 2 headers are sealed uncompressed, padded to a multiple of this (in
/// the sealed body, after compression would have squeezed plaintext zeros
/// away), so a pack's header length tells its number of blobs only to within
/// about a hundred.
const HEADER_PAD: usize = 4096;

pub fn encode_header(entries: &[PackEntry], blobs_hash: &[u8; 32]) -> Vec<u8> {
    let len = 37 + entries.len() * ENTRY_LEN;
    let mut out = Vec::with_capacity(len);
    out.push(VERSION);
    out.extend_from_slice(blobs_hash);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.push(e.kind as u8);
        out.extend_from_slice(&e.id);
        out.extend_from_slice(&e.length.to_le_bytes());
        out.extend_from_slice(&e.raw_length.to_le_bytes());
    }
    out
}

/// Decode a header's plaintext (format 1 or 2); offsets are recomputed from the
/// lengths.
pub fn decode_header(b: &[u8]) -> Result<PackHeader, &'static str> {
    let (blobs_hash, rest) = match b.first() {
        Some(&VERSION_1) => (None, &b[1..]),
        Some(&VERSION) if b.len() >= 33 => (Some(b[1..33].try_into().expect("32 bytes")), &b[33..]),
        _ => return Err("unknown pack header version"),
    };
    if rest.len() < 4 {
        return Err("pack header truncated");
    }
    let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
    let want = n.checked_mul(ENTRY_LEN).ok_or("entry count overflows")?;
    let body = &rest[4..];
    // Format 2 pads with zeros after the entries; format 1 has none.
    let padding_ok =
        blobs_hash.is_some() && body.get(want..).is_some_and(|p| p.iter().all(|&b| b == 0));
    if body.len() != want && !padding_ok {
        return Err("pack header length does not match its entry count");
    }
    let body = &body[..want];
    let mut out = Vec::with_capacity(n);
    let mut offset = 0u64;
    for e in body.chunks_exact(ENTRY_LEN) {
        let kind = Kind::from_u8(e[0])
            .filter(|k| matches!(k, Kind::Data | Kind::Tree))
            .ok_or("bad blob kind")?;
        let length = u32::from_le_bytes(e[33..37].try_into().unwrap());
        let raw_length = u32::from_le_bytes(e[37..41].try_into().unwrap());
        out.push(PackEntry {
            kind,
            id: e[1..33].try_into().unwrap(),
            offset,
            length,
            raw_length,
        });
        offset += length as u64;
    }
    Ok(PackHeader {
        entries: out,
        blobs_hash,
    })
}

/// Given a pack's total size and its last four bytes, where its sealed header sits.
pub fn header_location(pack_size: u64, trailer: [u8; 4]) -> Result<(u64, u32), &'static str> {
    let len = u32::from_le_bytes(trailer);
    let start = pack_size
        .checked_sub(4 + len as u64)
        .ok_or("header length exceeds the pack")?;
    Ok((start, len))
}

/// Accumulates sealed blobs in memory until the pack is big enough to write.
#[derive(Default)]
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    pub fn add(&mut self, kind: Kind, id: [u8; 32], sealed: &[u8], raw_length: u32) {
        if self.buf.capacity() == 0 {
            // Room for a whole pack at once: growing by doubling would copy it again.
            self.buf.reserve(super::PACK_TARGET + 5 * 1024 * 1024);
        }
        self.entries.push(PackEntry {
            kind,
            id,
            offset: self.buf.len() as u64,
            length: sealed.len() as u32,
            raw_length,
        });
        self.buf.extend_from_slice(sealed);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append the sealed header and trailer; return the pack's id, bytes and entries.
    /// One BLAKE3 pass gives both the blob section's hash (in the header) and the
    /// pack's id (of all its bytes).
    pub fn finish(mut self, key: &MasterKey) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        let mut h = blake3::Hasher::new();
        h.update(&self.buf);
        let blobs_hash = *h.clone().finalize().as_bytes();
        let start = self.buf.len();
        let header = crate::codec::encode_padded_to(
            key,
            Kind::PackHeader,
            &HEADER_ID,
            &encode_header(&self.entries, &blobs_hash),
            HEADER_PAD,
        );
        self.buf.extend_from_slice(&header);
        self.buf
            .extend_from_slice(&(header.len() as u32).to_le_bytes());
        h.update(&self.buf[start..]);
        let id = PackId(*h.finalize().as_bytes());
        (id, self.buf, self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trip() {
        let k = MasterKey::generate();
        let mut b = PackBuilder::default();
        b.add(Kind::Data, [1; 32], b"sealed-1", 3);
        b.add(Kind::Tree, [2; 32], b"sealed-two", 9);
        let (id, bytes, entries) = b.finish(&k);
        assert_eq!(id.0, *blake3::hash(&bytes).as_bytes());
        let (start, len) = header_location(
            bytes.len() as u64,
            bytes[bytes.len() - 4..].try_into().unwrap(),
        )
        .unwrap();
        let sealed = &bytes[start as usize..start as usize + len as usize];
        let plain =
            crate::codec::decode(&k, Kind::PackHeader, &HEADER_ID, sealed, 1 << 20).unwrap();
        let h = decode_header(&plain).unwrap();
        assert_eq!(h.entries, entries);
        assert_eq!(
            h.blobs_hash,
            Some(*blake3::hash(&bytes[..start as usize]).as_bytes())
        );
        assert_eq!(entries[1].offset, 8);
        // Format 1 headers (no hash) still decode.
        assert_eq!(
            (sealed.len() - crate::crypto::OVERHEAD) % 4096,
            0,
            "the sealed body is padded to 4 KiB"
        );
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&plain[33..33 + 4 + 2 * ENTRY_LEN]);
        assert_eq!(
            decode_header(&v1).unwrap(),
            PackHeader {
                entries,
                blobs_hash: None
            }
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_header(&b);
        }
    }
}
