//! zstd, then AES-256-GCM, and back: the only place compression meets encryption.
//!
//! Sealed plaintext (format 2) = one flag byte (2 stored raw, 3 zstd) ‖ u32le
//! payload length ‖ payload ‖ zero bytes up to a Padmé length, so an object's
//! stored size tells its plaintext size only to within a few percent (format 1's
//! flags 0 and 1, unpadded, are still read). zstd is kept only when it saves more
//! than 1/64 of the size: data it does not shrink (most images, video, DICOM pixel
//! data) costs one quick compression attempt and nothing on restore. Decoding
//! bounds the output size, so a damaged length can never make it allocate
//! without limit.

use std::cell::RefCell;

use crate::crypto::{Kind, MasterKey};

/// zstd level: 3 is zstd's default and runs ~400 MB/s on text on one core here.
pub const ZSTD_LEVEL: i32 = 3;

/// Format 1 flags: the payload runs to the end of the body.
const RAW: u8 = 0;
const ZSTD: u8 = 1;
/// Format 2 flags: a length, the payload, then padding.
const RAW_PADDED: u8 = 2;
const ZSTD_PADDED: u8 = 3;
/// Flag and payload length.
const HEAD: usize = 5;

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

/// Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
/// Communication with PURBs", PETS 2019): round `len` up so that only its top
/// log2(log2(len)) + 1 bits may be non-zero. At most about 12% larger (an 8 KiB
/// database chunk gains at most 511 bytes, a 1 MiB chunk at most 32 KiB), and a
/// length reveals O(log log len) bits instead of all of them.
pub fn padme(len: usize) -> usize {
    if len < 2 {
        return len;
    }
    let e = usize::BITS - 1 - len.leading_zeros(); // floor(log2 len)
    let s = u32::BITS - e.leading_zeros(); // floor(log2 e) + 1
    let mask = (1usize << (e - s)) - 1;
    (len + mask) & !mask
}

/// zstd-compress `plain` into `out[BODY + HEAD..]` if that saves more than 1/64 of its
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
            out.resize(BODY + HEAD + SAMPLE - SAMPLE / 32, 0);
            // Does not fit in 97% of the sample: not worth compressing.
            c.compress_to_buffer(sample, &mut out[BODY + HEAD..]).ok()?;
        }
        let limit = plain.len() - plain.len() / 64 - 1;
        out.resize(BODY + HEAD + limit, 0);
        // An output that does not fit in `limit` fails: the data is not worth compressing.
        c.compress_to_buffer(plain, &mut out[BODY + HEAD..]).ok()
    });
    match n {
        Some(n) => {
            out.truncate(BODY + HEAD + n);
            true
        }
        None => false,
    }
}

/// Compress (when it helps), pad and seal `plain` as `kind`/`id`. The body is
/// built in the output buffer and encrypted in place: the plaintext is never
/// copied twice and no plaintext buffer outlives the call.
pub fn encode(key: &MasterKey, kind: Kind, id: &[u8; 32], plain: &[u8]) -> Vec<u8> {
    let room = padme(HEAD + plain.len());
    let mut out = Vec::with_capacity(BODY + room + crate::crypto::TAG_LEN);
    let flag = if plain.len() >= 64 && compress_into(plain, &mut out) {
        ZSTD_PADDED
    } else {
        out.clear();
        out.resize(BODY + HEAD, 0);
        out.extend_from_slice(plain);
        RAW_PADDED
    };
    let payload = (out.len() - BODY - HEAD) as u32;
    out[BODY] = flag;
    out[BODY + 1..BODY + HEAD].copy_from_slice(&payload.to_le_bytes());
    out.resize(BODY + padme(out.len() - BODY), 0);
    key.seal_in_place(kind, id, &mut out);
    out
}

