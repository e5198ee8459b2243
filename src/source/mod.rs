//! Sources of a snapshot: the file trees (`fs`). The database is dumped by `pg`.
//! Nothing here knows about repositories.

pub mod exclude;
pub mod fs;
