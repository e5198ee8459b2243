//! The command line (clap): one file per command group; `render` is the only stdout writer.

/// `println!` for human output: names and errors from uploads and storage are
/// escaped (`model::tree::sanitize`), and a closed pipe ends the process quietly.
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::cli::render::emit_line(&format!($($t)*))
    };
}

mod audit;
mod doc;
mod import_legacy;
mod keys;
mod mirror;
mod notify;
mod progress;
mod render;
mod render_db;
mod render_ops;
mod render_retention;
mod render_stats;
mod repair;
mod report;
mod restore;
mod retention;
mod schedule;
mod serve;
mod snapshot;
mod status;
mod verify;
mod wal;

use keys::KeyCommand;

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::audit::{AuditLog, Draft};
use crate::config::{Flags, RepoLocation, Settings};
use crate::error::{exit, Result};
use crate::repo::Repository;
use crate::storage::{Backend, LocalBackend};

#[derive(Parser, Debug)]
#[command(
    name = "hcbackup",
    version,
    about = "Encrypted, deduplicating backups of a clinic's database and uploads"
)]
pub struct Cli {
    /// Repository: a folder (default: $BACKUP_DIR/repository), s3://BUCKET/PREFIX or drive://FOLDER_ID.
    #[arg(long, global = true, value_name = "LOCATION")]
    pub repo: Option<String>,
    /// Read the password from this file (also HCBACKUP_PASSWORD_FILE).
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and read the password from its output.
    #[arg(long, global = true, value_name = "CMD")]
    pub password_command: Option<String>,
    /// Settings file (default: ./hcbackup.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Read without taking a lock (restore, export, ls, snapshots, verify, status,
    /// report): for a copy this machine cannot write. Automatic on a read-only file system.
    #[arg(long, global = true)]
    pub no_lock: bool,
    /// Also append every line printed (stdout and stderr) to FILE, each with its
    /// time and process id: the log of scheduled runs, whose stderr cron mails.
    /// (Also HCBACKUP_LOG_FILE.)
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// More detail (repeat for debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// `--host`, `--tag`, `--path`: which snapshots a command looks at.
#[derive(clap::Args, Debug, Default)]
pub struct Select {
    /// Only snapshots made on this host (repeatable: any of them).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable: any of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only snapshots of this source path (repeatable: any of them).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

impl Select {
    /// The repository's snapshots these flags select, oldest first.
    fn snapshots(&self, repo: &Repository) -> Result<Vec<crate::model::snapshot::SnapshotEntry>> {
        let filter = self.filter();
        let all = repo.snapshots()?;
        Ok(all
            .into_iter()
            .filter(|s| filter.matches(&s.snapshot))
            .collect())
    }

