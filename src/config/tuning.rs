//! Tuning: the settings that reach deep into the engine (where the PostgreSQL
//! programs are, timeouts, retries, the pack cache's memory, the key to try
//! first) and the test hooks of debug builds. Read once from the environment
//! by `Settings::load` (after `.env`), through a `Lookup`; the engine asks
//! `tuning::get()` instead of the environment.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use super::lookup::{number, Lookup, Process};
use crate::error::Result;

/// Memory for cached packs of a cloud copy unless HCBACKUP_PACK_CACHE_MB says
/// otherwise: eight packs of the 16 MiB target.
pub const DEFAULT_PACK_CACHE: usize = 128 << 20;
/// Attempts per cloud request unless HCBACKUP_RETRIES says otherwise.
pub const DEFAULT_RETRIES: u32 = 6;
/// The longest one cloud request may take unless HCBACKUP_CLOUD_TIMEOUT says otherwise.
pub const DEFAULT_CLOUD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a pack prune condemned stays before a prune deletes it, unless
/// HCBACKUP_PRUNE_GRACE_SECS says otherwise: longer than any nightly run.
pub const DEFAULT_PRUNE_GRACE: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug)]
pub struct Tuning {
    /// HCBACKUP_PG_BIN: the folder of pg_dump, pg_restore, psql (and initdb).
    pub pg_bin: Option<PathBuf>,
    /// HCBACKUP_TMPDIR: where a database restore puts its unnamed temporary file.
    pub tmpdir: Option<PathBuf>,
    /// HCBACKUP_KEY_ID: a prefix of the key file's id to try first.
    pub key_id: Option<String>,
    /// HCBACKUP_PACK_CACHE_MB, in bytes.
    pub pack_cache: usize,
    /// HCBACKUP_CLOUD_TIMEOUT.
    pub cloud_timeout: Duration,
    /// HCBACKUP_RETRIES.
    pub retries: u32,
    /// HCBACKUP_PRUNE_GRACE_SECS.
    pub prune_grace: Duration,
    /// HCBACKUP_REQUESTS_FILE: where the run's storage requests are written
    /// when it ends (`storage::counting`).
    pub requests_file: Option<PathBuf>,
    /// Debug builds only; release builds leave these empty.
    pub hooks: TestHooks,
}

/// Fault injection for the test suite (debug builds only).
#[derive(Clone, Debug, Default)]
pub struct TestHooks {
    /// HCBACKUP_TEST_KDF=1: a cheap key derivation.
    pub kdf: bool,
    /// HCBACKUP_TEST_LOCK_REFRESH_SECS: how often locks are refreshed.
    pub lock_refresh: Option<Duration>,
    /// HCBACKUP_TEST_PAUSE=name:SECS[:N].
    pub pause: Option<String>,
    /// HCBACKUP_TEST_PAUSED_FILE: created when that pause begins, so a test
    /// knows the run has reached it.
    pub paused_file: Option<PathBuf>,
    /// HCBACKUP_TEST_CLOCK_OFFSET_SECS: this process's clock runs that far
    /// ahead (or behind): another host's clock, or a run hours later.
    pub clock_offset: Option<i64>,
    /// HCBACKUP_FAILPOINT=name[:N].
    pub failpoint: Option<String>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            pg_bin: None,
            tmpdir: None,
            key_id: None,
            pack_cache: DEFAULT_PACK_CACHE,
            cloud_timeout: DEFAULT_CLOUD_TIMEOUT,
            retries: DEFAULT_RETRIES,
            prune_grace: DEFAULT_PRUNE_GRACE,
            requests_file: None,
            hooks: TestHooks::default(),
        }
    }
}

