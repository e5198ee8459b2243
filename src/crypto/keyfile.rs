//! Key files: the master key set wrapped with a key derived from one password.
//!
//! Argon2id (≥ 64 MiB by default) turns the password and a random salt into a
//! 256-bit wrapping key; AES-256-GCM seals the master key set with the repository id
//! as associated data, so a key file cannot be moved to another repository. Several
//! key files may coexist; changing a password writes a new one, never re-encrypts data.
//! The file is JSON: nothing in it is secret without the password.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::master::MasterKey;
use super::NONCE_LEN;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    pub algorithm: KdfAlgorithm,
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KdfAlgorithm {
    Argon2id,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes: about a third of a second here, and 64 MiB per guess for an attacker.
    fn default() -> Self {
        KdfParams {
            algorithm: KdfAlgorithm::Argon2id,
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters for the test suite. Only debug builds honour
    /// `HCBACKUP_TEST_KDF=1`; a release binary always uses the defaults.
    pub fn for_new_key() -> Self {
        if test_kdf() {
            return TEST_PARAMS;
        }
        KdfParams::default()
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(32)).ok()?;
        let a = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params.clone(),
        );
        let mut out = Zeroizing::new([0u8; 32]);
        match super::kdf_memory::KdfMemory::new(params.block_count()) {
            Some(mut mem) => a
                .hash_password_into_with_memory(password, salt, out.as_mut(), mem.blocks())
                .ok()?,
            None => a.hash_password_into(password, salt, out.as_mut()).ok()?,
        }
        Some(out)
    }
}

/// The test suite's cheap settings (debug builds with HCBACKUP_TEST_KDF=1 only).
const TEST_PARAMS: KdfParams = KdfParams {
    algorithm: KdfAlgorithm::Argon2id,
    m_kib: 64,
    t: 1,
    p: 1,
};

fn test_kdf() -> bool {
    cfg!(test) || (cfg!(debug_assertions) && crate::config::tuning::get().hooks.kdf)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: String,
    pub host: String,
    pub user: String,
    pub kdf: KdfParams,
    #[serde(with = "hex::serde")]
    pub salt: Vec<u8>,
    /// nonce ‖ AES-GCM(master key set) ‖ tag.
    #[serde(with = "hex::serde")]
    pub data: Vec<u8>,
}

impl KeyFile {
    /// Wrap `master` with `password` for repository `repo_id`.
    pub fn wrap(
        master: &MasterKey,
        password: &[u8],
        repo_id: &[u8; 32],
        kdf: KdfParams,
        created: String,
    ) -> Self {
        let mut salt = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let wrapping = kdf
            .derive(password, &salt)
            .expect("valid built-in KDF parameters");
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Room for the tag up front: the plaintext is encrypted where it lies and
        // never moved by a reallocation.
        let mut data = Vec::with_capacity(super::OVERHEAD + super::master::MASTER_LEN);
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&master.to_bytes());
        let tag = super::aead::seal(&wrapping, nonce, &aad(repo_id), &mut data[NONCE_LEN..]);
        data.extend_from_slice(&tag);
        KeyFile {
            version: 1,
            created,
            host: crate::util::hostname(),
            user: crate::util::username(),
            kdf,
            salt,
            data,
        }
    }

    /// Why this key file's KDF settings are not accepted, if they are not. Above
    /// 512 MiB or 8 passes a planted file could exhaust memory or time; below the
    /// defaults (64 MiB, 3 passes) someone could plant many cheap key files, each
    /// wrapping their own keys under a guessed password, and have them all tried.
    pub fn kdf_refused(&self) -> Option<String> {
        let k = &self.kdf;
        // Eight times the defaults at most: a planted key file costs an open
        // seconds, not minutes (and at most 16 are tried).
        if k.m_kib > 512 * 1024 || k.t > 8 || k.p > 4 {
            return Some(format!(
                "KDF settings too costly (m={} KiB, t={}, p={})",
                k.m_kib, k.t, k.p
            ));
        }
        let min = KdfParams::default();
        // Debug builds (the test suite's) also read the test suite's cheap keys.
        let test_key = *k == TEST_PARAMS && (cfg!(test) || cfg!(debug_assertions));
        if (k.m_kib < min.m_kib || k.t < min.t || k.p < 1) && !test_key {
            return Some(format!(
                "KDF settings weaker than hcbackup ever writes (m={} KiB, t={})",
                k.m_kib, k.t
            ));
        }
        if self.salt.len() < 16 {
            return Some("salt shorter than 16 bytes".into());
        }
        None
    }

    /// Unwrap with `password`; `None` for a wrong password, a damaged file or
    /// refused KDF settings (`kdf_refused`).
    pub fn unwrap_key(&self, password: &[u8], repo_id: &[u8; 32]) -> Option<MasterKey> {
        if self.data.len() < super::OVERHEAD || self.kdf_refused().is_some() {
            return None;
        }
        let wrapping = self.kdf.derive(password, &self.salt)?;
        let plain = Zeroizing::new(super::aead::open(&wrapping, &aad(repo_id), &self.data)?);
        MasterKey::from_bytes(&plain)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("key file serializes")
    }

    pub fn from_json(b: &[u8]) -> Option<Self> {
        serde_json::from_slice(b).ok()
    }
}

fn aad(repo_id: &[u8; 32]) -> Vec<u8> {
    let mut a = b"hcbackup keyfile v1".to_vec();
    a.extend_from_slice(repo_id);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    const CHEAP: KdfParams = KdfParams {
        algorithm: KdfAlgorithm::Argon2id,
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn weak_or_costly_kdf_settings_are_refused() {
        let m = MasterKey::generate();
        let mut kf = KeyFile::wrap(&m, b"pw", &[7; 32], CHEAP, "now".into());
        // CHEAP is what test builds write (HCBACKUP_TEST_KDF=1), and only they take it.
        assert_eq!(CHEAP, TEST_PARAMS);
        assert!(kf.kdf_refused().is_none());
        kf.kdf.t = 2;
        assert!(kf.kdf_refused().unwrap().contains("weaker"));
        assert!(kf.unwrap_key(b"pw", &[7; 32]).is_none());
        kf.kdf = KdfParams {
            m_kib: 4 << 20,
            ..KdfParams::default()
        };
        assert!(kf.kdf_refused().unwrap().contains("costly"));
        kf.kdf = KdfParams::default();
        assert!(kf.kdf_refused().is_none());
    }

    #[test]
    fn wrap_unwrap() {
        let m = MasterKey::generate();
        let kf = KeyFile::wrap(&m, b"pw", &[7; 32], CHEAP, "now".into());
        let back = KeyFile::from_json(&kf.to_json()).unwrap();
        let m2 = back.unwrap_key(b"pw", &[7; 32]).unwrap();
        assert_eq!(m.id_of(b"a"), m2.id_of(b"a"));
        assert!(back.unwrap_key(b"wrong", &[7; 32]).is_none());
        assert!(back.unwrap_key(b"pw", &[8; 32]).is_none());
    }

    #[test]
    fn key_file_holds_no_raw_key() {
        let m = MasterKey::generate();
        let kf = KeyFile::wrap(&m, b"pw", &[7; 32], CHEAP, "now".into());
        let json = kf.to_json();
        let raw = m.to_bytes();
        for part in raw.chunks(32) {
            let hexed = hex::encode(part);
            assert!(!json.windows(32).any(|w| w == part));
            assert!(!String::from_utf8_lossy(&json).contains(&hexed));
        }
    }
}
