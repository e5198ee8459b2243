//! Dumping a database consistently: a REPEATABLE READ READ ONLY transaction exports
//! its snapshot, counts every table's rows in it, and stays open while
//! `pg_dump -Fc -Z0 --snapshot=ID` dumps exactly that snapshot to a pipe. The counts
//! in the manifest therefore describe exactly what the dump holds, whatever is
//! written to the database meanwhile.
//!
//! `-Z0`: compression happens in the engine, after chunking; a compressed dump
//! would change almost entirely every day and defeat deduplication.

use std::process::{Child, ChildStdout, Stdio};
use std::thread::JoinHandle;

use super::reorder::Reorder;
use super::session::Session;
use super::tables::{count_tables, keyed_tables, KeyedTable};
use super::tools;
use crate::config::PgTarget;
use crate::error::{Error, Result};
use crate::model::snapshot::{Extension, TableCount};

/// The dump format recorded in the manifest.
pub const FORMAT: &str = "pg_dump -Fc -Z0";

/// What the server said about the database, inside the exported snapshot.
#[derive(Debug, Clone)]
pub struct DumpInfo {
    pub server_version: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    pub extensions: Vec<Extension>,
    pub tables: Vec<TableCount>,
    pub superuser: bool,
    /// Whether rows may be re-read in key order: our session reads UTF-8, so the
    /// archive's encoding must be UTF-8 (or SQL_ASCII, which is never converted).
    pub reorder: bool,
}

/// A running pg_dump and the transaction that keeps its snapshot alive.
pub struct Dump {
    session: Session,
    pub info: DumpInfo,
    /// Tables pg_dump leaves out and the reader supplies in key order.
    keyed: Vec<KeyedTable>,
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
}

impl Dump {
    /// Connect, export a snapshot, record what it holds, and start pg_dump on it.
    pub fn start(t: &PgTarget) -> Result<Dump> {
        Self::start_locking(t).map_err(|e| match e {
            Error::Failed(m) if m.contains("lock timeout") => Error::Failed(format!(
                "database {}: a table stayed locked by another session for {} s (a migration, a VACUUM FULL?): not dumped this time; see pg_locks, or raise HCBACKUP_PG_LOCK_TIMEOUT",
                t.db, t.lock_timeout_secs
            )),
            e => e,
        })
    }

