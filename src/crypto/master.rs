//! The master key set and the AEAD seal/open used for every encrypted object.

use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::NONCE_LEN;

/// What a sealed byte string is; part of its associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Data = 1,
    Tree = 2,
    Index = 3,
    Snapshot = 4,
    Lock = 5,
    PackHeader = 6,
    Audit = 7,
    Hold = 8,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Data,
            2 => Kind::Tree,
            3 => Kind::Index,
            4 => Kind::Snapshot,
            5 => Kind::Lock,
            6 => Kind::PackHeader,
            7 => Kind::Audit,
            8 => Kind::Hold,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::Data => "data blob",
            Kind::Tree => "tree",
            Kind::Index => "index",
            Kind::Snapshot => "snapshot",
            Kind::Lock => "lock",
            Kind::PackHeader => "pack header",
            Kind::Audit => "audit event",
            Kind::Hold => "legal hold",
        }
    }
}

/// The repository's secret keys. Zeroized on drop; `Debug` shows nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    enc: [u8; 32],
    id: [u8; 32],
    gear: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Length of the serialized key set inside a key file.
pub const MASTER_LEN: usize = 96;

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = MasterKey {
            enc: [0; 32],
            id: [0; 32],
            gear: [0; 32],
        };
        let mut rng = rand::rngs::OsRng;
        rng.fill_bytes(&mut k.enc);
        rng.fill_bytes(&mut k.id);
        rng.fill_bytes(&mut k.gear);
        k
    }

    /// Serialize for wrapping in a key file. The caller must zeroize the result.
    pub(crate) fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = zeroize::Zeroizing::new(Vec::with_capacity(MASTER_LEN));
        v.extend_from_slice(&self.enc);
        v.extend_from_slice(&self.id);
        v.extend_from_slice(&self.gear);
        v
    }

    pub(crate) fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != MASTER_LEN {
            return None;
        }
        let mut k = MasterKey {
            enc: [0; 32],
            id: [0; 32],
            gear: [0; 32],
        };
        k.enc.copy_from_slice(&b[..32]);
        k.id.copy_from_slice(&b[32..64]);
        k.gear.copy_from_slice(&b[64..]);
        Some(k)
    }

    /// Keyed BLAKE3 of `data`: chunk, tree and object ids.
    pub fn id_of(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.id, data).as_bytes()
    }

    /// A keyed hash in a separate domain (e.g. file-cache keys), so it can never
    /// collide with a chunk id.
    pub fn derived_hash(&self, domain: &str, data: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.id);
        h.update(domain.as_bytes());
        h.update(&[0]);
        h.update(data);
        *h.finalize().as_bytes()
    }

    /// The secret FastCDC gear table: 256 pseudo-random words from the gear seed.
    pub fn gear_table(&self) -> Box<[u64; 256]> {
        let mut h = blake3::Hasher::new_keyed(&self.gear);
        h.update(b"hcbackup fastcdc gear table v1");
        let mut xof = h.finalize_xof();
        let mut bytes = [0u8; 256 * 8];
        xof.fill(&mut bytes);
        let mut table = Box::new([0u64; 256]);
        for (i, w) in table.iter_mut().enumerate() {
            *w = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
        }
        bytes.zeroize();
        table
    }

    /// Encrypt `plain` with a fresh random nonce; `kind` and `id` are associated data.
    /// Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, kind: Kind, id: &[u8; 32], plain: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len() + super::TAG_LEN);
        buf.resize(NONCE_LEN, 0);
        buf.extend_from_slice(plain);
        self.seal_in_place(kind, id, &mut buf);
        buf
    }

    /// `buf` holds `NONCE_LEN` bytes of room followed by the plaintext; on return it
    /// is nonce ‖ ciphertext ‖ tag, the same bytes `seal` makes, with no copy.
    pub fn seal_in_place(&self, kind: Kind, id: &[u8; 32], buf: &mut Vec<u8>) {
        assert!(
            buf.len() >= NONCE_LEN,
            "seal_in_place needs room for the nonce"
        );
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        buf[..NONCE_LEN].copy_from_slice(&nonce);
        let tag = super::aead::seal(&self.enc, nonce, &aad(kind, id), &mut buf[NONCE_LEN..]);
        buf.extend_from_slice(&tag);
    }

    /// Decrypt and authenticate; `None` when the bytes, kind or id do not match.
    pub fn open(&self, kind: Kind, id: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
        super::aead::open(&self.enc, &aad(kind, id), sealed)
    }
}

fn aad(kind: Kind, id: &[u8; 32]) -> [u8; 37] {
    let mut a = [0u8; 37];
    a[..4].copy_from_slice(b"hcb1");
    a[4] = kind as u8;
    a[5..].copy_from_slice(id);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_binds_kind_and_id() {
        let k = MasterKey::generate();
        let id = k.id_of(b"x");
        let s = k.seal(Kind::Data, &id, b"hello");
        assert_eq!(k.open(Kind::Data, &id, &s).unwrap(), b"hello");
        assert!(k.open(Kind::Tree, &id, &s).is_none());
        assert!(k.open(Kind::Data, &[0; 32], &s).is_none());
        for i in 0..s.len() {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(k.open(Kind::Data, &id, &t).is_none());
        }
        assert!(k.open(Kind::Data, &id, &s[..s.len() - 1]).is_none());
    }

    #[test]
    fn ids_are_keyed() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(a.id_of(b"same"), b.id_of(b"same"));
        assert_ne!(a.id_of(b"same"), *blake3::hash(b"same").as_bytes());
        assert_ne!(a.gear_table(), b.gear_table());
        assert_eq!(format!("{a:?}"), "MasterKey(<redacted>)");
    }
}
