//! What a snapshot leaves out: `--exclude` patterns, folders tagged as caches,
//! files over a size, other file systems. Decided per entry from its name, path
//! and `lstat`, before anything of it is opened.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::model::tree::NodeKind;

use super::fs::Stat;

/// The file that marks a cache folder (<https://bford.info/cachedir/>).
pub const CACHEDIR_TAG: &[u8] = b"CACHEDIR.TAG";
/// The first bytes a real `CACHEDIR.TAG` holds.
pub const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// The rules, as given (`--exclude`, `--exclude-file`, `exclude` in hcbackup.toml,
/// `--exclude-caches`, `--exclude-larger-than`, `--one-file-system`).
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub patterns: Vec<String>,
    pub caches: bool,
    pub larger_than: Option<u64>,
    pub one_file_system: bool,
}

/// Why an entry was left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    Pattern,
    LargerThan,
    OtherFileSystem,
    /// A folder tagged as a cache: its content (its tag is kept).
    Cache,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Pattern => "matches an --exclude pattern",
            Why::LargerThan => "larger than --exclude-larger-than",
            Why::OtherFileSystem => "on another file system (--one-file-system)",
            Why::Cache => "a cache folder (CACHEDIR.TAG, --exclude-caches): only its tag is saved",
        }
    }
}

/// The rules, compiled.
#[derive(Clone, Debug, Default)]
pub struct Exclusions {
    /// Patterns without a `/`: matched against an entry's name.
    names: Option<GlobSet>,
    /// Patterns with a `/`: matched against the entry's absolute path (a pattern
    /// not starting with `/` matches at any depth).
    paths: Option<GlobSet>,
    pub caches: bool,
    larger_than: Option<u64>,
    one_file_system: bool,
}

impl Exclusions {
    pub fn new(rules: &Rules) -> Result<Exclusions> {
        let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let (mut any_name, mut any_path) = (false, false);
        for p in &rules.patterns {
            let p = p.trim_end_matches('/');
            if p.is_empty() {
                continue;
            }
            if p.contains('/') {
                let full = if p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("**/{p}")
                };
                paths.add(glob(&full, p)?);
                any_path = true;
            } else {
                names.add(glob(p, p)?);
                any_name = true;
            }
        }
        let build = |b: GlobSetBuilder, any: bool| -> Result<Option<GlobSet>> {
            any.then(|| b.build())
                .transpose()
                .map_err(|e| Error::Usage(format!("bad --exclude: {e}")))
        };
        Ok(Exclusions {
            names: build(names, any_name)?,
            paths: build(paths, any_path)?,
            caches: rules.caches,
            larger_than: rules.larger_than,
            one_file_system: rules.one_file_system,
        })
    }

    /// Whether nothing is ever left out.
    pub fn is_empty(&self) -> bool {
        self.names.is_none()
            && self.paths.is_none()
            && !self.caches
            && self.larger_than.is_none()
            && !self.one_file_system
    }

    /// Why the entry `name` at `path`, stat'ed as `st`, is left out; `None`
    /// when it is saved.
    pub fn excluded(&self, path: &Path, name: &[u8], st: &Stat) -> Option<Why> {
        let by_name = self
            .names
            .as_ref()
            .is_some_and(|g| g.is_match(Path::new(std::ffi::OsStr::from_bytes(name))));
        if by_name || self.paths.as_ref().is_some_and(|g| g.is_match(path)) {
            return Some(Why::Pattern);
        }
        if st.kind == NodeKind::File && self.larger_than.is_some_and(|n| st.size > n) {
            return Some(Why::LargerThan);
        }
        None
    }

    /// Whether the folder stat'ed as `st`, in a folder on device `parent_dev`,
    /// is a mount point whose content `-x` leaves out (the folder itself is kept).
    pub fn other_file_system(&self, st: &Stat, parent_dev: u64) -> bool {
        self.one_file_system && st.kind == NodeKind::Dir && st.dev != parent_dev
    }
}

/// A glob whose `*` and `?` stop at `/` (`**` crosses folders).
fn glob(pattern: &str, given: &str) -> Result<Glob> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| Error::Usage(format!("bad --exclude {given}: {e}")))
}

/// Whether `head` (the first bytes of a folder's `CACHEDIR.TAG`) is a real tag.
pub fn is_cachedir_tag(head: &[u8]) -> bool {
    head.starts_with(CACHEDIR_SIGNATURE)
}

/// A size such as `500M`, `2G`, `1.5GiB` or `1048576` (bytes; K, M, G, T are
/// powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok().filter(|n: &f64| n.is_finite())?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    let bytes = n * (1u64 << shift) as f64;
    (bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The patterns of an `--exclude-file`: one per line; empty lines and lines
/// starting with `#` are skipped, and a line's trailing spaces are not part of it.
pub fn patterns_in(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(kind: NodeKind, size: u64, dev: u64) -> Stat {
        Stat {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime_ns: 0,
            ctime_ns: 0,
            ino: 1,
            dev,
            rdev: 0,
            nlink: 1,
        }
    }

    #[test]
    fn patterns_match_names_and_paths() {
        let e = Exclusions::new(&Rules {
            patterns: vec![
                "*.tmp".into(),
                "/srv/uploads/cache/".into(),
                "thumbs/*.jpg".into(),
            ],
            ..Rules::default()
        })
        .unwrap();
        let f = st(NodeKind::File, 10, 1);
        let ex = |p: &str| {
            let p = Path::new(p);
            e.excluded(p, p.file_name().unwrap().as_bytes(), &f)
        };
        assert_eq!(ex("/srv/uploads/a/b.tmp"), Some(Why::Pattern));
        assert_eq!(ex("/srv/uploads/cache"), Some(Why::Pattern));
        assert_eq!(ex("/srv/uploads/x/thumbs/1.jpg"), Some(Why::Pattern));
        assert_eq!(ex("/srv/uploads/x/thumbs/deep/1.jpg"), None);
        assert_eq!(ex("/srv/uploads/a/b.tmp.pdf"), None);
        assert_eq!(ex("/srv/uploads/cachex"), None);
    }

    #[test]
    fn size_and_file_system() {
        let e = Exclusions::new(&Rules {
            larger_than: Some(100),
            one_file_system: true,
            ..Rules::default()
        })
        .unwrap();
        let p = Path::new("/x/y");
        assert_eq!(
            e.excluded(p, b"y", &st(NodeKind::File, 101, 1)),
            Some(Why::LargerThan)
        );
        assert_eq!(e.excluded(p, b"y", &st(NodeKind::File, 100, 1)), None);
        assert!(e.other_file_system(&st(NodeKind::Dir, 0, 2), 1));
        assert!(!e.other_file_system(&st(NodeKind::Dir, 0, 1), 1));
        assert!(!e.other_file_system(&st(NodeKind::File, 0, 2), 1));
        assert!(Exclusions::new(&Rules::default()).unwrap().is_empty());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("500M"), Some(500 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("10k"), Some(10 << 10));
        for bad in ["", "M", "-1", "1X", "1e9", "nan", "99999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn exclude_file_lines() {
        assert_eq!(
            patterns_in("# temp files\n*.tmp  \n\n/srv/x\n"),
            vec!["*.tmp", "/srv/x"]
        );
    }
}
