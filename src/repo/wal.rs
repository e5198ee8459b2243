//! Records of the files PostgreSQL archived (`wal/`, see `model::wal`): the
//! repository writes them, finds one by its file's name, and lists them all.

use super::Repository;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::model::wal::{WalRecord, ID_DOMAIN};

impl Repository {
    /// The id, and so the path (`wal/<id>`), of the record of `name`.
    pub fn wal_id(&self, name: &str) -> ObjectId {
        ObjectId(self.key.derived_hash(ID_DOMAIN, name.as_bytes()))
    }

    /// Write `record` (its chunks and tree are durable already).
    pub fn put_wal(&self, record: &WalRecord) -> Result<()> {
        self.check_lock()?;
        let id = self.wal_id(&record.name);
        let sealed = crate::codec::encode(&self.key, Kind::Wal, &id.0, &record.to_bytes());
        Ok(self.backend.put(&format!("wal/{}", id.to_hex()), &sealed)?)
    }

    /// The record of `name` in this copy, `None` when it was never archived here.
    /// A record that is there but does not open is an error, never `None`.
    pub fn wal(&self, name: &str) -> Result<Option<WalRecord>> {
        let id = self.wal_id(name);
        match self.read_wal(&id) {
            Ok(r) => Ok(Some(r)),
            Err(Error::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every record in this copy. One that does not open is an error: prune
    /// would otherwise take its chunks for unused.
    pub fn wal_records(&self) -> Result<Vec<WalRecord>> {
        let mut out = Vec::new();
        for (name, _) in self.backend.list("wal")? {
            let Some(id) = ObjectId::from_hex(&name) else {
                continue;
            };
            out.push(self.read_wal(&id)?);
        }
        Ok(out)
    }

    /// The record at `wal/<id>`, checked to be the record of the name it is
    /// filed under (sealed under that id, naming a file whose id it is).
    pub fn read_wal(&self, id: &ObjectId) -> Result<WalRecord> {
        let plain = self.read_object(Kind::Wal, "wal", id)?;
        let what = || format!("WAL record wal/{}", id.to_hex());
        let record = WalRecord::from_bytes(&plain).map_err(|e| Error::corrupt(what(), e))?;
        if self.wal_id(&record.name) != *id {
            return Err(Error::corrupt(what(), "it is the record of another name"));
        }
        Ok(record)
    }
}
