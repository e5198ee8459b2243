//! The seed's formats both ways: backups made the old way (`pg_dump -F c`,
//! `tar czf … -C uploads .`) become snapshots dated by their names, with dedup
//! across nights; `export` gives back what stock `pg_restore` and `tar` read as
//! the originals.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::pg::Server;
use common::*;
use serde_json::Value;

/// `pg_dump -F c` of `db`, as the seed's script ran it.
fn pg_dump(server: &Server, db: &str, file: &Path) {
    let o = Command::new("pg_dump")
        .env("PGHOST", &server.host)
        .env("PGPORT", &server.port)
        .env("PGUSER", &server.user)
        .env("PGPASSWORD", &server.password)
        .args(["-F", "c", "-f"])
        .arg(file)
        .arg(db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}

/// `tar czf OUT -C DIR .`, as the seed's script ran it.
fn tar_czf(dir: &Path, file: &Path) {
    let o = Command::new("tar")
        .arg("czf")
        .arg(file)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}

fn untar(file: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let o = Command::new("tar")
        .arg("-xzf")
        .arg(file)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
}

fn pg_restore_list(file: &Path) -> String {
    let o = Command::new("pg_restore")
        .arg("-l")
        .arg(file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn import(env: &Env, uploads: &Path, files: &[PathBuf]) -> (i32, Value) {
    let o = env
        .cmd()
        .env("TZ", "UTC")
        .env("UPLOADS_DIR", uploads)
        .args(["--json", "import-legacy"])
        .args(files)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", out(&o)));
    (o.status.code().unwrap(), v)
}

#[test]
fn the_seeds_backups_import_with_dedup_and_export_back_identical() {
    let admin = Server::admin();
    let db = admin.create("legacy");
    db.psql(
        "CREATE TABLE patients(id int primary key, name text, born date);
         INSERT INTO patients SELECT g, 'paciente ' || g, date '1950-01-01' + g FROM generate_series(1, 2000) g;",
    );
    let env = Env::new();
    let uploads = env.path("uploads");
    write(&uploads.join("exams/tomografia.dcm"), &noise(1, 3 << 20));
    write(&uploads.join("records/prontuário.pdf"), &text(2, 200_000));
    fs::create_dir_all(uploads.join("empty-folder")).unwrap();
    std::os::unix::fs::symlink("../records/prontuário.pdf", uploads.join("exams/link.pdf"))
        .unwrap();
    let old = env.path("var-backups");
    fs::create_dir_all(&old).unwrap();
    let dump1 = old.join("db_backup_2025-01-15_03-00-00.dump");
    let tar1 = old.join("files_backup_2025-01-15_03-00-00.tar.gz");
    pg_dump(&admin, &db.name, &dump1);
    tar_czf(&uploads, &tar1);
    let day1_db = db.digest();
    let day1_files = env.path("day1-files");
    untar(&tar1, &day1_files);

    // The next night: a new exam, more patients.
    write(&uploads.join("exams/raio-x.png"), &noise(3, 100_000));
    db.psql("INSERT INTO patients SELECT g, 'novo ' || g, date '1990-01-01' FROM generate_series(2001, 2100) g;");
    let dump2 = old.join("db_backup_2025-01-16_03-00-00.dump");
    let tar2 = old.join("files_backup_2025-01-16_03-00-00.tar.gz");
    pg_dump(&admin, &db.name, &dump2);
    tar_czf(&uploads, &tar2);

    let (code, r) = import(
        &env,
        &uploads,
        &[tar2.clone(), dump1.clone(), tar1.clone(), dump2.clone()],
    );
    assert_eq!(code, 0, "{r}");
    let r = r.as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["time"], "2025-01-15T03:00:00Z");
    assert_eq!(r[1]["time"], "2025-01-16T03:00:00Z");
    // The second night adds the new exam and the dump, not the 3 MiB it shares.
    let day2_added = r[1]["bytes_added"].as_u64().unwrap();
    let dump2_len = fs::metadata(&dump2).unwrap().len();
    assert!(
        r[0]["bytes_added"].as_u64().unwrap() > 3 << 20,
        "{:?}",
        r[0]
    );
    assert!(day2_added < 100_000 + dump2_len + 50_000, "{day2_added}");

    let snaps = env.json(&["snapshots"]);
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[0]["tags"][0], "legacy-import");
    let id1 = snaps[0]["id"].as_str().unwrap();

    // Imported again: nothing new.
    let (code, again) = import(&env, &uploads, &[tar1.clone(), dump1.clone()]);
    assert_eq!(code, 0);
    assert_eq!(again[0]["skipped"], "already imported");
    assert_eq!(env.snapshot_ids().len(), 2);

    // Export back: the dump byte for byte; the files as tar reads them.
    let back = env.path("back.dump");
    env.ok(&["export", id1, "--db-dump", back.to_str().unwrap()]);
    assert_eq!(fs::read(&back).unwrap(), fs::read(&dump1).unwrap());
    assert_eq!(pg_restore_list(&back), pg_restore_list(&dump1));
    let back_tar = env.path("back.tar.gz");
    env.ok(&["export", id1, "--tar", back_tar.to_str().unwrap()]);
    let extracted = env.path("back-files");
    untar(&back_tar, &extracted);
    let (want, got) = (digest(&day1_files), digest(&extracted));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (path, w) in &want {
        let g = &got[path];
        assert_eq!(
            (w.kind, w.mode, w.size, w.hash, &w.target, w.mtime.0),
            (g.kind, g.mode, g.size, g.hash, &g.target, g.mtime.0),
            "{}",
            String::from_utf8_lossy(path)
        );
    }
    // And hcbackup's own restore of the imported night gives back that database.
    let copy = format!("{}_copy", db.name);
    let o = env
        .pg_cmd(&admin, &db.name)
        .args(["restore", id1, "--db", &copy])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(admin.digest(&copy), day1_db);
    admin.psql("postgres", &format!("DROP DATABASE {copy}"));
    // The monthly restore test works on an imported night too (no counts to compare).
    let o = env
        .pg_cmd(&admin, &db.name)
        .args(["--json", "verify", "--restore-test", id1])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));

    // The audit log has the import.
    let ev = env.json(&["audit"]);
    assert!(ev
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["operation"] == "import-legacy" && e["detail"] == "2 snapshots imported"));
}

