//! A repository in a local folder. Writes go to a temporary file in the same folder,
//! are fsynced, renamed into place, and the folder is fsynced: a crash leaves either
//! the old state or the complete object, never a torn one. Files 0600, folders 0700.
//!
//! The folder is storage, and storage is hostile (a USB disk someone else had in
//! hand, a share other users write to): below the root (the operator's path),
//! every step is taken relative to an open folder with `O_NOFOLLOW`. A link where
//! a folder of the repository belongs (`usb/holds -> /var/backups/repository/
//! snapshots`) or where an object belongs (`keys/<id> -> /etc/shadow`) is refused,
//! never followed; FIFOs and devices are not objects (they are neither read, which
//! could hang, nor listed); no object larger than `MAX_GET` is read into memory.

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::PathBuf;

use rand::RngCore;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::{Backend, StorageError, StorageResult};

pub const TMP_PREFIX: &str = ".tmp-";

/// This host's tag in temporary names: a short hash of its name.
fn host_tag() -> String {
    blake3::hash(crate::util::hostname().as_bytes()).to_hex()[..8].to_string()
}

/// A temporary name for a write in progress: `.tmp-<host tag>-<pid>-<random>`,
/// so that the temporary files of a run that is gone (killed on this host) are
/// known as such and removed by the next run at once (`remove_stale_partials`),
/// not after an hour; the hour still applies to other hosts' and to older names.
fn tmp_name() -> String {
    let mut r = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut r);
    format!(
        "{TMP_PREFIX}{}-{}-{}",
        host_tag(),
        std::process::id(),
        hex::encode(r)
    )
}

/// Whether temporary file `name` was written by a process of this host that is gone.
fn writer_gone(name: &[u8], host: &str) -> bool {
    let Some(rest) = name.strip_prefix(TMP_PREFIX.as_bytes()) else {
        return false;
    };
    let mut parts = rest.split(|&b| b == b'-');
    let (Some(tag), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let pid = std::str::from_utf8(pid)
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    tag == host.as_bytes()
        && pid.is_some_and(|p| p != std::process::id() && !crate::util::pid_alive(p))
}

/// Largest object read whole into memory (packs are about 16 MiB, index objects
/// a few MiB, nothing this program writes comes near).
pub const MAX_GET: u64 = 1 << 30;

pub struct LocalBackend {
    root: PathBuf,
    /// The root, opened once (it is the operator's path; everything below it is
    /// reached from this descriptor).
    root_fd: std::sync::OnceLock<OwnedFd>,
    /// Packs read by range lately, kept open (most recent first): a restore
    /// reads thousands of chunks from each, and opening one walks its
    /// folders again. A pack never changes under its name; a write or delete
    /// through this backend drops its entry.
    open_packs: std::sync::Mutex<Vec<(String, std::sync::Arc<File>)>>,
}

/// Packs kept open by `LocalBackend::get_range`.
const OPEN_PACKS: usize = 8;

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalBackend {
            root: root.into(),
            root_fd: std::sync::OnceLock::new(),
            open_packs: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn open_packs(&self) -> std::sync::MutexGuard<'_, Vec<(String, std::sync::Arc<File>)>> {
        self.open_packs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `path` opened for ranged reads: a pack from the ones kept open.
    fn open_for_ranges(&self, path: &str) -> StorageResult<std::sync::Arc<File>> {
        if !path.starts_with("packs/") {
            return Ok(std::sync::Arc::new(self.open_object(path)?.0));
        }
        {
            let mut open = self.open_packs();
            if let Some(i) = open.iter().position(|(p, _)| p == path) {
                let hit = open.remove(i);
                let f = hit.1.clone();
                open.insert(0, hit);
                return Ok(f);
            }
        }
        let f = std::sync::Arc::new(self.open_object(path)?.0);
        let mut open = self.open_packs();
        open.insert(0, (path.to_string(), f.clone()));
        open.truncate(OPEN_PACKS);
        Ok(f)
    }

    /// A write or delete of `path`: no longer read from an open copy.
    fn forget_open(&self, path: &str) {
        self.open_packs().retain(|(p, _)| p != path);
    }

    /// The components of object `path`. Paths come from this program, but some
    /// are made of names another copy listed: anything absolute, empty, `.` or
    /// `..` in them is refused rather than joined.
    fn parts<'p>(&self, path: &'p str) -> StorageResult<Vec<&'p str>> {
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
        Ok(path.split('/').collect())
    }

    /// The root folder, opened on first use (made first when `create`: a new copy,
    /// such as a fresh USB folder).
    fn root_dir(&self, what: &str, create: bool) -> StorageResult<BorrowedFd<'_>> {
        if let Some(fd) = self.root_fd.get() {
            return Ok(fd.as_fd());
        }
        // The operator's path, without following anyone else's link on the way
        // (a USB mount point another user can write to).
        let fd = crate::trusted_path::open_dir(&self.root, create).map_err(|e| map(what, e))?;
        Ok(self.root_fd.get_or_init(|| fd).as_fd())
    }

    /// The folder holding object `path` (its components but the last), opened one
    /// component at a time without following a link; made (0700) when `create`.
    fn folder<'p>(&self, path: &'p str, create: bool) -> StorageResult<(OwnedFd, &'p str)> {
        let parts = self.parts(path)?;
        let (name, dirs) = parts.split_last().expect("at least one part");
        let root = self.root_dir(path, create)?;
        let mut fd: Option<OwnedFd> = None;
        for d in dirs {
            let at = fd.as_ref().map_or(root, |f| f.as_fd());
            let next = match open_dir(at, d) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(at, *d, Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(map(path, e.into())),
                    }
                    rustix::fs::fsync(at).map_err(|e| map(path, e.into()))?;
                    open_dir(at, d)
                }
                other => other,
            }
            .map_err(|e| not_followed(path, e))?;
            fd = Some(next);
        }
        let fd = match fd {
            Some(fd) => fd,
            None => rustix::io::fcntl_dupfd_cloexec(root, 0).map_err(|e| map(path, e.into()))?,
        };
        Ok((fd, name))
    }

    /// Open object `path` for reading: a regular file, reached without following
    /// links, not larger than `MAX_GET`; with its size.
    fn open_object(&self, path: &str) -> StorageResult<(File, u64)> {
        let (dir, name) = self.folder(path, false)?;
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| not_followed(path, e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| map(path, e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(StorageError::Permanent(format!(
                "{path} is not a regular file (someone changed the repository): refusing to read it"
            )));
        }
        Ok((File::from(fd), st.st_size as u64))
    }
}

