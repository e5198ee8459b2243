//! `hcbackup restore` and `hcbackup export --db-dump`.

use std::path::PathBuf;

use clap::Args;

use super::{progress::CliProgress, render, render_db, Ctx};
use crate::error::{exit, Error, Result};
use crate::model::snapshot::SnapshotEntry;
use crate::ops::db_restore::ReplaceRules;
use crate::ops::export::{self, Exported, What};
use crate::ops::restore::RestoreOptions;
use crate::ops::restore_job::{self, Observer, Request, Step};
use crate::progress::Progress;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id (a unique prefix) or `latest`.
    pub snapshot: String,
    /// Folder to restore the files into (created when missing; must be empty unless
    /// --overwrite, or hold an unfinished restore of the same snapshot, which is
    /// then finished). Without --target no files are restored.
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Restore only paths matching this glob (repeatable), e.g. 'uploads/exams/**'.
    #[arg(long = "include", value_name = "GLOB")]
    pub includes: Vec<String>,
    /// Allow restoring into a non-empty folder, replacing files of the same name
    /// (and replacing an existing --db-file).
    #[arg(long)]
    pub overwrite: bool,
    /// Also restore setuid/setgid bits and device nodes. Off by default: a snapshot
    /// written by a compromised machine could plant a setuid-root program.
    #[arg(long)]
    pub restore_privileged: bool,
    /// Restore the database dump into database NAME on the POSTGRES_* server (default
    /// NAME: POSTGRES_DB). Created when missing. An existing database is replaced
    /// (pg_restore --clean --if-exists) only when NAME is given or with --force, and
    /// after a safety dump of it (a snapshot tagged safety-dump). With `latest`, the
    /// newest snapshot that holds a dump.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "", conflicts_with = "no_db")]
    pub db: Option<String>,
    /// Restore no database (the default unless --db or --db-file is given).
    #[arg(long)]
    pub no_db: bool,
    /// Write the database dump to FILE (stock `pg_restore` reads it).
    #[arg(long, value_name = "FILE", conflicts_with = "no_db")]
    pub db_file: Option<PathBuf>,
    /// Which of the snapshot's databases (when it holds several).
    #[arg(long, value_name = "NAME")]
    pub dump: Option<String>,
    /// With --db: replace an existing database even when only POSTGRES_DB names it.
    #[arg(long, requires = "db")]
    pub force: bool,
    /// With --db: replace an existing database without saving a safety dump of it first.
    #[arg(long, requires = "db")]
    pub no_safety_dump: bool,
    /// With --db NEW: restore only this table (`T` or `SCHEMA.T`; repeatable),
    /// with its indexes, constraints, defaults, triggers and sequences, into
    /// the new database NEW beside the others (a foreign key to a table not
    /// restored is left out and named). For "one patient's prescriptions were
    /// deleted this morning": copy the rows back from NEW (docs/operations.md).
    #[arg(long = "table", value_name = "TABLE", requires = "db")]
    pub tables: Vec<String>,
    /// With --db NEW: restore every table of this schema (repeatable), as --table.
    #[arg(long = "schema", value_name = "SCHEMA", requires = "db")]
    pub schemas: Vec<String>,
    /// With --db: also restore roles and tablespaces (pg_dumpall --globals-only).
    #[arg(long, requires = "db")]
    pub globals: bool,
    /// Point-in-time recovery: lay out the snapshot's base backup in this new
    /// folder with recovery settings (restore_command = hcbackup wal-fetch);
    /// starting PostgreSQL on it replays the archived WAL up to the target.
    /// With `latest` and --to-time, the newest base backup made before it.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["target", "db", "db_file"])]
    pub pgdata: Option<PathBuf>,
    /// With --pgdata: start PostgreSQL on the copy (as the server's user) on
    /// --port, archiving nothing, and wait until recovery has ended.
    #[arg(long, requires = "pgdata")]
    pub start: bool,
    /// With --start: the copy's port.
    #[arg(long, value_name = "PORT", requires = "start", default_value_t = 5433)]
    pub port: u16,
    /// With --pgdata: stop just before this moment (RFC 3339, e.g.
    /// 2026-12-01T14:05:00-03:00). Default: the end of the archived WAL.
    #[arg(long, value_name = "TIME", requires = "pgdata")]
    pub to_time: Option<String>,
    /// With --pgdata: stop just before this WAL position (e.g. 0/3000060).
    #[arg(
        long,
        value_name = "LSN",
        requires = "pgdata",
        conflicts_with = "to_time"
    )]
    pub to_lsn: Option<String>,
    /// With --pgdata: stop just before this transaction id.
    #[arg(long, value_name = "XID", requires = "pgdata", conflicts_with_all = ["to_time", "to_lsn"])]
    pub to_xid: Option<String>,
    /// Restore from a destination's copy (e.g. `s3`) instead of the local repository.
    #[arg(long, value_name = "DEST")]
    pub from: Option<String>,
    /// Why (a ticket, a request): recorded in the audit log with who restored what.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

