//! The `hcbackup` binary: parse, set up logging, run, map errors to exit codes.

use clap::Parser;

fn main() {
    // Everything this process creates (catalog and its -wal/-shm files, temp
    // files, exports) is private to its user from the first byte, not after a chmod.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0o077) };
    // Folder walks recurse once per level (up to model::tree::MAX_DEPTH) inside
    // rayon's workers: give them room for that in any build.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(16 << 20)
        .build_global();
    let cli = hcbackup::cli::Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HCBACKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
    let code = match hcbackup::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "hcbackup: error: {}",
                hcbackup::model::tree::sanitize(&e.to_string())
            );
            e.exit_code()
        }
    };
    std::process::exit(code);
}
