//! `restore --pgdata DIR --start`: start PostgreSQL on the laid-out base
//! backup and wait until recovery has ended (issue #19, step 3). The copy
//! gets its own port and archives nothing (its WAL must not reach the
//! repository it recovers from). Recovery has ended when PostgreSQL removes
//! `recovery.signal` (it promotes at the target, or at the end of the
//! archived WAL); a server that stops before is a failure, named from its log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Serialize)]
pub struct Started {
    pub port: u16,
    /// From `pg_ctl start` to the end of recovery.
    pub recovery_secs: f64,
    /// The server's log (inside the data folder).
    pub log: PathBuf,
}

/// How long a server may take to write its pid file before its absence
/// means it stopped.
const STARTING: Duration = Duration::from_secs(10);

/// Start on `port`; with `socket`, listening only on a Unix socket in that
/// (private) folder, as the PITR restore test does.
pub fn start(pgdata: &Path, port: u16, socket: Option<&Path>) -> Result<Started> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Err(Error::Usage(
            "--start runs PostgreSQL, which refuses to run as root: run the restore as the server's user (sudo -u postgres hcbackup restore …)".into(),
        ));
    }
    let conf = pgdata.join("postgresql.auto.conf");
    let mut text =
        std::fs::read_to_string(&conf).map_err(|e| Error::io_path("reading", &conf, e))?;
    text.push_str(&format!(
        "# hcbackup restore --start: a copy of its own, archiving nothing\nport = {port}\narchive_mode = off\n"
    ));
    if let Some(dir) = socket {
        text.push_str(&format!(
            "listen_addresses = ''\nunix_socket_directories = '{}'\n",
            dir.display().to_string().replace('\'', "''")
        ));
    }
    std::fs::write(&conf, text).map_err(|e| Error::io_path("writing", &conf, e))?;
    let log = pgdata.join("hcbackup-recovery.log");
    let bin = crate::pg::scratch::server_bin()?;
    let t = Instant::now();
    let status = std::process::Command::new(bin.join("pg_ctl"))
        .arg("-D")
        .arg(pgdata)
        .arg("-l")
        .arg(&log)
        .args(["-W", "start"])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::io("running pg_ctl", e))?;
    if !status.success() {
        return Err(stopped(&log, "pg_ctl could not start it"));
    }
    let (signal, pid) = (
        pgdata.join("recovery.signal"),
        pgdata.join("postmaster.pid"),
    );
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let running = pid.exists();
        if running && !signal.exists() {
            return Ok(Started {
                port,
                recovery_secs: (t.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                log,
            });
        }
        if !running && (t.elapsed() > STARTING || said_fatal(&log)) {
            return Err(stopped(&log, "it stopped before recovery ended"));
        }
    }
}

/// Stop the server on `pgdata` (fast: a test copy has nothing to keep).
pub fn stop(pgdata: &Path) {
    if let Ok(bin) = crate::pg::scratch::server_bin() {
        let _ = std::process::Command::new(bin.join("pg_ctl"))
            .arg("-D")
            .arg(pgdata)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Whether the server's log says it gave up.
fn said_fatal(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|t| t.contains("FATAL") || t.contains("PANIC"))
}

/// The error of a server that did not recover: its last complaint.
fn stopped(log: &Path, what: &str) -> Error {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .find(|l| l.contains("FATAL") || l.contains("PANIC") || l.contains("ERROR"))
        .unwrap_or("no message");
    Error::Failed(format!(
        "PostgreSQL on the restored copy: {what}: {last} (log: {}); the copy is left as it is for a look",
        log.display()
    ))
}
