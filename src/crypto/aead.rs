//! AES-256-GCM, the only cipher: 12-byte nonce, 16-byte tag (NIST SP 800-38D).
//!
//! ring's implementation: the same code rustls runs for every TLS connection here,
//! and about six times faster than the `aes-gcm` crate on this machine (8.5 against
//! 1.45 GB/s for 1 MiB; its GHASH took 8% of a first snapshot). The bytes are
//! the standard ones, so objects sealed by either open with the other (tested
//! below against `aes-gcm`; see docs/decisions/005-speed.md).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use super::{NONCE_LEN, TAG_LEN};

fn key(k: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, k).expect("a 32-byte AES-256 key"))
}

/// Encrypt `in_out` in place; returns the tag.
pub(super) fn seal(
    k: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    in_out: &mut [u8],
) -> [u8; TAG_LEN] {
    let tag = key(k)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
        .expect("AES-GCM encrypts any in-memory buffer");
    tag.as_ref().try_into().expect("a 16-byte tag")
}

/// Open `sealed` = nonce ‖ ciphertext ‖ tag; `None` when it does not authenticate.
pub(super) fn open(k: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = ct.to_vec();
    match key(k).open_in_place(nonce, Aad::from(aad), &mut buf) {
        Ok(plain) => {
            let n = plain.len();
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => {
            // What was decrypted of a forgery is not kept either.
            zeroize::Zeroize::zeroize(&mut buf);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::{Aead, AeadInPlace, KeyInit, Payload};
    use proptest::prelude::*;

    proptest! {
        /// Byte for byte what the `aes-gcm` crate makes (repositories sealed before
        /// the switch), both ways.
        #[test]
        fn same_bytes_as_the_aes_gcm_crate(
            k in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..64),
            plain in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let mut ours = plain.clone();
            let tag = seal(&k, nonce, &aad, &mut ours);
            let theirs = aes_gcm::Aes256Gcm::new((&k).into());
            let mut t = plain.clone();
            let ttag = theirs
                .encrypt_in_place_detached(aes_gcm::Nonce::from_slice(&nonce), &aad, &mut t)
                .unwrap();
            prop_assert_eq!(&ours, &t);
            prop_assert_eq!(&tag[..], ttag.as_slice());
            let sealed = [&nonce[..], &ours, &tag].concat();
            prop_assert_eq!(open(&k, &aad, &sealed).unwrap(), plain.clone());
            let back = theirs
                .decrypt(aes_gcm::Nonce::from_slice(&nonce), Payload { msg: &sealed[12..], aad: &aad })
                .unwrap();
            prop_assert_eq!(back, plain);
        }
    }

    #[test]
    fn damage_wrong_key_and_short_input_fail() {
        let k = [1u8; 32];
        let mut body = b"prontuario".to_vec();
        let tag = seal(&k, [2; 12], b"ad", &mut body);
        let sealed = [&[2u8; 12][..], &body, &tag].concat();
        assert_eq!(open(&k, b"ad", &sealed).unwrap(), b"prontuario");
        assert!(open(&[3; 32], b"ad", &sealed).is_none());
        assert!(open(&k, b"other", &sealed).is_none());
        for i in 0..sealed.len() {
            let mut d = sealed.clone();
            d[i] ^= 0x40;
            assert!(open(&k, b"ad", &d).is_none());
        }
        assert!(open(&k, b"ad", &sealed[..27]).is_none());
    }
}