/// Seal `plain` uncompressed, its body padded to a multiple of `multiple` bytes
/// (then to a Padmé length): for pack headers, whose length must not tell how
/// many blobs a pack holds. zstd would squeeze plaintext padding away, so the
/// padding is added here, after the (skipped) compression.
pub fn encode_padded_to(
    key: &MasterKey,
    kind: Kind,
    id: &[u8; 32],
    plain: &[u8],
    multiple: usize,
) -> Vec<u8> {
    let body = (HEAD + plain.len()).div_ceil(multiple) * multiple;
    let mut out = Vec::with_capacity(BODY + padme(body) + crate::crypto::TAG_LEN);
    out.resize(BODY + HEAD, 0);
    out.extend_from_slice(plain);
    out[BODY] = RAW_PADDED;
    out[BODY + 1..BODY + HEAD].copy_from_slice(&(plain.len() as u32).to_le_bytes());
    out.resize(BODY + padme(body), 0);
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
    let (flag, payload) = match body.first() {
        Some(&f @ (RAW | ZSTD)) => (f, &body[1..]),
        Some(&f @ (RAW_PADDED | ZSTD_PADDED)) => {
            let len = body
                .get(1..HEAD)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or(DecodeError::Format("truncated length"))?;
            let payload = body
                .get(HEAD..HEAD + len)
                .ok_or(DecodeError::Format("length beyond the object"))?;
            (f - 2, payload)
        }
        _ => return Err(DecodeError::Format("unknown compression flag")),
    };
    if flag == RAW {
        if payload.len() > max_len {
            return Err(DecodeError::Format("larger than its recorded size"));
        }
        return Ok(payload.to_vec());
    }
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = zstd::bulk::Decompressor::new().ok();
        }
        let d = d.as_mut().ok_or(DecodeError::Format("zstd context"))?;
        // Our frames record their size: allocate exactly that, and refuse more than `max_len`.
        let size = match zstd::zstd_safe::get_frame_content_size(payload) {
            Ok(Some(n)) if n <= max_len as u64 => n as usize,
            Ok(Some(_)) => return Err(DecodeError::Format("larger than its recorded size")),
            _ => return Err(DecodeError::Format("zstd frame without a size")),
        };
        d.decompress(payload, size)
            .map_err(|_| DecodeError::Format("zstd frame"))
    })
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
    fn padme_rounds_up_by_at_most_an_eighth_and_hides_low_bits() {
        assert_eq!((padme(0), padme(1), padme(2), padme(3)), (0, 1, 2, 3));
        assert_eq!(padme(9), 10);
        assert_eq!(padme(8 * 1024 + 1), 8 * 1024 + 512);
        assert_eq!(padme(1 << 20), 1 << 20);
        assert_eq!(padme((1 << 20) + 1), (1 << 20) + (1 << 15));
        for len in (2..200_000).step_by(7) {
            let p = padme(len);
            assert!(p >= len && p - len <= len / 8 + 1, "{len} -> {p}");
            assert_eq!(padme(p), p, "a padded length is its own bucket");
        }
        // Every incompressible 1 MiB chunk of the same size class looks the same.
        let sizes: std::collections::BTreeSet<usize> =
            ((1 << 20)..(1 << 20) + 32_000).map(padme).collect();
        assert_eq!(sizes.len(), 2);
    }

    #[test]
    fn objects_of_format_one_still_open() {
        let k = MasterKey::generate();
        let text = "paciente consulta retorno ".repeat(100);
        let zstd = zstd::bulk::compress(text.as_bytes(), ZSTD_LEVEL).unwrap();
        for body in [
            [&[RAW][..], text.as_bytes()].concat(),
            [&[ZSTD][..], &zstd].concat(),
        ] {
            let s = k.seal(Kind::Data, &[5; 32], &body);
            assert_eq!(
                decode(&k, Kind::Data, &[5; 32], &s, text.len()).unwrap(),
                text.as_bytes()
            );
        }
        // A padded body whose length runs past its end is refused, not read.
        let s = k.seal(Kind::Data, &[5; 32], &[RAW_PADDED, 9, 0, 0, 0, 1, 2]);
        assert_eq!(
            decode(&k, Kind::Data, &[5; 32], &s, 100),
            Err(DecodeError::Format("length beyond the object"))
        );
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
        assert!(s.len() <= padme(noise.len() + HEAD) + crate::crypto::OVERHEAD);
        assert_eq!(
            decode(&k, Kind::Data, &[0; 32], &s, noise.len()).unwrap(),
            noise
        );
        assert!(decode(&k, Kind::Data, &[0; 32], &s, noise.len() - 1).is_err());
    }
}
