//! `dump SNAPSHOT PATH` (issue #17): one file to standard output byte for byte,
//! a folder as a tar that stock tar extracts, a clear line for a path that is
//! not there, quiet when the reader goes away, and recorded in the audit log.

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn dump_writes_a_file_or_a_folder_to_standard_output() {
    let env = Env::new();
    let src = env.path("uploads");
    let exam = noise(3, 3 << 20);
    write(&src.join("exams/tomografia.dcm"), &exam);
    write(&src.join("exams/laudo.txt"), b"sem alteracoes\n");
    write(&src.join("records/ficha.txt"), b"paciente");
    env.snapshot(&[&src]);

    let o = env.run(&["dump", "latest", "uploads/exams/tomografia.dcm"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(o.stdout == exam, "the file, byte for byte");

    // A folder: a tar of it, under its own name.
    let o = env.run(&["dump", "latest", "uploads/exams"]);
    assert!(o.status.success(), "{}", out(&o));
    let x = env.path("x");
    std::fs::create_dir_all(&x).unwrap();
    let mut tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&x)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(tar.stdin.as_mut().unwrap(), &o.stdout).unwrap();
    assert!(tar.wait().unwrap().success());
    assert_eq!(std::fs::read(x.join("exams/tomografia.dcm")).unwrap(), exam);
    assert!(!x.join("records").exists());

    let o = env.run(&["dump", "latest", "uploads/nope.pdf"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("is not in snapshot"), "{}", out(&o));

    // `| head -c 10`: the reader leaves early; no error, exit 0.
    let script = format!(
        "set -o pipefail; {:?} --repo {:?} dump latest uploads/exams/tomografia.dcm | head -c 10 >/dev/null",
        env!("CARGO_BIN_EXE_hcbackup"),
        env.repo
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("HCBACKUP_PASSWORD", PASSWORD)
        .env("HCBACKUP_CACHE_DIR", &env.cache)
        .env("HCBACKUP_TEST_KDF", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert!(o.stderr.is_empty(), "{}", out(&o));

    let audit = env.json(&["audit"]);
    assert!(audit.to_string().contains("\"dump\""), "{audit}");
    env.verified();
}

/// Shell completions and the manual page come from the command line itself.
#[test]
fn completions_and_the_manual_page_cover_every_command() {
    let env = Env::uninit();
    let bash = env.ok(&["completions", "bash"]);
    for sub in [
        "snapshot", "restore", "dump", "diff", "find", "forget", "verify",
    ] {
        assert!(
            bash.contains(sub),
            "{sub} missing from the bash completions"
        );
    }
    assert!(env
        .ok(&["completions", "zsh"])
        .contains("#compdef hcbackup"));
    let man = env.ok(&["man"]);
    assert!(man.contains(".TH hcbackup 1"), "{man}");
    assert!(man.contains("restore"), "{man}");
}
