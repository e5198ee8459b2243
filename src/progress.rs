//! Progress reporting. Library code never prints: operations report through this
//! trait and the CLI decides what a person sees (bars on a terminal, nothing under cron).

use std::path::Path;

pub trait Progress: Sync {
    /// Totals found by the scanner so far (for the ETA); may grow while running.
    fn set_totals(&self, _files: u64, _bytes: u64) {}
    /// A file is finished; `bytes` is its size (read or taken from the cache).
    /// Its bytes were reported by `bytes_done` as they went.
    fn file_done(&self, _path: &Path, _bytes: u64) {}
    /// Bytes of file content read, written or taken from the cache: called as a
    /// large file goes, so progress moves within it.
    fn bytes_done(&self, _bytes: u64) {}
    /// An entry could not be read or written; the operation goes on.
    fn entry_error(&self, _path: &Path, _error: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
