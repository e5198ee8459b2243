//! Settings: command-line flags, then the environment (the seed's variables and
//! `HCBACKUP_*`), then a `.env` file in the working folder, then `hcbackup.toml`.
//! Secrets are held in zeroizing types and never printed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

mod dotenv;
pub mod lookup;
pub mod tuning;

use lookup::{Lookup, Process};

/// What `hcbackup.toml` may hold. Unknown keys are an error, so a typo is caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub repo: Option<String>,
    pub backup_dir: Option<PathBuf>,
    pub uploads_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    /// Databases to back up besides (or instead of) the POSTGRES_* one.
    #[serde(default)]
    pub postgres: Vec<PgFileConfig>,
    #[serde(default)]
    pub restore_test: RestoreTestConfig,
    /// Mirror destinations besides those of the seed's variables.
    #[serde(default)]
    pub destination: Vec<DestinationFile>,
    /// `[retention.NAME]`: the policy of the primary repository (`local`) or of a
    /// destination, replacing the seed's default for it.
    #[serde(default)]
    pub retention: std::collections::BTreeMap<String, crate::retention::Policy>,
    pub shrink_percent: Option<u32>,
    /// Patterns every snapshot leaves out, as `snapshot --exclude` takes them.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// One `[[destination]]` table of `hcbackup.toml`: a name and where it is
/// (`s3://BUCKET/PREFIX`, `drive://FOLDER_ID`, or a folder such as a USB disk).
/// Credentials stay in the environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationFile {
    pub name: String,
    pub url: String,
}

/// One `[[postgres]]` table of `hcbackup.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgFileConfig {
    pub db: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// A file holding the password (the password itself never goes in this file).
    pub password_file: Option<PathBuf>,
}

/// `[restore_test]`: the monthly restore test's target time and the user's checks.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RestoreTestConfig {
    #[serde(default = "default_rto")]
    pub rto_minutes: f64,
    #[serde(default, rename = "check")]
    pub checks: Vec<SqlCheck>,
}

impl Default for RestoreTestConfig {
    fn default() -> Self {
        RestoreTestConfig {
            rto_minutes: default_rto(),
            checks: Vec::new(),
        }
    }
}

fn default_rto() -> f64 {
    15.0
}

/// A query whose first column of the first row, as text, must equal `expect`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    pub name: Option<String>,
    pub query: String,
    pub expect: String,
}

/// Where one database lives and how to log in. The password is never printed.
#[derive(Clone)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Zeroizing<String>>,
    pub db: String,
    /// Seconds a dump waits for a table lock another session holds (a
    /// migration's `ALTER TABLE`) before that night's dump of it fails
    /// (HCBACKUP_PG_LOCK_TIMEOUT): never a run that hangs until the next one.
    pub lock_timeout_secs: u64,
}

/// The longest HCBACKUP_LOCK_WAIT: a week.
const MAX_LOCK_WAIT: u64 = 7 * 24 * 3600;

/// The default of `PgTarget::lock_timeout_secs`.
pub const DEFAULT_PG_LOCK_TIMEOUT: u64 = 30 * 60;

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}/{}", self.user, self.host, self.port, self.db)
    }
}

impl PgTarget {
    /// The same server and login, another database.
    pub fn with_db(&self, db: &str) -> PgTarget {
        PgTarget {
            db: db.to_string(),
            ..self.clone()
        }
    }
}

/// A repository's place: a local folder or a cloud destination.
#[derive(Debug, Clone)]
pub enum RepoLocation {
    Local(PathBuf),
    #[cfg(feature = "cloud")]
    S3(crate::storage::S3Config),
    #[cfg(feature = "cloud")]
    Drive(crate::storage::DriveConfig),
}

/// Flags that bear on settings.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub repo: Option<String>,
    pub config: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
}

#[derive(Debug)]
pub enum PasswordSource {
    Env,
    File(PathBuf),
    Command(String),
    Prompt,
}

/// Seconds a command waits for another run's lock by default: a nightly snapshot
/// that meets a prune or a forget waits for it instead of failing, within a bound.
pub const DEFAULT_LOCK_WAIT: u64 = 30 * 60;

