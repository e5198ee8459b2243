//! Records of the files PostgreSQL archived (`wal/`, see `model::wal`): the
//! repository writes them, finds one by its file's name, and lists them all.

use super::Repository;
use crate::crypto::Kind;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::model::wal::{position, WalRecord, ID_DOMAIN};

impl Repository {
    /// The id, and so the path (`wal/<id>`), of the record of `name`.
    pub fn wal_id(&self, name: &str) -> ObjectId {
        ObjectId(self.key.derived_hash(ID_DOMAIN, name.as_bytes()))
    }

    /// Write `record` (its chunks and tree are durable already) unless a
    /// record of that name is there: false then, and nothing is replaced
    /// (atomic in a local folder: two pushes of one name cannot both win).
    pub fn put_wal(&self, record: &WalRecord) -> Result<bool> {
        self.check_lock()?;
        let id = self.wal_id(&record.name);
        let sealed = crate::codec::encode(&self.key, Kind::Wal, &id.0, &record.to_bytes());
        let new = self
            .backend
            .put_new(&format!("wal/{}", id.to_hex()), &sealed)?;
        if new {
            self.catalog
                .see_wal(std::iter::once((id, record.name.as_str())))?;
        }
        Ok(new)
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

    /// The names of the files archived in this copy, cheaply: a record this
    /// catalog saw is named from it (checked against its id), any other is
    /// read. One that does not open is left out (`verify` names it, `prune`
    /// stops on it).
    pub fn wal_names(&self) -> Result<Vec<String>> {
        let seen = self.catalog.seen_wal()?;
        let mut names = Vec::new();
        for (file, _) in self.backend.list("wal")? {
            let Some(id) = ObjectId::from_hex(&file) else {
                continue;
            };
            match seen.get(&id).filter(|n| self.wal_id(n) == id) {
                Some(name) => names.push(name.clone()),
                None => match self.read_wal(&id) {
                    Ok(r) => {
                        self.catalog
                            .see_wal(std::iter::once((id, r.name.as_str())))?;
                        names.push(r.name)
                    }
                    Err(e @ (Error::Corrupt { .. } | Error::Missing { .. })) => {
                        tracing::warn!("{e}")
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(names)
    }

    /// Every record in this copy. One that does not open, or that this
    /// catalog saw before and is gone, is an error: prune would otherwise take
    /// its chunks for unused.
    pub fn wal_records(&self) -> Result<Vec<WalRecord>> {
        let (good, mut bad) = self.wal_records_checked()?;
        match bad.pop() {
            Some((_, e)) => Err(e),
            None => Ok(good),
        }
    }

    /// Every record that opens, and the problems: (id, why) of each record
    /// that does not open, and of each this catalog saw before that is not
    /// listed any more (deleted, or turned into something that is no file).
    pub fn wal_records_checked(&self) -> Result<(Vec<WalRecord>, Vec<super::Unreadable>)> {
        let seen = self.catalog.seen_wal()?;
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        let mut listed = std::collections::HashSet::new();
        for (name, _) in self.backend.list("wal")? {
            let Some(id) = ObjectId::from_hex(&name) else {
                continue;
            };
            listed.insert(id);
            match self.read_wal(&id) {
                Ok(r) => good.push(r),
                Err(e) => bad.push((id, e)),
            }
        }
        let gone: Vec<(&ObjectId, &String)> =
            seen.iter().filter(|(id, _)| !listed.contains(id)).collect();
        let forgotten = match gone.is_empty() {
            true => None,
            false => self.wal_forgotten_before()?,
        };
        for (id, name) in gone {
            // Removed by a forget (here or on another machine): no problem.
            if forgotten.is_some_and(|f| position(name).is_some_and(|p| p < f)) {
                self.catalog.unsee_wal(id)?;
                continue;
            }
            bad.push((
                *id,
                Error::missing(
                    "WAL record",
                    format!("wal/{} of {name}, archived before, is gone", id.to_hex()),
                ),
            ));
        }
        self.catalog
            .see_wal(good.iter().map(|r| (self.wal_id(&r.name), r.name.as_str())))?;
        Ok((good, bad))
    }

    /// The snapshots (short ids) the audit log says were made and not
    /// forgotten whose manifests are not among `listed`: deleted behind this
    /// repository's back, also where this catalog never saw them (a new
    /// machine). For the primary repository, whose log records its forgets.
    pub fn snapshots_unaccounted(
        &self,
        listed: &[crate::model::snapshot::SnapshotEntry],
    ) -> Result<Vec<String>> {
        if let Err(e) = self.audit_log().catch_up() {
            tracing::warn!("audit log: could not read the repository's events ({e})");
        }
        let made = self.catalog.snapshot_times_in_audit()?;
        let forgotten = self.catalog.forgotten_in_audit()?;
        let here: std::collections::HashSet<String> =
            listed.iter().map(|e| e.id.to_hex()).collect();
        let mut out: Vec<String> = made
            .into_keys()
            .filter(|id| !here.contains(id) && !forgotten.contains(id))
            .map(|id| id.chars().take(8).collect())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Before which position forget events removed WAL on purpose, once this
    /// catalog has taken in the events appended elsewhere.
    pub fn wal_forgotten_before(&self) -> Result<Option<u64>> {
        if let Err(e) = self.audit_log().catch_up() {
            tracing::warn!("audit log: could not read the repository's events ({e})");
        }
        self.catalog.wal_forgotten_before()
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
