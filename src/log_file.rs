//! `--log-file FILE`: every line the process writes to stdout and stderr (its
//! own, tracing's, a warning from anywhere) is also appended to FILE with the
//! time and the process id, while stdout and stderr stay as they were. So a cron
//! entry can keep stderr for cron's mail (failures and warnings only) and still
//! have a timestamped log of every run.
//!
//! Both descriptors are swapped for pipes; a thread per pipe copies each line to
//! the original descriptor and to the file. `finish` closes the pipes and waits
//! for the threads, so nothing written before exit is lost.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

pub struct LogFile {
    file: Arc<Sink>,
    threads: Vec<JoinHandle<()>>,
    /// The descriptors swapped for pipes.
    fds: Vec<i32>,
}

impl LogFile {
    /// Open FILE for appending (created 0640; never through a link) and start
    /// copying stderr, and stdout unless the command writes data there (`dump`:
    /// a patient's file must not land in a log), into it.
    pub fn start(path: &Path, command: &str) -> Result<LogFile> {
        let file = Arc::new(Sink {
            file: Mutex::new(open(path)?),
            path: path.to_path_buf(),
            failed: AtomicBool::new(false),
            stderr: Mutex::new(
                std::io::stderr()
                    .as_fd()
                    .try_clone_to_owned()
                    .ok()
                    .map(File::from),
            ),
        });
        line(&file, "---", &format!("hcbackup {command} started"));
        let mut threads = Vec::new();
        let streams: &[(i32, &'static str)] = if command == "dump" {
            &[(2, "err")]
        } else {
            &[(1, "out"), (2, "err")]
        };
        for &(fd, stream) in streams {
            threads.push(
                tee(fd, stream, file.clone())
                    .map_err(|e| Error::io_path("copying output into the log file", path, e))?,
            );
        }
        Ok(LogFile {
            file,
            threads,
            fds: streams.iter().map(|(fd, _)| *fd).collect(),
        })
    }

    /// Flush, close the pipes, wait for every line to be copied, and record the
    /// exit code.
    pub fn finish(self, code: i32) {
        let _ = std::io::stdout().flush();
        let copied: Vec<i32> = self.fds.clone();
        // SAFETY: replacing fds 1 and 2 with /dev/null closes the pipes' write
        // ends (the originals live on in the threads' copies).
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null >= 0 {
                for fd in copied {
                    libc::dup2(null, fd);
                }
                libc::close(null);
            }
        }
        for t in self.threads {
            let _ = t.join();
        }
        line(&self.file, "---", &format!("exit {code}"));
    }
}

fn open(path: &Path) -> Result<File> {
    let refuse = |why: String| {
        Error::Usage(format!(
            "--log-file {}: {why}; give a regular file of this user's that others cannot write (not a link)",
            path.display()
        ))
    };
    let (parent, name) = crate::ops::output_file::split(path);
    let name = name.ok_or_else(|| refuse("it names a folder".into()))?;
    if crate::trusted_path::in_system_folder(path) {
        return Err(refuse("a system folder of devices or kernel files".into()));
    }
    // Reached without another user's link on the way (a shared /tmp).
    let dir = crate::trusted_path::open_dir(parent, false).map_err(|e| refuse(e.to_string()))?;
    // O_NONBLOCK: a FIFO planted at the path cannot hang the run.
    let flags = rustix::fs::OFlags::WRONLY
        | rustix::fs::OFlags::APPEND
        | rustix::fs::OFlags::CREATE
        | rustix::fs::OFlags::NOFOLLOW
        | rustix::fs::OFlags::CLOEXEC
        | rustix::fs::OFlags::NONBLOCK;
    let fd = rustix::fs::openat(&dir, name, flags, rustix::fs::Mode::from_raw_mode(0o640))
        .map_err(|e| refuse(std::io::Error::from(e).to_string()))?;
    let f = File::from(fd);
    let m = f.metadata().map_err(|e| refuse(e.to_string()))?;
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !m.file_type().is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    if m.uid() != me {
        return Err(refuse(format!("it belongs to uid {}", m.uid())));
    }
    if m.mode() & 0o022 != 0 {
        return Err(refuse(format!(
            "others can write it (mode {:o})",
            m.mode() & 0o777
        )));
    }
    Ok(f)
}

