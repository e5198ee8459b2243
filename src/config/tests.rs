//! Settings read from a table instead of the process's environment.

use super::*;

fn read(env: &[(&str, &str)]) -> Result<Settings> {
    let flags = Flags {
        password_file: Some("/nonexistent/pw".into()),
        ..Flags::default()
    };
    Settings::read(&flags, &lookup::Table(env))
}

fn error(env: &[(&str, &str)]) -> String {
    read(env).unwrap_err().to_string()
}

#[test]
fn the_seeds_variables_make_the_repository_database_and_copies() {
    let s = read(&[
        ("BACKUP_DIR", "/srv/backups"),
        ("HOME", "/home/clinic"),
        ("POSTGRES_DB", "clinic"),
        ("POSTGRES_PORT", "5433"),
        ("POSTGRES_PASSWORD", " "),
        ("RETENTION_DAYS", "45"),
        ("S3_BACKUP_BUCKET", "clinic-backups"),
        ("S3_OBJECT_LOCK_DAYS", "30"),
        ("GOOGLE_DRIVE_BACKUP_FOLDER", "folder123"),
        ("HCBACKUP_STATUS_TOKEN", "0123456789abcdef"),
    ])
    .unwrap();
    assert_eq!(s.repo.as_deref(), Some("/srv/backups/repository"));
    assert_eq!(s.cache_dir, PathBuf::from("/home/clinic/.cache/hcbackup"));
    assert_eq!(s.retention_days, 45);
    let db = &s.databases[0];
    assert_eq!(
        (db.db.as_str(), db.port, db.host.as_str()),
        ("clinic", 5433, "localhost")
    );
    // A password of spaces is a password.
    assert_eq!(db.password.as_deref().map(String::as_str), Some(" "));
    let names: Vec<&str> = s.destinations.iter().map(|(n, _)| n.as_str()).collect();
    #[cfg(feature = "cloud")]
    {
        assert_eq!(names, ["s3", "drive"]);
        let RepoLocation::S3(s3) = &s.destinations[0].1 else {
            panic!("s3 is not an S3 location")
        };
        assert_eq!((s3.prefix.as_str(), s3.lock_days), ("backups/", Some(30)));
        assert!(s3.sse);
    }
    #[cfg(not(feature = "cloud"))]
    assert!(names.is_empty());
    assert!(format!("{:?}", s.status_token).contains('…'));
    assert!(
        !format!("{s:?}").contains("0123456789abcdef"),
        "the token is printed"
    );
}

#[test]
fn each_malformed_value_names_itself() {
    let home = ("HOME", "/home/clinic");
    for (name, value, says) in [
        ("RETENTION_DAYS", "a month", "whole number of days"),
        ("HCBACKUP_LOCK_WAIT", "-1", "seconds to wait"),
        ("HCBACKUP_SHRINK_PERCENT", "150", "percentage"),
        ("HCBACKUP_PG_LOCK_TIMEOUT", "0", "table lock"),
        ("POSTGRES_PORT", "99999", "port number"),
    ] {
        let env = [home, ("POSTGRES_DB", "clinic"), (name, value)];
        let e = error(&env);
        assert!(e.contains(name) && e.contains(says), "{name}={value}: {e}");
    }
    #[cfg(feature = "cloud")]
    for (name, value) in [
        ("S3_SSE", "maybe"),
        ("S3_FORCE_PATH_STYLE", "sometimes"),
        ("S3_OBJECT_LOCK_DAYS", "ten"),
        ("S3_OBJECT_LOCK_MODE", "strict"),
    ] {
        let e = error(&[home, ("S3_BACKUP_BUCKET", "b"), (name, value)]);
        assert!(
            e.contains(name) && e.contains("give"),
            "{name}={value}: {e}"
        );
    }
}

#[test]
fn a_bad_alert_setting_is_kept_for_when_an_alert_is_due() {
    let s = read(&[
        ("HOME", "/home/clinic"),
        ("HCBACKUP_WEBHOOK_URL", "ftp://example"),
    ])
    .unwrap();
    let e = s.alerts.unwrap_err();
    assert!(
        e.contains("HCBACKUP_WEBHOOK_URL") && !e.contains("ftp://example"),
        "{e}"
    );
    assert!(
        !e.starts_with("configuration:"),
        "said twice by notify test: {e}"
    );
    let s = read(&[("HOME", "/h"), ("HCBACKUP_NOTIFY_SUCCESS", "often")]).unwrap();
    assert!(s.alerts.unwrap_err().contains("HCBACKUP_NOTIFY_SUCCESS"));
}

#[test]
fn no_cache_folder_is_an_error_that_says_what_to_set() {
    assert!(error(&[]).contains("HCBACKUP_CACHE_DIR"));
}
