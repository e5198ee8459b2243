//! Every environment variable hcbackup reads, in one table: its name, what it
//! sets, and whether it is for users or only for the test suite. A test
//! checks that every variable the sources read is here, and that the README
//! names every one meant for users.

/// Who a variable is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    User,
    /// Tests and fault injection only; never set in production.
    Test,
    /// The system's own (HOME, PATH, USER): read, never documented as ours.
    System,
}

/// One variable.
#[derive(Clone, Copy, Debug)]
pub struct Var {
    pub name: &'static str,
    pub sets: &'static str,
    pub audience: Audience,
}

const fn user(name: &'static str, sets: &'static str) -> Var {
    Var {
        name,
        sets,
        audience: Audience::User,
    }
}

const fn test(name: &'static str, sets: &'static str) -> Var {
    Var {
        name,
        sets,
        audience: Audience::Test,
    }
}

const fn system(name: &'static str, sets: &'static str) -> Var {
    Var {
        name,
        sets,
        audience: Audience::System,
    }
}

/// The table.
pub const VARIABLES: &[Var] = &[
    // Where and what.
    user(
        "BACKUP_DIR",
        "the folder whose repository/ is the repository",
    ),
    user(
        "HCBACKUP_REPO",
        "the repository (a folder, s3://, drive://)",
    ),
    user("UPLOADS_DIR", "the uploads folder a snapshot saves"),
    user("HCBACKUP_CACHE_DIR", "the catalog's folder"),
    user("RETENTION_DAYS", "the local copy's retention, in days"),
    user("HCBACKUP_SHRINK_PERCENT", "the shrink warning's threshold"),
    user(
        "HCBACKUP_LOCK_WAIT",
        "seconds to wait for another run's lock",
    ),
    user(
        "HCBACKUP_LOG_FILE",
        "a log file of every line a run prints (the environment only: read before .env)",
    ),
    user(
        "HCBACKUP_LOG",
        "the log filter, tracing's syntax (the environment only: read before .env)",
    ),
    user("HCBACKUP_TMPDIR", "where restores put temporary files"),
    // The password.
    user("HCBACKUP_PASSWORD", "the repository password"),
    user("HCBACKUP_PASSWORD_FILE", "a file holding the password"),
    user(
        "HCBACKUP_PASSWORD_COMMAND",
        "a command printing the password",
    ),
    user("HCBACKUP_KEY_ID", "the key file to try first"),
    user(
        "HCBACKUP_NEW_PASSWORD_FILE",
        "the new password for `key add`, `key passwd`",
    ),
    user(
        "HCBACKUP_CHILD_ENV",
        "more variables a password command may see",
    ),
    // PostgreSQL.
    user("POSTGRES_HOST", "the database server"),
    user("POSTGRES_PORT", "its port"),
    user("POSTGRES_USER", "the user that dumps and restores"),
    user("POSTGRES_PASSWORD", "its password"),
    user("POSTGRES_DB", "the database backed up"),
    user("PGUSER", "the user when POSTGRES_USER is unset"),
    user("HCBACKUP_PG_BIN", "the folder of pg_dump, pg_restore, psql"),
    user(
        "HCBACKUP_PG_LOCK_TIMEOUT",
        "seconds a dump waits for a locked table",
    ),
    // Cloud copies.
    user("S3_BACKUP_BUCKET", "the S3 mirror's bucket"),
    user("S3_BACKUP_PREFIX", "its prefix (backups/)"),
    user("S3_BACKUP_REGION", "its region"),
    user("AWS_REGION", "the region when S3_BACKUP_REGION is unset"),
    user("AWS_ENDPOINT_URL", "an S3-compatible server's address"),
    user("AWS_ENDPOINT_URL_S3", "the same, for S3 only"),
    user(
        "AWS_SHARED_CREDENTIALS_FILE",
        "the AWS credentials file (PITR from S3 hands it to PostgreSQL)",
    ),
    user("S3_FORCE_PATH_STYLE", "path-style S3 addresses"),
    user("S3_SSE", "off: no server-side encryption header"),
    user("S3_STORAGE_CLASS", "the storage class of new objects"),
    user("S3_OBJECT_LOCK_DAYS", "Object Lock days on the S3 mirror"),
    user("S3_OBJECT_LOCK_MODE", "compliance or governance"),
    user("GOOGLE_DRIVE_BACKUP_FOLDER", "the Drive mirror's folder id"),
    user(
        "GOOGLE_CREDENTIALS",
        "the service account's key (JSON or a path)",
    ),
    user("HCBACKUP_CLOUD_TIMEOUT", "seconds a cloud request may take"),
    user("HCBACKUP_RETRIES", "attempts per cloud request"),
    user(
        "HCBACKUP_REQUESTS_FILE",
        "where a run writes how many storage requests it made",
    ),
    user(
        "HCBACKUP_PRUNE_GRACE_SECS",
        "how long a pack prune condemned waits before a prune deletes it",
    ),
    user(
        "HCBACKUP_PACK_CACHE_MB",
        "the memory for whole packs read from a cloud copy",
    ),
    // Alerts and the dashboard.
    user("BACKUP_NOTIFICATION_EMAIL", "who gets alerts by email"),
    user("SMTP_HOST", "the mail server"),
    user("SMTP_PORT", "its port"),
    user("SMTP_USER", "its login"),
    user("SMTP_PASSWORD", "its password"),
    user("SMTP_FROM", "the sender"),
    user("HCBACKUP_SMTP_TLS", "starttls, tls or none"),
    user("HCBACKUP_WEBHOOK_URL", "a webhook for alerts"),
    user(
        "HCBACKUP_NOTIFY_SUCCESS",
        "1: a message after good runs too",
    ),
    user("HCBACKUP_STATUS_TOKEN", "the token `serve` asks for"),
    user(
        "HCBACKUP_STATUS_MAX_AGE_HOURS",
        "`status`: the age that makes a source stale",
    ),
    user(
        "HCBACKUP_STATUS_MAX_RESTORE_TEST_AGE_DAYS",
        "`status`: the age that makes the restore test stale",
    ),
    user(
        "HCBACKUP_STATUS_MAX_WAL_AGE_MINUTES",
        "`status`: the age of the newest archived WAL that makes it stale",
    ),
    // Tests.
    test(
        "HCBACKUP_DRIVE_ROOT_URL",
        "the Drive API's address (the test server)",
    ),
    test("HCBACKUP_FAILPOINT", "stop the process at a named point"),
    test("HCBACKUP_TEST_PAUSE", "pause at a named point"),
    test(
        "HCBACKUP_TEST_PAUSED_FILE",
        "created when that pause begins",
    ),
    test(
        "HCBACKUP_TEST_CLOCK_OFFSET_SECS",
        "this process's clock runs ahead",
    ),
    test("HCBACKUP_TEST_KDF", "a fast key derivation"),
    test(
        "HCBACKUP_TEST_LOCK_REFRESH_SECS",
        "refresh locks more often",
    ),
    // The system's.
    system("HOME", "the default catalog folder"),
    system("XDG_CACHE_HOME", "the default catalog folder"),
    system("PATH", "where programs are found"),
    system("USER", "the user name recorded"),
    system("LOGNAME", "the same"),
];

