//! Opening a catalog that may be damaged: check it, and when damaged set it
//! aside and start a fresh one holding what only the old one knew.
//!
//! Every open runs `PRAGMA quick_check` (it reads every page once, no row)
//! under an exclusive `flock` on `<catalog>-open`, so two commands started at
//! once do not both set the same file aside. Setting aside is crash-safe: the
//! flag `<catalog>-damaged` is left first; the damaged file and its journal are
//! renamed to `<catalog>.damaged-<time>-<pid>` (never over an earlier one); the
//! fresh catalog is built and filled as `<catalog>.new` and renamed into place
//! last; the flag goes once it is. A run killed (or a disk that fills) anywhere
//! in between leaves the flag, and the next open finishes the job from the
//! newest file set aside, so what it holds is never lost with it.

use std::path::{Path, PathBuf};

use super::{salvage, Catalog};
use crate::error::{Error, Result};

/// Open the catalog at `path`: as it is when sound, else set aside and rebuilt.
pub(super) fn open_checked(path: &Path) -> Result<Catalog> {
    let _turn = open_turn(path)?;
    let flagged = std::fs::symlink_metadata(flag(path)).is_ok_and(|m| m.is_file());
    let found = std::fs::symlink_metadata(path).ok();
    if found.is_none() && flagged {
        if let Some(aside) = newest_aside(path) {
            return rebuild_from(
                path,
                &aside,
                "an earlier command set it aside and was cut short",
            );
        }
    }
    let damage = match (found, Catalog::open_once(path)) {
        (None, Ok(c)) => Ok(c),
        // An empty file is no new catalog: one was there, and what it knew is gone.
        (Some(m), Ok(_)) if m.len() == 0 => Err("the file is empty".to_string()),
        (Some(_), Ok(c)) => match (check(&c)?, flagged) {
            (None, false) => Ok(c),
            (Some(why), _) => Err(why),
            (None, true) => Err("a command found it damaged while working".into()),
        },
        (_, Err(Error::CatalogDamaged { source, .. })) => Err(source.to_string()),
        (_, Err(e)) => return Err(e),
    };
    match damage {
        Ok(c) => Ok(c),
        Err(why) => set_aside(path, &why),
    }
}

/// `None` when SQLite's quick check finds the file sound, else what it found.
/// It reads every page once (about 0.4 s for a million blobs) and no row.
fn check(c: &Catalog) -> Result<Option<String>> {
    let found = c.with(|c| {
        let mut st = c.prepare("PRAGMA quick_check(1)")?;
        let mut rows = st.query([])?;
        match rows.next() {
            Ok(Some(r)) => r.get::<_, String>(0),
            Ok(None) => Ok("ok".into()),
            Err(e) => Err(e),
        }
    });
    match found {
        Ok(s) if s == "ok" => Ok(None),
        Ok(s) => Ok(Some(s)),
        Err(Error::CatalogDamaged { source, .. }) => Ok(Some(source.to_string())),
        Err(e) => Err(e),
    }
}

/// Move the damaged catalog and its journal aside, then rebuild from it.
fn set_aside(path: &Path, why: &str) -> Result<Catalog> {
    // First the flag: cut short after the move, the next open finishes.
    std::fs::File::create(flag(path)).map_err(|e| Error::io_path("marking", path, e))?;
    let stamp = format!(
        ".damaged-{}-{}",
        crate::util::now().unix_timestamp(),
        std::process::id()
    );
    let aside = with_suffix(path, &stamp);
    for suffix in ["", "-wal", "-shm"] {
        let from = with_suffix(path, suffix);
        match std::fs::rename(&from, with_suffix(&aside, suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io_path("moving aside", &from, e))
            }
            _ => {}
        }
    }
    crate::util::failpoint("catalog-after-aside");
    rebuild_from(path, &aside, why)
}

/// Build a fresh catalog beside `path`, save into it what the repository cannot
/// give back from the damaged `aside` (`salvage`), and put it in place.
fn rebuild_from(path: &Path, aside: &Path, why: &str) -> Result<Catalog> {
    let new = with_suffix(path, ".new");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&new, suffix));
    }
    let saved = {
        let c = Catalog::open_once(&new)?;
        let saved = c.with(|conn| Ok(salvage::salvage(aside, conn)))?;
        c.with(|conn| conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())))?;
        saved
    };
    std::fs::rename(&new, path).map_err(|e| Error::io_path("putting in place", path, e))?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(with_suffix(&new, suffix));
    }
    let _ = std::fs::remove_file(flag(path));
    warn(path, aside, why, &saved);
    Catalog::open_once(path)
}

fn warn(path: &Path, aside: &Path, why: &str, saved: &[salvage::Saved]) {
    let unreadable = saved.iter().all(|s| s.rows == 0 && !s.complete);
    let kept: Vec<String> = saved
        .iter()
        .filter(|s| s.rows > 0 || !s.complete)
        .map(|s| {
            let lost = if s.complete { "" } else { " (some lost)" };
            format!("{} {} rows{lost}", s.table, s.rows)
        })
        .collect();
    let kept = if unreadable {
        "nothing (it cannot be read)".to_string()
    } else if kept.is_empty() {
        "nothing (it held nothing the repository lacks)".to_string()
    } else {
        kept.join(", ")
    };
    tracing::warn!(
        "catalog {} is damaged ({}); moved to {} and rebuilding it from the repository; kept from it: {kept}",
        path.display(),
        why.split_whitespace().collect::<Vec<_>>().join(" "),
        aside.display(),
    );
    let meta_lost = saved
        .iter()
        .any(|s| s.table == "meta" && (s.rows == 0 || !s.complete));
    if meta_lost {
        tracing::warn!(
            "this machine's record of the repository's keys was lost with the damaged catalog: the keys the repository holds now are trusted as they are; if someone may have replaced the repository, check it (hcbackup verify, and compare `hcbackup key list` with what you expect) before the next snapshot"
        );
    }
}

/// The newest catalog set aside for `path` (`<name>.damaged-<time>-<pid>`).
fn newest_aside(path: &Path) -> Option<PathBuf> {
    let dir = path.parent()?;
    let prefix = format!("{}.damaged-", path.file_name()?.to_string_lossy());
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_main =
                name.starts_with(&prefix) && !name.ends_with("-wal") && !name.ends_with("-shm");
            let m = e.metadata().ok().filter(|m| m.is_file())?;
            is_main.then_some(())?;
            Some((m.modified().ok()?, e.path()))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// `path` with `suffix` added to its name (`x.sqlite` → `x.sqlite-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Left beside a catalog in which a command met damage its check at open did
/// not see, or while it is being set aside: the next open sets the catalog
/// aside (or finishes doing so) whatever its check says.
pub(super) fn flag(path: &Path) -> PathBuf {
    with_suffix(path, "-damaged")
}

/// Whether SQLite says the file is damaged (not merely unreadable or busy).
pub(super) fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if matches!(
        f.code,
        rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
    ))
}

/// An exclusive lock on `<catalog>-open` for the check at open. Released when dropped.
fn open_turn(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = with_suffix(path, "-open");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&p)
        .map_err(|e| Error::io_path("opening", &p, e))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io_path("locking", &p, e.into()))?;
    Ok(f)
}