#[derive(Debug)]
pub struct Settings {
    /// Repository location (a folder for now).
    pub repo: Option<String>,
    pub uploads_dir: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub password: PasswordSource,
    /// Databases to back up: the POSTGRES_* one first, then `[[postgres]]` tables.
    pub databases: Vec<PgTarget>,
    pub restore_test: RestoreTestConfig,
    /// Where `snapshot` and `mirror` copy the repository (S3 when S3_BACKUP_BUCKET is
    /// set, Google Drive when GOOGLE_DRIVE_BACKUP_FOLDER is).
    pub destinations: Vec<(String, RepoLocation)>,
    /// `[retention.NAME]` policies from `hcbackup.toml`.
    pub retention: std::collections::BTreeMap<String, crate::retention::Policy>,
    /// RETENTION_DAYS: days the primary repository keeps by default (30).
    pub retention_days: u32,
    /// HCBACKUP_SHRINK_PERCENT (or `shrink_percent`): warn when a source loses more
    /// than this share of its files or bytes from one snapshot to the next (0: never).
    pub shrink_percent: u32,
    /// `exclude` of hcbackup.toml: patterns every snapshot leaves out.
    pub exclude: Vec<String>,
    /// HCBACKUP_LOCK_WAIT: seconds to wait for another run's lock (default
    /// `DEFAULT_LOCK_WAIT`; 0: fail at once).
    pub lock_wait: std::time::Duration,
    /// Where alerts go (BACKUP_NOTIFICATION_EMAIL, SMTP_*, HCBACKUP_WEBHOOK_URL), or
    /// why those settings are wrong: a bad alert setting never stops a backup; it
    /// is reported when an alert is due and by `notify test`.
    pub alerts: std::result::Result<crate::alert::AlertConfig, String>,
    /// What the environment says about cloud locations (credentials, endpoints).
    pub cloud: Cloud,
    /// HCBACKUP_STATUS_TOKEN: the token `serve` answers to.
    pub status_token: Option<Secret>,
}

