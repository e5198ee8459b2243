//! Trees: one folder's entries, sorted by name, serialized as CBOR and stored as a blob.
//!
//! A tree's id is the keyed hash of its bytes, so an unchanged folder produces the
//! same tree id and costs nothing in the next snapshot. Names are raw bytes (any
//! non-UTF-8 name survives). ctime and inode are deliberately absent: they change
//! on a mere `chmod` back and forth and would defeat tree dedup; they live only in
//! the local file cache.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::id::{ChunkId, TreeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: ByteBuf,
    pub kind: NodeKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// File size in bytes (0 for anything but files).
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<ChunkId>,
    /// Instead of `content`, for long streams: list blobs holding the chunk ids
    /// (see `chunk_list`); `Repository::node_content` gives the ids either way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<TreeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<TreeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ByteBuf>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Hard-link group: files of one snapshot with the same non-zero `link` were
    /// one file (one inode) when saved. A keyed hash of its device and inode, so
    /// unchanged folders keep their tree ids; 0 (left out) for a file with one name.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub link: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub version: u32,
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn new(mut nodes: Vec<Node>) -> Self {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Tree { version: 1, nodes }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("tree serializes");
        out
    }

    /// Decode and check a tree. A tree comes from the repository, which anyone
    /// holding a password may have written (a compromised client): every name must
    /// be a plain name (not empty, `.` or `..`, no `/` or NUL) and appear once, in
    /// order, before any of it reaches a file system (restore, ls, export, verify).
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        let t: Tree = ciborium::from_reader(b).map_err(|e| format!("tree does not decode: {e}"))?;
        if t.version != 1 {
            return Err(format!("unknown tree version {}", t.version));
        }
        for n in &t.nodes {
            check_name(&n.name)?;
            if n.mode & !0o7777 != 0 {
                return Err(format!(
                    "entry {} has mode bits beyond 0o7777",
                    escape(&n.name)
                ));
            }
        }
        if let Some(w) = t.nodes.windows(2).find(|w| w[0].name >= w[1].name) {
            return Err(if w[0].name == w[1].name {
                format!("entry {} appears twice", escape(&w[1].name))
            } else {
                "entries are out of order".into()
            });
        }
        Ok(t)
    }
}

/// Folders nested deeper than this are refused wherever a tree is walked (backup,
/// restore, ls, export, verify, prune, import): real uploads nest a few dozen
/// levels, and a hostile tree or a planted folder chain must not exhaust the stack.
pub const MAX_DEPTH: usize = 256;

/// The error for a folder nested deeper than `MAX_DEPTH`.
pub fn too_deep(what: &str) -> String {
    format!("{what} is more than {MAX_DEPTH} folders deep: left out (a folder chain that deep is not a clinic's)")
}

/// A name restore may join onto a folder: anything but empty, `.`, `..`, and
/// names holding `/` or NUL.
pub fn check_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(format!(
            "entry name {} is not a plain file name (a snapshot written by a hostile client?)",
            escape(name)
        ));
    }
    Ok(())
}

/// Whether a character can move the cursor, clear a terminal, reorder or hide
/// text, or break a line: C0/C1 controls, DEL, bidirectional marks and
/// overrides, zero-width and line/paragraph separators, tag characters.
fn deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{e0000}'..='\u{e007f}')
}

