//! Alerts: a failing snapshot (unreachable database) and a failing restore test
//! each reach a real SMTP server on loopback (aiosmtpd) and a webhook listener,
//! naming the failing step; a failing channel never hides the failure or changes
//! the exit code.

mod common;

use common::listener::{mail_to, smtp_port, unique_address, Webhook};
use common::pg::Server;
use common::*;

/// The binary with alerts to `to` (the SMTP sink) and to `hook`.
fn alerting(env: &Env, to: &str, hook: &str) -> std::process::Command {
    let mut c = env.cmd();
    c.env("BACKUP_NOTIFICATION_EMAIL", to)
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", smtp_port())
        .env("SMTP_FROM", "backups@clinic.test")
        .env("HCBACKUP_WEBHOOK_URL", hook);
    c
}

/// A TCP port on loopback where nothing listens.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_snapshot_whose_database_is_unreachable_alerts_by_email_and_webhook() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("records/a.pdf"), &text(1, 10_000));
    let to = unique_address("snapshot");
    let hook = Webhook::start(200);
    let dead = closed_port().to_string();
    let o = alerting(&env, &to, &hook.url)
        .env("POSTGRES_HOST", "127.0.0.1")
        .env("POSTGRES_PORT", &dead)
        .env("POSTGRES_USER", "clinic")
        .env("POSTGRES_PASSWORD", "pw")
        .env("POSTGRES_DB", "clinic")
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    // The files were saved; the database was not: incomplete, exit 3.
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    let step = format!("database dump of clinic on 127.0.0.1:{dead}");

    let mails = mail_to(&to);
    assert_eq!(mails.len(), 1, "one email for {to}");
    let m = &mails[0];
    assert!(
        m.contains("Subject: [hcbackup] INCOMPLETE: snapshot on "),
        "{m}"
    );
    assert!(m.contains(&format!("Failing step: {step}")), "{m}");
    assert!(m.contains("From: backups@clinic.test"), "{m}");
    assert!(m.contains("Exit code: 3"), "{m}");
    assert!(
        m.contains("What to do: the snapshot was saved without the failing source"),
        "{m}"
    );
    // The password is never part of a message.
    assert!(!m.contains("PGPASSWORD") && !m.contains(PASSWORD));

    let w = hook.next();
    assert!(
        w["text"].as_str().unwrap().contains("INCOMPLETE: snapshot"),
        "{w}"
    );
    assert_eq!(w["hcbackup"]["operation"], "snapshot");
    assert_eq!(w["hcbackup"]["result"], "incomplete");
    assert_eq!(w["hcbackup"]["exit_code"], 3);
    assert_eq!(w["hcbackup"]["step"], step.as_str());
    assert!(
        w["hcbackup"]["error"]
            .as_str()
            .unwrap()
            .contains("database clinic"),
        "{w}"
    );

    // A success sends nothing, unless asked.
    let o = alerting(&env, &to, &hook.url)
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert!(hook.none());
    assert_eq!(mail_to(&to).len(), 1);
    let o = alerting(&env, &to, &hook.url)
        .env("HCBACKUP_NOTIFY_SUCCESS", "1")
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(hook.next()["hcbackup"]["result"], "ok");
    assert_eq!(mail_to(&to).len(), 2);
    env.verified();
}

