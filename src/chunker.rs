//! Content-defined chunking: FastCDC cut points with the repository's secret gear table.
//!
//! The cut routine is the `fastcdc` crate's (`v2020::cut_gear`); what is ours is the
//! keyed gear table (256 words from the secret gear seed, not the crate's XOR-a-u64
//! seed) and the batching: a reader is consumed in segments of several MiB, and each
//! segment yields a batch of whole chunks that the engine hashes, compresses and
//! encrypts in parallel. Pure: no I/O besides the reader it is given.

use std::io::{self, Read};

use fastcdc::v2020::{cut_gear, select_masks, Normalization};

/// Chunk size bounds in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSizes {
    pub min: usize,
    pub avg: usize,
    pub max: usize,
}

/// Files: large media dominate, so 1 MiB average keeps the index small.
pub const FILE_CHUNKS: ChunkSizes = ChunkSizes {
    min: 256 * 1024,
    avg: 1024 * 1024,
    max: 4 * 1024 * 1024,
};

/// Database dump streams: a day's changes are scattered rows, so small chunks keep
/// the daily increment small (measured in docs/decisions/002-database-dumps.md).
pub const DB_CHUNKS: ChunkSizes = ChunkSizes {
    min: 2 * 1024,
    avg: 8 * 1024,
    max: 32 * 1024,
};

/// How much a batch reads at once (a multiple of the largest chunk).
const SEGMENT: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct Chunker {
    sizes: ChunkSizes,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    pub fn new(sizes: ChunkSizes, gear: Box<[u64; 256]>) -> Self {
        assert!(
            sizes.min >= 64
                && sizes.min <= sizes.avg
                && sizes.avg <= sizes.max
                && sizes.max <= SEGMENT
        );
        let mut gear_ls = Box::new([0u64; 256]);
        for (d, s) in gear_ls.iter_mut().zip(gear.iter()) {
            *d = s << 1;
        }
        let (mask_s, mask_l) = select_masks(sizes.avg, Normalization::Level1);
        Chunker {
            sizes,
            gear,
            gear_ls,
            mask_s,
            mask_l,
        }
    }

    pub fn sizes(&self) -> ChunkSizes {
        self.sizes
    }

    /// Length of the next chunk at the start of `buf` (all of `buf` if shorter than min).
    fn next_cut(&self, buf: &[u8]) -> usize {
        let (_, n) = cut_gear(
            buf,
            self.sizes.min,
            self.sizes.avg,
            self.sizes.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        n
    }

    /// Chunk all of `data` (for in-memory use and tests).
    pub fn chunk_slice<'a>(&self, data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let n = self.next_cut(&data[pos..]);
            out.push(&data[pos..pos + n]);
            pos += n;
        }
        out
    }

    /// Batches of whole chunks from a reader; `size_hint` (the file's size, if known)
    /// keeps small files from reserving a whole segment.
    pub fn batches<R: Read>(&self, reader: R, size_hint: Option<u64>) -> Batches<'_, R> {
        Batches {
            chunker: self,
            reader,
            carry: Vec::new(),
            eof: false,
            hint: size_hint,
        }
    }
}

/// A run of consecutive chunks: `data` split at `ends`.
pub struct Batch {
    pub data: Vec<u8>,
    pub ends: Vec<usize>,
}

impl Batch {
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&e| {
            let s = &self.data[start..e];
            start = e;
            s
        })
    }
}

pub struct Batches<'c, R> {
    chunker: &'c Chunker,
    reader: R,
    carry: Vec<u8>,
    eof: bool,
    hint: Option<u64>,
}

