//! Typed errors for every layer, and the one table that maps them to exit codes.
//!
//! Every message is one line that names the object involved and says what to do.
//! Library code returns these; only `main` turns them into an exit code and a line
//! on stderr. Messages must never contain a password, a key or file contents.

use std::io;
use std::path::Path;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes of the CLI contract (DESIGN.md §6).
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INCOMPLETE: i32 = 3;
    pub const NO_REPOSITORY: i32 = 10;
    pub const LOCKED: i32 = 11;
    pub const WRONG_PASSWORD: i32 = 12;
    /// `wal-fetch` could not tell whether the file is archived (the copy is
    /// unreachable or damaged): above 125, so PostgreSQL stops recovery
    /// instead of ending it early at the last file it got.
    pub const CANNOT_TELL: i32 = 255;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{0}; recovery stops here rather than end early (fix that and start the server again)"
    )]
    CannotTell(Box<Error>),
    #[error("no repository at {0}: run `hcbackup init` first, or pass --repo / set BACKUP_DIR")]
    NoRepository(String),
    #[error(
        "wrong password for repository {0}: no key file opens with it; check HCBACKUP_PASSWORD, the password file or command (a trailing space counts), or use another password of this repository (`key add` made them)"
    )]
    WrongPassword(String),
    #[error("repository is locked by {0}: wait for that run to finish, or remove the lock if it is dead")]
    Locked(String),
    #[error("this run lost its repository lock ({0}) and stopped before writing more; earlier snapshots are intact: run it again")]
    LockLost(String),
    #[error(
        "corrupt {what}: {detail}; run `hcbackup verify --read-data` and restore from another copy"
    )]
    Corrupt { what: String, detail: String },
    #[error("missing {what}: {detail}; run `hcbackup verify` and restore from another copy")]
    Missing { what: String, detail: String },
    #[error("disk full while {0}: free space there and run again (earlier snapshots are intact)")]
    DiskFull(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Usage(String),
    #[error("catalog {path}: {source}: check the cache folder (HCBACKUP_CACHE_DIR); `hcbackup catalog rebuild` reloads it from the repository")]
    Catalog {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("catalog {path} is damaged ({source}): run the command again; the catalog is then set aside and rebuilt from the repository, keeping its restore-test history and audit events")]
    CatalogDamaged {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NoRepository(_) => exit::NO_REPOSITORY,
            Error::WrongPassword(_) => exit::WRONG_PASSWORD,
            Error::Locked(_) | Error::LockLost(_) => exit::LOCKED,
            Error::Usage(_) => exit::USAGE,
            Error::CannotTell(_) => exit::CANNOT_TELL,
            _ => exit::ERROR,
        }
    }

    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub fn missing(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Missing {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Wrap an I/O error with what was being done; a full disk gets its own message.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        let context = context.into();
        if source.kind() == io::ErrorKind::StorageFull
            || source.raw_os_error() == Some(libc::EDQUOT)
        {
            return Error::DiskFull(context);
        }
        Error::Io { context, source }
    }

    pub fn io_path(action: &str, path: &Path, source: io::Error) -> Self {
        Error::io(format!("{action} {}", path.display()), source)
    }
}

/// Attach context to `io::Result`s.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
