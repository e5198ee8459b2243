//! The stock PostgreSQL client programs, run with the login in their environment.
//!
//! The password reaches a child only as PGPASSWORD in its environment: never on a
//! command line (visible in `ps`) and never in a log. `-w` everywhere: a program
//! that would ask for a password fails instead of waiting for a terminal.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use crate::config::PgTarget;
use crate::error::{Error, Result};

/// The program's path: `$HCBACKUP_PG_BIN/NAME` when that is set, else NAME on PATH.
pub fn program(name: &str) -> PathBuf {
    match &crate::config::tuning::get().pg_bin {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    }
}

/// libpq settings of the operator's that a client program may see (TLS to the
/// server); PGSERVICE, PGOPTIONS, PGPASSFILE and the rest do not pass.
const PG_ENV: &[&str] = &[
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCRL",
    "PGSSLNEGOTIATION",
    "PGGSSENCMODE",
    "PGTZ",
];

/// A PostgreSQL program with a cleared environment (`util::child`).
pub fn plain(name: &str) -> Command {
    crate::util::child(program(name), PG_ENV)
}

/// A command for `name` logging in as `t` (database `t.db`).
pub fn command(name: &str, t: &PgTarget) -> Command {
    let mut c = plain(name);
    c.env("PGHOST", &t.host)
        .env("PGPORT", t.port.to_string())
        .env("PGUSER", &t.user)
        .env("PGDATABASE", &t.db)
        .env("PGAPPNAME", "hcbackup")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null());
    if let Some(p) = &t.password {
        c.env("PGPASSWORD", p.as_str());
    }
    c
}

/// Start a command, saying how to install the program when it is missing.
pub fn spawn(name: &str, c: &mut Command) -> Result<Child> {
    c.spawn().map_err(|e| missing_or(name, e))
}

fn missing_or(name: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Failed(format!(
            "{name} not found on PATH: install the PostgreSQL client programs (apt install postgresql-client) or set HCBACKUP_PG_BIN to their folder"
        ))
    } else {
        Error::io(format!("starting {name}"), e)
    }
}

/// The major version a program reports, scaled as in `major_of`.
pub fn major_version(name: &str) -> Result<u32> {
    let out = plain(name)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing_or(name, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().find_map(major_of).ok_or_else(|| {
        Error::Failed(format!(
            "{name} --version printed {:?}: not a PostgreSQL program",
            text.trim()
        ))
    })
}

/// A version string's major number, scaled like `server_version_num / 100`
/// would be for old releases: "15.4" → 1500, "9.6.24" → 906.
pub fn major_of(v: &str) -> Option<u32> {
    let mut parts = v.split('.');
    let head = parts.next()?;
    let digits = &head[..head.bytes().take_while(u8::is_ascii_digit).count()];
    let first: u32 = digits.parse().ok()?;
    if first >= 10 {
        Some(first * 100)
    } else {
        let second: u32 = parts.next()?.parse().ok()?;
        Some(first * 100 + second)
    }
}

/// The same scale for a server's `server_version_num` (150004 → 1500, 90624 → 906).
pub fn server_major(version_num: u32) -> u32 {
    if version_num >= 100_000 {
        version_num / 10_000 * 100
    } else {
        version_num / 100
    }
}

/// Display form of a scaled major: 1500 → "15", 906 → "9.6".
pub fn major_display(m: u32) -> String {
    if m >= 1000 {
        (m / 100).to_string()
    } else {
        format!("{}.{}", m / 100, m % 100)
    }
}

/// Collect a child's stderr on a thread (so a chatty child never blocks on a full pipe).
pub fn collect_stderr(child: &mut Child) -> JoinHandle<String> {
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let mut b = Vec::new();
            let _ = e.read_to_end(&mut b);
            s = String::from_utf8_lossy(&b).into_owned();
        }
        s
    })
}

/// The line of a program's stderr that explains a failure: the first error line,
/// else the last line. Passwords never appear there (they are not on the command line).
pub fn error_line(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.contains("error:") || l.contains("FATAL") || l.starts_with("ERROR"))
        .or(lines.last())
        .map(|l| l.to_string())
}

/// Whether stderr reports an error (pg_dump may exit 0 after printing one only in
/// odd cases; treat any error line as failure).
pub fn has_error(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|l| l.contains("error:") || l.contains("FATAL:") || l.starts_with("ERROR:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(major_of("15.4"), Some(1500));
        assert_eq!(major_of("16beta1"), Some(1600));
        assert_eq!(major_of("(PostgreSQL)"), None);
        assert_eq!(major_of("9.6.24"), Some(906));
        assert_eq!(server_major(150004), 1500);
        assert_eq!(server_major(90624), 906);
        assert_eq!(major_display(906), "9.6");
        assert_eq!(major_display(1700), "17");
    }

    #[test]
    fn error_lines() {
        let s = "pg_dump: warning: x\npg_dump: error: query failed: boom\npg_dump: detail: y\n";
        assert_eq!(error_line(s).unwrap(), "pg_dump: error: query failed: boom");
        assert!(has_error(s));
        assert!(!has_error("pg_dump: warning: x"));
    }
}