/// An error of a step that does not follow links: a link (or a file where a
/// folder belongs) is named as such.
fn not_followed(what: &str, e: Errno) -> StorageError {
    match e {
        Errno::LOOP | Errno::NOTDIR => StorageError::Permanent(format!(
            "{what}: the repository has a link (or a file) where a folder or object belongs (someone changed it): refusing to follow it"
        )),
        e => map(what, e.into()),
    }
}

fn open_dir(dir: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
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

/// Objects this large (packs) are written around the page cache.
const DIRECT_MIN: usize = 1024 * 1024;
/// O_DIRECT wants buffer, offset and length aligned to the device's block size.
const ALIGN: usize = 4096;

thread_local! {
    // One aligned buffer per writing thread, reused: fresh pages cost more than the copy.
    static ALIGNED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Create the new file `tmp` in `dir`, without following a link.
fn create_new(dir: BorrowedFd<'_>, tmp: &str, extra: OFlags) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Write `data` to the new file `tmp` in `dir` with O_DIRECT and fsync it.
/// Returns false, leaving nothing behind, when the file system does not take
/// O_DIRECT (ramfs, tmpfs before Linux 6.6, some FUSE and network file systems):
/// the caller then writes it buffered.
///
/// Why: a night's packs are written once and not read again soon. Through the page
/// cache they would push out what the clinic's server keeps there (PostgreSQL's
/// pages), and each byte would be copied into freshly allocated cache pages, which
/// cost more CPU than compressing it on the virtual machines measured here
/// (docs/benchmarks.md). The disk reads the aligned buffer directly instead.
fn write_direct(dir: BorrowedFd<'_>, tmp: &str, data: &[u8]) -> io::Result<bool> {
    let mut f = match create_new(dir, tmp, OFlags::DIRECT) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // Some file systems (ramfs) create the file before refusing the flag.
            match rustix::fs::unlinkat(dir, tmp, AtFlags::empty()) {
                Err(e) if e != Errno::NOENT => return Err(e.into()),
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
            rustix::fs::unlinkat(dir, tmp, AtFlags::empty())?;
            return Ok(false);
        }
        r => r?,
    }
    // The padding goes again; the size is exact before the file is made durable.
    f.set_len(data.len() as u64)?;
    f.sync_all()?;
    Ok(true)
}

/// Regular files (name, size) of the open folder `dir`; with `fan_out`, also
/// those of its subfolders, as `sub/name`. Links, FIFOs and devices are not
/// objects and are left out; a subfolder that is a link is not entered.
fn list_dir(
    dir: BorrowedFd<'_>,
    what: &str,
    fan_out: bool,
    out: &mut Vec<(String, u64)>,
    prefix: &str,
) -> StorageResult<()> {
    let entries = rustix::fs::Dir::read_from(dir).map_err(|e| map(what, e.into()))?;
    for e in entries {
        let e = e.map_err(|e| map(what, e.into()))?;
        let Ok(name) = e.file_name().to_str() else {
            continue; // not UTF-8: never one of ours (`shaped` would drop it too)
        };
        if name == "." || name == ".." || name.starts_with(TMP_PREFIX) {
            continue;
        }
        // Removed since the folder was read (a lock released): not there.
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(map(what, e.into())),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => out.push((format!("{prefix}{name}"), st.st_size as u64)),
            FileType::Directory if fan_out => {
                let sub = match open_dir(dir, name) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(map(what, e.into())),
                };
                list_dir(sub.as_fd(), what, false, out, &format!("{name}/"))?;
            }
            _ => {}
        }
    }
    Ok(())
}