    fn start_locking(t: &PgTarget) -> Result<Dump> {
        let dump_major = tools::major_version("pg_dump")?;
        let s = Session::connect(t)?;
        s.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        // A table another session keeps locked fails the dump, never hangs it.
        s.batch(&format!(
            "SET LOCAL lock_timeout = '{}s'",
            t.lock_timeout_secs
        ))?;
        let snapshot_id = s
            .value("SELECT pg_export_snapshot()")?
            .ok_or_else(|| Error::Failed("pg_export_snapshot() returned nothing".into()))?;
        let row = s
            .rows(
                "SELECT current_setting('server_version'), current_setting('server_version_num'), \
                 pg_encoding_to_char(encoding), \
                 (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)::text, \
                 datcollate, datctype \
                 FROM pg_database WHERE datname = current_database()",
            )?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Failed(format!("database {} is not in pg_database", t.db)))?;
        let text = |i: usize| row[i].clone().unwrap_or_default();
        let server_major = tools::server_major(text(1).parse().unwrap_or(0));
        if dump_major < server_major {
            return Err(Error::Failed(format!(
                "pg_dump {} is older than the PostgreSQL {} server at {}:{}: install pg_dump {} or newer (or set HCBACKUP_PG_BIN)",
                tools::major_display(dump_major),
                tools::major_display(server_major),
                t.host,
                t.port,
                tools::major_display(server_major)
            )));
        }
        let extensions = s
            .rows("SELECT extname, extversion FROM pg_extension ORDER BY 1")?
            .into_iter()
            .map(|r| Extension {
                name: r[0].clone().unwrap_or_default(),
                version: r[1].clone().unwrap_or_default(),
            })
            .collect();
        let info = DumpInfo {
            server_version: text(0),
            encoding: text(2),
            collate: text(4),
            ctype: text(5),
            extensions,
            tables: count_tables(&s)?,
            superuser: text(3) == "true",
            reorder: matches!(text(2).as_str(), "UTF8" | "SQL_ASCII"),
        };
        // The output settings pg_dump uses for its own COPY, for the ordered COPYs.
        s.batch(
            "SET LOCAL DateStyle = ISO; SET LOCAL IntervalStyle = postgres; \
             SET LOCAL extra_float_digits = 3; SET LOCAL row_security = off",
        )?;
        let keyed = if info.reorder && (1100..=1700).contains(&dump_major) && server_major >= 1200 {
            // A catalog query this server cannot answer only means: no reordering.
            s.batch("SAVEPOINT hcbackup_keyed")?;
            match keyed_tables(&s) {
                Ok(k) => k,
                Err(e) => {
                    tracing::info!("rows stay in pg_dump's order: {e}");
                    s.batch("ROLLBACK TO SAVEPOINT hcbackup_keyed")?;
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let mut cmd = tools::command("pg_dump", t);
        cmd.args(["-w", "--format=custom", "--compress=0"])
            .arg(format!("--snapshot={snapshot_id}"))
            .arg(format!("--lock-wait-timeout={}s", t.lock_timeout_secs))
            .args(
                keyed
                    .iter()
                    .map(|k| format!("--exclude-table-data={}", k.exclude_pattern())),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = tools::spawn("pg_dump", &mut cmd)?;
        let stderr = Some(tools::collect_stderr(&mut child));
        let stdout = child.stdout.take();
        Ok(Dump {
            session: s,
            info,
            keyed,
            child,
            stdout,
            stderr,
        })
    }

    /// The dump stream: pg_dump's output, with each table's rows in primary-key
    /// order when the database's encoding allows it (see `reorder`).
    pub fn reader(&mut self) -> Reorder<'_, ChildStdout> {
        let out = self.stdout.take().expect("the stream is read once");
        Reorder::new(out, &self.session, std::mem::take(&mut self.keyed))
    }

    /// Wait for pg_dump; its own error line when it failed.
    pub fn finish(mut self) -> Result<()> {
        drop(self.stdout.take());
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io("waiting for pg_dump", e))?;
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        if !status.success() || tools::has_error(&stderr) {
            return Err(Error::Failed(format!(
                "pg_dump failed ({status}): {}",
                tools::error_line(&stderr).unwrap_or_else(|| "no message".into())
            )));
        }
        for w in stderr.lines().filter(|l| !l.trim().is_empty()) {
            tracing::warn!("{w}");
        }
        Ok(())
    }
}

impl Drop for Dump {
    fn drop(&mut self) {
        // Reached with the child still running only when the dump is abandoned.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `pg_dumpall --globals-only` (roles, tablespaces). Without superuser rights the
/// role passwords cannot be read: they are left out, with a warning.
pub fn globals(t: &PgTarget, superuser: bool) -> Result<(Vec<u8>, Option<String>)> {
    let mut cmd = tools::command("pg_dumpall", t);
    cmd.args(["-w", "--globals-only", "-l", &t.db]);
    let warning = if superuser {
        None
    } else {
        cmd.arg("--no-role-passwords");
        Some(format!(
            "user {} is not a superuser: roles were saved without their passwords (set them again after a restore)",
            t.user
        ))
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = tools::spawn("pg_dumpall", &mut cmd)?
        .wait_with_output()
        .map_err(|e| Error::io("running pg_dumpall", e))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || tools::has_error(&stderr) {
        return Err(Error::Failed(format!(
            "pg_dumpall --globals-only failed ({}): {}",
            out.status,
            tools::error_line(&stderr).unwrap_or_else(|| "no message".into())
        )));
    }
    Ok((out.stdout, warning))
}