/// A secret setting: held in zeroizing memory, never printed.
#[derive(Clone)]
pub struct Secret(pub Zeroizing<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The environment's settings for cloud locations, shared by every `s3://` and
/// `drive://` location (the repository's and the destinations').
#[derive(Clone, Debug, Default)]
pub struct Cloud {
    #[cfg(feature = "cloud")]
    pub s3: crate::storage::S3Env,
    #[cfg(feature = "cloud")]
    pub drive: crate::storage::DriveEnv,
}

impl Cloud {
    #[allow(unused_variables)]
    pub fn read(env: &dyn Lookup) -> Result<Cloud> {
        Ok(Cloud {
            #[cfg(feature = "cloud")]
            s3: crate::storage::S3Env::read(env)?,
            #[cfg(feature = "cloud")]
            drive: crate::storage::DriveEnv::read(env),
        })
    }
}

impl Settings {
    /// The settings of this run: `.env` is read into the environment first, then
    /// everything is read from the environment, once, and the tuning installed.
    pub fn load(flags: &Flags) -> Result<Settings> {
        dotenv::load(Path::new(".env"))?;
        not_utf8()?;
        tuning::install(tuning::Tuning::read(&Process)?);
        Settings::read(flags, &Process)
    }

    /// The settings from `flags`, `env` and the settings file.
    pub fn read(flags: &Flags, env: &dyn Lookup) -> Result<Settings> {
        let file = match &flags.config {
            Some(p) => read_toml(p)?,
            None if Path::new("hcbackup.toml").symlink_metadata().is_ok() => {
                read_toml(Path::new("hcbackup.toml"))?
            }
            None => FileConfig::default(),
        };
        let backup_dir = env.var("BACKUP_DIR").map(PathBuf::from).or(file.backup_dir);
        let repo = flags
            .repo
            .clone()
            .or_else(|| env.var("HCBACKUP_REPO"))
            .or_else(|| backup_dir.map(|d| d.join("repository").display().to_string()))
            .or(file.repo);
        let uploads_dir = env
            .var("UPLOADS_DIR")
            .map(PathBuf::from)
            .or(file.uploads_dir);
        let cache_dir = env
            .var("HCBACKUP_CACHE_DIR")
            .map(PathBuf::from)
            .or(file.cache_dir)
            .or_else(|| {
                env.var("XDG_CACHE_HOME")
                    .map(|d| PathBuf::from(d).join("hcbackup"))
            })
            .or_else(|| {
                env.var("HOME")
                    .map(|h| PathBuf::from(h).join(".cache/hcbackup"))
            })
            .ok_or_else(|| {
                Error::Config("no cache folder: set HCBACKUP_CACHE_DIR or HOME".into())
            })?;
        let password = if let Some(f) = &flags.password_file {
            PasswordSource::File(f.clone())
        } else if let Some(c) = &flags.password_command {
            PasswordSource::Command(c.clone())
        } else if env_password().is_some() {
            PasswordSource::Env
        } else if let Some(f) = env
            .var("HCBACKUP_PASSWORD_FILE")
            .map(PathBuf::from)
            .or(file.password_file)
        {
            PasswordSource::File(f)
        } else if let Some(c) = env
            .var("HCBACKUP_PASSWORD_COMMAND")
            .or(file.password_command)
        {
            PasswordSource::Command(c)
        } else {
            PasswordSource::Prompt
        };
        let databases = databases(&file.postgres, env)?;
        let retention_days = match env.var("RETENTION_DAYS") {
            None => 30,
            Some(v) => v.trim().parse().ok().filter(|d| *d > 0).ok_or_else(|| {
                Error::Config(format!(
                    "RETENTION_DAYS={v:?}: give a whole number of days, such as 30"
                ))
            })?,
        };
        let shrink_percent = match env.var("HCBACKUP_SHRINK_PERCENT") {
            None => file.shrink_percent.unwrap_or(crate::ops::shrink::DEFAULT_PERCENT),
            Some(v) => v.trim().parse().ok().filter(|p| *p <= 100).ok_or_else(|| {
                Error::Config(format!(
                    "HCBACKUP_SHRINK_PERCENT={v:?}: give a percentage from 0 (no check) to 100, such as 50"
                ))
            })?,
        };
        let lock_wait = lookup::number(
            env,
            "HCBACKUP_LOCK_WAIT",
            |s: &u64| *s <= MAX_LOCK_WAIT,
            "give the seconds to wait for a lock, from 0 to 604800 (a week), such as 3600",
        )?
        .unwrap_or(DEFAULT_LOCK_WAIT);
        let cloud = Cloud::read(env)?;
        let destinations = destinations(&file.destination, &cloud)?;
        for name in file.retention.keys() {
            // "s3" and "drive" may be set before their variables are (on a test machine, say).
            let known = [crate::retention::LOCAL, "s3", "drive"].contains(&name.as_str())
                || destinations.iter().any(|(n, _)| n == name);
            if !known {
                return Err(Error::Config(format!(
                    "[retention.{name}]: no destination has that name (known: local, s3, drive{}); S3 is \"s3\" when S3_BACKUP_BUCKET is set, Drive \"drive\" when GOOGLE_DRIVE_BACKUP_FOLDER is",
                    destinations.iter().filter(|(n, _)| n != "s3" && n != "drive").map(|(n, _)| format!(", {n}")).collect::<String>()
                )));
            }
        }
        Ok(Settings {
            repo,
            uploads_dir,
            cache_dir,
            password,
            databases,
            restore_test: file.restore_test,
            destinations,
            retention: file.retention,
            retention_days,
            shrink_percent,
            exclude: file.exclude,
            lock_wait: std::time::Duration::from_secs(lock_wait),
            alerts: crate::alert::AlertConfig::read(env).map_err(|e| match e {
                Error::Config(m) => m,
                e => e.to_string(),
            }),
            cloud,
            status_token: env
                .var("HCBACKUP_STATUS_TOKEN")
                .map(|t| Secret(Zeroizing::new(t))),
        })
    }

    /// Where the repository is, or a usage error saying how to name one.
    pub fn repo_location(&self) -> Result<RepoLocation> {
        let r = self.repo.as_deref().ok_or_else(|| {
            Error::Usage("no repository given: pass --repo PATH or set BACKUP_DIR (the repository is $BACKUP_DIR/repository)".into())
        })?;
        parse_location(r, &self.cloud)
    }

    /// The retention policy of copy `name` (`local` or a destination), and where it
    /// comes from.
    pub fn policy(&self, name: &str) -> (crate::retention::Policy, &'static str) {
        match self.retention.get(name) {
            Some(p) => (p.clone(), "hcbackup.toml"),
            None => (
                crate::retention::default_policy(name, self.retention_days),
                "default",
            ),
        }
    }

    /// Read the password from its source; `confirm` asks twice at a prompt.
    pub fn read_password(&self, what: &str, confirm: bool) -> Result<Zeroizing<String>> {
        read_password(&self.password, what, confirm)
    }
}

/// A folder, `s3://BUCKET/PREFIX` or `drive://FOLDER_ID` (with `cloud`'s settings).
#[allow(unused_variables)]
pub fn parse_location(r: &str, cloud: &Cloud) -> Result<RepoLocation> {
    #[cfg(feature = "cloud")]
    if r.starts_with("s3://") {
        return crate::storage::S3Config::parse_url(r, &cloud.s3)
            .map(RepoLocation::S3)
            .map_err(|why| Error::Usage(format!("{r}: {why}")));
    }
    #[cfg(feature = "cloud")]
    if r.starts_with("drive://") {
        return crate::storage::DriveConfig::from_url(r, &cloud.drive)
            .map(RepoLocation::Drive)
            .ok_or_else(|| Error::Usage(format!("{r}: expected drive://FOLDER_ID")));
    }
    if r.contains("://") {
        return Err(Error::Usage(format!(
            "{r}: a repository is a local folder, s3://BUCKET/PREFIX or drive://FOLDER_ID"
        )));
    }
    // `--repo "$UNSET"` must not make the current folder the repository.
    if r.trim().is_empty() {
        return Err(Error::Usage(
            "the repository location is empty (--repo \"\"? an unset variable?): give its folder, s3://BUCKET/PREFIX or drive://FOLDER_ID".into(),
        ));
    }
    Ok(RepoLocation::Local(PathBuf::from(r)))
}

/// A variable of hcbackup's set to bytes that are not UTF-8 is an error, not
/// "unset": `UPLOADS_DIR` would otherwise silently save nothing, and
/// `S3_OBJECT_LOCK_DAYS` lock nothing.
fn not_utf8() -> Result<()> {
    let ours = crate::env_vars::VARIABLES
        .iter()
        .filter(|v| v.audience != crate::env_vars::Audience::System);
    for v in ours {
        if std::env::var_os(v.name).is_some_and(|x| x.to_str().is_none()) {
            return Err(Error::Config(format!(
                "{} is not UTF-8 text: give it in UTF-8 (a folder whose name is not: pass it as an argument instead)",
                v.name
            )));
        }
    }
    Ok(())
}

/// HCBACKUP_PASSWORD, read once and then removed from this process's
/// environment, so no child inherits it even through a path that forgets
/// `util::child`. (/proc/PID/environ keeps the environment the process started
/// with; only its own user and root can read that.)
fn env_password() -> Option<&'static Zeroizing<String>> {
    static PW: std::sync::OnceLock<Option<Zeroizing<String>>> = std::sync::OnceLock::new();
    PW.get_or_init(|| {
        let pw = std::env::var("HCBACKUP_PASSWORD").ok().map(Zeroizing::new);
        if pw.is_some() {
            // Settings are read before any thread that reads the environment starts.
            std::env::remove_var("HCBACKUP_PASSWORD");
        }
        // Set but empty (`HCBACKUP_PASSWORD=` in a unit file): as if unset, so a
        // password file or command still counts.
        pw.filter(|p| !p.is_empty())
    })
    .as_ref()
}

