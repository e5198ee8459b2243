//! Operations on a repository: what the CLI commands do, without the printing.

pub mod archive;
pub mod database;
pub mod db_restore;
pub mod diff;
pub mod dump;
pub mod export_tar;
pub mod find;
pub mod forget;
pub mod history;
pub mod import_legacy;
pub mod ls;
pub mod mirror;
pub mod output_file;
pub mod prune;
pub mod repair;
pub mod report;
pub mod restore;
mod restore_marker;
pub mod restore_test;
mod safe_fs;
pub mod shrink;
pub mod snapshot;
pub mod stats;
pub mod status;
pub mod tag;
mod tar_tree;
pub mod verify;
