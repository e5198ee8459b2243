//! Progress on a terminal: an indicatif bar with files, bytes, throughput and ETA.
//! Under cron (stderr not a terminal), with --json or -q: nothing until the summary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Ctx;
use crate::progress::Progress;

pub struct CliProgress {
    bar: Option<ProgressBar>,
    files: AtomicU64,
    total_files: Arc<AtomicU64>,
}

impl CliProgress {
    /// Start a bar; with `paths`, a background scan fills in the totals for the ETA.
    pub fn start(ctx: &Ctx, paths: &[PathBuf], verb: &str) -> Self {
        let total_files = Arc::new(AtomicU64::new(0));
        if ctx.json || ctx.quiet || !std::io::stderr().is_terminal() {
            return CliProgress {
                bar: None,
                files: AtomicU64::new(0),
                total_files,
            };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix} {msg} [{bar:28}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(verb.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        if !paths.is_empty() {
            let (b, t, p) = (bar.clone(), total_files.clone(), paths.to_vec());
            std::thread::spawn(move || {
                crate::source::fs::scan_totals(&p, |files, bytes| {
                    t.store(files, Ordering::Relaxed);
                    b.set_length(bytes);
                })
            });
        }
        CliProgress {
            bar: Some(bar),
            files: AtomicU64::new(0),
            total_files,
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for CliProgress {
    fn set_totals(&self, files: u64, bytes: u64) {
        self.total_files.store(files, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_length(bytes);
        }
    }

    fn file_done(&self, _path: &Path, bytes: u64) {
        let n = self.files.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = bytes;
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "{n}/{} files",
                self.total_files.load(Ordering::Relaxed)
            ));
        }
    }

    fn bytes_done(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    fn entry_error(&self, path: &Path, error: &str) {
        if let Some(b) = &self.bar {
            b.println(format!(
                "warning: {}: {}",
                crate::model::tree::escape(std::os::unix::ffi::OsStrExt::as_bytes(
                    path.as_os_str()
                )),
                crate::model::tree::escape(error.as_bytes())
            ));
        }
    }
}