pub fn run(ctx: &Ctx, a: RestoreArgs) -> Result<i32> {
    if let Some(pgdata) = &a.pgdata {
        return pitr(ctx, &a, pgdata);
    }
    // The dump to stdout: the files' line and the rest go to stderr. A dump
    // file that cannot be written is said before any file is restored.
    if let Some(p) = &a.db_file {
        crate::ops::output_file::claim_stdout(p);
        crate::ops::output_file::preflight(p, a.overwrite)?;
    }
    if let Some(t) = a.target.as_deref() {
        if crate::trusted_path::in_system_folder(t) {
            return Err(Error::Usage(format!(
                "--target {}: a system folder of devices or kernel files: restore into a folder elsewhere",
                t.display()
            )));
        }
    }
    if a.target.is_none() && a.db.is_none() && a.db_file.is_none() {
        return Err(Error::Usage(
            "nothing to restore: give --target DIR for files, --db [NAME] for the database, or --db-file FILE".into(),
        ));
    }
    let db_target = match &a.db {
        Some(name) => Some(db_target(ctx, name)?),
        None => None,
    };
    ctx.note(|d| {
        d.reason = a.reason.clone();
        d.destinations = vec![a
            .from
            .clone()
            .unwrap_or_else(|| crate::retention::LOCAL.into())];
    });
    let repo = match &a.from {
        None => ctx.open()?,
        Some(name) => {
            // The primary's log records a restore from a copy; when the primary is
            // gone (the server was lost), the copy's own log does.
            let primary = ctx.open();
            let copy = ctx.open_destination(name)?;
            if let Err(e) = primary {
                tracing::warn!(
                    "the repository does not open ({e}); this restore is recorded in the audit log of {name}"
                );
                ctx.register(&copy);
            }
            copy
        }
    };
    let snap = repo.find_snapshot(&a.snapshot)?;
    ctx.note(|d| d.snapshot = Some(snap.id.to_hex()));
    let rules = ReplaceRules {
        named: a.db.as_deref().is_some_and(|n| !n.is_empty()),
        force: a.force,
        no_safety_dump: a.no_safety_dump,
        tables: !a.tables.is_empty() || !a.schemas.is_empty(),
    };
    let only: Vec<crate::pg::select::Want> = a
        .tables
        .iter()
        .map(|t| crate::pg::select::Want::table(t))
        .chain(
            a.schemas
                .iter()
                .cloned()
                .map(crate::pg::select::Want::Schema),
        )
        .collect();
    let request = Request {
        spec: a.snapshot,
        files: a.target.map(|target| RestoreOptions {
            target,
            includes: a.includes,
            overwrite: a.overwrite,
            privileged: a.restore_privileged,
        }),
        dump_file: a.db_file,
        overwrite: a.overwrite,
        database: db_target.map(|t| (t, rules)),
        dump: a.dump,
        globals: a.globals,
        only,
    };
    let job = restore_job::plan(&repo, snap, request)?;
    let mut shown = Shown {
        ctx,
        snap: job.snap.clone(),
        from: a.from.as_deref(),
        progress: None,
    };
    let files_ok = restore_job::execute(&repo, job, &mut shown)?;
    Ok(if files_ok { exit::OK } else { exit::ERROR })
}