impl Tuning {
    /// From `env`; a malformed value is an error that names it.
    pub fn read(env: &dyn Lookup) -> Result<Tuning> {
        let d = Tuning::default();
        let pack_cache_mb = number(
            env,
            "HCBACKUP_PACK_CACHE_MB",
            |mb: &usize| *mb <= 1 << 20,
            "give the megabytes of packs a cloud read may keep in memory, such as 128 (0: none)",
        )?;
        let timeout = number(
            env,
            "HCBACKUP_CLOUD_TIMEOUT",
            |s: &u64| (1..=86_400).contains(s),
            "give the seconds one cloud request may take, from 1 to 86400, such as 300",
        )?;
        let retries = number(
            env,
            "HCBACKUP_RETRIES",
            |n: &u32| (1..=100).contains(n),
            "give the attempts per cloud request, from 1 to 100, such as 6",
        )?;
        let grace = number(
            env,
            "HCBACKUP_PRUNE_GRACE_SECS",
            |s: &u64| *s <= 366 * 86_400,
            "give the seconds a condemned pack waits before prune deletes it, such as 86400 (0: in the same run, once the snapshots running have ended)",
        )?;
        Ok(Tuning {
            pg_bin: env.var("HCBACKUP_PG_BIN").map(PathBuf::from),
            tmpdir: env.var("HCBACKUP_TMPDIR").map(PathBuf::from),
            key_id: env.var("HCBACKUP_KEY_ID").map(|k| k.trim().to_string()),
            pack_cache: pack_cache_mb.map_or(d.pack_cache, |mb| mb << 20),
            cloud_timeout: timeout.map_or(d.cloud_timeout, Duration::from_secs),
            retries: retries.unwrap_or(d.retries),
            prune_grace: grace.map_or(d.prune_grace, Duration::from_secs),
            requests_file: env.var("HCBACKUP_REQUESTS_FILE").map(PathBuf::from),
            hooks: if cfg!(debug_assertions) {
                TestHooks::read(env)
            } else {
                TestHooks::default()
            },
        })
    }
}

impl TestHooks {
    fn read(env: &dyn Lookup) -> TestHooks {
        TestHooks {
            kdf: env.var("HCBACKUP_TEST_KDF").as_deref() == Some("1"),
            lock_refresh: env
                .var("HCBACKUP_TEST_LOCK_REFRESH_SECS")
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_secs),
            pause: env.var("HCBACKUP_TEST_PAUSE"),
            paused_file: env.var("HCBACKUP_TEST_PAUSED_FILE").map(PathBuf::from),
            clock_offset: env
                .var("HCBACKUP_TEST_CLOCK_OFFSET_SECS")
                .and_then(|v| v.trim().parse().ok()),
            failpoint: env.var("HCBACKUP_FAILPOINT"),
        }
    }
}

static TUNING: OnceLock<Tuning> = OnceLock::new();

/// Make `t` the tuning of this process (`Settings::load`, once).
pub fn install(t: Tuning) {
    let _ = TUNING.set(t);
}

/// This process's tuning: what `install` was given, or, in a program that never
/// loaded the settings (unit tests, a library caller), the environment's with
/// defaults for anything malformed.
pub fn get() -> &'static Tuning {
    TUNING.get_or_init(|| Tuning::read(&Process).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_when_nothing_is_set() {
        let t = Tuning::read(&[("UNRELATED", "1")]).unwrap();
        assert_eq!(t.pack_cache, DEFAULT_PACK_CACHE);
        assert_eq!(t.retries, DEFAULT_RETRIES);
        assert_eq!(t.cloud_timeout, DEFAULT_CLOUD_TIMEOUT);
        assert!(t.pg_bin.is_none() && t.tmpdir.is_none() && t.key_id.is_none());
    }

    #[test]
    fn values_are_read_and_typed() {
        let t = Tuning::read(&[
            ("HCBACKUP_PACK_CACHE_MB", "64"),
            ("HCBACKUP_CLOUD_TIMEOUT", " 30 "),
            ("HCBACKUP_RETRIES", "2"),
            ("HCBACKUP_PRUNE_GRACE_SECS", "0"),
            ("HCBACKUP_PG_BIN", "/usr/lib/postgresql/15/bin"),
            ("HCBACKUP_KEY_ID", "ab12 "),
            ("HCBACKUP_FAILPOINT", "pack:2"),
        ])
        .unwrap();
        assert_eq!(t.pack_cache, 64 << 20);
        assert_eq!(t.cloud_timeout, Duration::from_secs(30));
        assert_eq!(t.retries, 2);
        assert_eq!(t.prune_grace, Duration::ZERO);
        assert_eq!(
            t.pg_bin.unwrap(),
            PathBuf::from("/usr/lib/postgresql/15/bin")
        );
        assert_eq!(t.key_id.as_deref(), Some("ab12"));
        assert_eq!(t.hooks.failpoint.as_deref(), Some("pack:2"));
    }

    #[test]
    fn each_malformed_value_has_its_own_message() {
        for (name, value) in [
            ("HCBACKUP_PACK_CACHE_MB", "lots"),
            ("HCBACKUP_CLOUD_TIMEOUT", "0"),
            ("HCBACKUP_CLOUD_TIMEOUT", "5m"),
            ("HCBACKUP_RETRIES", "0"),
            ("HCBACKUP_RETRIES", "-1"),
            ("HCBACKUP_PRUNE_GRACE_SECS", "1d"),
        ] {
            let e = Tuning::read(&[(name, value)]).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{name}={value:?}")) && e.contains("give"),
                "{name}={value}: {e}"
            );
        }
    }
}