#[test]
fn bad_legacy_files_are_named_and_the_rest_imported() {
    let env = Env::new();
    let uploads = env.path("uploads");
    write(&uploads.join("a.txt"), b"a");
    let old = env.path("old");
    fs::create_dir_all(&old).unwrap();
    let good = old.join("files_backup_2025-02-01_03-00-00.tar.gz");
    tar_czf(&uploads, &good);
    let corrupt_dump = old.join("db_backup_2025-02-02_03-00-00.dump");
    fs::write(&corrupt_dump, b"not a dump at all").unwrap();
    let corrupt_tar = old.join("files_backup_2025-02-03_03-00-00.tar.gz");
    fs::write(&corrupt_tar, b"\x1f\x8b not really gzip").unwrap();
    let (code, r) = import(&env, &uploads, &[good, corrupt_dump, corrupt_tar]);
    assert_eq!(code, 1, "{r}");
    assert!(r[0]["snapshot"].is_string(), "{r}");
    assert!(
        r[1]["error"].as_str().unwrap().contains("pg_dump -F c"),
        "{r}"
    );
    assert!(r[2]["error"].as_str().unwrap().contains("tar czf"), "{r}");
    assert_eq!(env.snapshot_ids().len(), 1);
    // A name the old script never wrote is a usage error, before anything is imported.
    let other = old.join("backup.tar.gz");
    fs::write(&other, b"x").unwrap();
    let o = env
        .cmd()
        .args(["import-legacy"])
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("files_backup_YYYY-MM-DD_HH-MM-SS.tar.gz"));
    env.verified();
}