impl<R: Read> Batches<'_, R> {
    /// The next batch, or `None` at the end of the stream.
    pub fn next_batch(&mut self) -> io::Result<Option<Batch>> {
        let mut buf = std::mem::take(&mut self.carry);
        let want = SEGMENT + self.chunker.sizes.max;
        if !self.eof {
            // Reserve what the file can still hold (plus one byte to see its end),
            // not a whole segment: 100,000 small files must not each zero 12 MiB.
            let room = self
                .hint
                .map_or(want, |h| (h as usize).saturating_add(1).min(want));
            buf.reserve(room.saturating_sub(buf.len()));
            let limit = (want - buf.len()) as u64;
            let n = loop {
                match (&mut self.reader).take(limit).read_to_end(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if (n as u64) < limit {
                self.eof = true;
            }
            self.hint = self.hint.map(|h| h.saturating_sub(n as u64));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let max = self.chunker.sizes.max;
        let mut ends = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            if !self.eof && buf.len() - pos < max {
                break; // the rest may grow into a larger chunk: carry it over
            }
            pos += self.chunker.next_cut(&buf[pos..]);
            ends.push(pos);
        }
        self.carry = buf[pos..].to_vec();
        buf.truncate(pos);
        Ok(Some(Batch { data: buf, ends }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn test_chunker(sizes: ChunkSizes) -> Chunker {
        Chunker::new(sizes, crate::crypto::MasterKey::generate().gear_table())
    }

    fn stream_chunks(c: &Chunker, data: &[u8], read_size: usize) -> Vec<Vec<u8>> {
        struct Slow<'a>(&'a [u8], usize);
        impl Read for Slow<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(b.len()).min(self.1);
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        let mut b = c.batches(Slow(data, read_size), None);
        while let Some(batch) = b.next_batch().unwrap() {
            out.extend(batch.chunks().map(|c| c.to_vec()));
        }
        out
    }

    const SMALL: ChunkSizes = ChunkSizes {
        min: 256,
        avg: 1024,
        max: 4096,
    };

    proptest! {
        #[test]
        fn chunks_concatenate_and_respect_bounds(data in proptest::collection::vec(any::<u8>(), 0..40_000), rs in 1usize..10_000) {
            let c = test_chunker(SMALL);
            let chunks = stream_chunks(&c, &data, rs);
            prop_assert_eq!(chunks.concat(), data.clone());
            for (i, ch) in chunks.iter().enumerate() {
                prop_assert!(ch.len() <= SMALL.max);
                if i + 1 < chunks.len() { prop_assert!(ch.len() >= SMALL.min); }
            }
            // Streaming and in-memory chunking cut at the same places.
            let direct: Vec<Vec<u8>> = c.chunk_slice(&data).into_iter().map(|s| s.to_vec()).collect();
            prop_assert_eq!(chunks, direct);
        }
    }

    #[test]
    fn large_stream_cuts_match_slice_cuts() {
        let mut data = vec![0u8; 3 * SEGMENT + 12345];
        let mut x = 0x9e3779b97f4a7c15u64;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let c = test_chunker(FILE_CHUNKS);
        let s = stream_chunks(&c, &data, 1 << 20);
        let d: Vec<Vec<u8>> = c
            .chunk_slice(&data)
            .into_iter()
            .map(|s| s.to_vec())
            .collect();
        assert_eq!(s, d);
        assert!(s.len() > 10);
    }

    #[test]
    fn an_insert_moves_only_nearby_boundaries() {
        let mut data = vec![0u8; 2_000_000];
        let mut x = 1u64;
        for b in data.iter_mut() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (x >> 33) as u8;
        }
        let c = test_chunker(ChunkSizes {
            min: 4096,
            avg: 16384,
            max: 65536,
        });
        let a: std::collections::HashSet<Vec<u8>> =
            c.chunk_slice(&data).iter().map(|s| s.to_vec()).collect();
        let mut shifted = data.clone();
        shifted.splice(1_000_000..1_000_000, b"inserted".iter().copied());
        let b: Vec<Vec<u8>> = c.chunk_slice(&shifted).iter().map(|s| s.to_vec()).collect();
        let new = b.iter().filter(|ch| !a.contains(*ch)).count();
        assert!(new <= 3, "{new} new chunks after an 8-byte insert");
    }
}
