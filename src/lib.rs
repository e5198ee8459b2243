//! hcbackup: an encrypted, deduplicating backup engine for a clinic's uploads and
//! its PostgreSQL database, mirrored to the cloud, built for 20 years of retention.
//!
//! Layers, bottom to top: `id`/`error`/`config` → `crypto`, `chunker`, `model`,
//! `storage` (local, memory, S3, retries) → `codec` → `pack`, `catalog` → `repo` →
//! `source` (files), `pg` (the database, its dump and restore) → `ops` → `cli`.
//! Storage never sees a key or plaintext; only `cli` prints.

pub(crate) mod alert;
pub mod audit;
pub mod catalog;
pub mod chunker;
pub mod cli;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod env_vars;
pub mod error;
pub mod id;
pub mod log_file;
pub mod model;
pub mod ops;
pub mod pack;
pub mod pg;
pub mod progress;
pub mod repo;
pub mod retention;
pub(crate) mod serve;
pub(crate) mod source;
#[cfg(test)]
mod source_scan;
pub mod storage;
pub(crate) mod trusted_path;
pub mod util;
#[cfg(test)]
mod vectors;

pub use error::{Error, Result};
