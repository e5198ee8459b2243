//! `hcbackup snapshot`.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{progress::CliProgress, render, Ctx};
use crate::error::{exit, Error, Result};
use crate::model::snapshot::CLOCK_SKEW;
use crate::ops::snapshot::{self, SnapshotOptions};
use crate::source::exclude::{self, Exclusions, Rules};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// Folders or files to back up (default: UPLOADS_DIR). The POSTGRES_* database
    /// and `[[postgres]]` databases are dumped into the same snapshot.
    pub paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// The snapshot's time instead of now (RFC 3339); the manifest also records
    /// when it was made, and listings mark it as backdated.
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<String>,
    /// Accept a --time later than now (a snapshot dated in the future is never
    /// `latest` until its date).
    #[arg(long, requires = "time")]
    pub allow_future: bool,
    /// Skip the databases: files only.
    #[arg(long)]
    pub no_postgres: bool,
    /// A physical base backup of the PostgreSQL server (POSTGRES_*) instead of
    /// the logical dumps: with the WAL that `wal-push` archives, it restores to
    /// any moment since (the user needs the REPLICATION attribute).
    #[arg(long, conflicts_with = "no_postgres")]
    pub physical: bool,
    /// Do not mirror to the destinations (S3_BACKUP_BUCKET) afterwards.
    #[arg(long)]
    pub no_mirror: bool,
    /// Leave out entries matching this glob (repeatable): `*.tmp` matches names
    /// at any depth, `/srv/uploads/tmp` an absolute path, `thumbs/*.jpg` a path
    /// ending so. Also `exclude = [...]` in hcbackup.toml.
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Read --exclude patterns from FILE, one per line (# starts a comment).
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Leave out the content of folders holding a CACHEDIR.TAG (the tag is kept).
    /// Not for folders where others can create files: an upload named
    /// CACHEDIR.TAG would hide its folder from the backup.
    #[arg(long)]
    pub exclude_caches: bool,
    /// Leave out files larger than SIZE (bytes, or with K, M, G, T: 500M, 2G).
    #[arg(long, value_name = "SIZE")]
    pub exclude_larger_than: Option<String>,
    /// Do not cross into other file systems (mounted disks, /proc) below a source.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Back up the paths listed in FILE, one per line (# starts a comment), as
    /// well as any PATHs.
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,
    /// Say what a snapshot would save, add and leave out; write nothing (the
    /// databases are named, not dumped).
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// The host name the snapshot records (default: this machine's), e.g. to
    /// keep one series across a server move.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

pub fn run(ctx: &Ctx, mut a: SnapshotArgs) -> Result<i32> {
    if let Some(f) = &a.files_from {
        a.paths.extend(paths_in(f)?);
    }
    let exclusions = exclusions(ctx, &a)?;
    if let Some(h) = a
        .host
        .as_deref()
        .filter(|h| h.trim().is_empty() || h.chars().any(char::is_control))
    {
        return Err(Error::Usage(format!(
            "--host {h:?}: give a host name (no spaces at the ends, no control characters)"
        )));
    }
    let physical = if a.physical {
        Some(ctx.settings.databases.first().cloned().ok_or_else(|| {
            Error::Usage(
                "--physical needs the PostgreSQL server: set POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER (with REPLICATION) and POSTGRES_DB".into(),
            )
        })?)
    } else {
        None
    };
    let databases = if a.no_postgres || a.physical {
        Vec::new()
    } else {
        ctx.settings.databases.clone()
    };
    let paths = if a.paths.is_empty() {
        match (
            &ctx.settings.uploads_dir,
            databases.is_empty() && physical.is_none(),
        ) {
            (Some(u), _) => vec![u.clone()],
            (None, false) => Vec::new(),
            (None, true) => {
                return Err(Error::Usage(
                    "nothing to back up: give a PATH, set UPLOADS_DIR, or set POSTGRES_DB".into(),
                ))
            }
        }
    } else {
        a.paths
    };
    let time = match &a.time {
        Some(t) => Some(crate::util::parse_rfc3339(t).ok_or_else(|| {
            Error::Usage(format!(
                "--time {t}: not an RFC 3339 time like 2026-01-15T03:00:00Z"
            ))
        })?),
        None => None,
    };
    if a.tags
        .iter()
        .any(|t| t == crate::model::snapshot::SAFETY_DUMP_TAG)
    {
        return Err(Error::Usage(format!(
            "the tag {} is kept for the dumps restore --db saves before replacing a database: choose another",
            crate::model::snapshot::SAFETY_DUMP_TAG
        )));
    }
    let now = crate::util::now();
    if let Some(t) = time.filter(|t| *t > now + CLOCK_SKEW && !a.allow_future) {
        return Err(Error::Usage(format!(
            "--time {} is later than now ({}): a snapshot dated in the future would not be the latest until then; check the clock and the value, or add --allow-future",
            crate::util::rfc3339(t),
            crate::util::rfc3339(now)
        )));
    }
    ctx.step("opening the repository");
    let repo = ctx.open()?;
    let opts = SnapshotOptions {
        paths: paths.clone(),
        tags: a.tags,
        time,
        databases,
        exclusions,
        host: a.host,
        physical,
    };
    if a.dry_run {
        let progress = CliProgress::start(ctx, &paths, "looking");
        let found = snapshot::dry_run(&repo, &opts, &progress);
        progress.finish();
        let found = found?;
        render::snapshot_dry_run(ctx, &found);
        return Ok(if found.errors.is_empty() {
            exit::OK
        } else {
            exit::INCOMPLETE
        });
    }
    ctx.step("backing up");
    let progress = CliProgress::start(ctx, &paths, "backing up");
    let result = snapshot::run(&repo, &opts, &progress);
    progress.finish();
    let entry = result?;
    note_snapshot(ctx, &entry);
    render::snapshot_done(ctx, &entry);
    warn_if_shrunk(ctx, &repo, &entry)?;
    let mut code = if entry.snapshot.incomplete() {
        exit::INCOMPLETE
    } else {
        exit::OK
    };
    // A local success never hides an offsite failure.
    if !a.no_mirror && !ctx.settings.destinations.is_empty() {
        let mirrored = super::mirror::mirror_to(ctx, &repo, "all", !ctx.json, false)
            .unwrap_or_else(|e| {
                eprintln!("hcbackup: mirror FAILED: {e}");
                ctx.note(|d| d.problems.push(format!("mirror: {e}")));
                exit::ERROR
            });
        if mirrored != exit::OK && code == exit::OK {
            code = exit::ERROR;
        }
    }
    Ok(code)
}

/// The exclusion rules of the flags and of hcbackup.toml, compiled.
fn exclusions(ctx: &Ctx, a: &SnapshotArgs) -> Result<Exclusions> {
    let mut patterns = ctx.settings.exclude.clone();
    patterns.extend(a.excludes.iter().cloned());
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            Error::Usage(format!(
                "--exclude-file {}: {e}; give a readable text file of patterns",
                f.display()
            ))
        })?;
        patterns.extend(exclude::patterns_in(&text));
    }
    let larger_than = match &a.exclude_larger_than {
        None => None,
        Some(s) => Some(exclude::parse_size(s).ok_or_else(|| {
            Error::Usage(format!(
                "--exclude-larger-than {s:?}: give a size such as 500M or 2G"
            ))
        })?),
    };
    Exclusions::new(&Rules {
        patterns,
        caches: a.exclude_caches,
        larger_than,
        one_file_system: a.one_file_system,
    })
}

