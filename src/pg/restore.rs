//! Restoring a dump with stock pg_restore: into a database created when missing,
//! cleaned (`--clean --if-exists`) when it exists; from a temp file with parallel
//! jobs, or streamed on stdin when there is no room for the file.

use std::io::Write;
use std::process::Stdio;

use super::session::{ident, literal, Session};
use super::tools;
use crate::config::PgTarget;
use crate::error::{Error, Result};
use crate::model::snapshot::DatabaseEntry;

/// A session on the server's maintenance database (`postgres`, else `template1`).
pub fn maintenance(t: &PgTarget) -> Result<Session> {
    Session::connect(&t.with_db("postgres"))
        .or_else(|first| Session::connect(&t.with_db("template1")).map_err(|_| first))
}

pub fn database_exists(m: &Session, name: &str) -> Result<bool> {
    Ok(m.value(&format!(
        "SELECT 1 FROM pg_database WHERE datname = {}",
        literal(name)
    ))?
    .is_some())
}

/// Create database `name` from template0 like the dumped one: its encoding and
/// locale; when this server lacks that locale, its default locale; when that does
/// not fit the encoding, the C locale (which fits every encoding). Returns a
/// warning when the locale differs from the original.
pub fn create_database(m: &Session, name: &str, d: &DatabaseEntry) -> Result<Option<String>> {
    let base = format!("CREATE DATABASE {} TEMPLATE template0", ident(name));
    let enc = if d.encoding.is_empty() {
        String::new()
    } else {
        format!(" ENCODING {}", literal(&d.encoding))
    };
    let locale = |c: &str, t: &str| format!(" LC_COLLATE {} LC_CTYPE {}", literal(c), literal(t));
    let mut first = None;
    if !d.collate.is_empty() && !d.ctype.is_empty() {
        match m.batch(&format!("{base}{enc}{}", locale(&d.collate, &d.ctype))) {
            Ok(()) => return Ok(None),
            Err(e) => first = Some(e),
        }
    }
    if m.batch(&format!("{base}{enc}")).is_ok() {
        return Ok(first.map(|e| {
            format!("database {name} was created with this server's default locale ({e})")
        }));
    }
    match m.batch(&format!("{base}{enc}{}", locale("C", "C"))) {
        Ok(()) => Ok(Some(format!(
            "database {name} was created with the C locale: this server has no locale that fits encoding {}",
            d.encoding
        ))),
        Err(e) => Err(first.unwrap_or(e)),
    }
}

/// Drop database `name`, disconnecting whoever is still in it.
pub fn drop_database(m: &Session, name: &str) -> Result<()> {
    m.batch(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        ident(name)
    ))
}

/// Parallel jobs for pg_restore: the number of cores.
pub fn jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn pg_restore_args(clean: bool) -> Vec<&'static str> {
    let mut a = vec!["-w", "--format=custom"];
    if clean {
        a.extend(["--clean", "--if-exists"]);
    }
    a
}

/// pg_restore the dump in `file` into `t.db` with `jobs` parallel jobs. The file
/// has no name (the decrypted dump is never a file anyone could find, and it
/// vanishes however hcbackup ends): pg_restore and its workers inherit the open
/// file and read it as `/proc/self/fd/N`.
/// With `list` (an unnamed file too), only the entries it names are restored
/// (`pg_restore -L`: a table restore).
pub fn restore_file(
    t: &PgTarget,
    file: &std::fs::File,
    list: Option<&std::fs::File>,
    jobs: usize,
    clean: bool,
) -> Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fds: Vec<i32> = std::iter::once(file)
        .chain(list)
        .map(|f| f.as_raw_fd())
        .collect();
    let mut cmd = tools::command("pg_restore", t);
    cmd.args(pg_restore_args(clean))
        .arg(format!("--jobs={jobs}"))
        .arg("--dbname")
        .arg(&t.db);
    if let Some(l) = fds.get(1) {
        cmd.arg(format!("--use-list=/proc/self/fd/{l}"));
    }
    cmd.arg(format!("/proc/self/fd/{}", fds[0]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only fcntl, which is async-signal-safe, on
    // descriptors this process holds open.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = tools::spawn("pg_restore", &mut cmd)?;
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("running pg_restore", e))?;
    check(
        "pg_restore",
        t,
        out.status,
        &String::from_utf8_lossy(&out.stderr),
    )
}

/// pg_restore a dump fed on stdin by `feed` (one job: a pipe cannot be read in parallel).
pub fn restore_stream(
    t: &PgTarget,
    clean: bool,
    feed: &mut dyn FnMut(&mut dyn Write) -> Result<u64>,
) -> Result<()> {
    let mut cmd = tools::command("pg_restore", t);
    cmd.args(pg_restore_args(clean))
        .arg("--dbname")
        .arg(&t.db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = tools::spawn("pg_restore", &mut cmd)?;
    let stderr = tools::collect_stderr(&mut child);
    let mut stdin = child.stdin.take().expect("piped");
    let fed = feed(&mut stdin);
    drop(stdin);
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for pg_restore", e))?;
    let stderr = stderr.join().unwrap_or_default();
    // pg_restore's own complaint explains a broken pipe better than the pipe does.
    let checked = check("pg_restore", t, status, &stderr);
    match fed {
        Err(e) if checked.is_ok() => Err(e),
        _ => checked,
    }
}

/// Run `sql` (the globals script) with psql on the maintenance database. Errors such
/// as "role already exists" are expected on a live server: they come back as warnings.
pub fn run_globals(t: &PgTarget, sql: &[u8]) -> Result<Vec<String>> {
    let mut cmd = tools::command("psql", &t.with_db("postgres"));
    cmd.args(["-w", "-X", "-q", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = tools::spawn("psql", &mut cmd)?;
    let stderr = tools::collect_stderr(&mut child);
    let mut stdin = child.stdin.take().expect("piped");
    let written = stdin.write_all(sql);
    drop(stdin);
    let status = child.wait().map_err(|e| Error::io("waiting for psql", e))?;
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(Error::Failed(format!(
            "psql (globals) failed ({status}): {}",
            tools::error_line(&stderr).unwrap_or_else(|| "no message".into())
        )));
    }
    written.map_err(|e| Error::io("feeding the globals to psql", e))?;
    Ok(stderr
        .lines()
        .filter(|l| l.contains("ERROR"))
        .map(|l| l.trim().to_string())
        .collect())
}

fn check(name: &str, t: &PgTarget, status: std::process::ExitStatus, stderr: &str) -> Result<()> {
    if status.success() {
        for w in stderr.lines().filter(|l| !l.trim().is_empty()) {
            tracing::warn!("{w}");
        }
        return Ok(());
    }
    let errors = stderr.lines().filter(|l| l.contains("error:")).count();
    Err(Error::Failed(format!(
        "{name} into database {} on {}:{} failed ({status}, {errors} error lines): {}",
        t.db,
        t.host,
        t.port,
        tools::error_line(stderr).unwrap_or_else(|| "no message".into())
    )))
}