#[test]
fn a_failing_restore_test_alerts_naming_the_step() {
    let admin = Server::admin();
    let db = admin.create("alert_rt");
    db.psql("CREATE TABLE patients(id int primary key, name text); INSERT INTO patients SELECT g, 'p' || g FROM generate_series(1, 50) g;");
    let env = Env::new();
    let o = env
        .pg_cmd(&admin, &db.name)
        .args(["snapshot", "--no-mirror"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    std::fs::write(
        env.path("hcbackup.toml"),
        "[[restore_test.check]]\nname = \"patients\"\nquery = \"SELECT count(*) FROM patients\"\nexpect = \"51\"\n",
    )
    .unwrap();
    let to = unique_address("restoretest");
    let hook = Webhook::start(200);
    let mut c = env.pg_cmd(&admin, &db.name);
    c.env("BACKUP_NOTIFICATION_EMAIL", &to)
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", smtp_port())
        .env("HCBACKUP_WEBHOOK_URL", &hook.url);
    let o = c.args(["verify", "--restore-test"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));

    let mails = mail_to(&to);
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert!(m.contains("Subject: [hcbackup] FAILED: verify on "), "{m}");
    assert!(m.contains("Failing step: restore test"), "{m}");
    assert!(m.contains("checks failed: patients"), "{m}");
    let w = hook.next();
    assert_eq!(w["hcbackup"]["operation"], "verify");
    assert_eq!(w["hcbackup"]["step"], "restore test");

    // The restore test is an audit event of its own, failed, with its snapshot.
    let ev = env.json(&["audit"]);
    let rt = ev
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["operation"] == "restore test")
        .expect("a restore test event");
    assert_eq!(rt["result"], "failed");
    assert!(
        rt["detail"].as_str().unwrap().contains("restored in"),
        "{rt}"
    );
}

#[test]
fn a_failing_alert_channel_never_hides_the_failure() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("a.txt"), b"x");
    let broken_hook = Webhook::start(500);
    let o = env
        .cmd()
        .env("BACKUP_NOTIFICATION_EMAIL", "ops@clinic.test")
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", closed_port().to_string())
        .env("HCBACKUP_WEBHOOK_URL", &broken_hook.url)
        .env("POSTGRES_HOST", "127.0.0.1")
        .env("POSTGRES_PORT", closed_port().to_string())
        .env("POSTGRES_USER", "clinic")
        .env("POSTGRES_DB", "clinic")
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(
        err.contains("alert by email FAILED: SMTP 127.0.0.1:"),
        "{err}"
    );
    assert!(
        err.contains("alert by webhook FAILED: webhook http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("HTTP 500"), "{err}");
    // The webhook's secret path is not printed.
    assert!(!err.contains("secret"), "{err}");
    assert_eq!(broken_hook.next()["hcbackup"]["operation"], "snapshot");

    // Wrong alert settings do not stop a backup either.
    let o = env
        .cmd()
        .env("BACKUP_NOTIFICATION_EMAIL", "ops@clinic.test")
        .args(["snapshot", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    env.verified();
}

#[test]
fn notify_test_sends_on_every_channel_and_says_which_failed() {
    let env = Env::new();
    let to = unique_address("notify");
    let hook = Webhook::start(200);
    let o = alerting(&env, &to, &hook.url)
        .args(["notify", "test"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert!(mail_to(&to)[0].contains("Subject: [hcbackup] test message: notify test"));
    assert_eq!(hook.next()["hcbackup"]["result"], "test");

    let o = env
        .cmd()
        .env("BACKUP_NOTIFICATION_EMAIL", &to)
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", closed_port().to_string())
        .args(["notify", "test"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("email: FAILED"));
    // Nothing configured: a usage error saying what to set.
    let o = env.run(&["notify", "test"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("BACKUP_NOTIFICATION_EMAIL"));
    // Half configured: a configuration error.
    let o = env
        .cmd()
        .env("BACKUP_NOTIFICATION_EMAIL", &to)
        .args(["notify", "test"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SMTP_HOST"));
}

#[test]
fn a_mail_login_never_crosses_without_tls() {
    // The sink offers no STARTTLS: with SMTP_USER set, nothing is sent at all
    // rather than the password in the clear.
    let env = Env::new();
    let to = unique_address("tls");
    let o = env
        .cmd()
        .env("BACKUP_NOTIFICATION_EMAIL", &to)
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", smtp_port())
        .env("SMTP_USER", "backups")
        .env("SMTP_PASSWORD", "mail-password-never-in-clear")
        .args(["notify", "test"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("email: FAILED") && stdout.contains("STARTTLS"),
        "{stdout}"
    );
    assert!(!stdout.contains("mail-password-never-in-clear"));
    assert!(mail_to(&to).is_empty());
}

#[test]
fn a_damaged_copy_alerts_naming_the_verify_that_found_it() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(9, 500_000));
    env.snapshot(&[&src]);
    // Flip one byte in the middle of the biggest pack.
    let pack = pack_files(&env.repo).pop().unwrap();
    flip_byte(&pack, std::fs::metadata(&pack).unwrap().len() as usize / 2);
    let hook = Webhook::start(200);
    let o = env
        .cmd()
        .env("HCBACKUP_WEBHOOK_URL", &hook.url)
        .args(["verify", "--read-data"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let w = hook.next();
    assert_eq!(w["hcbackup"]["operation"], "verify");
    assert_eq!(w["hcbackup"]["step"], "verify of local");
    assert!(
        w["hcbackup"]["error"]
            .as_str()
            .unwrap()
            .contains("verify of local: "),
        "{w}"
    );
}

#[test]
fn status_alert_mails_when_stale_and_stays_quiet_when_fresh() {
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("records/a.pdf"), &text(2, 10_000));
    env.ok(&["snapshot", src.to_str().unwrap()]);
    let to = unique_address("status");
    let hook = Webhook::start(200);
    let fresh = alerting(&env, &to, &hook.url)
        .args(["status", "--alert"])
        .output()
        .unwrap();
    assert_eq!(fresh.status.code(), Some(0), "{}", out(&fresh));
    assert!(mail_to(&to).is_empty(), "a fresh status alerted");
    assert!(hook.none(), "a fresh status called the webhook");
    // Two days on, nothing new: stale, exit 2, one message naming why.
    let stale = alerting(&env, &to, &hook.url)
        .args(["status", "--alert", "--now", "2099-01-01T00:00:00Z"])
        .output()
        .unwrap();
    assert_eq!(stale.status.code(), Some(2), "{}", out(&stale));
    let mails = mail_to(&to);
    assert_eq!(mails.len(), 1, "one email for {to}");
    assert!(mails[0].contains("status on "), "{}", mails[0]);
    assert!(mails[0].contains("last good snapshot is"), "{}", mails[0]);
    let post = hook.next();
    assert_eq!(post["hcbackup"]["operation"], "status", "{post}");
    assert_eq!(post["hcbackup"]["exit_code"], 2, "{post}");
    env.verified();
}