/// The paths a `--files-from` file lists: one per line, as bytes (a name need
/// not be UTF-8); empty lines and lines starting with `#` are skipped.
fn paths_in(file: &Path) -> Result<Vec<PathBuf>> {
    let bytes = std::fs::read(file).map_err(|e| {
        Error::Usage(format!(
            "--files-from {}: {e}; give a readable file with one path per line",
            file.display()
        ))
    })?;
    let paths: Vec<PathBuf> = bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l)))
        .collect();
    if paths.is_empty() {
        return Err(Error::Usage(format!(
            "--files-from {}: lists no path; give one path per line",
            file.display()
        )));
    }
    Ok(paths)
}

/// What the audit event and a failure alert say of this snapshot: its id, the
/// bytes it added, and each source that failed (the step an alert names).
fn note_snapshot(ctx: &Ctx, entry: &crate::model::snapshot::SnapshotEntry) {
    let s = &entry.snapshot;
    ctx.note(|d| {
        d.snapshot = Some(entry.id.to_hex());
        d.bytes = s.summary.bytes_added;
        d.destinations = vec![crate::retention::LOCAL.to_string()];
        d.detail = Some(format!(
            "{} files, {} databases",
            s.summary.files,
            s.databases.len()
        ));
        for db in &s.databases {
            if let Some(e) = &db.error {
                d.step = Some(format!(
                    "database dump of {} on {}:{}",
                    db.db, db.host, db.port
                ));
                d.problems.push(format!("database {}: {e}", db.db));
            }
        }
        if !s.errors.is_empty() {
            if d.step.is_none() {
                d.step = Some("reading files".into());
            }
            d.problems.push(format!(
                "{} entries could not be read, first: {}",
                s.errors.len(),
                s.errors[0]
            ));
        }
    });
}

/// A source of this snapshot that lost much of what the one before held: said
/// on stderr, recorded for the alert (a warning, exit code unchanged).
fn warn_if_shrunk(
    ctx: &Ctx,
    repo: &crate::repo::Repository,
    entry: &crate::model::snapshot::SnapshotEntry,
) -> Result<()> {
    let pct = ctx.settings.shrink_percent;
    if pct == 0 {
        return Ok(());
    }
    let warnings =
        crate::ops::shrink::warnings(&repo.snapshots_cached()?, Some(&entry.snapshot), pct);
    for w in &warnings {
        eprintln!("hcbackup: WARNING: {w}");
    }
    ctx.note(|d| d.warnings.extend(warnings));
    Ok(())
}
