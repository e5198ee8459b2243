//! A repository in a local folder. Writes go to a temporary file in the same folder,
//! are fsynced, renamed into place, and the folder is fsynced: a crash leaves either
//! the old state or the complete object, never a torn one. Files 0600, folders 0700.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::{Backend, StorageError, StorageResult};

pub const TMP_PREFIX: &str = ".tmp-";

pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend { root: root.into() }
    }

    /// The file of object `path`. Paths come from this program, but some are made
    /// of names another copy listed: anything absolute, empty, `.` or `..` in
    /// them is refused rather than joined.
    fn full(&self, path: &str) -> StorageResult<PathBuf> {
        let ok = !path.is_empty()
            && !path.contains('\0')
            && path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !ok {
            return Err(StorageError::Permanent(format!(
                "refusing object name {:?}: not a name inside the repository",
                crate::model::tree::escape(path.as_bytes())
            )));
        }
        Ok(self.root.join(path))
    }
}

fn map(what: &str, e: io::Error) -> StorageError {
    if e.kind() == io::ErrorKind::NotFound {
        StorageError::NotFound(what.to_string())
    } else if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::EDQUOT) {
        StorageError::Full(what.to_string())
    } else if e.kind() == io::ErrorKind::PermissionDenied {
        StorageError::Auth(format!("{what}: {e}"))
    } else {
        StorageError::Permanent(format!("{what}: {e}"))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Objects this large (packs) are written around the page cache.
const DIRECT_MIN: usize = 1024 * 1024;
/// O_DIRECT wants buffer, offset and length aligned to the device's block size.
const ALIGN: usize = 4096;

thread_local! {
    // One aligned buffer per writing thread, reused: fresh pages cost more than the copy.
    static ALIGNED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Write `data` to the new file `tmp` with O_DIRECT and fsync it. Returns false,
/// leaving nothing behind, when the file system does not take O_DIRECT (ramfs,
/// tmpfs before Linux 6.6, some FUSE and network file systems): the caller then
/// writes it buffered.
///
/// Why: a night's packs are written once and not read again soon. Through the page
/// cache they would push out what the clinic's server keeps there (PostgreSQL's
/// pages), and each byte would be copied into freshly allocated cache pages, which
/// cost more CPU than compressing it on the virtual machines measured here
/// (docs/benchmarks.md). The disk reads the aligned buffer directly instead.
fn write_direct(tmp: &Path, data: &[u8]) -> io::Result<bool> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_DIRECT)
        .open(tmp);
    let mut f = match f {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Some file systems (ramfs) create the file before refusing the flag.
            match fs::remove_file(tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => return Ok(false),
            }
        }
        Err(e) => return Err(e),
    };
    let padded = data.len().div_ceil(ALIGN) * ALIGN;
    let written = ALIGNED.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < padded + ALIGN {
            b.resize(padded + ALIGN, 0);
        }
        let off = b.as_ptr().align_offset(ALIGN);
        let buf = &mut b[off..off + padded];
        buf[..data.len()].copy_from_slice(data);
        buf[data.len()..].fill(0);
        f.write_all(buf)
    });
    match written {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            drop(f);
            fs::remove_file(tmp)?;
            return Ok(false);
        }
        r => r?,
    }
    // The padding goes again; the size is exact before the file is made durable.
    f.set_len(data.len() as u64)?;
    f.sync_all()?;
    Ok(true)
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, path: &str, data: &[u8]) -> StorageResult<()> {
        let dest = self.full(path)?;
        let dir = dest
            .parent()
            .expect("object paths have a folder")
            .to_path_buf();
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| map(path, e))?;
            if let Some(up) = dir.parent() {
                sync_dir(up).map_err(|e| map(path, e))?;
            }
        }
        let mut r = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut r);
        let tmp = dir.join(format!("{TMP_PREFIX}{}", hex::encode(r)));
        let result = (|| -> io::Result<()> {
            if data.len() < DIRECT_MIN || !write_direct(&tmp, data)? {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.write_all(data)?;
                f.sync_all()?;
            }
            fs::rename(&tmp, &dest)?;
            sync_dir(&dir)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(map(path, e));
        }
        Ok(())
    }

    fn get(&self, path: &str) -> StorageResult<Vec<u8>> {
        fs::read(self.full(path)?).map_err(|e| map(path, e))
    }

    fn get_range(&self, path: &str, offset: u64, len: u32) -> StorageResult<Vec<u8>> {
        let mut f = File::open(self.full(path)?).map_err(|e| map(path, e))?;
        let mut buf = vec![0u8; len as usize];
        f.seek(SeekFrom::Start(offset)).map_err(|e| map(path, e))?;
        f.read_exact(&mut buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                StorageError::Permanent(format!("{path}: shorter than expected (truncated?)"))
            } else {
                map(path, e)
            }
        })?;
        Ok(buf)
    }

    fn stat(&self, path: &str) -> StorageResult<u64> {
        Ok(fs::metadata(self.full(path)?)
            .map_err(|e| map(path, e))?
            .len())
    }

    fn list(&self, dir: &str) -> StorageResult<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let base = self.full(dir)?;
        let rd = match fs::read_dir(&base) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(map(dir, e)),
        };
        for e in rd {
            let e = e.map_err(|e| map(dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) {
                continue;
            }
            let ft = e.file_type().map_err(|e| map(dir, e))?;
            if ft.is_dir() {
                let rd = match fs::read_dir(e.path()) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(map(dir, e)),
                };
                for sub in rd {
                    let sub = sub.map_err(|e| map(dir, e))?;
                    let sn = sub.file_name().to_string_lossy().into_owned();
                    if sn.starts_with(TMP_PREFIX) {
                        continue;
                    }
                    // Removed since the folder was read (a lock released): not there.
                    let len = match sub.metadata() {
                        Ok(m) => m.len(),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(map(dir, e)),
                    };
                    out.push((format!("{name}/{sn}"), len));
                }
            } else {
                match e.metadata() {
                    Ok(m) => out.push((name, m.len())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(map(dir, e)),
                }
            }
        }
        out.sort();
        Ok(super::shaped(dir, out))
    }

    fn delete(&self, path: &str) -> StorageResult<()> {
        fs::remove_file(self.full(path)?).map_err(|e| map(path, e))
    }

    /// `.tmp-*` files are writes in progress; one older than `age` belongs to a run
    /// that died (a pack takes seconds to write) and is removed.
    fn remove_stale_partials(&self, age: std::time::Duration) -> StorageResult<usize> {
        let mut removed = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(m) = e.metadata() else { continue };
                if m.is_dir() {
                    stack.push(p);
                } else if e.file_name().to_string_lossy().starts_with(TMP_PREFIX)
                    && m.modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|a| a > age)
                    && fs::remove_file(&p).is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Create the repository's folders (0700).
    fn create_layout(&self, dirs: &[&str]) -> StorageResult<()> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(&self.root)
            .map_err(|e| map(&self.root.display().to_string(), e))?;
        for d in dirs {
            b.create(self.full(d)?).map_err(|e| map(d, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path().join("repo"));
        b.create_layout(&["index"]).unwrap();
        let id = format!("ab{}", "c".repeat(62));
        let i1 = "1".repeat(64);
        b.put(&format!("packs/ab/{id}"), b"xyz").unwrap();
        b.put(&format!("index/{i1}"), b"1").unwrap();
        assert_eq!(b.get(&format!("packs/ab/{id}")).unwrap(), b"xyz");
        assert_eq!(b.get_range(&format!("packs/ab/{id}"), 1, 2).unwrap(), b"yz");
        assert!(b.get_range(&format!("packs/ab/{id}"), 2, 2).is_err());
        assert_eq!(b.list("packs").unwrap(), vec![(format!("ab/{id}"), 3)]);
        assert!(matches!(
            b.get("index/none"),
            Err(StorageError::NotFound(_))
        ));
        b.delete(&format!("index/{i1}")).unwrap();
        assert!(b.list("index").unwrap().is_empty());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(d.path().join("repo/packs/ab").join(&id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn names_that_leave_the_folder_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path().join("repo"));
        b.create_layout(&["keys"]).unwrap();
        for bad in [
            "keys/../../x",
            "../x",
            "/etc/x",
            "keys//x",
            "keys/./x",
            "",
            "keys/a\0b",
        ] {
            assert!(
                matches!(b.put(bad, b"x"), Err(StorageError::Permanent(_))),
                "{bad}"
            );
            assert!(b.get(bad).is_err() && b.delete(bad).is_err(), "{bad}");
        }
        assert!(!d.path().join("x").exists());
        // Planted files of another shape are not listed.
        fs::write(d.path().join("repo/keys/notes.txt"), b"x").unwrap();
        assert!(b.list("keys").unwrap().is_empty());
    }

    #[test]
    fn large_objects_written_around_the_cache_read_back_exactly() {
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path().join("repo"));
        b.create_layout(&["packs"]).unwrap();
        // One byte over a block, odd, and aligned, all from an unaligned slice; each
        // shorter than the one before, so a reused buffer's old bytes must not leak in.
        let big: Vec<u8> = (0..5 * ALIGN * 256 + 77)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        for (i, len) in [4 * ALIGN * 256 + 1, DIRECT_MIN + 4092, DIRECT_MIN]
            .into_iter()
            .enumerate()
        {
            let data = &big[3..3 + len];
            let path = format!("packs/0{i}/p{i}");
            b.put(&path, data).unwrap();
            assert_eq!(b.stat(&path).unwrap(), len as u64);
            assert!(b.get(&path).unwrap() == data, "object {i} differs");
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(d.path().join("repo").join(&path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let names: Vec<String> = fs::read_dir(d.path().join("repo/packs/00"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["p0"], "no temporary file is left");
    }

    #[test]
    fn only_old_partial_writes_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(d.path());
        let id = format!("ab{}", "c".repeat(62));
        b.put(&format!("packs/ab/{id}"), b"xyz").unwrap();
        let old = d.path().join("packs/ab/.tmp-dead");
        let fresh = d.path().join("packs/ab/.tmp-running");
        fs::write(&old, b"partial").unwrap();
        fs::write(&fresh, b"partial").unwrap();
        let t = filetime::FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_mtime(&old, t).unwrap();
        assert_eq!(
            b.remove_stale_partials(std::time::Duration::from_secs(3600))
                .unwrap(),
            1
        );
        assert!(!old.exists() && fresh.exists());
        assert_eq!(b.list("packs").unwrap().len(), 1);
    }
}
