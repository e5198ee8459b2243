//! hcbackup: an encrypted, deduplicating backup engine for a clinic's uploads (and,
//! in later steps, its PostgreSQL database), built for 20 years of retention.
//!
//! Layers, bottom to top: `id`/`error`/`config` → `crypto`, `chunker`, `model`,
//! `storage` → `codec` → `pack`, `catalog` → `repo` → `ops` → `cli`. Storage never
//! sees a key or plaintext; only `cli` prints.

pub mod catalog;
pub mod chunker;
pub mod cli;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod error;
pub mod id;
pub mod model;
pub mod ops;
pub mod pack;
pub mod pg;
pub mod progress;
pub mod repo;
pub mod source;
pub mod storage;
pub mod util;

pub use error::{Error, Result};