/// How a restore's steps are shown and noted for the audit log.
struct Shown<'a> {
    ctx: &'a Ctx,
    snap: SnapshotEntry,
    from: Option<&'a str>,
    progress: Option<CliProgress>,
}

impl Observer for Shown<'_> {
    fn files_started(&mut self, files: u64, bytes: u64) -> &dyn Progress {
        let p = self
            .progress
            .insert(CliProgress::start(self.ctx, &[], "restoring"));
        p.set_totals(files, bytes);
        p
    }

    fn files_ended(&mut self) {
        if let Some(p) = self.progress.take() {
            p.finish();
        }
    }

    fn step(&mut self, step: Step<'_>) {
        let ctx = self.ctx;
        match step {
            Step::Files { report, took } => {
                ctx.note(|d| {
                    d.bytes += report.bytes;
                    d.detail = Some(format!("{} files", report.files));
                });
                render::restore_done(ctx, &self.snap, report, took);
            }
            Step::DumpWritten {
                entry,
                path,
                bytes,
                took,
            } => render_db::dump_written(ctx, entry, path, bytes, took),
            Step::SafetyDump { db, saved } => {
                render_db::safety_dump_saved(ctx, db, saved, self.from);
                ctx.note(|d| d.detail = Some(format!("safety dump {} first", saved.id.short())));
            }
            Step::Database(report) => render_db::db_restored(ctx, report),
        }
    }
}

/// `restore --pgdata`: a base backup laid out for point-in-time recovery.
fn pitr(ctx: &Ctx, a: &RestoreArgs, pgdata: &std::path::Path) -> Result<i32> {
    use crate::ops::pitr::{self, Target};
    let target = match (&a.to_time, &a.to_lsn, &a.to_xid) {
        (Some(t), _, _) => {
            let at = crate::util::parse_when(t).ok_or_else(|| {
                Error::Usage(format!(
                    "--to-time {t}: give an RFC 3339 time with its zone, such as 2026-12-01T14:05:00-03:00"
                ))
            })?;
            Target::Time(at)
        }
        (_, Some(l), _) => Target::lsn(l)?,
        (_, _, Some(x)) => Target::xid(x)?,
        _ => Target::Latest,
    };
    // SAFETY: geteuid cannot fail.
    if a.start && unsafe { libc::geteuid() } == 0 {
        return Err(Error::Usage(
            "--start runs PostgreSQL, which refuses to run as root: run the restore as the server's user (sudo -u postgres hcbackup restore …)".into(),
        ));
    }
    let fetcher = fetcher(ctx)?;
    ctx.note(|d| d.reason = a.reason.clone());
    let repo = ctx.open()?;
    let snap = pitr::choose(&repo, &a.snapshot, &target)?;
    ctx.note(|d| {
        d.snapshot = Some(snap.id.to_hex());
        d.detail = Some(format!("base backup into {}", pgdata.display()));
    });
    let mut r = pitr::restore(&repo, &snap, pgdata, &target, &fetcher)?;
    ctx.note(|d| d.bytes = r.bytes);
    let laid = format!(
        "laid out the base backup of snapshot {} in {} ({}, WAL from {} on timeline {})",
        snap.id.short(),
        pgdata.display(),
        render::size(r.bytes),
        r.start_lsn,
        r.timeline,
    );
    let text = if a.start {
        let s =
            crate::ops::pitr_start::start_fed(&repo, &mut r, &target, &fetcher.repo, a.port, None)?;
        ctx.note(|d| d.duration_secs = Some(s.recovery_secs));
        let text = format!(
            "{laid}; recovered to {} in {:.1} s: PostgreSQL runs on port {} (stop it with `pg_ctl -D {} stop`)",
            r.target,
            s.recovery_secs,
            s.port,
            pgdata.display()
        );
        r.started = Some(s);
        text
    } else {
        format!(
            "{laid}; start PostgreSQL on it (`pg_ctl -D {} start`, as the server's user, or restore with --start) to recover to {}",
            pgdata.display(),
            r.target
        )
    };
    render::line(ctx, &text, serde_json::to_value(&r).unwrap_or_default());
    Ok(exit::OK)
}

