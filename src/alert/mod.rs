//! Alerts: a message by email (SMTP, lettre) and by webhook (Slack-compatible JSON)
//! when a scheduled operation fails; on success too when asked. Configured by the
//! seed's variables (`docs/operations.md`, "Alerts"). A channel that fails is
//! reported by the caller and never changes the operation's exit code.

mod email;
mod webhook;

use serde::Serialize;

use crate::error::{exit, Error, Result};

pub use email::EmailConfig;

/// Where alerts go. Empty when nothing is configured.
#[derive(Clone, Debug, Default)]
pub struct AlertConfig {
    pub email: Option<EmailConfig>,
    /// HCBACKUP_WEBHOOK_URL: a Slack-compatible incoming webhook (http or https).
    pub webhook: Option<String>,
    /// HCBACKUP_NOTIFY_SUCCESS=1: a short message after each successful run too.
    pub on_success: bool,
}

impl AlertConfig {
    /// From `env` (the environment after `.env` was read): BACKUP_NOTIFICATION_EMAIL,
    /// SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD, SMTP_FROM, HCBACKUP_SMTP_TLS,
    /// HCBACKUP_WEBHOOK_URL, HCBACKUP_NOTIFY_SUCCESS.
    pub fn read(env: &dyn crate::config::lookup::Lookup) -> Result<AlertConfig> {
        let email = match env.var("BACKUP_NOTIFICATION_EMAIL") {
            Some(to) => Some(EmailConfig::read(env, &to)?),
            None => None,
        };
        let webhook = env.var("HCBACKUP_WEBHOOK_URL");
        if let Some(u) = &webhook {
            let host = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"))
                .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
            if !host.is_some_and(|h| !h.is_empty() && !h.contains(char::is_whitespace))
                || u.contains(char::is_whitespace)
            {
                // Not shown: a hook's address is its secret.
                return Err(Error::Config(
                    "HCBACKUP_WEBHOOK_URL: give an http:// or https:// address with a host and no spaces (the value is not shown: it holds the hook's secret)".into(),
                ));
            }
        }
        Ok(AlertConfig {
            email,
            webhook,
            on_success: crate::config::lookup::switch(env, "HCBACKUP_NOTIFY_SUCCESS")?
                .unwrap_or(false),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.webhook.is_none()
    }
}

/// One message: what ran, where, how it ended, and at which step it failed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Alert {
    pub operation: String,
    /// `ok`, `incomplete`, `failed`, `warning` (succeeded, but a source shrank), or `test` for `notify test`.
    pub result: String,
    pub exit_code: i32,
    pub step: Option<String>,
    pub error: Option<String>,
    pub host: String,
    pub repository: String,
    pub snapshot: Option<String>,
    pub time: String,
}

impl Alert {
    pub fn subject(&self) -> String {
        let what = match self.result.as_str() {
            "ok" => "ok".to_string(),
            "test" => "test message".to_string(),
            r => r.to_uppercase(),
        };
        match &self.step {
            Some(step) if self.result != "ok" => {
                format!(
                    "[hcbackup] {what}: {} on {} at step: {step}",
                    self.operation, self.host
                )
            }
            _ => format!("[hcbackup] {what}: {} on {}", self.operation, self.host),
        }
    }

    pub fn body(&self) -> String {
        let mut b = format!(
            "hcbackup {} {} on host {} at {}.\n\n",
            self.operation,
            match self.result.as_str() {
                "ok" => "succeeded",
                "test" => "sent a test message",
                "incomplete" => "was INCOMPLETE",
                "warning" => "succeeded with a WARNING",
                _ => "FAILED",
            },
            self.host,
            self.time
        );
        if let Some(s) = &self.step {
            b.push_str(&format!("Failing step: {s}\n"));
        }
        if let Some(e) = &self.error {
            b.push_str(&format!("Error: {e}\n"));
        }
        b.push_str(&format!("Exit code: {}\n", self.exit_code));
        b.push_str(&format!("Repository: {}\n", self.repository));
        if let Some(s) = &self.snapshot {
            b.push_str(&format!("Snapshot: {s}\n"));
        }
        if self.result != "ok" && self.result != "test" {
            let advice = match self.result.as_str() {
                "warning" => "a source shrank sharply: check that the uploads disk is mounted and the folder and the database are whole; the earlier snapshots hold the data until the retention removes them",
                _ => advice(&self.operation, self.exit_code),
            };
            b.push_str(&format!("\nWhat to do: {advice}\n"));
            b.push_str("See: hcbackup status; hcbackup audit --since today; the cron log.\n");
        }
        b
    }
}

fn advice(operation: &str, code: i32) -> &'static str {
    match (operation, code) {
        ("snapshot", exit::INCOMPLETE) => "the snapshot was saved without the failing source: fix it (database reachable, files readable) and run `hcbackup snapshot` again",
        (_, exit::LOCKED) => "another run holds the repository's lock: check that it is alive (`ps`), or set HCBACKUP_LOCK_WAIT",
        (_, exit::NO_REPOSITORY) => "the repository is not where the settings say: is the backup disk mounted? (BACKUP_DIR, --repo)",
        (_, exit::WRONG_PASSWORD) => "the password file no longer opens the repository: check HCBACKUP_PASSWORD_FILE",
        ("snapshot" | "mirror", _) => "run the same command by hand to see the error, fix it, and run it again; earlier snapshots are intact",
        ("verify" | "restore test", _) => "a copy is damaged or a restore does not work: run `hcbackup verify --read-data --destination all` and `hcbackup repair` (docs/retention.md)",
        _ => "run the same command by hand to see the error, fix it, and run it again",
    }
}

/// How one channel did.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    /// `email` or `webhook`.
    pub channel: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// Send `alert` on every configured channel; each is tried whatever the others did.
pub fn send(cfg: &AlertConfig, alert: &Alert) -> Vec<Delivery> {
    let mut out = Vec::new();
    let mut push = |channel: &str, r: std::result::Result<(), String>| {
        out.push(Delivery {
            channel: channel.into(),
            ok: r.is_ok(),
            error: r.err(),
        })
    };
    if let Some(e) = &cfg.email {
        push("email", email::send(e, alert));
    }
    if let Some(url) = &cfg.webhook {
        push("webhook", webhook::send(url, alert));
    }
    out
}
