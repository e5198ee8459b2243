//! Sources of a snapshot. For now the file trees (`fs`); the database streams come
//! with the PostgreSQL source. Nothing here knows about repositories.

pub mod fs;
