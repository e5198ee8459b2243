//! `mirror`: copy what a destination lacks, in the order that keeps it a valid
//! repository at every moment: config and keys, then packs, then index objects,
//! then snapshots (a snapshot reaches a copy only after everything it needs).
//!
//! What the destination holds is read from its own listing, so an interrupted
//! mirror simply resumes. A pack is checked against its name (the BLAKE3 of its
//! bytes) before it leaves, so a damaged local pack is never copied; every upload
//! is checked by the destination (S3: SHA-256 checksum) and its size read back.
//! Locks are not mirrored.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::error::Result;
use crate::storage::Backend;

#[derive(Debug, Default, serde::Serialize)]
pub struct MirrorReport {
    pub destination: String,
    pub copied: u64,
    pub bytes: u64,
    /// Objects the destination already had.
    pub present: u64,
    /// Objects that could not be copied, with the reason.
    pub failures: Vec<String>,
}

/// Objects in flight at once (each up to one pack, about 16 MiB, in memory).
const TRANSFERS: usize = 8;

/// The folders mirrored, in order; `config` first of all.
const ORDER: &[&str] = &["keys", "packs", "index", "snapshots"];

pub fn run(src: &dyn Backend, dest: &dyn Backend, name: &str) -> Result<MirrorReport> {
    let mut r = MirrorReport {
        destination: name.to_string(),
        ..Default::default()
    };
    // The config first: without it the copy is no repository at all. A different
    // config there means another repository: never mix objects into it.
    let config = src.get("config")?;
    match dest.get("config") {
        Ok(theirs) if theirs == config => r.present += 1,
        Ok(_) => {
            return Err(crate::Error::Failed(format!(
                "{} holds another repository (its config differs): choose another bucket or prefix",
                dest.location()
            )))
        }
        Err(crate::storage::StorageError::NotFound(_)) => {
            dest.put("config", &config)?;
            r.copied += 1;
            r.bytes += config.len() as u64;
        }
        Err(e) => return Err(e.into()),
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(TRANSFERS)
        .build()
        .map_err(|e| crate::Error::Failed(format!("starting the mirror's transfers: {e}")))?;
    for dir in ORDER {
        let have: HashMap<String, u64> = dest.list(dir)?.into_iter().collect();
        let want: Vec<(String, u64)> = src
            .list(dir)?
            .into_iter()
            .filter(|(n, size)| {
                let there = have.get(n) == Some(size);
                if there {
                    r.present += 1;
                }
                !there
            })
            .collect();
        // Transfers wait on the network, not the CPU: more of them than cores.
        let results: Vec<std::result::Result<u64, String>> = pool.install(|| {
            want.par_iter()
                .map(|(n, size)| copy(src, dest, dir, n, *size))
                .collect()
        });
        let failed_before = r.failures.len();
        for res in results {
            match res {
                Ok(b) => {
                    r.copied += 1;
                    r.bytes += b;
                }
                Err(e) => r.failures.push(e),
            }
        }
        // Never send index objects or snapshots that name packs the copy lacks.
        if r.failures.len() > failed_before {
            break;
        }
    }
    Ok(r)
}

fn copy(
    src: &dyn Backend,
    dest: &dyn Backend,
    dir: &str,
    name: &str,
    size: u64,
) -> std::result::Result<u64, String> {
    let path = format!("{dir}/{name}");
    let data = src
        .get(&path)
        .map_err(|e| format!("{path}: reading it here: {e}"))?;
    if dir == "packs" {
        let id = name.rsplit('/').next().unwrap_or(name);
        if blake3::hash(&data).to_hex().as_str() != id {
            return Err(format!(
                "{path}: the local copy is damaged (its bytes do not match its name); not mirrored — run `hcbackup verify --read-data`"
            ));
        }
    }
    dest.put(&path, &data).map_err(|e| format!("{path}: {e}"))?;
    match dest.stat(&path) {
        Ok(n) if n == size && n == data.len() as u64 => Ok(n),
        Ok(n) => Err(format!("{path}: the copy has {n} bytes, {size} were sent")),
        Err(e) => Err(format!("{path}: checking the copy: {e}")),
    }
}
