//! `wal-push` and `wal-fetch`: PostgreSQL's `archive_command` and
//! `restore_command` (docs/decisions/008-wal-archiving.md). Quiet when all is
//! well (PostgreSQL's log gets a line only when something needs doing), not in
//! the audit log (a segment a minute would flood it).

use std::path::Path;

use super::{render, Ctx};
use crate::error::{exit, Error, Result};
use crate::ops::wal::{self, Fetched};

/// `wal-push PATH`: 0 only once the file is durable in the repository.
pub fn push(ctx: &Ctx, path: &Path) -> Result<i32> {
    let repo = ctx.open()?;
    let p = wal::push(&repo, path)?;
    if ctx.json {
        render::print_json(&serde_json::to_value(&p).expect("serializes"));
    }
    tracing::info!(
        "{} {}: {} bytes, {} added",
        p.name,
        if p.already {
            "was archived already"
        } else {
            "archived"
        },
        p.size,
        p.bytes_added
    );
    Ok(exit::OK)
}

/// `wal-fetch NAME DEST`: 0 fetched, 1 not archived, 255 cannot tell.
pub fn fetch(ctx: &Ctx, name: &str, dest: &Path) -> Result<i32> {
    // Timeline 1 has no history file (PostgreSQL's own
    // existsTimeLineHistory says so); recovery still asks for it when it
    // promotes: no need to open the repository to say it is not archived.
    if name == "00000001.history" {
        tracing::info!("{name}: timeline 1 has no history file");
        return Ok(exit::ERROR);
    }
    // Fetched ahead by an earlier call: no need to open the repository.
    let source = ctx.settings.repo.clone().unwrap_or_default();
    if crate::ops::wal_spool::serve(name, dest, &source) {
        tracing::info!("{name}: restored from the segments fetched ahead");
        return Ok(exit::OK);
    }
    // The timeline probe, answered a moment ago by `restore --start`.
    if crate::ops::wal_absent::known_absent(name, dest, &source) {
        tracing::info!("{name} is not archived in this copy (checked a moment ago)");
        return Ok(exit::ERROR);
    }
    let fetched = ctx
        .open()
        .and_then(|repo| wal::fetch(&repo, name, dest, &source))
        // Even a malformed name (`%p %f` swapped in restore_command): "not
        // archived" would end recovery at once, before any WAL is replayed.
        .map_err(|e| Error::CannotTell(Box::new(e)))?;
    match fetched {
        Fetched::Written(n) => {
            tracing::info!("{name}: {n} bytes restored");
            Ok(exit::OK)
        }
        Fetched::NotArchived => {
            tracing::info!("{name} is not archived in this copy");
            Ok(exit::ERROR)
        }
    }
}
