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

    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        let t: Tree = ciborium::from_reader(b).map_err(|e| format!("tree does not decode: {e}"))?;
        if t.version != 1 {
            return Err(format!("unknown tree version {}", t.version));
        }
        Ok(t)
    }
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
            },
        ]);
        assert_eq!(t.nodes[0].name.as_ref(), b"a");
        assert_eq!(Tree::from_bytes(&t.to_bytes()).unwrap(), t);
    }

    proptest! {
        #[test]
        fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Tree::from_bytes(&b);
        }
    }
}
