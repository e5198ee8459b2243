//! `tag`: change the tags of existing snapshots.
//!
//! A manifest is immutable (its id is the keyed hash of its JSON), so a snapshot
//! with new tags is a new manifest: the same content, the new tags and
//! `original`, the first manifest's id. The new one is written (and a legal hold
//! on the old one placed on it too) before the old one is announced in the audit
//! log and removed, so a run killed at any step loses nothing; run again, it
//! writes the same manifest (same content, same id) and finishes.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::model::snapshot::{Snapshot, SnapshotEntry, SAFETY_DUMP_TAG};
use crate::repo::Repository;
use crate::storage::StorageError;

/// The change asked for.
#[derive(Clone, Debug, Default)]
pub struct TagChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    /// Replace all tags with these (then `add` and `remove` apply).
    pub set: Option<Vec<String>>,
}

impl TagChange {
    /// Refuse what would break a meaning hcbackup gives a tag, or nothing at all.
    pub fn check(&self) -> Result<()> {
        if self.add.is_empty() && self.remove.is_empty() && self.set.is_none() {
            return Err(Error::Usage(
                "say what to change: --add TAG, --remove TAG or --set TAG".into(),
            ));
        }
        let all = self
            .add
            .iter()
            .chain(&self.remove)
            .chain(self.set.iter().flatten());
        for t in all {
            if t == SAFETY_DUMP_TAG {
                return Err(Error::Usage(format!(
                    "the tag {SAFETY_DUMP_TAG} marks the dumps restore --db saves before replacing a database: it cannot be added or removed"
                )));
            }
            if t.trim().is_empty() || t.trim() != t || t.chars().any(char::is_control) {
                return Err(Error::Usage(format!(
                    "tag {t:?}: give a tag without spaces at its ends or control characters"
                )));
            }
        }
        Ok(())
    }

    /// The tags after the change: sorted as given, without repeats; a safety
    /// dump keeps its tag.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = match &self.set {
            Some(set) => tags
                .iter()
                .filter(|t| *t == SAFETY_DUMP_TAG)
                .chain(set)
                .cloned()
                .collect(),
            None => tags.to_vec(),
        };
        out.extend(self.add.iter().cloned());
        out.retain(|t| !self.remove.contains(t));
        let mut seen = std::collections::HashSet::new();
        out.retain(|t| seen.insert(t.clone()));
        out
    }
}

/// One snapshot whose tags change.
#[derive(Debug, Serialize)]
pub struct Retagged {
    pub old_id: String,
    pub new_id: String,
    pub time: String,
    pub tags: Vec<String>,
}

/// The manifests to write: each snapshot of `snaps` whose tags `change` alters,
/// with its new manifest.
pub fn plan(snaps: &[SnapshotEntry], change: &TagChange) -> Vec<(ObjectId, Snapshot)> {
    snaps
        .iter()
        .filter_map(|e| {
            let tags = change.apply(&e.snapshot.tags);
            (tags != e.snapshot.tags).then(|| {
                let mut s = e.snapshot.clone();
                s.tags = tags;
                s.original = Some(s.original.take().unwrap_or_else(|| e.id.to_hex()));
                (e.id, s)
            })
        })
        .collect()
}

/// Write the new manifests, carry legal holds over, then remove the old ones.
/// `copy` is the copy's name (`local` for the primary).
pub fn apply(
    repo: &Repository,
    copy: &str,
    plan: Vec<(ObjectId, Snapshot)>,
) -> Result<Vec<Retagged>> {
    let _lock = repo.lock(true, "tag")?;
    let holds = repo.holds()?;
    let mut done = Vec::new();
    for (old, snapshot) in plan {
        let new = repo.write_snapshot(&snapshot)?;
        if let Some(h) = holds.iter().find(|h| h.snapshot == old.to_hex()) {
            carry_hold(repo, copy, &old, &new, h)?;
        }
        done.push((old, new, snapshot));
    }
    crate::util::failpoint("tag-after-write");
    let old: Vec<ObjectId> = done.iter().map(|(o, _, _)| *o).collect();
    super::forget::announce(repo, copy, &old)?;
    for (old, _, _) in &done {
        repo.check_lock()?;
        // The hold first: killed in between, the old manifest is unheld (its
        // new one holds), never a hold left naming nothing.
        if holds.iter().any(|h| h.snapshot == old.to_hex()) {
            repo.remove_hold(old)?;
        }
        repo.catalog().unsee_snapshot(old)?;
        match repo
            .backend()
            .delete(&format!("snapshots/{}", old.to_hex()))
        {
            Ok(()) | Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(done
        .into_iter()
        .map(|(old, new, s)| Retagged {
            old_id: old.to_hex(),
            new_id: new.to_hex(),
            time: s.time,
            tags: s.tags,
        })
        .collect())
}

/// Place the hold on `old` on `new` too, and say so in the audit log as `hold
/// add` (what `forget` checks a hold object against).
fn carry_hold(
    repo: &Repository,
    copy: &str,
    old: &ObjectId,
    new: &ObjectId,
    hold: &crate::repo::Hold,
) -> Result<()> {
    let reason = hold.reason.as_str();
    repo.put_hold(new, hold)?;
    if copy != crate::retention::LOCAL {
        return Ok(());
    }
    let mut d = crate::audit::Draft::new("hold add");
    d.snapshot = Some(new.to_hex());
    d.reason = Some(reason.to_string());
    d.detail = Some(format!("carried over from {} by tag", old.short()));
    repo.audit_log()
        .append(&d, &crate::audit::Outcome::ok())
        .map(|_| ())
        .map_err(|e| {
            Error::Failed(format!(
                "tag could not record the legal hold it carried over ({e}): run it again"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(add: &[&str], remove: &[&str], set: Option<&[&str]>) -> TagChange {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TagChange {
            add: v(add),
            remove: v(remove),
            set: set.map(v),
        }
    }

    #[test]
    fn changes_apply_in_order() {
        let tags = vec!["nightly".to_string(), SAFETY_DUMP_TAG.to_string()];
        assert_eq!(
            change(&["audit"], &["nightly"], None).apply(&tags),
            [SAFETY_DUMP_TAG, "audit"]
        );
        assert_eq!(
            change(&[], &[], Some(&["x", "x"])).apply(&tags),
            [SAFETY_DUMP_TAG, "x"]
        );
        assert!(change(&[], &[], None).check().is_err());
        assert!(change(&[SAFETY_DUMP_TAG], &[], None).check().is_err());
        assert!(change(&[" a"], &[], None).check().is_err());
        assert!(change(&["a"], &[], None).check().is_ok());
    }
}