/// The pipes put in place of stdout and stderr: each one's (device, inode) and
/// a copy of the descriptor it replaced.
static SWAPPED: Mutex<Vec<((u64, u64), OwnedFd)>> = Mutex::new(Vec::new());

/// `file`, unless it is one of the pipes put in place of stdout or stderr: then
/// (a copy of) the descriptor that pipe replaced. Data a command writes to
/// `/dev/stdout` (`export --db-file /dev/stdout`) goes where stdout went, and
/// never into the log.
pub fn bypass(file: File) -> std::io::Result<File> {
    let st = rustix::fs::fstat(&file)?;
    let swapped = SWAPPED.lock().unwrap_or_else(|p| p.into_inner());
    match swapped.iter().find(|(id, _)| *id == (st.st_dev, st.st_ino)) {
        Some((_, original)) => Ok(File::from(original.try_clone()?)),
        None => Ok(file),
    }
}

/// Swap `fd` for a pipe whose lines a thread copies to the original and to `file`.
fn tee(fd: i32, stream: &'static str, file: Arc<Sink>) -> std::io::Result<JoinHandle<()>> {
    let mut ends = [0i32; 2];
    // SAFETY: pipe2 fills both descriptors or fails.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just opened and are owned here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    // SAFETY: dup of an open standard descriptor; the copy is owned here.
    let original = unsafe {
        let d = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3);
        if d < 0 {
            return Err(std::io::Error::last_os_error());
        }
        File::from(OwnedFd::from_raw_fd(d))
    };
    let pipe = rustix::fs::fstat(&write)?;
    SWAPPED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(((pipe.st_dev, pipe.st_ino), original.try_clone()?.into()));
    // SAFETY: both descriptors are open; fd now names the pipe's write end.
    if unsafe { libc::dup2(write.as_raw_fd(), fd) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(write);
    Ok(std::thread::spawn(move || {
        let mut original = original;
        let mut original_open = true;
        let mut reader = BufReader::new(File::from(read));
        let mut buf = Vec::new();
        while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
            // A closed reader (`| head`) ends the copy there, not the log.
            if original_open && original.write_all(&buf).is_err() {
                original_open = false;
            }
            let text = String::from_utf8_lossy(&buf);
            line(&file, stream, text.trim_end_matches('\n'));
            buf.clear();
        }
    }))
}

/// The log file, and where to say once that it cannot be written.
struct Sink {
    file: Mutex<File>,
    path: PathBuf,
    failed: AtomicBool,
    /// The stderr the run started with (cron's mail).
    stderr: Mutex<Option<File>>,
}

/// One log line: UTC time to the second, process id, stream, text. A line that
/// cannot be written (a full disk) is said once on the original stderr: the run
/// goes on, but not with a log that quietly stopped.
fn line(sink: &Sink, stream: &str, text: &str) {
    let now = crate::util::now();
    let t = crate::util::rfc3339(now.replace_nanosecond(0).unwrap_or(now));
    let written = {
        let mut f = sink.file.lock().unwrap_or_else(|p| p.into_inner());
        let l = format!("{t} [{}] {stream} {text}\n", std::process::id());
        f.write_all(l.as_bytes())
    };
    if let Err(e) = written {
        if !sink.failed.swap(true, Ordering::Relaxed) {
            let mut err = sink.stderr.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(err) = err.as_mut() {
                let _ = writeln!(
                    err,
                    "hcbackup: warning: the log file {} cannot be written ({e}): its lines are lost from here; free space there or fix it (the run goes on)",
                    sink.path.display()
                );
            }
        }
    }
}
