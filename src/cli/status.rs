//! `hcbackup status [--json] [--now TIME] [--max-age HOURS] [--max-restore-test-age DAYS]
//! [--max-wal-age MINUTES] [--alert]`:
//! exit 0 when fresh, 2 when stale (a dead man's switch for cron or a monitor).

use super::{render_ops, Ctx};
use crate::error::{exit, Result};
use crate::ops::status::{self, Status, StatusOptions};

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Judge as if it were this time (RFC 3339 or a date); for tests and what-ifs.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Stale when a source's last good snapshot is older than this.
    #[arg(
        long,
        value_name = "HOURS",
        env = "HCBACKUP_STATUS_MAX_AGE_HOURS",
        default_value_t = 26.0,
        value_parser = limit
    )]
    pub max_age: f64,
    /// Stale when no restore test passed within this many days (databases only).
    #[arg(
        long,
        value_name = "DAYS",
        env = "HCBACKUP_STATUS_MAX_RESTORE_TEST_AGE_DAYS",
        default_value_t = 35.0,
        value_parser = limit
    )]
    pub max_restore_test_age: f64,
    /// Stale when the newest archived WAL segment is older than this, in a
    /// repository that holds WAL (a day by default: the nightly base backup
    /// archives at least one; set it near archive_timeout on a busy server).
    #[arg(
        long,
        value_name = "MINUTES",
        env = "HCBACKUP_STATUS_MAX_WAL_AGE_MINUTES",
        default_value_t = 1440.0,
        value_parser = limit
    )]
    pub max_wal_age: f64,
}

/// An age limit: a number of zero or more (NaN or infinity would turn the
/// check off without a word, a negative one make it stale for ever).
fn limit(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?}: give a number of zero or more")),
    }
}

/// `status`: the shared arguments, and whether to alert when stale.
#[derive(clap::Args, Debug)]
pub struct StatusCommand {
    #[command(flatten)]
    pub args: StatusArgs,
    /// When stale, also send an alert on every configured channel (email,
    /// webhook), for a cron line every few minutes: archiving that stopped,
    /// a nightly backup that did not run.
    #[arg(long)]
    pub alert: bool,
}

/// The status document (also what `serve` answers).
pub fn compute(ctx: &Ctx, now: time::OffsetDateTime, a: &StatusArgs) -> Result<Status> {
    compute_with(ctx, &ctx.open()?, now, a)
}

/// The status of an open repository (`serve` keeps one open).
pub fn compute_with(
    ctx: &Ctx,
    repo: &crate::repo::Repository,
    now: time::OffsetDateTime,
    a: &StatusArgs,
) -> Result<Status> {
    let mut destinations = Vec::new();
    for (name, loc) in &ctx.settings.destinations {
        // Building a backend touches no network: only its address is needed.
        destinations.push((name.clone(), super::backend_at(loc.clone())?.location()));
    }
    // Only as far back as the last verify and the last mirror to each copy.
    let events = repo
        .audit_log()
        .newest_until(|e| status::events_suffice(e, &destinations))?;
    status::run(
        repo,
        &events,
        &StatusOptions {
            now,
            max_age_hours: a.max_age,
            max_test_age_days: a.max_restore_test_age,
            max_wal_age_minutes: a.max_wal_age,
            destinations,
            rto_secs: ctx.settings.restore_test.rto_minutes * 60.0,
            configured: configured(ctx),
            shrink_percent: ctx.settings.shrink_percent,
        },
    )
}

pub fn run(ctx: &Ctx, c: StatusCommand) -> Result<i32> {
    let a = c.args;
    let now = super::now_flag(&a.now)?;
    let s = compute(ctx, now, &a)?;
    render_ops::status(ctx, &s);
    if c.alert && !s.fresh {
        super::notify::stale(ctx, &s.problems);
    }
    Ok(if s.fresh { exit::OK } else { exit::USAGE })
}

/// The sources the settings back up, named as snapshots record them.
fn configured(ctx: &Ctx) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(u) = &ctx.settings.uploads_dir {
        let abs = std::path::absolute(u).unwrap_or_else(|_| u.clone());
        out.push(("files".to_string(), abs.display().to_string()));
    }
    for d in &ctx.settings.databases {
        out.push((
            "database".to_string(),
            format!("{}@{}:{}", d.db, d.host, d.port),
        ));
    }
    out
}
