//! Everyday use (issue #17): nightly failures never pass as success, and a bad
//! night never costs more than what went wrong.

mod common;

use common::pg::Server;
use common::*;

/// The uploads folder is gone (an unmounted disk, a renamed folder): the
/// database is still dumped and saved, the run exits 3 naming the folder, and
/// `status` reports the source as failing.
#[test]
fn a_missing_uploads_folder_does_not_cost_the_database_dump() {
    let server = Server::from_env();
    let db = server.create("nouploads");
    db.psql("CREATE TABLE patients (id int PRIMARY KEY); INSERT INTO patients SELECT generate_series(1, 300);");
    let env = Env::new();
    let uploads = env.path("uploads");
    write(&uploads.join("exame.pdf"), b"%PDF");
    let run = |args: &[&str]| env.pg_cmd(&server, &db.name).args(args).output().unwrap();
    let o = run(&["snapshot", uploads.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));

    std::fs::remove_dir_all(&uploads).unwrap();
    let o = run(&["--json", "snapshot", uploads.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    let said = out(&o);
    assert!(
        said.contains(uploads.to_str().unwrap()) && said.contains("cannot be read"),
        "{said}"
    );
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snap["incomplete"], true, "{snap}");
    assert_eq!(snap["databases"][0]["ok"], true, "{snap}");

    // The night's dump is there and restores.
    let id = snap["id"].as_str().unwrap();
    let file = env.path("night.dump");
    env.ok(&["restore", id, "--db-file", file.to_str().unwrap()]);
    assert!(std::fs::read(&file).unwrap().starts_with(b"PGDMP"));
    // `status` says the files source failed in its newest snapshot.
    let o = run(&["--json", "status"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let problems = st["problems"].to_string();
    assert!(problems.contains(uploads.to_str().unwrap()), "{st}");
    assert_ne!(o.status.code(), Some(0), "{st}");

    // With nothing else to save, the run fails as before (exit 2) and saves nothing.
    let o = env.run(&["snapshot", uploads.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert_eq!(env.snapshot_ids().len(), 2);
}
