//! Alerts after a command (`after`), when settings fail to load
//! (`settings_failed`), and `hcbackup notify test`.

use clap::Subcommand;

use super::Ctx;
use crate::alert::{self, Alert, AlertConfig, Delivery};
use crate::audit::{Draft, Outcome};
use crate::error::{exit, Error, Result};

#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Send a test message on every configured channel (email, webhook).
    Test,
}

/// The operations whose failure is alerted: those that run unattended (cron,
/// systemd). A person running `restore` or `key` sees the error on the terminal.
pub fn alerted(operation: &str) -> bool {
    matches!(
        operation,
        "snapshot" | "mirror" | "verify" | "forget" | "prune" | "repair" | "import-legacy"
    )
}

fn alert_of(repository: &str, draft: &Draft, o: &Outcome) -> Alert {
    Alert {
        operation: draft.operation.clone(),
        result: o.result().to_string(),
        exit_code: o.exit_code,
        step: draft.step.clone(),
        error: o.error.clone(),
        host: crate::util::hostname(),
        repository: repository.to_string(),
        snapshot: draft.snapshot.clone(),
        time: crate::util::rfc3339(crate::util::now_seconds()),
    }
}

/// Report each channel that failed, on stderr. Returns whether all succeeded.
fn report(deliveries: &[Delivery]) -> bool {
    for d in deliveries.iter().filter(|d| !d.ok) {
        eprintln!(
            "hcbackup: alert by {} FAILED: {}",
            d.channel,
            d.error.as_deref().unwrap_or("unknown error")
        );
    }
    deliveries.iter().all(|d| d.ok)
}

/// After an alerted command: a failure goes out on every channel; a success only
/// with HCBACKUP_NOTIFY_SUCCESS. Never changes the command's exit code.
pub fn after(ctx: &Ctx, draft: &Draft, outcome: &Outcome) {
    if !alerted(&draft.operation) {
        return;
    }
    let cfg = match &ctx.settings.alerts {
        Ok(c) => c,
        // Said on every run, a good one too: a wrong setting must not wait
        // for the first failure to be found (and then hide it).
        Err(e) if outcome.failed() => {
            eprintln!("hcbackup: no alert sent: the alert settings are wrong: {e}");
            return;
        }
        Err(e) => {
            eprintln!(
                "hcbackup: warning: no alert can be sent until the alert settings are fixed: {e}"
            );
            return;
        }
    };
    let warned = !outcome.failed() && !draft.warnings.is_empty();
    if cfg.is_empty() || !(outcome.failed() || warned || cfg.on_success) {
        return;
    }
    let repo = ctx.settings.repo.clone().unwrap_or_default();
    let mut a = alert_of(&repo, draft, outcome);
    if warned {
        a.result = "warning".into();
        a.error = Some(draft.warnings.join("; "));
    }
    report(&alert::send(cfg, &a));
}

/// `status --alert` found the backups stale: one message on every channel
/// naming the problems (exit 2 stays the command's).
pub fn stale(ctx: &Ctx, problems: &[String]) {
    let cfg = match &ctx.settings.alerts {
        Ok(c) if !c.is_empty() => c,
        Ok(_) => {
            eprintln!("hcbackup: no alert sent: no alert channel is configured (BACKUP_NOTIFICATION_EMAIL, HCBACKUP_WEBHOOK_URL)");
            return;
        }
        Err(e) => {
            eprintln!("hcbackup: no alert sent: the alert settings are wrong: {e}");
            return;
        }
    };
    let mut draft = Draft::new("status");
    draft.step = Some("freshness".into());
    let outcome = Outcome {
        exit_code: exit::USAGE,
        error: Some(format!("stale: {}", problems.join("; "))),
    };
    let repo = ctx.settings.repo.clone().unwrap_or_default();
    report(&alert::send(cfg, &alert_of(&repo, &draft, &outcome)));
}

/// The settings did not load (a malformed hcbackup.toml, say): alert from the
/// environment alone, so a scheduled run that cannot even start is not silent.
pub fn settings_failed(operation: Option<&str>, e: &Error) {
    let Some(op) = operation.filter(|op| alerted(op)) else {
        return;
    };
    let Ok(cfg) = AlertConfig::read(&crate::config::lookup::Process) else {
        return;
    };
    if cfg.is_empty() {
        return;
    }
    let mut draft = Draft::new(op);
    draft.step = Some("reading the settings".into());
    let outcome = Outcome {
        exit_code: e.exit_code(),
        error: Some(e.to_string()),
    };
    report(&alert::send(&cfg, &alert_of("(unknown)", &draft, &outcome)));
}

pub fn run(ctx: &Ctx, cmd: NotifyCommand) -> Result<i32> {
    match cmd {
        NotifyCommand::Test => {
            let cfg = ctx
                .settings
                .alerts
                .as_ref()
                .map_err(|e| Error::Config(e.clone()))?;
            if cfg.is_empty() {
                return Err(Error::Usage(
                    "no alert channel: set BACKUP_NOTIFICATION_EMAIL and SMTP_HOST (email) or HCBACKUP_WEBHOOK_URL (webhook)".into(),
                ));
            }
            let mut draft = Draft::new("notify test");
            draft.step = None;
            let mut alert = alert_of(
                ctx.settings.repo.as_deref().unwrap_or_default(),
                &draft,
                &Outcome::ok(),
            );
            alert.result = "test".into();
            let deliveries = alert::send(cfg, &alert);
            super::render_ops::deliveries(ctx, &deliveries);
            Ok(if deliveries.iter().all(|d| d.ok) {
                exit::OK
            } else {
                exit::ERROR
            })
        }
    }
}
