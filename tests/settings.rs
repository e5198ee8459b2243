//! Settings from the environment and `.env`, attacked (issue #18's attack
//! round): values that crashed the binary, leaked a secret, changed a password
//! behind the operator's back, or were silently taken for "unset".

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use common::*;

fn dotenv(env: &Env, text: &[u8]) {
    let p = env.path(".env");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Exit code and everything printed; never a panic (101).
fn run(c: &mut std::process::Command) -> (Option<i32>, String) {
    let o = c.output().unwrap();
    assert_ne!(o.status.code(), Some(101), "panicked: {}", out(&o));
    (o.status.code(), out(&o))
}

#[test]
fn a_nul_byte_in_dotenv_is_refused_without_showing_the_value() {
    let env = Env::new();
    dotenv(&env, b"POSTGRES_PASSWORD=TopSecretDbPw\0x\n");
    let log = env.path("run.log");
    let (code, said) = run(env.cmd().arg("--log-file").arg(&log).arg("snapshots"));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains(".env") && said.contains("NUL"), "{said}");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !said.contains("TopSecret") && !logged.contains("TopSecret"),
        "{said}{logged}"
    );
}

#[test]
fn a_dollar_in_dotenv_is_refused_unless_quoted_literally() {
    let env = Env::uninit();
    let init = |pw_line: &str| {
        dotenv(&env, format!("HCBACKUP_PASSWORD={pw_line}\n").as_bytes());
        let mut c = env.cmd();
        c.env_remove("HCBACKUP_PASSWORD").arg("init");
        run(&mut c)
    };
    // dotenv would make this `correct-horse-battery-2026`: refused, with its line.
    let (code, said) = init("correct-horse-battery$staple-2026");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("line 1")
            && said.contains("HCBACKUP_PASSWORD")
            && said.contains("single quotes"),
        "{said}"
    );
    assert!(!said.contains("staple"), "{said}");
    assert!(!env.repo.join("config").exists());
    // In single quotes it is the password as written.
    let (code, said) = init("'correct-horse-battery$staple-2026'");
    assert_eq!(code, Some(0), "{said}");
    std::fs::remove_file(env.path(".env")).unwrap();
    let o = env
        .cmd()
        .env("HCBACKUP_PASSWORD", "correct-horse-battery$staple-2026")
        .arg("snapshots")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}

#[test]
fn values_out_of_range_are_settings_errors_not_crashes() {
    let env = Env::new();
    for (name, value) in [
        ("HCBACKUP_CLOUD_TIMEOUT", "18446744073709551615"),
        ("HCBACKUP_CLOUD_TIMEOUT", "86401"),
        ("HCBACKUP_PG_LOCK_TIMEOUT", "2147484"),
        ("HCBACKUP_LOCK_WAIT", "18446744073709551615"),
        ("POSTGRES_PORT", "0"),
    ] {
        let (code, said) = run(env
            .cmd()
            .env("POSTGRES_DB", "clinic")
            .env(name, value)
            .arg("snapshots"));
        assert_eq!(code, Some(1), "{name}={value}: {said}");
        assert!(
            said.contains(name) && said.contains("give"),
            "{name}={value}: {said}"
        );
    }
    for (vars, says) in [
        (&[("S3_OBJECT_LOCK_DAYS", "2913000")][..], "36500"),
        (
            &[("S3_OBJECT_LOCK_MODE", "compliance")][..],
            "S3_OBJECT_LOCK_DAYS",
        ),
    ] {
        let mut c = env.cmd();
        c.env("S3_BACKUP_BUCKET", "clinic").arg("snapshots");
        for (k, v) in vars {
            c.env(k, v);
        }
        let (code, said) = run(&mut c);
        assert_eq!(code, Some(1), "{vars:?}: {said}");
        assert!(said.contains(says), "{vars:?}: {said}");
    }
    let (code, said) = run(env
        .cmd_repo("s3://clinic/p?object_lock_days=3000000".as_ref())
        .arg("snapshots"));
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("36500"), "{said}");
}

#[test]
fn a_value_that_is_not_utf8_is_named_not_taken_for_unset() {
    let env = Env::new();
    let src = env.path("up");
    write(&src.join("a.pdf"), b"%PDF");
    let mut name = src.as_os_str().as_bytes().to_vec();
    name.push(0xff);
    let (code, said) = run(env
        .cmd()
        .env("UPLOADS_DIR", std::ffi::OsStr::from_bytes(&name))
        .arg("snapshot"));
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("UPLOADS_DIR") && said.contains("UTF-8"),
        "{said}"
    );
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn credentials_and_hook_addresses_never_reach_a_message() {
    let env = Env::new();
    // A service-account key pasted base64-encoded: neither JSON nor a path.
    let secret = "eyJwcml2YXRlX2tleSI6ICJTRUNSRVQtS0VZLU1BVEVSSUFMIn0K";
    let (code, said) = run(env
        .cmd_repo("drive://folder1".as_ref())
        .env("GOOGLE_CREDENTIALS", secret)
        .env("HCBACKUP_DRIVE_ROOT_URL", "http://127.0.0.1:9/")
        .arg("snapshots"));
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("GOOGLE_CREDENTIALS"), "{said}");
    assert!(!said.contains(secret), "{said}");
    // A hook address that is no http(s) address: named, not shown.
    let (code, said) = run(env
        .cmd()
        .env(
            "HCBACKUP_WEBHOOK_URL",
            "HTTPS://hooks.example/services/T0/SECRETPATH",
        )
        .args(["notify", "test"]));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("HCBACKUP_WEBHOOK_URL"), "{said}");
    assert!(
        !said.contains("SECRETPATH") && !said.contains("configuration: configuration"),
        "{said}"
    );
    // On a good run, a wrong alert setting is said too (not only on failure).
    let src = env.path("up");
    write(&src.join("a.pdf"), b"%PDF");
    let (code, said) = run(env
        .cmd()
        .env("HCBACKUP_WEBHOOK_URL", "http://127.0.0.1:9/hook")
        .env("HCBACKUP_NOTIFY_SUCCESS", "maybe")
        .args(["snapshot", src.to_str().unwrap()]));
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("no alert can be sent") && said.contains("HCBACKUP_NOTIFY_SUCCESS"),
        "{said}"
    );
    env.verified();
}
