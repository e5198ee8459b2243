//! Identifiers: 32-byte ids, shown as hex and found again by a unique hex prefix.
//!
//! Chunk and tree ids are keyed BLAKE3 of the plaintext; pack ids are plain BLAKE3 of
//! the pack file's bytes (checkable without the key); index, snapshot and lock ids are
//! keyed BLAKE3 of their plaintext or random. Each kind is its own type so one cannot
//! be passed where another is meant.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut b = [0u8; 32];
                hex::decode_to_slice(s, &mut b).ok()?;
                Some(Self(b))
            }
            pub fn from_slice(s: &[u8]) -> Option<Self> {
                Some(Self(s.try_into().ok()?))
            }
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }
        impl From<[u8; 32]> for $name {
            fn from(b: [u8; 32]) -> Self {
                Self(b)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error;
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    Self::from_hex(&s).ok_or_else(|| D::Error::custom("bad hex id"))
                } else {
                    let b = serde_bytes::ByteBuf::deserialize(d)?;
                    Self::from_slice(&b).ok_or_else(|| D::Error::custom("id is not 32 bytes"))
                }
            }
        }
    };
}

id_type!(
    /// Keyed BLAKE3 of a data chunk's plaintext.
    ChunkId
);
id_type!(
    /// Keyed BLAKE3 of a serialized tree (one folder).
    TreeId
);
id_type!(
    /// BLAKE3 of a pack file's bytes: its file name.
    PackId
);
id_type!(
    /// Id of an index, snapshot, lock or key object: its file name.
    ObjectId
);

/// Any blob stored in a pack: a data chunk or a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobId(pub [u8; 32]);

impl From<ChunkId> for BlobId {
    fn from(c: ChunkId) -> Self {
        BlobId(c.0)
    }
}
impl From<TreeId> for BlobId {
    fn from(t: TreeId) -> Self {
        BlobId(t.0)
    }
}
impl BlobId {
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

/// Find the one name among `names` that starts with `prefix`.
pub fn resolve_prefix<'a>(
    prefix: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<&'a str, String> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.is_empty() {
        return Err(
            "no snapshot given: name one by its id (a unique prefix, as `hcbackup snapshots` lists them) or `latest`".into(),
        );
    }
    let mut found = None;
    for n in names {
        if n.starts_with(&prefix) {
            if found.is_some() {
                return Err(format!(
                    "id prefix {prefix} is ambiguous: give more characters"
                ));
            }
            found = Some(n);
        }
    }
    found.ok_or_else(|| format!("no snapshot matches {prefix}: see `hcbackup snapshots`"))
}
