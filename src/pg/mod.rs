//! PostgreSQL: the database as a snapshot source, and its restore.
//!
//! `session` is a small blocking wrapper over tokio-postgres (the engine itself is
//! synchronous); `tools` runs the stock client programs (pg_dump, pg_dumpall,
//! pg_restore, psql) with the password in their environment, never on a command
//! line; `dump` holds the exported snapshot open while pg_dump reads it; `restore`
//! feeds a dump to pg_restore; `restore_test` is the monthly restore test.

pub mod basebackup;
pub(crate) mod dump;
pub mod reorder;
pub(crate) mod restore;
pub(crate) mod restore_test;
pub(crate) mod scratch;
pub mod select;
pub(crate) mod session;
pub mod tables;
pub(crate) mod tools;

pub use session::Session;