/// What a password command may see besides `util::child`'s variables.
const PASSWORD_COMMAND_ENV: &[&str] = &[
    "GNUPGHOME",
    "GPG_AGENT_INFO",
    "SSH_AUTH_SOCK",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
    "PASSWORD_STORE_DIR",
    "TERM",
];

pub fn read_password(src: &PasswordSource, what: &str, confirm: bool) -> Result<Zeroizing<String>> {
    let pw = match src {
        PasswordSource::Env => {
            Zeroizing::new(env_password().map(|p| p.to_string()).unwrap_or_default())
        }
        PasswordSource::File(p) => {
            use std::os::unix::fs::MetadataExt;
            if let Ok(m) = std::fs::metadata(p) {
                if m.mode() & 0o077 != 0 {
                    tracing::warn!(
                        "password file {} can be read by others (mode {:04o}): chmod 600 it",
                        p.display(),
                        m.mode() & 0o7777
                    );
                }
            }
            let s = Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| Error::Config(format!("password file {}: {e}", p.display())))?,
            );
            // A byte-order mark an editor added is not part of the password.
            let s = s.strip_prefix('\u{feff}').unwrap_or(&s);
            Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string())
        }
        PasswordSource::Command(c) => {
            // The operator's own program: the child environment plus what password
            // managers use to reach their agent, and what HCBACKUP_CHILD_ENV names
            // (for this command only).
            let extra = Process.var("HCBACKUP_CHILD_ENV").unwrap_or_default();
            let allow: Vec<&str> = PASSWORD_COMMAND_ENV
                .iter()
                .copied()
                .chain(extra.split(',').map(str::trim).filter(|v| !v.is_empty()))
                .collect();
            let out = crate::util::child("sh", &allow)
                .arg("-c")
                .arg(c)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| Error::Config(format!("password command could not run: {e}")))?;
            if !out.status.success() {
                return Err(Error::Config(format!(
                    "password command failed ({})",
                    out.status
                )));
            }
            let s = Zeroizing::new(
                String::from_utf8(out.stdout)
                    .map_err(|_| Error::Config("password command printed non-UTF-8".into()))?,
            );
            Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_string())
        }
        PasswordSource::Prompt => {
            if !std::io::stdin().is_terminal() {
                return Err(Error::Usage(
                    "no password: set HCBACKUP_PASSWORD_FILE or HCBACKUP_PASSWORD, or pass --password-file / --password-command".into(),
                ));
            }
            let p = Zeroizing::new(
                rpassword::prompt_password(format!("{what}: "))
                    .map_err(|e| Error::io("reading the password", e))?,
            );
            if confirm {
                let again = Zeroizing::new(
                    rpassword::prompt_password(format!("{what} again: "))
                        .map_err(|e| Error::io("reading the password", e))?,
                );
                if *again != *p {
                    return Err(Error::Usage("the passwords do not match".into()));
                }
            }
            p
        }
    };
    if pw.is_empty() {
        return Err(Error::Usage(format!("{what} is empty")));
    }
    Ok(pw)
}