/// A line of human output with every deceptive character (`deceptive`) escaped
/// (`\x1b`, `\u{202e}`); tabs stay. Names and errors reach the terminal through
/// this, so none can forge a line or hide another.
pub fn sanitize(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.chars().any(|c| c != '\t' && deceptive(c)) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        match c {
            '\t' => out.push(c),
            c if c.is_control() => {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            c if deceptive(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A name for messages and listings: control characters, backslashes and
/// non-UTF-8 bytes escaped (`\n`, `\x1b`), so a name can never move the cursor,
/// clear a terminal or forge a line of output.
pub fn escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    for b in c.to_string().bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                // Bidirectional overrides, zero-width marks, line separators:
                // they reorder or hide what a terminal shows (`exam\u{202e}fdp.exe`).
                c if deceptive(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_with_binary_names() {
        let t = Tree::new(vec![
            Node {
                name: ByteBuf::from(b"z\xff\xfe".to_vec()),
                kind: NodeKind::File,
                mode: 0o640,
                uid: 1,
                gid: 2,
                mtime_ns: -5,
                size: 3,
                content: vec![ChunkId([4; 32])],
                lists: vec![],
                subtree: None,
                target: None,
                rdev: 0,
                link: 0,
            },
            Node {
                name: ByteBuf::from(b"a".to_vec()),
                kind: NodeKind::Symlink,
                mode: 0o777,
                uid: 0,
                gid: 0,
                mtime_ns: 0,
                size: 0,
                content: vec![],
                lists: vec![TreeId([9; 32])],
                subtree: None,
                target: Some(ByteBuf::from(b"../x".to_vec())),
                rdev: 0,
                link: 0,
            },
        ]);
        assert_eq!(t.nodes[0].name.as_ref(), b"a");
        assert_eq!(Tree::from_bytes(&t.to_bytes()).unwrap(), t);
    }

    fn named(name: &[u8]) -> Node {
        Node {
            name: ByteBuf::from(name.to_vec()),
            kind: NodeKind::File,
            mode: 0o600,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            size: 0,
            content: vec![],
            lists: vec![],
            subtree: None,
            target: None,
            rdev: 0,
            link: 0,
        }
    }

    #[test]
    fn hostile_names_are_refused_when_decoding() {
        for bad in [
            &b""[..],
            b".",
            b"..",
            b"../../etc/cron.d/x",
            b"/etc/passwd",
            b"a/b",
            b"nul\0byte",
        ] {
            let t = Tree {
                version: 1,
                nodes: vec![named(bad)],
            };
            let e = Tree::from_bytes(&t.to_bytes()).unwrap_err();
            assert!(e.contains("not a plain file name"), "{e}");
        }
        let twice = Tree {
            version: 1,
            nodes: vec![named(b"a"), named(b"a")],
        };
        assert!(Tree::from_bytes(&twice.to_bytes())
            .unwrap_err()
            .contains("twice"));
        let unsorted = Tree {
            version: 1,
            nodes: vec![named(b"b"), named(b"a")],
        };
        assert!(Tree::from_bytes(&unsorted.to_bytes()).is_err());
        let mut odd = named(b"a");
        odd.mode = 0o170644;
        assert!(Tree::from_bytes(
            &Tree {
                version: 1,
                nodes: vec![odd]
            }
            .to_bytes()
        )
        .is_err());
        // Names that look odd but are plain stay storable.
        let fine = Tree::new(vec![
            named(b"..."),
            named(b".hidden"),
            named(b"a\\b"),
            named(b"\x1b[2J"),
            named(b"\xff"),
        ]);
        assert_eq!(Tree::from_bytes(&fine.to_bytes()).unwrap(), fine);
    }

    #[test]
    fn escaped_names_hold_no_control_characters() {
        assert_eq!(escape(b"plain name.pdf"), "plain name.pdf");
        assert_eq!(escape(b"a\nb"), "a\\nb");
        assert_eq!(escape(b"\x1b[2J"), "\\x1b[2J");
        assert_eq!(escape(b"\xff"), "\\xff");
        assert_eq!(escape(b"back\\slash"), "back\\\\slash");
        assert_eq!(escape("ação\u{85}".as_bytes()), "ação\\xc2\\x85");
        assert_eq!(
            escape("exam\u{202e}fdp.exe".as_bytes()),
            "exam\\u{202e}fdp.exe"
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Tree::from_bytes(&b);
        }

        #[test]
        fn escaped_names_are_printable(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert!(!escape(&b).chars().any(|c| c.is_control()));
        }
    }
}
