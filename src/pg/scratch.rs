//! A throwaway PostgreSQL cluster for `verify --restore-test --scratch-cluster`, so
//! the monthly test does not load the production server: `initdb` in a private temp
//! folder, listening only on a Unix socket inside it, trust authentication for its
//! one superuser. Run as the `postgres` OS user when hcbackup runs as root
//! (PostgreSQL refuses to run as root). Stopped and deleted when dropped.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::tools;
use crate::config::PgTarget;
use crate::error::{Error, Result};

/// The scratch cluster's superuser.
pub const SUPERUSER: &str = "hcbackup_scratch";

pub struct Scratch {
    dir: tempfile::TempDir,
    bin: PathBuf,
    ids: Option<(u32, u32)>,
    pub target: PgTarget,
}

/// The folder holding `initdb` and `pg_ctl`: HCBACKUP_PG_BIN, else the newest
/// /usr/lib/postgresql/N/bin (Debian), else PATH.
pub(crate) fn server_bin() -> Result<PathBuf> {
    if let Some(d) = &crate::config::tuning::get().pg_bin {
        if d.join("initdb").exists() {
            return Ok(d.clone());
        }
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in rd.flatten() {
            let v = e.file_name().to_string_lossy().parse::<u32>().unwrap_or(0);
            let bin = e.path().join("bin");
            if bin.join("initdb").exists() && best.as_ref().is_none_or(|(b, _)| v > *b) {
                best = Some((v, bin));
            }
        }
    }
    if let Some((_, b)) = best {
        return Ok(b);
    }
    use crate::config::lookup::{Lookup, Process};
    let found = Process
        .var("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("initdb").exists()));
    found.ok_or_else(|| {
        Error::Failed(
            "--scratch-cluster needs the PostgreSQL server programs (initdb, pg_ctl): install postgresql, or set HCBACKUP_PG_BIN".into(),
        )
    })
}

/// uid and gid of the `postgres` OS user.
fn postgres_ids() -> Result<(u32, u32)> {
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam returns a pointer into static storage or NULL; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(Error::Failed(
            "--scratch-cluster as root needs the `postgres` OS user (PostgreSQL does not run as root)".into(),
        ));
    }
    // SAFETY: pw is non-null and points to a valid passwd entry.
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

impl Scratch {
    pub fn start() -> Result<Scratch> {
        let bin = server_bin()?;
        // SAFETY: geteuid cannot fail.
        let ids = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_ids()?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("hcbackup-scratch-")
            .tempdir()
            .map_err(|e| Error::io("creating the scratch cluster folder", e))?;
        if let Some((u, g)) = ids {
            std::os::unix::fs::chown(dir.path(), Some(u), Some(g))
                .map_err(|e| Error::io_path("handing to postgres", dir.path(), e))?;
        }
        let s = Scratch {
            target: PgTarget {
                host: dir.path().display().to_string(),
                port: 5432,
                user: SUPERUSER.into(),
                password: None,
                db: "postgres".into(),
                lock_timeout_secs: crate::config::DEFAULT_PG_LOCK_TIMEOUT,
            },
            dir,
            bin,
            ids,
        };
        let data = s.dir.path().join("data");
        s.run(
            "initdb",
            s.cmd("initdb").arg("-D").arg(&data).args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]),
        )?;
        let opts = format!(
            "-c listen_addresses='' -k {} -p 5432 -c fsync=off -c full_page_writes=off",
            s.dir.path().display()
        );
        s.run(
            "pg_ctl start",
            s.cmd("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-w", "-t", "60", "-l"])
                .arg(s.dir.path().join("log"))
                .args(["-o", &opts, "start"]),
        )?;
        Ok(s)
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = crate::util::child(self.bin.join(prog), &[]);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((u, g)) = self.ids {
            c.uid(u).gid(g).env("HOME", self.dir.path());
        }
        c
    }

    fn run(&self, what: &str, c: &mut Command) -> Result<()> {
        let out = c
            .output()
            .map_err(|e| Error::io(format!("running {what} for the scratch cluster"), e))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            return Err(Error::Failed(format!(
                "{what} for the scratch cluster failed ({}): {}",
                out.status,
                tools::error_line(&format!("{err}\n{log}")).unwrap_or_else(|| "no message".into())
            )));
        }
        Ok(())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        // The TempDir removes the folder (root may remove postgres's files).
    }
}
