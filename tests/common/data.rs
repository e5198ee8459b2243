//! Generated test data, shared by the tests and the benches (which include this file
//! by path): deterministic, fast, incompressible noise and compressible text.
#![allow(dead_code)]

/// Fast deterministic pseudo-random bytes (incompressible, like images and video).
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Compressible text, like exported medical records.
pub fn text(seed: u64, n: usize) -> Vec<u8> {
    let words = [
        "paciente",
        "consulta",
        "retorno",
        "exame",
        "hemograma",
        "receita",
        "pressão",
        "dipirona",
        "Dr.",
        "CRM",
    ];
    let r = noise(seed, n / 4 + 16);
    let mut out = Vec::with_capacity(n + 16);
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(words[r[i % r.len()] as usize % words.len()].as_bytes());
        out.push(if r[(i + 1) % r.len()] % 9 == 0 {
            b'\n'
        } else {
            b' '
        });
        i += 1;
    }
    out.truncate(n);
    out
}
