//! Legal holds: `holds/<snapshot id>` keeps that snapshot whatever a retention
//! policy says. Sealed JSON (kind 8, under the snapshot's id): who placed it, when
//! and why. A hold lives in the repository, so it reaches every copy by `mirror`
//! (which makes each destination's `holds/` match the primary's) and survives the
//! server.

use serde::{Deserialize, Serialize};

use super::Repository;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::storage::StorageError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub snapshot: String,
    pub reason: String,
    pub user: String,
    pub host: String,
    pub time: String,
}

impl Repository {
    /// Place a hold on `snapshot` (replacing an earlier one's reason).
    pub fn add_hold(&self, snapshot: &ObjectId, reason: &str) -> Result<Hold> {
        if reason.trim().is_empty() {
            return Err(Error::Usage(
                "a hold needs --reason (the case or order it is for)".into(),
            ));
        }
        let hold = Hold {
            snapshot: snapshot.to_hex(),
            reason: reason.trim().to_string(),
            user: crate::util::username(),
            host: crate::util::hostname(),
            time: crate::util::rfc3339(crate::util::now()),
        };
        let plain = serde_json::to_vec(&hold).expect("hold serializes");
        let sealed = crate::codec::encode(&self.key, Kind::Hold, &snapshot.0, &plain);
        self.backend
            .put(&format!("holds/{}", snapshot.to_hex()), &sealed)?;
        Ok(hold)
    }

    /// Place `hold` as it is (who, when, why) on `snapshot`: a hold moving to a
    /// retagged snapshot keeps when it was placed.
    pub fn put_hold(&self, snapshot: &ObjectId, hold: &Hold) -> Result<()> {
        let hold = Hold {
            snapshot: snapshot.to_hex(),
            ..hold.clone()
        };
        let plain = serde_json::to_vec(&hold).expect("hold serializes");
        let sealed = crate::codec::encode(&self.key, Kind::Hold, &snapshot.0, &plain);
        self.backend
            .put(&format!("holds/{}", snapshot.to_hex()), &sealed)?;
        Ok(())
    }

    /// Lift the hold on `snapshot`; false when there was none.
    pub fn remove_hold(&self, snapshot: &ObjectId) -> Result<bool> {
        match self.backend.delete(&format!("holds/{}", snapshot.to_hex())) {
            Ok(()) => Ok(true),
            Err(StorageError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every hold in this copy. A hold that does not open is an error: it may be
    /// the only thing keeping evidence from deletion.
    pub fn holds(&self) -> Result<Vec<Hold>> {
        let mut out = Vec::new();
        for (name, _) in self.backend.list("holds")? {
            let Some(id) = ObjectId::from_hex(&name) else {
                continue;
            };
            let plain = self.read_object(Kind::Hold, "holds", &id)?;
            let hold: Hold = serde_json::from_slice(&plain)
                .map_err(|e| Error::corrupt(format!("hold holds/{name}"), e.to_string()))?;
            if hold.snapshot != name {
                return Err(Error::corrupt(
                    format!("hold holds/{name}"),
                    "it names another snapshot",
                ));
            }
            out.push(hold);
        }
        Ok(out)
    }
}
