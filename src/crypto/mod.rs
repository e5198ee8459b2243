//! Keys and authenticated encryption.
//!
//! The repository's master key set (AES-256-GCM key, BLAKE3 id key, FastCDC gear seed)
//! is random, wrapped per password in key files (see `keyfile`). Every sealed object
//! binds its kind and id as associated data, so an object moved, swapped or truncated
//! fails to open. Keys are zeroized on drop and never printed.

mod aead;
mod kdf_memory;
mod keyfile;
mod master;

pub use keyfile::{KdfAlgorithm, KdfParams, KeyFile};
pub use master::{Kind, MasterKey, MAX_EPOCH};

/// Length of the AES-GCM nonce that starts every sealed byte string.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag that ends every sealed byte string.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed string adds to its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