/// The variable called `name`.
pub fn find(name: &str) -> Option<&'static Var> {
    VARIABLES.iter().find(|v| v.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the sources read (`env`, `var` or `var_os` of a literal).
    fn read_in_sources() -> std::collections::BTreeSet<String> {
        crate::source_scan::files()
            .iter()
            .flat_map(|(_, text)| names_read(text))
            .collect()
    }

    /// Upper-case names read by `env`, `var` and `var_os` calls in `text`, and
    /// by clap's `env = …` attributes.
    fn names_read(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for call in ["env(\"", "var(\"", "var_os(\"", "env = \""] {
            for (i, _) in text.match_indices(call) {
                let rest = &text[i + call.len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                // `env("X", value)` sets a child's variable: not a read.
                let end = &rest[name.len()..];
                let read = end.starts_with("\")") || (call == "env = \"" && end.starts_with('"'));
                if !name.is_empty() && read {
                    out.push(name);
                }
            }
        }
        out
    }

    /// Source files outside `config/` that read the environment, and why:
    /// through `config::lookup::Process` only, never `std::env::var`.
    const READERS_OUTSIDE_CONFIG: &[(&str, &str)] = &[
        (
            "main.rs",
            "HCBACKUP_LOG_FILE, before the settings, to log their errors",
        ),
        (
            "cli/notify.rs",
            "alert settings when the settings did not load",
        ),
        ("util.rs", "USER and LOGNAME (system) for the user's name"),
        ("pg/scratch.rs", "PATH (system) to find initdb"),
    ];

    #[test]
    fn the_environment_is_read_in_config_only() {
        let mut wrong = Vec::new();
        for (rel, text) in crate::source_scan::files() {
            if rel.starts_with("config/") || rel == "env_vars.rs" {
                continue;
            }
            let direct = ["std::env::var(", "std::env::var_os(", "env::var("]
                .iter()
                .any(|c| text.contains(c));
            let lookup = text.contains("Process.var(")
                || text.contains("Process.raw(")
                || text.contains("read(&crate::config::lookup::Process)");
            let allowed = READERS_OUTSIDE_CONFIG.iter().any(|(f, _)| *f == rel);
            if direct || (lookup && !allowed) {
                wrong.push(rel);
            }
        }
        assert!(
            wrong.is_empty(),
            "these read the environment outside config/: {wrong:?}"
        );
    }

    #[test]
    fn every_variable_read_is_in_the_table_and_the_readme_names_the_users() {
        let missing: Vec<String> = read_in_sources()
            .into_iter()
            .filter(|n| find(n).is_none())
            .collect();
        assert!(
            missing.is_empty(),
            "not in env_vars::VARIABLES: {missing:?}"
        );
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let undocumented: Vec<&str> = VARIABLES
            .iter()
            .filter(|v| v.audience == Audience::User)
            .map(|v| v.name)
            .filter(|n| {
                !readme.match_indices(n).any(|(i, _)| {
                    let after = readme[i + n.len()..].chars().next();
                    !after.is_some_and(|c| c.is_ascii_uppercase() || c == '_')
                })
            })
            .collect();
        assert!(
            undocumented.is_empty(),
            "the README does not name {undocumented:?}"
        );
        let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), VARIABLES.len(), "a variable is listed twice");
    }
}
