//! Small helpers about the running process: host, user, time.

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates on success.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Who runs this process, for the audit log, locks and key files: the password
/// database's name of its uid (`$USER` can be set to anything), then `$USER`.
pub fn username() -> String {
    passwd_name()
        .or_else(|| {
            use crate::config::lookup::{Lookup, Process};
            Process.var("USER").or_else(|| Process.var("LOGNAME"))
        })
        .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() }))
}

/// The login name of this process's uid in the password database (cron and
/// systemd may set neither USER nor LOGNAME).
fn passwd_name() -> Option<String> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; on success `pw.pw_name` points
    // into `buf`, which outlives its use here.
    let r = unsafe {
        libc::getpwuid_r(
            libc::getuid(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if r != 0 || found.is_null() || pw.pw_name.is_null() {
        return None;
    }
    let name = unsafe { std::ffi::CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// Variables every child process may see: where programs are, who and where it
/// runs, language and time zone. Nothing else of hcbackup's environment, which
/// holds the repository password, cloud keys, the SMTP password and webhook and
/// status secrets, reaches a child.
const CHILD_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
];

/// A command for `program` with a cleared environment: the variables of
/// `CHILD_ENV`, every `LC_*`, and those named in `allow` (never
/// `HCBACKUP_PASSWORD`). The caller sets what the child needs besides.
pub fn child(program: impl AsRef<std::ffi::OsStr>, allow: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    c.env_clear();
    for (k, v) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        let wanted = CHILD_ENV.contains(&name)
            || name.starts_with("LC_")
            || (allow.contains(&name) && name != "HCBACKUP_PASSWORD");
        if wanted {
            c.env(&k, v);
        }
    }
    c
}

/// Now, as UTC.
pub fn now() -> time::OffsetDateTime {
    let t = time::OffsetDateTime::now_utc();
    if !cfg!(debug_assertions) {
        return t;
    }
    match crate::config::tuning::get().hooks.clock_offset {
        Some(s) => t + time::Duration::seconds(s),
        None => t,
    }
}

/// Now, UTC, in whole seconds (times people read and strings that compare).
pub fn now_seconds() -> time::OffsetDateTime {
    let t = now();
    t.replace_nanosecond(0).unwrap_or(t)
}

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `t` in a fixed layout (file and database names).
pub fn format_time(
    t: time::OffsetDateTime,
    layout: &[time::format_description::BorrowedFormatItem<'_>],
) -> String {
    t.format(layout).unwrap_or_default()
}

pub fn parse_rfc3339(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// An RFC 3339 time, or a date (`2026-01-15`, meaning its midnight UTC).
pub fn parse_when(s: &str) -> Option<time::OffsetDateTime> {
    parse_rfc3339(s).or_else(|| {
        time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
            .ok()
            .map(|d| d.midnight().assume_utc())
    })
}

/// True when a process with this pid exists on this host.
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Test hook, debug builds only: `HCBACKUP_FAILPOINT=name` or `name:N` kills the
/// process with SIGKILL at the N-th (default first) time it passes `failpoint(name)`,
/// so crash tests can stop a run at an exact step; `HCBACKUP_TEST_PAUSE=name:SECS`
/// or `name:SECS:N` sleeps there instead (every time, or the N-th time), so a test
/// can act on the file system or the repository meanwhile. Release builds ignore both.
pub fn failpoint(name: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    let hooks = &crate::config::tuning::get().hooks;
    if let Some(spec) = &hooks.pause {
        let mut parts = spec.split(':');
        if parts.next() == Some(name) {
            let secs: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
            let nth: Option<u64> = parts.next().and_then(|s| s.parse().ok());
            let count = hit(&format!("pause {name}"));
            if nth.is_none_or(|n| n == count) {
                if let Some(f) = &hooks.paused_file {
                    let _ = std::fs::write(f, name);
                }
                std::thread::sleep(std::time::Duration::from_secs(secs));
            }
        }
    }
    let Some(spec) = &hooks.failpoint else {
        return;
    };
    let (want, nth) = match spec.split_once(':') {
        Some((n, k)) => (n, k.parse().unwrap_or(1)),
        None => (spec.as_str(), 1),
    };
    if want == name && hit(name) == nth {
        // SAFETY: raising SIGKILL on ourselves, as `kill -9` would.
        unsafe { libc::raise(libc::SIGKILL) };
    }
}

/// How many times this process has passed the hook `name` (this time included).
fn hit(name: &str) -> u64 {
    static HITS: std::sync::Mutex<Vec<(String, u64)>> = std::sync::Mutex::new(Vec::new());
    let mut hits = HITS.lock().unwrap_or_else(|p| p.into_inner());
    match hits.iter_mut().find(|(n, _)| n == name) {
        Some((_, c)) => {
            *c += 1;
            *c
        }
        None => {
            hits.push((name.to_string(), 1));
            1
        }
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// From now on SIGINT, SIGTERM and SIGHUP only set a flag (see `interrupted`), so that an
/// operation can clean up (drop its temporary database) before it stops. Children
/// in the same process group still receive a terminal's Ctrl-C and stop.
pub fn catch_interrupts() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_interrupt as *const () as libc::sighandler_t,
        );
        // A dropped SSH session: clean up as for Ctrl-C.
        libc::signal(
            libc::SIGHUP,
            on_interrupt as *const () as libc::sighandler_t,
        );
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// A span of seconds as people read it: `30 s` under two minutes, `24 h` for
/// whole hours, else minutes rounded up (`90 min`).
pub fn human_secs(s: u64) -> String {
    match s {
        s if s < 120 => format!("{s} s"),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s => format!("{} min", s.div_ceil(60)),
    }
}

/// Bytes in binary units, as people read them (`1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
