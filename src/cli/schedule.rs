//! `hcbackup schedule --cron | --systemd`: ready-to-install entries for the seed's
//! schedule: a daily 03:00 snapshot (mirrored to every destination, then each copy's
//! retention) and a monthly check on the first Sunday at 02:00 (a twelfth of every
//! copy's data read back, and a restore test of the database).
//!
//! cron cannot say "first Sunday" by itself: the entry runs on days 1–7 and a guard
//! lets only the Sunday through. systemd says it directly: `Sun *-*-01..07`.

use std::path::PathBuf;

use clap::Args;

use crate::error::{exit, Result};

#[derive(Args, Debug)]
pub struct ScheduleArgs {
    /// Print an /etc/cron.d file.
    #[arg(long, conflicts_with = "systemd", required_unless_present = "systemd")]
    pub cron: bool,
    /// Print systemd service and timer units.
    #[arg(long)]
    pub systemd: bool,
    /// The file holding the settings, KEY=value lines (BACKUP_DIR, UPLOADS_DIR,
    /// POSTGRES_*, S3_*, HCBACKUP_PASSWORD_FILE …): cron and systemd start with an
    /// empty environment.
    #[arg(long, value_name = "FILE", default_value = "/etc/hcbackup/env")]
    pub env_file: PathBuf,
    /// The log file every cron run appends its lines to, timestamped (systemd
    /// uses the journal).
    #[arg(long, value_name = "FILE", default_value = "/var/log/hcbackup.log")]
    pub log: PathBuf,
}

/// The daily job: snapshot (it mirrors), then retention on every copy.
const DAILY: [&str; 2] = ["snapshot", "forget --destination all --prune"];
/// The monthly check.
const MONTHLY: &str = "verify --destination all --read-data-subset auto --restore-test";

pub fn run(a: ScheduleArgs, repo: Option<&str>) -> Result<i32> {
    let repo = repo.filter(|r| !r.trim().is_empty());
    for w in check_env_file(&a.env_file, repo.is_some()) {
        eprintln!("hcbackup: warning: {w}");
    }
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin/hcbackup"));
    // A --repo given here goes into every entry (cron: `%` escaped).
    let bin = match repo {
        Some(r) => format!("{} --repo {}", quote(&exe.display().to_string()), quote(r)),
        None => quote(&exe.display().to_string()),
    };
    let (env, log) = (a.env_file.display(), a.log.display());
    // Every run also appends its lines, timestamped, to the log (`--log-file`).
    let cron_bin = format!("{bin} --log-file {}", quote(&log.to_string())).replace('%', "\\%");
    if a.cron {
        // `%` is special in crontab lines: escaped. A document of several lines.
        crate::cli::render::emit_raw(&format!(
            "# /etc/cron.d/hcbackup — written by `hcbackup schedule --cron`\n\
             SHELL=/bin/bash\n\
             # cron mails what a run writes on stderr (failures and warnings) to MAILTO (default: root);\n\
             # every line, with its time, also goes to {log}; the success summaries go there only.\n\
             # Daily at 03:00: snapshot (mirrored to every destination), then each copy's retention.\n\
             0 3 * * * root {{ set -a; . {env}; set +a; {cron_bin} {} && {cron_bin} {}; }} > /dev/null\n\
             # First Sunday of the month at 02:00: read back a twelfth of every copy, restore-test the database.\n\
             # cron has no \"first Sunday\": days 1-7, and only the Sunday passes the guard.\n\
             0 2 1-7 * * root [ \"$(date +\\%u)\" = 7 ] && {{ set -a; . {env}; set +a; {cron_bin} {MONTHLY}; }} > /dev/null",
            DAILY[0], DAILY[1]
        ));
    } else {
        let unit = |name: &str, what: &str, execs: &[&str], calendar: &str| {
            let exec: String = execs
                .iter()
                // systemd expands `%` specifiers in ExecStart: a literal one is `%%`.
                .map(|e| format!("ExecStart={} {e}\n", bin.replace('%', "%%")))
                .collect();
            format!(
                "# /etc/systemd/system/{name}.service\n\
                 [Unit]\nDescription=hcbackup: {what}\nWants=network-online.target\nAfter=network-online.target postgresql.service\n\n\
                 [Service]\nType=oneshot\nEnvironmentFile={env}\n{exec}Nice=10\nIOSchedulingClass=idle\n\n\
                 # /etc/systemd/system/{name}.timer\n\
                 [Unit]\nDescription=hcbackup: {what}\n\n\
                 [Timer]\nOnCalendar={calendar}\nPersistent=true\n\n\
                 [Install]\nWantedBy=timers.target\n"
            )
        };
        crate::cli::render::emit_raw(&format!(
            "{}\n{}\n# Then: systemctl daemon-reload && systemctl enable --now hcbackup-snapshot.timer hcbackup-verify.timer",
            unit(
                "hcbackup-snapshot",
                "daily snapshot, mirror and retention",
                &DAILY,
                "*-*-* 03:00:00"
            ),
            unit(
                "hcbackup-verify",
                "monthly read-back and restore test",
                &[MONTHLY],
                "Sun *-*-01..07 02:00:00"
            )
        ));
    }
    Ok(exit::OK)
}

/// A word the shell reads back as it is.
fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What the scheduled runs will miss in the settings file: cron and systemd
/// start with an empty environment and no terminal to ask a password on.
fn check_env_file(path: &std::path::Path, repo_given: bool) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let Ok(text) = std::fs::read_to_string(path) else {
        return vec![format!(
            "{shown} does not exist yet: create it (mode 0600, root's) with BACKUP_DIR or HCBACKUP_REPO, UPLOADS_DIR, POSTGRES_*, HCBACKUP_PASSWORD_FILE, or the scheduled runs fail"
        )];
    };
    let mut out = Vec::new();
    if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
        out.push(format!(
            "{shown} can be read by others and holds the settings (passwords): chmod 600 {shown}"
        ));
    }
    let set = |k: &str| {
        text.lines()
            .map(|l| l.trim().trim_start_matches("export "))
            .any(|l| l.starts_with(&format!("{k}=")) && l.len() > k.len() + 1)
    };
    if ![
        "HCBACKUP_PASSWORD_FILE",
        "HCBACKUP_PASSWORD_COMMAND",
        "HCBACKUP_PASSWORD",
    ]
    .iter()
    .any(|k| set(k))
    {
        out.push(format!(
            "{shown} names no password (HCBACKUP_PASSWORD_FILE): a scheduled run has no terminal to ask on"
        ));
    }
    if !repo_given && !["BACKUP_DIR", "HCBACKUP_REPO"].iter().any(|k| set(k)) {
        out.push(format!(
            "{shown} names no repository (BACKUP_DIR or HCBACKUP_REPO), and no --repo was given here"
        ));
    }
    out
}