/// Mirror destinations: from the seed's variables, `s3` when S3_BACKUP_BUCKET is
/// set and `drive` when GOOGLE_DRIVE_BACKUP_FOLDER is; then `[[destination]]`.
#[allow(unused_variables)]
fn destinations(file: &[DestinationFile], cloud: &Cloud) -> Result<Vec<(String, RepoLocation)>> {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(feature = "cloud")]
    if let Some(s3) = &cloud.s3.seed {
        out.push(("s3".to_string(), RepoLocation::S3(s3.clone())));
    }
    #[cfg(feature = "cloud")]
    if let Some(d) = crate::storage::DriveConfig::seed(&cloud.drive) {
        out.push(("drive".to_string(), RepoLocation::Drive(d)));
    }
    for d in file {
        if d.name.is_empty() || d.name == "all" || d.name.contains(char::is_whitespace) {
            return Err(Error::Config(format!(
                "[[destination]] name {:?}: give a short name without spaces (not \"all\")",
                d.name
            )));
        }
        if out.iter().any(|(n, _)| *n == d.name) {
            return Err(Error::Config(format!(
                "[[destination]] {} is defined twice (S3_BACKUP_BUCKET makes \"s3\", GOOGLE_DRIVE_BACKUP_FOLDER \"drive\"): rename one",
                d.name
            )));
        }
        let loc = parse_location(&d.url, cloud)
            .map_err(|e| Error::Config(format!("[[destination]] {}: {e}", d.name)))?;
        out.push((d.name.clone(), loc));
    }
    Ok(out)
}

