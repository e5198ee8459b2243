//! Checking a chain of events: each hashes to its id, sits at its place, and names
//! the event before it. Pure: the same check for the catalog's rows and the
//! repository's objects.

use serde::Serialize;

use super::Event;
use crate::catalog::AuditRow;
use crate::crypto::MasterKey;

/// The first link that does not hold: the position (seq) where the chain breaks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Broken {
    pub seq: u64,
    pub reason: String,
}

/// Check `rows` (in stored order) as the chain from `genesis`. An empty chain holds.
pub fn check(key: &MasterKey, genesis: &str, rows: &[AuditRow]) -> Result<(), Broken> {
    let mut prev = genesis.to_string();
    for (i, r) in rows.iter().enumerate() {
        let want = i as u64 + 1;
        let broken = |reason: String| Broken { seq: want, reason };
        if key.id_of(r.event.as_bytes()) != r.id {
            return Err(broken(format!(
                "event #{want} was changed: its content does not hash to its id {}",
                &hex::encode(r.id)[..16]
            )));
        }
        let e = Event::from_json(&r.event)
            .map_err(|e| broken(format!("event #{want} is not an event: {e}")))?;
        if e.seq != want || r.seq != want {
            return Err(broken(format!(
                "expected event #{want}, found #{} here: an event was removed, added or moved",
                e.seq
            )));
        }
        if e.prev != prev {
            return Err(broken(format!(
                "event #{want} does not follow the event before it: an event was removed, replaced or moved"
            )));
        }
        prev = hex::encode(r.id);
    }
    Ok(())
}
