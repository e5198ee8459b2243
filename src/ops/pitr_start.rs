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

/// `start` the copy `r` laid out for `target` from `repo`, which stays open
/// (a shared lock held) to keep the WAL fetched ahead fed while it recovers;
/// what is left of it goes when recovery has ended.
pub fn start_fed(
    repo: &crate::repo::Repository,
    r: &mut super::pitr::Restored,
    target: &super::pitr::Target,
    source: &str,
    port: u16,
    socket: Option<&Path>,
) -> Result<Started> {
    let _lock = repo.lock(false, "restore")?;
    let last = |rec: &crate::model::wal::WalRecord| target.stops_in(rec);
    let mut feeder = super::wal_spool::Feeder {
        repo,
        dest: r.pgdata.join("pg_wal").join("RECOVERYXLOG"),
        source: source.to_string(),
        ahead: r.ahead.take(),
        last: &last,
        probe: super::wal_absent::first_probe(r.timeline),
    };
    let started = start(&r.pgdata, port, socket, &mut || feeder.feed());
    super::wal_spool::clear(&feeder.dest);
    started
}

/// Start on `port`; with `socket`, listening only on a Unix socket in that
/// (private) folder, as the PITR restore test does. `feed` runs while it
/// recovers, every tenth of a second.
pub fn start(
    pgdata: &Path,
    port: u16,
    socket: Option<&Path>,
    feed: &mut dyn FnMut(),
) -> Result<Started> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Err(Error::Usage(
            "--start runs PostgreSQL, which refuses to run as root: run the restore as the server's user (sudo -u postgres hcbackup restore …)".into(),
        ));
    }
    if let Some(dir) = socket {
        socket_fits(dir, port)?;
    }
    let conf = pgdata.join("postgresql.auto.conf");
    let mut text =
        std::fs::read_to_string(&conf).map_err(|e| Error::io_path("reading", &conf, e))?;
    text.push_str(&format!(
        "# hcbackup restore --start: a copy of its own, archiving nothing\nport = {port}\narchive_mode = off\n"
    ));
    if let Some(dir) = socket {
        text.push_str(&format!(
            "listen_addresses = ''\nunix_socket_directories = {}\n",
            super::pitr::conf_quote(&dir.display().to_string())
        ));
    }
    std::fs::write(&conf, text).map_err(|e| Error::io_path("writing", &conf, e))?;
    let log = pgdata.join("hcbackup-recovery.log");
    let bin = crate::pg::scratch::server_bin()?;
    let t = Instant::now();
    let status = crate::util::child(bin.join("pg_ctl"), &[])
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
    crate::util::catch_interrupts();
    let signal = pgdata.join("recovery.signal");
    loop {
        std::thread::sleep(Duration::from_millis(100));
        feed();
        if crate::util::interrupted() {
            stop(pgdata);
            return Err(Error::Failed(
                "interrupted: the restored copy was stopped, half recovered: remove its folder and run the restore again".into(),
            ));
        }
        let alive = postmaster_alive(pgdata);
        // recovery.signal goes when recovery ends; the copy takes writes
        // once its control file says so.
        if alive && !signal.exists() && in_production(&bin, pgdata) {
            return Ok(Started {
                port,
                recovery_secs: (t.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                log,
            });
        }
        if !alive && (t.elapsed() > STARTING || said_fatal(&log)) {
            return Err(stopped(&log, "it stopped before recovery ended"));
        }
    }
}

/// A Unix socket in `dir` for `port` fits the 107 bytes a socket's path
/// has, and the folder's name has no line break (it goes into a setting).
pub fn socket_fits(dir: &Path, port: u16) -> Result<()> {
    let path = dir.join(format!(".s.PGSQL.{port}"));
    if path.as_os_str().len() > 100 || dir.to_string_lossy().contains(['\n', '\r']) {
        return Err(Error::Usage(format!(
            "the folder {} is too long (or odd) for PostgreSQL's socket: set HCBACKUP_TMPDIR to a short folder, such as /var/tmp",
            dir.display()
        )));
    }
    Ok(())
}

/// Whether the postmaster named in `pgdata/postmaster.pid` runs.
fn postmaster_alive(pgdata: &Path) -> bool {
    let pid = std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
    // SAFETY: kill with signal 0 only checks that the process exists.
    pid.is_some_and(|p| p > 0 && unsafe { libc::kill(p, 0) } == 0)
}

/// Whether the control file says the cluster is in production (recovered).
fn in_production(bin: &Path, pgdata: &Path) -> bool {
    crate::util::child(bin.join("pg_controldata"), &[])
        .arg(pgdata)
        .env("LC_ALL", "C")
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with("Database cluster state:") && l.ends_with("in production"))
        })
}

/// Stop the server on `pgdata` (fast: a test copy has nothing to keep).
pub fn stop(pgdata: &Path) {
    if let Ok(bin) = crate::pg::scratch::server_bin() {
        let _ = crate::util::child(bin.join("pg_ctl"), &[])
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
        "PostgreSQL on the restored copy: {what}: {last} (log: {})",
        log.display()
    ))
}