/// How the restored server runs `wal-fetch`: this program, this repository,
/// and where the password comes from (a file or command, never the password).
pub(super) fn fetcher(ctx: &Ctx) -> Result<crate::ops::pitr::Fetcher> {
    use crate::config::{PasswordSource, RepoLocation};
    let exe = std::env::current_exe().map_err(|e| Error::io("finding this program's path", e))?;
    let repo = match ctx.settings.repo_location()? {
        RepoLocation::Local(p) => std::path::absolute(&p)
            .map_err(|e| Error::io_path("finding", &p, e))?
            .display()
            .to_string(),
        // A cloud location (builds without the `cloud` feature have none).
        #[allow(unreachable_patterns)]
        _ => ctx.settings.repo.clone().unwrap_or_default(),
    };
    let mut env = vec![(
        "HCBACKUP_CACHE_DIR".to_string(),
        ctx.settings.cache_dir.display().to_string(),
    )];
    #[cfg(feature = "cloud")]
    if let RepoLocation::S3(_) = ctx.settings.repo_location()? {
        env.extend(s3_settings(&ctx.settings.cloud.s3));
    }
    match &ctx.settings.password {
        PasswordSource::File(p) => env.push((
            "HCBACKUP_PASSWORD_FILE".into(),
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
        )),
        PasswordSource::Command(c) => env.push(("HCBACKUP_PASSWORD_COMMAND".into(), c.clone())),
        PasswordSource::Env | PasswordSource::Prompt => tracing::warn!(
            "the restore_command written names no password file or command (the password is never written to disk): give PostgreSQL HCBACKUP_PASSWORD_FILE, or run the restore with --password-file"
        ),
    }
    Ok(crate::ops::pitr::Fetcher { exe, repo, env })
}

/// What `wal-fetch` needs to reach an `s3://` repository, but its keys: the
/// address, region and path style, and the credentials file when one is
/// named. Keys in the environment are never written to disk: PostgreSQL's
/// user then needs its own (`~/.aws/credentials`).
#[cfg(feature = "cloud")]
fn s3_settings(s3: &crate::storage::S3Env) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(e) = &s3.endpoint {
        env.push(("AWS_ENDPOINT_URL_S3".to_string(), e.clone()));
    }
    if let Some(r) = &s3.region {
        env.push(("S3_BACKUP_REGION".to_string(), r.clone()));
    }
    if let Some(p) = s3.force_path_style {
        env.push((
            "S3_FORCE_PATH_STYLE".to_string(),
            if p { "1" } else { "0" }.into(),
        ));
    }
    match &s3.credentials_file {
        Some(f) => env.push((
            "AWS_SHARED_CREDENTIALS_FILE".to_string(),
            std::path::absolute(f)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| f.clone()),
        )),
        None => tracing::warn!(
            "the restore_command written reaches S3 with the AWS credentials of the user PostgreSQL runs as (~/.aws/credentials; keys are never written to disk by a restore): check that user has them, or run the restore with AWS_SHARED_CREDENTIALS_FILE set"
        ),
    }
    env
}

/// The server and login of the POSTGRES_* settings, restoring into `name` (or POSTGRES_DB).
fn db_target(ctx: &Ctx, name: &str) -> Result<crate::config::PgTarget> {
    let base = ctx.settings.databases.first().ok_or_else(|| {
        Error::Usage(
            "--db needs the PostgreSQL server: set POSTGRES_HOST, POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB (or a [[postgres]] table)".into(),
        )
    })?;
    let target = if name.is_empty() {
        base.clone()
    } else {
        base.with_db(name)
    };
    plain_db_name(&target.db)?;
    Ok(target)
}

