//! The master key set and the AEAD seal/open used for every encrypted object.

use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::NONCE_LEN;

/// What a sealed byte string is; part of its associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// The record of a file PostgreSQL archived (`wal/`).
    Wal = 9,
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
            9 => Kind::Wal,
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
            Kind::Wal => "WAL record",
        }
    }
}

/// The repository's secret keys. Zeroized on drop; `Debug` shows nothing.
///
/// `enc` is the encryption key of epoch 0; `key rotate` moves writing to a later
/// epoch whose key is derived from it (`epoch_key`), so every object sealed under
/// one key stays far below AES-GCM's bound of 2^32 random nonces per key, while
/// every earlier epoch stays readable with the same key files.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    enc: [u8; 32],
    id: [u8; 32],
    gear: [u8; 32],
    /// The epoch new objects are sealed in.
    epoch: u32,
    /// Keys of epochs 0 ..= epoch + LOOKAHEAD (index = epoch).
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Length of the serialized key set inside a key file.
pub const MASTER_LEN: usize = 96;

/// Epochs after the current one that reads also try: a process that opened the
/// repository before a `key rotate` still reads what later processes write.
const LOOKAHEAD: u32 = 4;
/// More epochs than any repository will see (a rotation per ~2^31 objects).
pub const MAX_EPOCH: u32 = 1024;

impl MasterKey {
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        let mut b = zeroize::Zeroizing::new([0u8; MASTER_LEN]);
        rng.fill_bytes(&mut b[..]);
        Self::from_bytes(&b[..]).expect("96 bytes")
    }

    /// The key of `epoch`: epoch 0 is the key set's own encryption key.
    fn epoch_key(&self, epoch: u32) -> [u8; 32] {
        if epoch == 0 {
            return self.enc;
        }
        let mut h =
            blake3::Hasher::new_derive_key("hcbackup 2026-11-30 encryption key of an epoch");
        h.update(&self.enc);
        h.update(&epoch.to_le_bytes());
        *h.finalize().as_bytes()
    }

    /// Seal new objects in `epoch` (from the repository's config); earlier epochs
    /// (and a few later ones) stay readable.
    pub fn set_epoch(&mut self, epoch: u32) {
        let epoch = epoch.min(MAX_EPOCH);
        self.keys.zeroize();
        self.keys = (0..=epoch + LOOKAHEAD).map(|e| self.epoch_key(e)).collect();
        self.epoch = epoch;
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The value `config` holds to prove which key set it belongs to: a keyed
    /// hash, under a key derived from the whole set, of the repository id, its
    /// creation time and the current epoch. A key file someone planted, wrapping
    /// a key set of their own under the same password, does not reproduce it.
    pub fn check_value(&self, repo_id: &[u8; 32], created: &str, epoch: u32) -> [u8; 32] {
        let mut k = blake3::Hasher::new_derive_key("hcbackup 2026-11-30 repository key check");
        k.update(&self.enc);
        k.update(&self.id);
        k.update(&self.gear);
        let mut key = *k.finalize().as_bytes();
        let mut h = blake3::Hasher::new_keyed(&key);
        key.zeroize();
        h.update(repo_id);
        h.update(&(created.len() as u32).to_le_bytes());
        h.update(created.as_bytes());
        h.update(&epoch.to_le_bytes());
        *h.finalize().as_bytes()
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
            epoch: 0,
            keys: Vec::new(),
        };
        k.enc.copy_from_slice(&b[..32]);
        k.id.copy_from_slice(&b[32..64]);
        k.gear.copy_from_slice(&b[64..]);
        k.set_epoch(0);
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
    /// is nonce ‖ ciphertext ‖ tag, the same bytes `seal` makes, with no copy. Sealed
    /// with the current epoch's key.
    pub fn seal_in_place(&self, kind: Kind, id: &[u8; 32], buf: &mut Vec<u8>) {
        assert!(
            buf.len() >= NONCE_LEN,
            "seal_in_place needs room for the nonce"
        );
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        buf[..NONCE_LEN].copy_from_slice(&nonce);
        let key = &self.keys[self.epoch as usize];
        let tag = super::aead::seal(key, nonce, &aad(kind, id), &mut buf[NONCE_LEN..]);
        buf.extend_from_slice(&tag);
    }

    /// Decrypt and authenticate; `None` when the bytes, kind or id do not match.
    /// The current epoch's key is tried first, then earlier ones, then the few
    /// later ones a newer process may already use.
    pub fn open(&self, kind: Kind, id: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
        let aad = aad(kind, id);
        let current = self.epoch as usize;
        let order = std::iter::once(current)
            .chain((0..current).rev())
            .chain(current + 1..self.keys.len());
        for e in order {
            if let Some(p) = super::aead::open(&self.keys[e], &aad, sealed) {
                return Some(p);
            }
        }
        None
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
    fn a_rotated_key_seals_anew_and_reads_every_epoch() {
        let mut k = MasterKey::generate();
        let old = k.seal(Kind::Data, &[1; 32], b"epoch 0");
        let before = k.clone();
        k.set_epoch(2);
        let new = k.seal(Kind::Data, &[1; 32], b"epoch 2");
        // Another key: the epoch-0 key alone does not open it ...
        let mut only0 = before.clone();
        only0.keys.truncate(1);
        assert!(only0.open(Kind::Data, &[1; 32], &new).is_none());
        // ... but every epoch is readable after the rotation, and before it (look-ahead).
        assert_eq!(k.open(Kind::Data, &[1; 32], &old).unwrap(), b"epoch 0");
        assert_eq!(k.open(Kind::Data, &[1; 32], &new).unwrap(), b"epoch 2");
        assert_eq!(before.open(Kind::Data, &[1; 32], &new).unwrap(), b"epoch 2");
        // Ids and the check value's key do not depend on the epoch.
        assert_eq!(k.id_of(b"x"), before.id_of(b"x"));
        assert_eq!(
            k.check_value(&[3; 32], "t", 2),
            before.check_value(&[3; 32], "t", 2)
        );
        assert_ne!(
            k.check_value(&[3; 32], "t", 2),
            k.check_value(&[3; 32], "t", 1)
        );
        assert_ne!(
            k.check_value(&[3; 32], "t", 2),
            MasterKey::generate().check_value(&[3; 32], "t", 2)
        );
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
