//! The attack suite (issue #14). Each test performs one attack against the real
//! binary and asserts that nothing is lost, nothing is written outside the
//! restore target, and the error says what happened. Three kinds of adversary:
//!
//! - hostile **sources** (`source.rs`): uploads come from patients and staff, so
//!   any byte string and any name must be storable, and files may be swapped while
//!   the walk reads them;
//! - hostile **targets** (`target.rs`): other users plant links in a restore
//!   target, before and during the restore;
//! - hostile **storage** (`storage.rs`, `keys.rs`): whoever can write the copy
//!   (a bucket, a USB disk) but has no password may plant, swap, replay, truncate
//!   and rename objects, and list names of any shape.

mod common;

#[path = "hostile/keys.rs"]
mod keys;
#[path = "hostile/process.rs"]
mod process;
#[path = "hostile/source.rs"]
mod source;
#[path = "hostile/storage.rs"]
mod storage;
#[path = "hostile/target.rs"]
mod target;