    pub fn filter(&self) -> crate::model::snapshot::Filter {
        crate::model::snapshot::Filter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: self
                .paths
                .iter()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
                .map(|p| p.display().to_string())
                .collect(),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub select: Select,
    /// Only the N newest (of those selected).
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
}

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// Snapshots (ids, unique prefixes, `latest`); or select them with --host/--tag/--path.
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub select: Select,
    /// Add this tag (repeatable).
    #[arg(long = "add", value_name = "TAG")]
    pub add: Vec<String>,
    /// Remove this tag (repeatable).
    #[arg(long = "remove", value_name = "TAG")]
    pub remove: Vec<String>,
    /// Replace the tags with these (repeatable; `--set ''` removes them all).
    #[arg(long = "set", value_name = "TAG")]
    pub set: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the repository; prints its id.
    Init,
    /// Back up PATHs (default: UPLOADS_DIR).
    Snapshot(snapshot::SnapshotArgs),
    /// List snapshots (oldest first).
    Snapshots(SnapshotsArgs),
    /// Write one file of a snapshot to standard output (a folder: as a tar), e.g.
    /// `hcbackup dump latest uploads/exams/laudo.pdf > laudo.pdf`.
    Dump {
        /// Snapshot id (a unique prefix) or `latest`.
        snapshot: String,
        /// The file or folder, as `hcbackup ls` shows it (uploads/exams/laudo.pdf).
        path: String,
    },
    /// What changed between two snapshots: added (+), removed (-), changed (M),
    /// metadata only (U: mode, owner, mtime).
    Diff {
        /// The older snapshot (id, unique prefix).
        from: String,
        /// The newer snapshot (id, unique prefix, or `latest`).
        to: String,
    },
    /// Which snapshots hold an entry whose name matches PATTERN (a glob such as
    /// '*.pdf'; with a `/`, on the whole path: 'uploads/exams/**/*.dcm').
    Find {
        /// A glob on entry names ('*.pdf'), or with a `/` on whole paths from the source's name.
        pattern: String,
        #[command(flatten)]
        select: Select,
    },
    /// Add, remove or set tags of existing snapshots (each gets a new id; a
    /// legal hold moves with it), e.g. `hcbackup tag 3f2a9c1e --add before-migration`.
    Tag(TagArgs),
    /// Browse the snapshots as a read-only file system (FUSE) until it is
    /// unmounted (`umount MOUNTPOINT`): ids/ID/, snapshots/DATE, latest.
    Mount {
        /// An empty folder to mount on.
        mountpoint: std::path::PathBuf,
        /// Mount the copy at this destination (s3, gdrive, …) instead of the
        /// local repository: after the server is lost.
        #[arg(long, value_name = "DESTINATION")]
        from: Option<String>,
        #[command(flatten)]
        select: Select,
    },
    /// Sizes: what the snapshots hold, what is stored, the dedup and compression
    /// ratios, per source and per snapshot.
    Stats {
        #[command(flatten)]
        select: Select,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell), e.g.
    /// `hcbackup completions bash > /etc/bash_completion.d/hcbackup`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `hcbackup man > /usr/local/share/man/man1/hcbackup.1`.
    Man,
    /// List a snapshot's entries (below PATH).
    Ls {
        /// Snapshot id (a unique prefix) or `latest`.
        snapshot: String,
        /// Only below this path (uploads/exams).
        path: Option<String>,
    },
    /// Restore a snapshot's files into a folder and/or its database.
    Restore(restore::RestoreArgs),
    /// Copy the repository to its destinations (S3 when S3_BACKUP_BUCKET is set, Google Drive when GOOGLE_DRIVE_BACKUP_FOLDER is).
    Mirror {
        /// A destination's name, or `all`.
        #[arg(long, default_value = "all")]
        destination: String,
        /// List the destination instead of trusting the catalog's record of what it holds.
        #[arg(long)]
        full_check: bool,
    },
    /// Write a snapshot's database dump to a file stock pg_restore reads.
    Export(restore::ExportArgs),
    /// Check that every snapshot can be restored (--read-data: read and check every
    /// pack; --restore-test: restore the database into a temporary database and check it).
    Verify(verify::VerifyArgs),
    /// Remove snapshots a retention policy does not keep (per copy; --prune frees their data).
    Forget(retention::ForgetArgs),
    /// Remove data no snapshot needs (per copy): condemn it now, delete what an
    /// earlier prune condemned once HCBACKUP_PRUNE_GRACE_SECS (a day) has passed;
    /// snapshots go on meanwhile.
    Prune(retention::PruneArgs),
    /// Replace damaged or missing objects of a copy with good ones from the others.
    Repair(repair::RepairArgs),
    /// Legal holds: keep a snapshot whatever the retention policies say.
    #[command(subcommand)]
    Hold(retention::HoldCommand),
    /// Print cron or systemd entries for the daily snapshot and the monthly check.
    Schedule(schedule::ScheduleArgs),
    /// How fresh the backups are: exit 0 fresh, 2 stale (a snapshot older than
    /// 26 hours, no passed restore test within 35 days).
    Status(status::StatusCommand),
    /// The status API (/api/backup/status), Prometheus /metrics, /healthz and a
    /// dashboard, behind the bearer token HCBACKUP_STATUS_TOKEN; loopback by default.
    Serve(serve::ServeArgs),
    /// Turn the old script's db_backup_*.dump and files_backup_*.tar.gz into
    /// snapshots dated by their names.
    ImportLegacy(import_legacy::ImportArgs),
    /// Compliance evidence (Markdown or HTML): policies, last backups and restore
    /// tests against the RPO/RTO, restores, holds, key changes, the audit chain.
    Report(report::ReportArgs),
    /// The audit log: every operation, chained by hash (`audit verify` checks it).
    Audit(audit::AuditArgs),
    /// Alerts: `notify test` sends a test message on every configured channel.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// PostgreSQL's archive_command: store one WAL file in the repository
    /// (`archive_command = 'hcbackup wal-push %p'`); exit 0 only once it is durable.
    WalPush {
        /// The file PostgreSQL archives (`%p`, relative to the data folder).
        path: std::path::PathBuf,
    },
    /// PostgreSQL's restore_command: bring one WAL file back
    /// (`restore_command = 'hcbackup wal-fetch %f %p'`); exit 1 when it was
    /// never archived, 255 when the repository cannot tell (recovery stops).
    WalFetch {
        /// The file's name (`%f`).
        name: String,
        /// Where to write it (`%p`).
        dest: std::path::PathBuf,
    },
    /// Manage passwords (key files).
    #[command(subcommand)]
    Key(KeyCommand),
    /// The local catalog (a rebuildable cache).
    #[command(subcommand)]
    Catalog(CatalogCommand),
}

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Rebuild the catalog from the repository alone.
    Rebuild,
}

/// What every command gets: settings and output options; and what it tells the
/// audit log and the alerts about itself.
pub struct Ctx {
    pub settings: Settings,
    pub json: bool,
    pub quiet: bool,
    /// `--no-lock` (refused for commands that write).
    pub no_lock: bool,
    /// `--repo` as given on the command line (`schedule` writes it into entries).
    pub repo_flag: Option<String>,
    /// The log of the repository this command opened (set by `open`, `init`).
    audit: RefCell<Option<AuditLog>>,
    /// This command's audit event (and alert) as it fills in.
    draft: RefCell<Draft>,
}

impl Ctx {
    pub fn new(settings: Settings, json: bool, quiet: bool) -> Ctx {
        Ctx {
            settings,
            json,
            quiet,
            no_lock: false,
            repo_flag: None,
            audit: RefCell::new(None),
            draft: RefCell::new(Draft::default()),
        }
    }