/// The seed's POSTGRES_* variables (when POSTGRES_DB is set), then `[[postgres]]`.
/// Unset parts fall back to libpq's defaults: localhost, 5432, the OS user.
fn databases(file: &[PgFileConfig], env: &dyn Lookup) -> Result<Vec<PgTarget>> {
    let default_user = || env.var("PGUSER").unwrap_or_else(crate::util::username);
    let port = |v: Option<String>, what: &str| -> Result<Option<u16>> {
        v.map(|p| {
            p.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::Config(format!(
                    "{what}={p:?}: give a port number (1-65535), such as 5432"
                ))
            })
        })
        .transpose()
    };
    // PostgreSQL's lock_timeout is an int of milliseconds.
    let lock_timeout_secs = lookup::number(
        env,
        "HCBACKUP_PG_LOCK_TIMEOUT",
        |n: &u64| (1..=2_147_483).contains(n),
        "give the seconds a dump may wait for a table lock, from 1 to 2147483, such as 1800",
    )?
    .unwrap_or(DEFAULT_PG_LOCK_TIMEOUT);
    let mut out = Vec::new();
    if let Some(db) = env.var("POSTGRES_DB") {
        out.push(PgTarget {
            host: env
                .var("POSTGRES_HOST")
                .unwrap_or_else(|| "localhost".into()),
            port: port(env.var("POSTGRES_PORT"), "POSTGRES_PORT")?.unwrap_or(5432),
            user: env.var("POSTGRES_USER").unwrap_or_else(default_user),
            password: env.raw("POSTGRES_PASSWORD").map(Zeroizing::new),
            db,
            lock_timeout_secs,
        });
    }
    for f in file {
        let password = match &f.password_file {
            Some(p) => Some(Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| {
                        Error::Config(format!("[[postgres]] password_file {}: {e}", p.display()))
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            )),
            None => None,
        };
        let t = PgTarget {
            host: f.host.clone().unwrap_or_else(|| "localhost".into()),
            port: match f.port {
                Some(0) => {
                    return Err(Error::Config(format!(
                        "[[postgres]] {}: port 0 is not a port number (1-65535)",
                        f.db
                    )))
                }
                p => p.unwrap_or(5432),
            },
            user: f.user.clone().unwrap_or_else(default_user),
            password,
            db: f.db.clone(),
            lock_timeout_secs,
        };
        if !out
            .iter()
            .any(|o: &PgTarget| o.host == t.host && o.port == t.port && o.db == t.db)
        {
            out.push(t);
        }
    }
    Ok(out)
}

/// Largest settings file read.
const MAX_SETTINGS: u64 = 1 << 20;

/// Open a settings file only if it is owned by this user (or root) and not
/// writable by group or others: `.env` and `hcbackup.toml` can name the pg_dump
/// binary's folder or a password command, so whoever can change them can run
/// commands as this user. Checked on the open file (no race with a swap), and on
/// the link when the name is one (a link someone else planted, to a file of ours
/// whose content they wrote, is refused too). Only a regular file of at most
/// 1 MiB is read: a FIFO or `/proc/self/pagemap` named `.env` does not hang or
/// exhaust memory.
fn open_settings(p: &Path) -> Result<Option<std::io::Take<std::fs::File>>> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let theirs = |uid: u32, what: &str| {
        Error::Config(format!(
            "refusing {}: {what} belongs to uid {uid}, not to this user (uid {me}); settings can run commands, so only your own files are read: remove it, and write your own",
            p.display()
        ))
    };
    match std::fs::symlink_metadata(p) {
        Ok(l) if l.file_type().is_symlink() && l.uid() != me && l.uid() != 0 => {
            return Err(theirs(l.uid(), "the link"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => {}
    }
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Config(format!("{}: {e}", p.display()))),
    };
    let m = f
        .metadata()
        .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?;
    if !m.is_file() || m.len() > MAX_SETTINGS {
        return Err(Error::Config(format!(
            "refusing {}: not a regular file of at most 1 MiB",
            p.display()
        )));
    }
    if m.uid() != me && m.uid() != 0 {
        return Err(theirs(m.uid(), "it"));
    }
    if m.mode() & 0o022 != 0 {
        return Err(Error::Config(format!(
            "refusing {}: others can change it (mode {:04o}), and may have it open; settings can run commands: remove it and write it again with umask 077",
            p.display(),
            m.mode() & 0o7777,
        )));
    }
    Ok(Some(std::io::Read::take(f, MAX_SETTINGS)))
}

fn read_toml(p: &Path) -> Result<FileConfig> {
    let mut s = String::new();
    match open_settings(p)? {
        Some(mut f) => std::io::Read::read_to_string(&mut f, &mut s)
            .map_err(|e| Error::Config(format!("{}: {e}", p.display())))?,
        None => return Err(Error::Config(format!("{}: no such file", p.display()))),
    };
    toml::from_str(&s).map_err(|e| {
        let msg = e.message().to_string();
        let line = e.span().map(|sp| s[..sp.start].matches('\n').count() + 1);
        Error::Config(match line {
            Some(l) => format!("{} line {l}: {msg}; fix the file", p.display()),
            None => format!("{}: {msg}; fix the file", p.display()),
        })
    })
}

#[cfg(test)]
mod tests;
