//! zstd, then AES-256-GCM, and back: the only place compression meets encryption.
//!
//! Sealed plaintext = one flag byte (0 stored raw, 1 zstd) ‖ payload. Data that zstd
//! does not shrink (images, video, DICOM pixel data) is stored raw, so it costs one
//! quick compression attempt and nothing on restore. Decoding bounds the output size,
//! so a damaged length can never make it allocate without limit.

use std::cell::RefCell;

use crate::crypto::{Kind, MasterKey};

/// zstd level: 3 is zstd's default and runs ~400 MB/s on text on one core here.
pub const ZSTD_LEVEL: i32 = 3;

const RAW: u8 = 0;
const ZSTD: u8 = 1;

thread_local! {
    // zstd contexts are costly to create (about a millisecond for level 3); each
    // rayon worker keeps one of each for the whole run.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Chunks above this size are first judged by a sample from their middle.
const SAMPLE_ABOVE: usize = 256 * 1024;
const SAMPLE: usize = 64 * 1024;

/// Where the body starts in an output buffer: after room for the nonce.
const BODY: usize = crate::crypto::NONCE_LEN;

/// zstd-compress `plain` into `out[BODY + 1..]` if that saves more than 1/64 of its
/// size. Large chunks whose middle 64 KiB does not shrink (images, video, encrypted
/// or already compressed files) are stored raw without compressing the rest: zstd
/// would spend most of a chunk's encoding time finding nothing.
fn compress_into(plain: &[u8], out: &mut Vec<u8>) -> bool {
    let n = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        let c = c.as_mut()?;
        if plain.len() > SAMPLE_ABOVE {
            let mid = plain.len() / 2 - SAMPLE / 2;
            let sample = &plain[mid..mid + SAMPLE];
            out.resize(BODY + 1 + SAMPLE - SAMPLE / 32, 0);
            // Does not fit in 97% of the sample: not worth compressing.
            c.compress_to_buffer(sample, &mut out[BODY + 1..]).ok()?;
        }
        let limit = plain.len() - plain.len() / 64 - 1;
        out.resize(BODY + 1 + limit, 0);
        // An output that does not fit in `limit` fails: the data is not worth compressing.
        c.compress_to_buffer(plain, &mut out[BODY + 1..]).ok()
    });
    match n {
        Some(n) => {
            out.truncate(BODY + 1 + n);
            true
        }
        None => false,
    }
}

/// Compress (when it helps) and seal `plain` as `kind`/`id`. The body is built in
/// the output buffer and encrypted in place: the plaintext is never copied twice
/// and no plaintext buffer outlives the call.
pub fn encode(key: &MasterKey, kind: Kind, id: &[u8; 32], plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(BODY + 1 + plain.len() + crate::crypto::TAG_LEN);
    if plain.len() >= 64 && compress_into(plain, &mut out) {
        out[BODY] = ZSTD;
    } else {
        out.clear();
        out.resize(BODY, 0);
        out.push(RAW);
        out.extend_from_slice(plain);
    }
    key.seal_in_place(kind, id, &mut out);
    out
}

/// Why a sealed string could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Authentication failed: wrong key, wrong kind/id, or damaged bytes.
    Auth,
    /// Authentic but not decodable (unknown flag, bad zstd, too large).
    Format(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Auth => f.write_str("authentication failed (damaged or swapped bytes)"),
            DecodeError::Format(w) => write!(f, "undecodable content: {w}"),
        }
    }
}

/// Open and decompress. `max_len` bounds the plaintext size.
pub fn decode(
    key: &MasterKey,
    kind: Kind,
    id: &[u8; 32],
    sealed: &[u8],
    max_len: usize,
) -> Result<Vec<u8>, DecodeError> {
    let body = zeroize::Zeroizing::new(key.open(kind, id, sealed).ok_or(DecodeError::Auth)?);
    match body.first() {
        Some(&RAW) => {
            if body.len() - 1 > max_len {
                return Err(DecodeError::Format("larger than its recorded size"));
            }
            Ok(body[1..].to_vec())
        }
        Some(&ZSTD) => DECOMPRESSOR.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = zstd::bulk::Decompressor::new().ok();
            }
            let d = d.as_mut().ok_or(DecodeError::Format("zstd context"))?;
            // Our frames record their size: allocate exactly that, and refuse more than `max_len`.
            let size = match zstd::zstd_safe::get_frame_content_size(&body[1..]) {
                Ok(Some(n)) if n <= max_len as u64 => n as usize,
                Ok(Some(_)) => return Err(DecodeError::Format("larger than its recorded size")),
                _ => return Err(DecodeError::Format("zstd frame without a size")),
            };
            d.decompress(&body[1..], size)
                .map_err(|_| DecodeError::Format("zstd frame"))
        }),
        _ => Err(DecodeError::Format("unknown compression flag")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), text in "[a-c ]{0,5000}") {
            let k = MasterKey::generate();
            for plain in [data.as_slice(), text.as_bytes()] {
                let id = k.id_of(plain);
                let s = encode(&k, Kind::Data, &id, plain);
                prop_assert_eq!(decode(&k, Kind::Data, &id, &s, plain.len()).unwrap(), plain);
                prop_assert_eq!(decode(&k, Kind::Tree, &id, &s, plain.len()), Err(DecodeError::Auth));
            }
        }
    }

    #[test]
    fn compresses_text_and_stores_noise_raw() {
        let k = MasterKey::generate();
        let text = "paciente consulta retorno ".repeat(4000);
        let s = encode(&k, Kind::Data, &[0; 32], text.as_bytes());
        assert!(s.len() < text.len() / 10);
        let noise: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let s = encode(&k, Kind::Data, &[0; 32], &noise);
        assert!(s.len() <= noise.len() + 1 + crate::crypto::OVERHEAD);
        assert_eq!(
            decode(&k, Kind::Data, &[0; 32], &s, noise.len()).unwrap(),
            noise
        );
        assert!(decode(&k, Kind::Data, &[0; 32], &s, noise.len() - 1).is_err());
    }
}
