//! The audit trail of every command: which commands record an event, the `finish`
//! step that records it (and raises the alert) after the command ran whatever its
//! result, and `hcbackup audit [--since TIME] | audit verify`.

use clap::Subcommand;

use super::{render_ops, Command, Ctx, KeyCommand};
use crate::audit::{Draft, Outcome};
use crate::error::{exit, Result};

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Only events from this time on (RFC 3339, or a date like 2026-11-01).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the chain of events (in the catalog and in the repository) and name
    /// the first broken link.
    Verify,
}

/// The operation a command records, or none for those that only read.
pub fn operation_of(c: &Command) -> Option<&'static str> {
    Some(match c {
        Command::Init => "init",
        // A dry run writes nothing: it is no snapshot run of the log.
        Command::Snapshot(a) if a.dry_run => return None,
        Command::Snapshot(_) => "snapshot",
        Command::Restore(_) => "restore",
        Command::Export(_) => "export",
        Command::Dump { .. } => "dump",
        Command::Mirror { .. } => "mirror",
        Command::Verify(_) => "verify",
        Command::Forget(_) => "forget",
        Command::Prune(_) => "prune",
        Command::Tag(_) => "tag",
        Command::Repair(_) => "repair",
        Command::Hold(super::retention::HoldCommand::Add { .. }) => "hold add",
        Command::Hold(super::retention::HoldCommand::Remove { .. }) => "hold remove",
        Command::Key(KeyCommand::Add { .. }) => "key add",
        Command::Key(KeyCommand::Remove { .. }) => "key remove",
        Command::Key(KeyCommand::Passwd { .. }) => "key passwd",
        Command::Key(KeyCommand::Rotate) => "key rotate",
        Command::Catalog(_) => "catalog rebuild",
        Command::ImportLegacy(_) => "import-legacy",
        _ => return None,
    })
}

/// After a recorded command: append its event to the log of the repository it
/// opened, then send the alert it calls for. A failure of either is reported and
/// never changes the exit code.
pub fn finish(ctx: &Ctx, result: &Result<i32>) {
    let mut outcome = Outcome::of(result);
    let draft = ctx.draft();
    if outcome.failed() && outcome.error.is_none() && !draft.problems.is_empty() {
        outcome.error = Some(draft.problems.join("; "));
    }
    ctx.record(&draft, &outcome);
    super::notify::after(ctx, &draft, &outcome);
}

/// Record one operation now (e.g. the restore test inside `verify`).
pub fn record(ctx: &Ctx, draft: &Draft, outcome: &Outcome) {
    let log = ctx.audit_log();
    let Some(log) = log.as_ref() else {
        // The repository never opened (missing, wrong password): nowhere to write.
        return;
    };
    if let Err(e) = log.append(draft, outcome) {
        eprintln!(
            "hcbackup: warning: the audit event for {} was not recorded: {e}",
            draft.operation
        );
    }
}

pub fn run(ctx: &Ctx, a: AuditArgs) -> Result<i32> {
    let repo = ctx.open()?;
    let log = repo.audit_log();
    match a.command {
        Some(AuditCommand::Verify) => {
            let v = log.verify()?;
            render_ops::audit_verify(ctx, &v);
            Ok(if v.ok { exit::OK } else { exit::ERROR })
        }
        None => {
            let since = match &a.since {
                Some(s) => Some(parse_since(s)?),
                None => None,
            };
            render_ops::audit_events(ctx, &log.events(since.as_deref())?);
            Ok(exit::OK)
        }
    }
}

/// `--since`: an RFC 3339 time or a date (midnight UTC), as the stored times compare
/// (whole seconds, UTC).
fn parse_since(s: &str) -> Result<String> {
    let t = super::time_flag("--since", s)?;
    let t = t.to_offset(time::UtcOffset::UTC);
    Ok(crate::util::rfc3339(t.replace_nanosecond(0).unwrap_or(t)))
}