    /// Tell this command's audit event something (its snapshot, bytes, reason…).
    pub fn note(&self, f: impl FnOnce(&mut Draft)) {
        f(&mut self.draft.borrow_mut())
    }

    /// The step this command is at: a failure alert names it.
    pub fn step(&self, step: impl Into<String>) {
        self.draft.borrow_mut().step = Some(step.into());
    }

    pub fn draft(&self) -> Draft {
        self.draft.borrow().clone()
    }

    /// Record an operation now (a restore test inside `verify`).
    pub fn record(&self, draft: &Draft, outcome: &crate::audit::Outcome) {
        audit::record(self, draft, outcome)
    }

    fn audit_log(&self) -> std::cell::Ref<'_, Option<AuditLog>> {
        self.audit.borrow()
    }

    /// The first repository a command opens is the one whose log records it.
    fn register(&self, repo: &Repository) {
        let mut a = self.audit.borrow_mut();
        if a.is_none() {
            *a = Some(repo.audit_log());
        }
    }

    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        backend_at(self.settings.repo_location()?)
    }

    /// The copy at destination `name` (from S3_BACKUP_BUCKET, …) as a repository.
    pub fn open_destination(&self, name: &str) -> Result<Repository> {
        let (_, loc) = self
            .settings
            .destinations
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| {
                crate::Error::Usage(format!(
                    "--from {name}: no such destination (known: {}); S3 needs S3_BACKUP_BUCKET, Google Drive GOOGLE_DRIVE_BACKUP_FOLDER",
                    self.settings
                        .destinations
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let backend = backend_at(loc.clone())?;
        let mut pw = || self.settings.read_password("repository password", false);
        let mut repo = Repository::open_copy(backend, &mut pw, &self.settings.cache_dir)?;
        repo.set_lock_wait(self.settings.lock_wait);
        repo.set_no_lock(self.no_lock);
        Ok(repo)
    }

    pub fn open(&self) -> Result<Repository> {
        let backend = self.backend()?;
        let mut pw = || self.settings.read_password("repository password", false);
        let mut repo = Repository::open_then(backend, &mut pw, &self.settings.cache_dir, |r| {
            self.register(r)
        })?;
        repo.set_lock_wait(self.settings.lock_wait);
        repo.set_no_lock(self.no_lock);
        Ok(repo)
    }
}

/// A time flag (`--now`, `--since`): an RFC 3339 time or a date (its midnight UTC).
pub(crate) fn time_flag(flag: &str, value: &str) -> Result<time::OffsetDateTime> {
    crate::util::parse_when(value).ok_or_else(|| {
        crate::Error::Usage(format!(
            "{flag} {value}: give an RFC 3339 time (2026-01-15T03:00:00Z) or a date (2026-01-15)"
        ))
    })
}

/// `--now` when given, else the present.
pub(crate) fn now_flag(value: &Option<String>) -> Result<time::OffsetDateTime> {
    match value {
        Some(t) => time_flag("--now", t),
        None => Ok(crate::util::now()),
    }
}

/// A backend whose requests are counted (`storage::counting`).
fn counted(b: Arc<dyn Backend>) -> Arc<dyn Backend> {
    Arc::new(crate::storage::counting::Counting(b))
}

/// A cloud backend behind the retry decorator (each attempt counted), and blob
/// reads served from whole packs.
#[cfg(feature = "cloud")]
fn remote(b: Arc<dyn Backend>) -> Arc<dyn Backend> {
    use crate::storage::{RetryPolicy, Retrying};
    let retrying: Arc<dyn Backend> = Arc::new(Retrying::new(counted(b), RetryPolicy::default()));
    Arc::new(crate::storage::PackCache::new(retrying))
}

/// The backend for a location; cloud ones behind the retry decorator and the pack cache.
pub fn backend_at(loc: RepoLocation) -> Result<Arc<dyn Backend>> {
    Ok(match loc {
        // Absolute: the location names the catalog's owner (`Repository::open`),
        // whichever folder the command was started from.
        RepoLocation::Local(p) => {
            if p.symlink_metadata().is_ok_and(|m| m.is_file()) {
                return Err(crate::Error::Usage(format!(
                    "{} is a file, not a repository folder: give the repository's folder with --repo (or BACKUP_DIR, whose repository/ it is)",
                    p.display()
                )));
            }
            counted(Arc::new(LocalBackend::new(
                std::path::absolute(&p).unwrap_or(p),
            )))
        }
        #[cfg(feature = "cloud")]
        RepoLocation::S3(cfg) => {
            let s3 = crate::storage::S3Backend::new(cfg)?;
            remote(Arc::new(s3))
        }
        #[cfg(feature = "cloud")]
        RepoLocation::Drive(cfg) => {
            let drive = crate::storage::DriveBackend::new(cfg)?;
            remote(Arc::new(drive))
        }
    })
}

/// `mount`: the selected snapshots as a read-only file system, under a shared
/// lock (a prune deletes nothing it may read until it is unmounted), until
/// it is unmounted.
fn mount(
    ctx: &Ctx,
    mountpoint: &std::path::Path,
    from: Option<&str>,
    select: &Select,
) -> Result<i32> {
    let empty = std::fs::read_dir(mountpoint).map(|mut d| d.next().is_none());
    if !matches!(empty, Ok(true)) {
        return Err(crate::Error::Usage(format!(
            "{}: give an empty folder to mount on",
            mountpoint.display()
        )));
    }
    let repo = match from {
        Some(name) => ctx.open_destination(name)?,
        None => ctx.open()?,
    };
    let snaps = select.snapshots(&repo)?;
    let latest = snaps
        .iter()
        .rev()
        .find(|s| !s.snapshot.is_safety_dump())
        .cloned();
    let fs = crate::ops::mount::SnapshotFs::new(repo, &snaps, latest.as_ref());
    if !ctx.quiet {
        eprintln!(
            "hcbackup: mounting {} snapshots read-only on {}; `umount {}` ends it",
            snaps.len(),
            mountpoint.display(),
            mountpoint.display()
        );
    }
    crate::ops::mount::mount(fs, mountpoint)?;
    Ok(exit::OK)
}

/// `tag`: the snapshots named or selected, their new manifests, the old removed.
fn tag(ctx: &Ctx, a: TagArgs) -> Result<i32> {
    use crate::ops::tag;
    let change = tag::TagChange {
        add: a.add,
        remove: a.remove,
        set: (!a.set.is_empty()).then(|| a.set.into_iter().filter(|t| !t.is_empty()).collect()),
    };
    change.check()?;
    let filter = a.select.filter();
    if a.snapshots.is_empty() && filter.is_empty() {
        return Err(crate::Error::Usage(
            "name the snapshots to tag (ids or latest), or select them with --host, --tag or --path".into(),
        ));
    }
    let repo = ctx.open()?;
    let snaps = if a.snapshots.is_empty() {
        a.select.snapshots(&repo)?
    } else {
        let mut named = Vec::new();
        for spec in &a.snapshots {
            let s = repo.find_snapshot(spec)?;
            if filter.matches(&s.snapshot)
                && !named
                    .iter()
                    .any(|n: &crate::model::snapshot::SnapshotEntry| n.id == s.id)
            {
                named.push(s);
            }
        }
        named
    };
    let all = repo.snapshots()?;
    let done = tag::apply(
        &repo,
        crate::retention::LOCAL,
        tag::plan(&all, &snaps, &change),
    )?;
    ctx.note(|d| {
        d.detail = Some(
            done.iter()
                .map(|r| {
                    format!(
                        "{} -> {} [{}]",
                        &r.old_id[..8],
                        &r.new_id[..8],
                        r.tags.join(",")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    });
    render_stats::retagged(ctx, &done, snaps.len());
    Ok(exit::OK)
}

/// Commands that write nothing to the repository (beyond its audit log), which
/// `--no-lock` may run.
fn reads_only(c: &Command) -> bool {
    matches!(
        c,
        Command::Restore(_)
            | Command::Snapshot(snapshot::SnapshotArgs { dry_run: true, .. })
            | Command::Dump { .. }
            | Command::Export(_)
            | Command::Ls { .. }
            | Command::Diff { .. }
            | Command::Find { .. }
            | Command::Stats { .. }
            | Command::Mount { .. }
            | Command::Snapshots(_)
            | Command::Verify(_)
            | Command::Status(_)
            | Command::Report(_)
    )
}

/// Shorter passwords get a warning from `init`.
const MIN_PASSWORD_CHARS: usize = 12;

/// `init` into a folder that holds other things (someone's documents, the wrong
/// mount point) would scatter the repository among them: refused. An empty
/// folder, or a fresh file system's `lost+found` alone, is fine.
fn refuse_foreign_folder(p: &std::path::Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(p) else {
        return Ok(());
    };
    let others: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !(e.file_name() == "lost+found" && e.file_type().is_ok_and(|t| t.is_dir())))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "config")
        .collect();
    if others.is_empty() || p.join("config").exists() {
        return Ok(());
    }
    Err(crate::Error::Usage(format!(
        "{} is not empty ({} entries, such as {}) and is not a repository: give a new or empty folder for the repository",
        p.display(),
        others.len(),
        crate::model::tree::escape(others[0].as_bytes())
    )))
}

/// Run a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    let flags = Flags {
        repo: cli.repo.clone(),
        config: cli.config.clone(),
        password_file: cli.password_file.clone(),
        password_command: cli.password_command.clone(),
    };
    let operation = audit::operation_of(&cli.command);
    let settings = Settings::load(&flags).inspect_err(|e| notify::settings_failed(operation, e))?;
    let mut ctx = Ctx::new(settings, cli.json, cli.quiet);
    if cli.no_lock {
        if !reads_only(&cli.command) {
            return Err(crate::Error::Usage(
                "--no-lock is for commands that only read (restore, snapshot --dry-run, dump, export, ls, diff, find, stats, mount, snapshots, verify, status, report): this one writes to the repository and needs its lock".into(),
            ));
        }
        ctx.no_lock = true;
    }
    ctx.repo_flag = cli.repo.clone();
    if let Some(op) = operation {
        ctx.note(|d| d.operation = op.to_string());
    }
    let started = std::time::Instant::now();
    let result = dispatch(&ctx, cli.command);
    ctx.note(|d| d.duration_secs = Some(started.elapsed().as_secs_f64()));
    if operation.is_some() {
        audit::finish(&ctx, &result);
    }
    result
}

fn dispatch(ctx: &Ctx, command: Command) -> Result<i32> {
    match command {
        Command::Init => {
            if let RepoLocation::Local(p) = ctx.settings.repo_location()? {
                refuse_foreign_folder(&p)?;
            }
            let backend = ctx.backend()?;
            let pw = ctx
                .settings
                .read_password("new repository password", true)?;
            if pw.chars().count() < MIN_PASSWORD_CHARS && !ctx.quiet {
                eprintln!(
                    "hcbackup: warning: the password has {} characters: anyone who gets a copy of the repository can try passwords offline, so choose {MIN_PASSWORD_CHARS} or more (a phrase of several words); `hcbackup key passwd` changes it",
                    pw.chars().count()
                );
            }
            let repo = Repository::init(backend, pw.as_bytes(), &ctx.settings.cache_dir)?;
            ctx.register(&repo);
            let record = crate::audit::key_file_record(repo.key_file(), repo.key_file_bytes());
            ctx.note(|d| d.key_files = vec![record]);
            render::init(ctx, &repo);
            Ok(exit::OK)
        }
        Command::Snapshot(a) => snapshot::run(ctx, a),
        Command::Snapshots(a) => {
            let repo = ctx.open()?;
            let mut list = a.select.snapshots(&repo)?;
            if let Some(n) = a.latest {
                list.drain(..list.len().saturating_sub(n));
            }
            render::snapshots(ctx, &list);
            Ok(exit::OK)
        }
        Command::Ls { snapshot, path } => {
            let repo = ctx.open()?;
            let snap = repo.find_snapshot(&snapshot)?;
            render::ls(ctx, &repo, &snap, path.as_deref())
        }
        Command::Restore(a) => restore::run(ctx, a),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "hcbackup", &mut out);
            render::emit_raw(String::from_utf8_lossy(&out).trim_end());
            Ok(exit::OK)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut out)
                .map_err(|e| crate::Error::io("writing the manual page", e))?;
            render::emit_raw(String::from_utf8_lossy(&out).trim_end());
            Ok(exit::OK)
        }
        Command::Dump { snapshot, path } => restore::dump(ctx, &snapshot, &path),
        Command::Find { pattern, select } => {
            let repo = ctx.open()?;
            let snaps = select.snapshots(&repo)?;
            let found = crate::ops::find::Finder::new(&repo, &pattern)?.run(&snaps)?;
            render::found(ctx, &found);
            Ok(exit::OK)
        }
        Command::Tag(a) => tag(ctx, a),
        Command::Mount {
            mountpoint,
            from,
            select,
        } => mount(ctx, &mountpoint, from.as_deref(), &select),
        Command::Stats { select } => {
            let repo = ctx.open()?;
            let snaps = select.snapshots(&repo)?;
            render_stats::stats(ctx, &crate::ops::stats::run(&repo, &snaps)?);
            Ok(exit::OK)
        }
        Command::Diff { from, to } => {
            let repo = ctx.open()?;
            let (a, b) = (repo.find_snapshot(&from)?, repo.find_snapshot(&to)?);
            let diffs = crate::ops::diff::run(&repo, a.snapshot.tree, b.snapshot.tree)?;
            render::diff(ctx, &a, &b, &diffs);
            Ok(exit::OK)
        }
        Command::Export(a) => restore::export(ctx, a),
        Command::WalPush { path } => wal::push(ctx, &path),
        Command::WalFetch { name, dest } => wal::fetch(ctx, &name, &dest),
        Command::Mirror {
            destination,
            full_check,
        } => mirror::run(ctx, &destination, full_check),
        Command::Key(k) => keys::run(ctx, k),
        Command::Schedule(a) => schedule::run(a, ctx.repo_flag.as_deref()),
        Command::Forget(a) => retention::forget(ctx, a),
        Command::Prune(a) => retention::prune(ctx, a),
        Command::Repair(a) => repair::run(ctx, a),
        Command::Hold(h) => retention::hold(ctx, h),
        Command::Verify(a) => verify::run(ctx, a),
        Command::Audit(a) => audit::run(ctx, a),
        Command::Notify(n) => notify::run(ctx, n),
        Command::Status(a) => status::run(ctx, a),
        Command::Serve(a) => serve::run(ctx, a),
        Command::ImportLegacy(a) => import_legacy::run(ctx, a),
        Command::Report(a) => report::run(ctx, a),
        Command::Catalog(CatalogCommand::Rebuild) => {
            let repo = ctx.open()?;
            let counts = repo.rebuild_catalog()?;
            render::catalog_rebuilt(ctx, &repo, counts);
            Ok(exit::OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;

    /// `--help` of every command describes every argument (issue #17).
    #[test]
    fn every_command_and_argument_is_described() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if a.get_help().is_none() && a.get_long_help().is_none() && !builtin {
                    missing.push(format!("{path} <{}>", a.get_id()));
                }
            }
            for s in c.get_subcommands().filter(|s| s.get_name() != "help") {
                let name = format!("{path} {}", s.get_name());
                if s.get_about().is_none() {
                    missing.push(format!("{name} (no description)"));
                }
                walk(s, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &<Cli as clap::CommandFactory>::command(),
            "hcbackup",
            &mut missing,
        );
        assert!(missing.is_empty(), "undescribed: {missing:#?}");
    }
}
