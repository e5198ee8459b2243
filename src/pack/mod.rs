//! Pack files: many sealed blobs followed by a sealed header that lists them.
//!
//! ```text
//! pack   = blob_1 ‖ … ‖ blob_n ‖ sealed_header ‖ u32le(len(sealed_header))
//! blob_i = codec::encode(kind_i, id_i, plaintext_i)
//! header = u8 version(2) ‖ blobs_hash[32] ‖ u32le n ‖ n × (u8 kind ‖ id[32] ‖ u32le length ‖ u32le raw_length)
//! ```
//! Offsets are the running sum of lengths. The header is sealed as kind PackHeader
//! with an all-zero id, so chunk sizes and ids are invisible without the key; the
//! BLAKE3 of the blob section inside it binds the header to its pack (a header
//! copied onto other bytes is refused). A pack's file name is the plain BLAKE3 of
//! its bytes: any copy can be checked without the key.

mod format;

/// A blob as dedup, lookups and prune know it: its kind and its id. Two blobs
/// with the same id but different kinds (a data chunk whose bytes happen to be a
/// tree's encoding) are different blobs, stored and found apart.
pub type BlobKey = (crate::crypto::Kind, [u8; 32]);

/// A pack is written once its blobs reach this size.
pub const PACK_TARGET: usize = 16 * 1024 * 1024;

pub use format::{
    decode_header, encode_header, header_location, PackBuilder, PackEntry, PackHeader, HEADER_ID,
};
