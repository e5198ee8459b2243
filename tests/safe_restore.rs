//! `restore --db` on a clinic's worst day (issue #17): an existing database is
//! replaced only when its name is spelled out (or with --force), and only after a
//! safety dump of it is saved in the repository; safety dumps are never `latest`
//! and never stand in for a nightly snapshot in `forget`; `restore latest --db`
//! takes the newest snapshot that holds a dump.

mod common;

use std::process::Output;

use common::pg::{Server, TestDb};
use common::*;

fn clinic(server: &Server, prefix: &str) -> TestDb {
    let db = server.create(prefix);
    db.psql(
        "CREATE TABLE patients (id int PRIMARY KEY, name text); \
         INSERT INTO patients SELECT g, 'paciente ' || g FROM generate_series(1, 8500) g;",
    );
    db
}

fn patients(db: &TestDb) -> String {
    db.psql("SELECT count(*) FROM patients")
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", out(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn tags_of(env: &Env) -> Vec<(String, Vec<String>)> {
    env.json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let tags = s["tags"]
                .as_array()
                .map(|t| t.iter().map(|t| t.as_str().unwrap().to_string()).collect());
            (
                s["id"].as_str().unwrap().to_string(),
                tags.unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn replacing_a_database_needs_its_name_and_saves_a_safety_dump_first() {
    let server = Server::from_env();
    let db = clinic(&server, "safe");
    let env = Env::new();
    let run = |args: &[&str]| env.pg_cmd(&server, &db.name).args(args).output().unwrap();
    let nightly = json(&run(&[
        "--json",
        "snapshot",
        "--time",
        "2026-11-30T03:00:00Z",
    ]));
    let nightly = nightly["id"].as_str().unwrap().to_string();
    // The clinic's day: 500 new patients after the nightly snapshot.
    db.psql("INSERT INTO patients SELECT g, 'novo ' || g FROM generate_series(8501, 9000) g");

    // POSTGRES_DB alone does not let a restore replace production.
    let o = run(&["restore", "latest", "--db"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let said = out(&o);
    assert!(
        said.contains(&format!("--db {}", db.name)) && said.contains("--force"),
        "{said}"
    );
    assert_eq!(patients(&db), "9000");
    assert_eq!(
        env.snapshot_ids().len(),
        1,
        "nothing saved, nothing replaced"
    );

    // Named: a safety dump first (said, and in --json), then the nightly's content.
    let o = run(&["--json", "restore", "latest", "--db", &db.name]);
    let r = json(&o);
    let safety = r["safety_dump"]
        .as_str()
        .expect("a safety dump id")
        .to_string();
    assert!(
        out(&o).contains(&format!("safety dump of database {}", db.name)),
        "{}",
        out(&o)
    );
    assert_eq!(patients(&db), "8500");
    let tags = tags_of(&env);
    assert_eq!(tags.len(), 2);
    assert!(
        tags.contains(&(safety.clone(), vec!["safety-dump".to_string()])),
        "{tags:?}"
    );

    // `latest` is still the nightly snapshot (8,500 patients), never a safety dump.
    db.psql("DELETE FROM patients WHERE id > 10");
    let again = json(&run(&[
        "--json",
        "restore",
        "latest",
        "--db",
        &db.name,
        "--no-safety-dump",
    ]));
    assert!(again["safety_dump"].is_null(), "{again}");
    assert_eq!(env.snapshot_ids().len(), 2);
    assert_eq!(patients(&db), "8500");

    // The safety dump brings the day's patients back.
    json(&run(&[
        "--json",
        "restore",
        &safety,
        "--db",
        &db.name,
        "--no-safety-dump",
    ]));
    assert_eq!(patients(&db), "9000");

    // --force replaces what POSTGRES_DB names, still after a safety dump.
    let forced = json(&run(&["--json", "restore", &nightly, "--db", "--force"]));
    assert!(forced["safety_dump"].is_string(), "{forced}");
    assert_eq!(patients(&db), "8500");
    assert_eq!(env.snapshot_ids().len(), 3);

    // One a day: the nightly snapshot stays; safety dumps are judged apart, and
    // kept 30 days by the clock, even when --now pretends a year has passed.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::days(365))
        .date()
        .to_string();
    let f = env.json(&["forget", "--keep-daily", "1", "--now", &later]);
    assert_eq!(f[0]["groups"].as_array().unwrap().len(), 2, "{f}");
    assert_eq!(f[0]["removed"], 0, "{f}");
    // By name, one goes.
    env.json(&["forget", &safety]);
    let ids = env.snapshot_ids();
    assert!(ids.contains(&nightly) && !ids.contains(&safety), "{ids:?}");
    assert_eq!(ids.len(), 2, "the other safety dump and the nightly");
    let v = env.json(&["verify", "--read-data"]);
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn a_safety_dump_that_fails_replaces_nothing() {
    let server = Server::from_env();
    let db = clinic(&server, "safefail");
    let env = Env::new();
    json(
        &env.pg_cmd(&server, &db.name)
            .args(["--json", "snapshot"])
            .output()
            .unwrap(),
    );
    db.psql("DELETE FROM patients WHERE id > 100");
    let bin = env.pg_bin(
        "failing",
        &[(
            "pg_dump",
            "[ \"$1\" = --version ] && exec \"$REAL\" \"$@\"\nexit 1",
        )],
    );
    let o = env
        .pg_cmd_bin(&server, &db.name, &bin)
        .args(["restore", "latest", "--db", &db.name])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let said = out(&o);
    assert!(
        said.contains("safety dump") && said.contains("nothing was replaced"),
        "{said}"
    );
    assert_eq!(patients(&db), "100", "the database is as it was");
    env.verified();
}

#[test]
fn restore_latest_db_takes_the_newest_snapshot_that_holds_a_dump() {
    let server = Server::from_env();
    let db = clinic(&server, "newestdump");
    let env = Env::new();
    let run = |args: &[&str]| env.pg_cmd(&server, &db.name).args(args).output().unwrap();
    let with_dump = json(&run(&[
        "--json",
        "snapshot",
        "--time",
        "2026-11-29T03:00:00Z",
    ]));
    let uploads = env.path("uploads");
    write(&uploads.join("exame.pdf"), b"%PDF");
    json(&run(&[
        "--json",
        "snapshot",
        "--no-postgres",
        uploads.to_str().unwrap(),
    ]));

    let target = format!("{}_r", db.name);
    let restored = TestDb {
        server: server.clone(),
        name: target.clone(),
    };
    let o = run(&["--json", "restore", "latest", "--db", &target]);
    let r = json(&o);
    assert_eq!(r["created"], true, "{r}");
    let said = out(&o);
    let short = &with_dump["id"].as_str().unwrap()[..8];
    assert!(
        said.contains("holds no good dump") && said.contains(short),
        "{said}"
    );
    assert_eq!(patients(&restored), "8500");
    let file = env.path("latest.dump");
    let o = run(&["restore", "latest", "--db-file", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(std::fs::read(&file).unwrap().starts_with(b"PGDMP"));
    env.verified();
}

/// Found by an attack on the release: a connection string as `--db` was checked
/// and safety-dumped as one database and replaced as another; `--no-lock` let the
/// safety dump be written beside a prune; a second restore the same day left
/// the first safety dump to the nightly retention.
#[test]
fn attacks_on_the_safety_dump_fail() {
    let server = Server::from_env();
    let db = clinic(&server, "safeatk");
    let env = Env::new();
    let run = |args: &[&str]| env.pg_cmd(&server, &db.name).args(args).output().unwrap();
    json(&run(&["--json", "snapshot"]));
    db.psql("INSERT INTO patients VALUES (9001, 'hoje')");

    for name in [
        format!("postgresql://127.0.0.1/{}", db.name),
        format!("dbname={}", db.name),
        format!("{} ", db.name),
    ] {
        let o = run(&["restore", "latest", "--db", &name]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}", out(&o));
        assert!(out(&o).contains("not a plain database name"), "{}", out(&o));
        assert!(!server.exists(&name));
    }
    assert_eq!(patients(&db), "8501");

    // --no-lock reads without a lock, but the safety dump is a snapshot: it
    // waits for an exclusive lock (a retag's) like any other (here: exit 11,
    // as HCBACKUP_LOCK_WAIT=0), and nothing is replaced.
    let mut tag = env.cmd();
    tag.args(["tag", "latest", "--add", "kept"]);
    let prune = env.start_until_paused(tag, "tag-after-write:5");
    let o = run(&["--no-lock", "restore", "latest", "--db", &db.name]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("nothing was replaced") && out(&o).contains("locked"),
        "{}",
        out(&o)
    );
    assert_eq!(patients(&db), "8501");
    let mut prune = prune;
    assert!(prune.wait().unwrap().success());

    // Two restores in one day: both safety dumps outlive a keep-daily policy.
    json(&run(&["--json", "restore", "latest", "--db", &db.name]));
    db.psql("INSERT INTO patients VALUES (9002, 'tarde')");
    json(&run(&["--json", "restore", "latest", "--db", &db.name]));
    let f = env.json(&["forget", "--keep-daily", "1"]);
    assert_eq!(f[0]["removed"], 0, "{f}");
    assert_eq!(env.snapshot_ids().len(), 3);
    // A snapshot cannot take the reserved tag.
    let o = run(&["snapshot", "--tag", "safety-dump"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    env.verified();
}
