//! Operations on a repository: what the CLI commands do, without the printing.

pub mod archive;
pub mod ls;
pub mod restore;
pub mod snapshot;
pub mod verify;
