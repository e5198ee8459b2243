//! The `hcbackup` binary: parse, set up logging, run, map errors to exit codes.

use clap::{CommandFactory, FromArgMatches};

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
    // PostgreSQL's restore_command takes any exit of 1 to 125 for "not
    // archived" and may end recovery there: every failure of wal-fetch, even
    // a mistyped command line or a bad setting, is 255 (recovery stops).
    let wal_fetch = std::env::args_os().any(|a| a == "wal-fetch");
    let fail = |code: i32| {
        if wal_fetch {
            hcbackup::error::exit::CANNOT_TELL
        } else {
            code
        }
    };
    let matches = match hcbackup::cli::Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            std::process::exit(fail(e.exit_code()));
        }
        Err(e) => e.exit(),
    };
    let command = matches.subcommand_name().unwrap_or("hcbackup").to_string();
    let cli = hcbackup::cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| {
        let _ = e.print();
        std::process::exit(fail(e.exit_code()))
    });
    // Before logging is set up: tracing's lines go through the copy too.
    let log_path = cli.log_file.clone().or_else(|| {
        // Before the settings: the settings' own errors go to the log too.
        use hcbackup::config::lookup::{Lookup, Process};
        Process
            .var("HCBACKUP_LOG_FILE")
            .map(std::path::PathBuf::from)
    });
    let log_file = match &log_path {
        Some(p) => match hcbackup::log_file::LogFile::start(p, &command) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("hcbackup: error: {e}");
                std::process::exit(fail(e.exit_code()));
            }
        },
        None => None,
    };
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HCBACKUP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},fuser=error")));
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
            fail(e.exit_code())
        }
    };
    if let Some(p) = &hcbackup::config::tuning::get().requests_file {
        if let Err(e) = hcbackup::storage::counting::write_requests(p) {
            eprintln!("hcbackup: warning: writing {}: {e}", p.display());
        }
    }
    if let Some(l) = log_file {
        l.finish(code);
    }
    std::process::exit(code);
}