impl LocalBackend {
    /// Write `path` through a temporary file, fsynced, renamed, folder fsynced;
    /// without `replace` an existing object is left alone (false).
    fn write(&self, path: &str, data: &[u8], replace: bool) -> StorageResult<bool> {
        self.forget_open(path);
        let (dir, name) = self.folder(path, true)?;
        let tmp = tmp_name();
        let result = (|| -> io::Result<bool> {
            if data.len() < DIRECT_MIN || !write_direct(dir.as_fd(), &tmp, data)? {
                let mut f = create_new(dir.as_fd(), &tmp, OFlags::empty())?;
                f.write_all(data)?;
                f.sync_all()?;
            }
            if replace {
                rustix::fs::renameat(&dir, tmp.as_str(), &dir, name)?;
            } else {
                match rustix::fs::renameat_with(
                    &dir,
                    tmp.as_str(),
                    &dir,
                    name,
                    rustix::fs::RenameFlags::NOREPLACE,
                ) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::EXIST) => {
                        let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
                        return Ok(false);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            rustix::fs::fsync(&dir)?;
            Ok(true)
        })();
        result.map_err(|e| {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
            map(path, e)
        })
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn read_only(&self) -> bool {
        rustix::fs::statvfs(&self.root)
            .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
    }

    fn put(&self, path: &str, data: &[u8]) -> StorageResult<()> {
        self.write(path, data, true).map(|_| ())
    }

    /// Atomic: the rename refuses to replace (RENAME_NOREPLACE).
    fn put_new(&self, path: &str, data: &[u8]) -> StorageResult<bool> {
        self.write(path, data, false)
    }

    fn get(&self, path: &str) -> StorageResult<Vec<u8>> {
        let (mut f, size) = self.open_object(path)?;
        if size > MAX_GET {
            return Err(StorageError::Permanent(format!(
                "{path} is {size} bytes, more than any object this program writes (someone changed the repository): refusing to read it"
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        (&mut f)
            .take(MAX_GET)
            .read_to_end(&mut buf)
            .map_err(|e| map(path, e))?;
        Ok(buf)
    }

    fn get_range(&self, path: &str, offset: u64, len: u32) -> StorageResult<Vec<u8>> {
        let f = self.open_for_ranges(path)?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                StorageError::Permanent(format!("{path}: shorter than expected (truncated?)"))
            } else {
                map(path, e)
            }
        })?;
        Ok(buf)
    }

    fn stat(&self, path: &str) -> StorageResult<u64> {
        let (dir, name) = self.folder(path, false)?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| map(path, e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(StorageError::Permanent(format!(
                "{path} is not a regular file"
            )));
        }
        Ok(st.st_size as u64)
    }

    fn list(&self, dir: &str) -> StorageResult<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let fd = match self.folder(&format!("{dir}/x"), false) {
            Ok((fd, _)) => fd,
            Err(StorageError::NotFound(_)) => return Ok(out),
            Err(e) => return Err(e),
        };
        list_dir(fd.as_fd(), dir, true, &mut out, "")?;
        out.sort();
        Ok(super::shaped(dir, out))
    }

    fn list_foreign(&self, dir: &str) -> StorageResult<Vec<String>> {
        let fd = match self.folder(&format!("{dir}/x"), false) {
            Ok((fd, _)) => fd,
            Err(StorageError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        let entries = rustix::fs::Dir::read_from(&fd).map_err(|e| map(dir, e.into()))?;
        for e in entries {
            let e = e.map_err(|e| map(dir, e.into()))?;
            let name = String::from_utf8_lossy(e.file_name().to_bytes()).into_owned();
            if name == "." || name == ".." || name.starts_with(TMP_PREFIX) {
                continue;
            }
            let regular = match rustix::fs::statat(&fd, e.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::RegularFile,
                // Removed since the folder was read (a lock released): not there.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(_) => false,
            };
            if !regular || !super::well_formed(dir, &name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn delete(&self, path: &str) -> StorageResult<()> {
        self.forget_open(path);
        let (dir, name) = self.folder(path, false)?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| map(path, e.into()))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(StorageError::Permanent(format!(
                "{path} is a folder, not an object"
            )));
        }
        rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(|e| map(path, e.into()))
    }

    /// `.tmp-*` files are writes in progress; one whose writer on this host is
    /// gone (its name says which process wrote it), or older than `age` (a pack
    /// takes seconds to write; another host's, or an older name), belongs to a run
    /// that died and is removed. Walked through
    /// open folders without following links (the repository's folders and the
    /// fan-out folders below them), so a folder swapped for a link never takes
    /// the removal elsewhere.
    fn remove_stale_partials(&self, age: std::time::Duration) -> StorageResult<usize> {
        let host = host_tag();
        let sweep = |dir: BorrowedFd<'_>, removed: &mut usize| walk(dir, 0, age, &host, removed);
        fn walk(
            dir: BorrowedFd<'_>,
            depth: u32,
            age: std::time::Duration,
            host: &str,
            removed: &mut usize,
        ) {
            let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
                return;
            };
            let now = std::time::SystemTime::now();
            for e in entries.flatten() {
                let name = e.file_name();
                let bytes = name.to_bytes();
                if bytes == b"." || bytes == b".." {
                    continue;
                }
                let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                    continue;
                };
                match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory if depth < 2 => {
                        if let Ok(sub) = rustix::fs::openat(
                            dir,
                            name,
                            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        ) {
                            walk(sub.as_fd(), depth + 1, age, host, removed);
                        }
                    }
                    FileType::RegularFile if bytes.starts_with(TMP_PREFIX.as_bytes()) => {
                        let mtime = std::time::UNIX_EPOCH
                            + std::time::Duration::from_secs(st.st_mtime.max(0) as u64);
                        let old = now.duration_since(mtime).is_ok_and(|a| a > age);
                        let stale = old || writer_gone(bytes, host);
                        if stale && rustix::fs::unlinkat(dir, name, AtFlags::empty()).is_ok() {
                            *removed += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut removed = 0;
        match self.root_dir("the repository folder", false) {
            Ok(root) => sweep(root, &mut removed),
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        Ok(removed)
    }

    /// Create the repository's folders (0700).
    fn create_layout(&self, dirs: &[&str]) -> StorageResult<()> {
        let mut b = fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(&self.root)
            .map_err(|e| map(&self.root.display().to_string(), e))?;
        let root = self.root_dir("the repository folder", true)?;
        if let Ok(st) = rustix::fs::fstat(root) {
            // SAFETY: geteuid cannot fail.
            let mine = st.st_uid == unsafe { libc::geteuid() };
            let open = st.st_mode & 0o022 != 0;
            if open && !(mine && rustix::fs::fchmod(root, Mode::from_raw_mode(0o700)).is_ok()) {
                tracing::warn!(
                    "the repository folder {} can be written by others (mode {:o}): they cannot read the backups, but they can damage them; give it to this user, mode 0700",
                    self.root.display(),
                    st.st_mode & 0o7777
                );
            }
        }
        for d in dirs {
            match rustix::fs::mkdirat(root, *d, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(map(d, e.into())),
            }
            open_dir(root, d).map_err(|e| not_followed(d, e))?;
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
