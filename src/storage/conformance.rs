//! The storage contract as a test every backend must pass (memory and local now;
//! S3 and Google Drive run the same function against their test servers).
//! It panics with the failing rule; it expects an empty destination.

use super::{Backend, StorageError};

fn not_found<T: std::fmt::Debug>(r: Result<T, StorageError>, what: &str) {
    assert!(
        matches!(r, Err(StorageError::NotFound(_))),
        "{what}: expected NotFound, got {r:?}"
    );
}

/// A name of repository shape: 64 hex digits starting with `prefix`, then `i`.
fn name(prefix: &str, i: usize) -> String {
    let tail = format!("{i:x}");
    format!(
        "{prefix}{}{tail}",
        "0".repeat(64 - prefix.len() - tail.len())
    )
}

pub fn run(b: &dyn Backend) {
    let aa = format!("index/{}", name("aa", 0));
    let (abcd, cdef, big) = (name("ab", 1), name("cd", 2), name("ef", 3));
    b.create_layout(&["keys", "packs", "index", "snapshots", "locks"])
        .expect("create_layout");
    assert!(
        b.list("index").unwrap().is_empty(),
        "a new destination lists nothing"
    );

    // Round trip, overwrite with the same bytes, stat.
    b.put(&aa, b"first").unwrap();
    assert_eq!(b.get(&aa).unwrap(), b"first");
    b.put(&aa, b"first").unwrap();
    assert_eq!(b.stat(&aa).unwrap(), 5);
    b.put("config", b"{}").unwrap();
    assert_eq!(b.get("config").unwrap(), b"{}");

    // Empty objects and binary content survive.
    let empty = format!("locks/{}", name("ee", 0));
    b.put(&empty, b"").unwrap();
    assert_eq!(b.get(&empty).unwrap(), b"");
    let bin: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    b.put("snapshots/bin", &bin).unwrap();
    assert_eq!(b.get("snapshots/bin").unwrap(), bin);

    // Ranges: inside the object exact; past its end an error, never short data.
    assert_eq!(b.get_range("snapshots/bin", 256, 3).unwrap(), vec![0, 1, 2]);
    assert_eq!(
        b.get_range("snapshots/bin", 69_990, 10).unwrap(),
        bin[69_990..].to_vec()
    );
    assert!(
        b.get_range("snapshots/bin", 69_995, 10).is_err(),
        "range past the end"
    );

    // Missing objects.
    not_found(b.get("index/none"), "get");
    not_found(b.stat("index/none"), "stat");
    not_found(b.get_range("index/none", 0, 1), "get_range");
    not_found(b.delete("index/none"), "delete");

    // Listing: one level of fan-out folders, names relative to the folder, sizes,
    // nothing from a sibling folder whose name starts the same.
    let pack = vec![7u8; 5 << 20];
    b.put(&format!("packs/ab/{abcd}"), &pack).unwrap();
    b.put(&format!("packs/cd/{cdef}"), b"12").unwrap();
    b.put(&format!("packsx/zz/{abcd}"), b"no").unwrap();
    // Names of another shape are never listed (storage is hostile).
    b.put("packs/cd/not-a-pack", b"no").unwrap();
    b.put(&format!("packs/ab/{cdef}"), b"no").unwrap();
    let mut packs = b.list("packs").unwrap();
    packs.sort();
    assert_eq!(
        packs,
        vec![(format!("ab/{abcd}"), 5 << 20), (format!("cd/{cdef}"), 2)]
    );
    assert_eq!(
        b.get(&format!("packs/ab/{abcd}")).unwrap(),
        pack,
        "a 5 MiB object"
    );
    assert_eq!(
        b.get_range(&format!("packs/ab/{abcd}"), 4 << 20, 4)
            .unwrap(),
        vec![7; 4]
    );

    // An object above the multipart threshold of the cloud backends.
    let big_path = format!("packs/ef/{big}");
    let big: Vec<u8> = (0..(17u32 << 20) + 5).map(|i| (i % 251) as u8).collect();
    b.put(&big_path, &big).unwrap();
    assert_eq!(b.stat(&big_path).unwrap(), big.len() as u64);
    assert_eq!(b.get(&big_path).unwrap(), big, "a 17 MiB object");
    assert_eq!(
        b.get_range(&big_path, (8 << 20) - 2, 4).unwrap(),
        big[(8 << 20) - 2..(8 << 20) + 2].to_vec(),
        "a range across a part boundary"
    );
    b.delete(&big_path).unwrap();

    // Many objects (past one listing page of S3 and Drive).
    let many = 1100;
    for i in 0..many {
        b.put(&format!("keys/{}", name("", i)), i.to_string().as_bytes())
            .unwrap();
    }
    let keys = b.list("keys").unwrap();
    assert_eq!(keys.len(), many, "every object is listed");
    assert!(keys.iter().any(|(n, s)| *n == name("", 1099) && *s == 4));

    // Concurrent writers.
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..20 {
                    let p = format!("locks/{}", name(&format!("{t}"), i));
                    b.put(&p, p.as_bytes()).unwrap();
                }
            });
        }
    });
    assert_eq!(b.list("locks").unwrap().len(), 81);
    let last = format!("locks/{}", name("3", 19));
    assert_eq!(b.get(&last).unwrap(), last.as_bytes());

    // Delete.
    b.delete(&aa).unwrap();
    not_found(b.get(&aa), "get after delete");
    assert!(b.list("index").unwrap().is_empty());
}
