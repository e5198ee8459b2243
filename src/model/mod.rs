//! The repository's structured objects: index, tree and snapshot, each versioned.
//! Their decoders take authenticated bytes but are still fuzzed: a bug must not
//! turn a damaged repository into a crash.

pub mod chunk_list;
pub mod index;
pub mod snapshot;
pub mod tree;
pub mod wal;
pub mod wal_chain;
