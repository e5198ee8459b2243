//! `tag`: change the tags of existing snapshots.
//!
//! A manifest is immutable (its id is the keyed hash of its JSON), so a snapshot
//! with new tags is a new manifest: the same content, the new tags and
//! `original`, the first manifest's id. The new one is written (and a legal hold
//! on the old one placed on it too) before the old one is announced in the audit
//! log and removed, so a run killed at any step loses nothing; run again, it
//! writes the same manifest (same content, same id) and finishes. Any later
//! `tag` of a snapshot left with several manifests merges them into one.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::model::snapshot::{Snapshot, SnapshotEntry, SAFETY_DUMP_TAG};
use crate::repo::Repository;

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

/// One snapshot's change: the manifests it has now (one, or more that stopped
/// runs left) and the one it gets.
#[derive(Debug)]
pub struct Retag {
    /// The manifest selected (the report names it).
    pub selected: ObjectId,
    pub old: Vec<ObjectId>,
    pub new: Snapshot,
}

/// A snapshot's identity: the first manifest's id, which every retagged one
/// names as `original`.
fn identity(e: &SnapshotEntry) -> String {
    e.snapshot.original.clone().unwrap_or_else(|| e.id.to_hex())
}

/// The manifests to write: each snapshot of `selected` whose tags `change`
/// alters, or that has several manifests (a `tag` run stopped between writing
/// one and removing the other: they are merged, with the tags of all, whatever
/// the change). `all` is every snapshot of the repository.
pub fn plan(all: &[SnapshotEntry], selected: &[SnapshotEntry], change: &TagChange) -> Vec<Retag> {
    let mut by_identity: std::collections::HashMap<String, Vec<&SnapshotEntry>> =
        std::collections::HashMap::new();
    for m in all {
        by_identity.entry(identity(m)).or_default().push(m);
    }
    let mut out = Vec::new();
    for e in selected {
        let key = identity(e);
        // Taken out: a second selected manifest of the same snapshot is skipped.
        let Some(members) = by_identity.remove(&key) else {
            continue;
        };
        let mut tags: Vec<String> = Vec::new();
        for t in members.iter().flat_map(|m| &m.snapshot.tags) {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        let tags = change.apply(&tags);
        if members.len() <= 1 && tags == e.snapshot.tags {
            continue;
        }
        let mut new = e.snapshot.clone();
        new.tags = tags;
        new.original = Some(key);
        out.push(Retag {
            selected: e.id,
            old: members.iter().map(|m| m.id).collect(),
            new,
        });
    }
    out
}

/// Write the new manifests, carry legal holds over, then remove the old ones.
/// `copy` is the copy's name (`local` for the primary).
pub fn apply(repo: &Repository, copy: &str, plan: Vec<Retag>) -> Result<Vec<Retagged>> {
    // No forget meanwhile: it could keep the old manifest and remove the new.
    // The maintenance lock first: waiting for a prune, tag holds up no snapshot.
    let _maintenance = repo.lock_maintenance("tag")?;
    let _lock = repo.lock(true, "tag")?;
    let holds = repo.holds()?;
    let held = |id: &ObjectId| holds.iter().find(|h| h.snapshot == id.to_hex());
    let mut done = Vec::new();
    for r in plan {
        let new = repo.write_snapshot(&r.new)?;
        let old: Vec<ObjectId> = r.old.iter().copied().filter(|o| *o != new).collect();
        if held(&new).is_none() {
            if let Some((o, h)) = old.iter().find_map(|o| held(o).map(|h| (o, h))) {
                carry_hold(repo, copy, o, &new, h)?;
            }
        }
        done.push((r.selected, old, new, r.new));
    }
    crate::util::failpoint("tag-after-write");
    let old: Vec<ObjectId> = done.iter().flat_map(|(_, o, _, _)| o.clone()).collect();
    super::forget::announce(repo, copy, &old, None)?;
    for id in &old {
        repo.check_lock()?;
        // The hold first: killed in between, the old manifest is unheld (its
        // new one holds), never a hold left naming nothing.
        if held(id).is_some() {
            repo.remove_hold(id)?;
        }
        repo.remove_snapshot(id)?;
    }
    Ok(done
        .into_iter()
        .map(|(selected, _, new, s)| Retagged {
            old_id: selected.to_hex(),
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