/// A database name restore may use: the PostgreSQL programs read a name with
/// `=` or a `postgres://` URI as a connection string, so such a "name" would be
/// checked and safety-dumped as one database and replaced as another.
fn plain_db_name(db: &str) -> Result<()> {
    let uri = ["postgres://", "postgresql://"]
        .iter()
        .any(|p| db.to_ascii_lowercase().starts_with(p));
    if db.contains('=') || uri || db.trim() != db || db.is_empty() {
        return Err(Error::Usage(format!(
            "--db {db:?} is not a plain database name (no `=`, no postgres:// URI, no leading or trailing spaces): give the name alone; the server comes from POSTGRES_HOST/PORT/USER"
        )));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Snapshot id (a unique prefix) or `latest`.
    pub snapshot: String,
    /// Write the database dump (pg_restore's custom format) to FILE, or into a folder
    /// as db_backup_YYYY-MM-DD_HH-MM-SS.dump (default: the current folder).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub db_dump: Option<String>,
    /// Write the files as a tar.gz stock `tar -xzf` extracts, to FILE or into a
    /// folder as files_backup_YYYY-MM-DD_HH-MM-SS.tar.gz (default: the current folder).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub tar: Option<String>,
    /// Which of the snapshot's databases (when it holds several).
    #[arg(long, value_name = "NAME")]
    pub dump: Option<String>,
    /// Replace an existing file.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn export(ctx: &Ctx, a: ExportArgs) -> Result<i32> {
    let (given, tar) = match (a.db_dump, a.tar) {
        (Some(f), None) => (f, false),
        (None, Some(f)) => (f, true),
        (Some(_), Some(_)) => {
            return Err(Error::Usage(
                "export writes one thing at a time: --db-dump or --tar".into(),
            ))
        }
        (None, None) => {
            return Err(Error::Usage(
                "export needs --db-dump [FILE] (the database) or --tar [FILE] (the files)".into(),
            ))
        }
    };
    crate::ops::output_file::claim_stdout(std::path::Path::new(&given));
    let what = if tar {
        What::Tar
    } else {
        What::Dump(a.dump.as_deref())
    };
    let repo = ctx.open()?;
    let snap = repo.find_snapshot(&a.snapshot)?;
    ctx.note(|d| {
        d.snapshot = Some(snap.id.to_hex());
        d.detail = Some(
            if tar {
                "files as tar.gz"
            } else {
                "database dump"
            }
            .into(),
        );
    });
    let path = export::file_for(std::path::Path::new(&given), &snap, what);
    let started = std::time::Instant::now();
    match export::run(&repo, &snap, what, &path, a.overwrite)? {
        Exported::Tar(r) => render::line(
            ctx,
            &format!(
                "wrote {}: {} files, {} in {:.1} s{}",
                path.display(),
                r.files,
                render::size(r.bytes),
                started.elapsed().as_secs_f64(),
                if crate::ops::output_file::is_stream(&path) {
                    String::new()
                } else {
                    format!(" (extract with: tar -xzf {})", path.display())
                }
            ),
            serde_json::json!({ "file": path, "entries": r.entries, "files": r.files, "bytes": r.bytes }),
        ),
        Exported::Dump { entry, bytes } => {
            render_db::dump_written(ctx, &entry, &path, bytes, started.elapsed())
        }
    }
    Ok(exit::OK)
}

/// `dump SNAPSHOT PATH`: one file (or a folder as tar) to standard output.
pub fn dump(ctx: &Ctx, spec: &str, path: &str) -> Result<i32> {
    let repo = ctx.open()?;
    let snap = repo.find_snapshot(spec)?;
    ctx.note(|d| {
        d.snapshot = Some(snap.id.to_hex());
        d.detail = Some(format!("dump of {}", crate::model::tree::sanitize(path)));
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let r = crate::ops::dump::run(&repo, &snap, path, &mut out)?;
    ctx.note(|d| d.bytes = r.bytes);
    Ok(exit::OK)
}
