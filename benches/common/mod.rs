//! Helpers shared by the end-to-end benches: timing a command with GNU time (wall
//! seconds and peak RSS) and the size of a folder.
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::Command;

pub struct Measure {
    pub secs: f64,
    pub peak_kib: u64,
}

/// Run `cmd` under /usr/bin/time; it must succeed.
pub fn timed(cmd: &mut Command) -> Measure {
    let out = std::env::temp_dir().join(format!("hcb-time-{}", std::process::id()));
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut t = Command::new("/usr/bin/time");
    t.arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&out)
        .arg(prog)
        .args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        t.current_dir(d);
    }
    let o = t.output().expect("run /usr/bin/time");
    assert!(
        o.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&o.stderr)
    );
    let s = fs::read_to_string(&out).unwrap();
    let last = s.lines().last().unwrap();
    let mut it = last.split_whitespace();
    Measure {
        secs: it.next().unwrap().parse().unwrap(),
        peak_kib: it.next().unwrap().parse().unwrap(),
    }
}

/// Bytes of the files below `p`.
pub fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            n += if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            };
        }
    }
    n
}

/// What `program ARG` prints about its version (one trimmed line).
pub fn version(program: &str, arg: &str) -> String {
    let o = Command::new(program).arg(arg).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}
