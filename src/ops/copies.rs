//! The copies of the repository an operation runs on — the primary (`local`)
//! and the destinations, by name — in one place: which copies a `--destination`
//! names, opening each, running the operation on it, and one outcome per copy.
//! A copy that cannot be opened, or whose operation fails, never stops the
//! others; the caller renders the outcomes and folds the exit code.

use std::ops::Deref;

use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::retention::LOCAL;

/// A copy, open: the primary (borrowed) or a destination (opened for the
/// operation).
pub enum Copy<'a> {
    Primary(&'a Repository),
    Destination(Box<Repository>),
}

impl Copy<'_> {
    pub fn is_primary(&self) -> bool {
        matches!(self, Copy::Primary(_))
    }
}

impl Deref for Copy<'_> {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        match self {
            Copy::Primary(r) => r,
            Copy::Destination(r) => r,
        }
    }
}

/// What an operation did on one copy.
pub struct Outcome<T> {
    pub copy: String,
    pub result: Result<T>,
}

/// The copies `which` names among `local` and `destinations`: one of them, or
/// `all` (the primary first).
pub fn select<'a>(destinations: impl Iterator<Item = &'a str>, which: &str) -> Result<Vec<String>> {
    let names: Vec<String> = std::iter::once(LOCAL)
        .chain(destinations)
        .map(str::to_string)
        .collect();
    if which == "all" {
        return Ok(names);
    }
    if names.iter().any(|n| n == which) {
        return Ok(vec![which.to_string()]);
    }
    Err(Error::Usage(format!(
        "--destination {which}: no such copy (known: {}, all)",
        names.join(", ")
    )))
}

/// Run `op` on each copy of `names`, in order: `local` is `primary`, the others
/// are opened with `open`, once each (opening reads the password again). `op`
/// gets the copy itself, so it may keep it.
pub fn each<'p, T>(
    primary: &'p Repository,
    names: &[String],
    open: &dyn Fn(&str) -> Result<Repository>,
    mut op: impl FnMut(&str, Copy<'p>) -> Result<T>,
) -> Vec<Outcome<T>> {
    names
        .iter()
        .map(|name| {
            let copy = if name == LOCAL {
                Ok(Copy::Primary(primary))
            } else {
                open(name).map(|r| Copy::Destination(Box::new(r)))
            };
            Outcome {
                copy: name.clone(),
                result: copy.and_then(|c| op(name, c)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_all_or_an_unknown_name() {
        let dests = ["s3", "usb"];
        assert_eq!(select(dests.iter().copied(), "usb").unwrap(), ["usb"]);
        assert_eq!(
            select(dests.iter().copied(), "all").unwrap(),
            ["local", "s3", "usb"]
        );
        let e = select(dests.iter().copied(), "drive")
            .unwrap_err()
            .to_string();
        assert!(e.contains("known: local, s3, usb, all"), "{e}");
    }
}
