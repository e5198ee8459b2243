//! The seed's scenario 3, server lost: a clinic's files and database are
//! snapshotted with both mirrors (S3 on the moto server, Google Drive on the
//! project's Drive v3 test server); the local repository and its catalog are
//! deleted; a fresh machine restores files and database byte-exact from each cloud.

mod common;

use std::ffi::OsStr;

use common::drive::DriveServer;
use common::pg::{Server, TestDb};
use common::s3 as moto;
use common::{assert_same_tree, noise, out, text, write, Env};

const MARKER: &[u8] = b"PACIENTE-MARCADOR-7f3a9c";

#[test]
fn after_losing_the_server_files_and_database_restore_from_s3_and_from_drive() {
    let server = Server::from_env();
    let db = server.create("dr");
    db.load_clinic(1);
    let before = db.digest();
    let drive = DriveServer::start();
    let folder = drive.shared_folder("clinic-backups");
    let bucket = moto::new_bucket("hcb-dr");
    let env = Env::new();
    let uploads = env.path("uploads");
    write(&uploads.join("exames/rm.dcm"), &noise(11, 9 << 20));
    write(&uploads.join("prontuarios/p1.txt"), &text(12, 200_000));
    let mut note = text(13, 10_000);
    note.extend_from_slice(MARKER);
    write(&uploads.join("prontuarios/p2.txt"), &note);
    let with_clouds = |c: &mut std::process::Command| {
        c.env("AWS_ENDPOINT_URL", moto::endpoint())
            .env("S3_BACKUP_BUCKET", &bucket)
            .env("GOOGLE_DRIVE_BACKUP_FOLDER", &folder)
            .env("GOOGLE_CREDENTIALS", drive.credentials())
            .env("HCBACKUP_DRIVE_ROOT_URL", &drive.root_url);
    };
    let run = |args: &[&str]| {
        let mut c = env.pg_cmd(&server, &db.name);
        with_clouds(&mut c);
        let o = c.args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", out(&o));
        String::from_utf8(o.stdout).unwrap()
    };

    // Two days of snapshots, each mirrored to both clouds by `snapshot` itself.
    for day in 0..2 {
        if day == 1 {
            write(&uploads.join("exames/novo.pdf"), &noise(14, 300_000));
        }
        let o = run(&["snapshot", uploads.to_str().unwrap()]);
        assert!(
            o.contains("mirror to s3:") && o.contains("mirror to drive:"),
            "{o}"
        );
    }
    // Client-side encryption: the marker never reaches Drive in the clear.
    assert!(!drive
        .all_bytes()
        .iter()
        .any(|d| d.windows(MARKER.len()).any(|w| w == MARKER)));

    // The server is lost: no local repository, no catalog.
    std::fs::remove_dir_all(&env.repo).unwrap();
    std::fs::remove_dir_all(&env.cache).unwrap();

    // From Google Drive as a repository of its own, then from S3 by `--from`.
    let drive_repo = format!("drive://{folder}");
    let on_drive = |args: &[&str]| {
        let mut c = env.pg_cmd_repo(&server, &db.name, OsStr::new(&drive_repo));
        with_clouds(&mut c);
        let o = c.args(args).output().unwrap();
        assert!(o.status.success(), "{args:?} on {drive_repo}: {}", out(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let list: serde_json::Value =
        serde_json::from_str(&on_drive(&["--json", "snapshots"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(on_drive(&["verify", "--read-data"]).contains("no problems"));

    for (how, args) in [("drive", vec![]), ("s3", vec!["--from", "s3"])] {
        let target = env.path(&format!("from-{how}"));
        let restored = TestDb {
            server: server.clone(),
            name: format!("{}_{how}", db.name),
        };
        let mut a = vec![
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--db",
            &restored.name,
        ];
        a.extend(args);
        if how == "drive" {
            on_drive(&a);
        } else {
            run(&a);
        }
        assert_same_tree(&uploads, &target.join("uploads"));
        assert_eq!(restored.digest(), before, "the database from {how}");
    }
}
