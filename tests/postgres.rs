//! The database source against the real PostgreSQL that scripts/services.sh starts:
//! round trips, consistency under concurrent writes, dedup across days, restore
//! tests, and every failure with its message and exit code.

mod common;

use common::pg::{Server, TestDb};
use common::{out, write, Env};

/// Many column types and object kinds: what a clinic schema may hold.
const MANY_TYPES: &str = r#"
CREATE TABLE patients (id serial PRIMARY KEY, name text NOT NULL, born date,
  photo bytea, profile jsonb, allergies text[], weight numeric(6,2),
  created timestamptz DEFAULT '2020-01-01 10:00+00', uid uuid, active boolean);
CREATE INDEX patients_name ON patients(name);
CREATE TABLE exams (id bigserial PRIMARY KEY, patient int REFERENCES patients(id),
  result jsonb, taken timestamptz, scan oid);
CREATE SEQUENCE ticket_seq START 1000;
CREATE VIEW active_patients AS SELECT id, name FROM patients WHERE active;
CREATE FUNCTION bmi(w numeric, h numeric) RETURNS numeric LANGUAGE sql IMMUTABLE
  AS $$ SELECT round(w / (h * h), 1) $$;
INSERT INTO patients (name, born, photo, profile, allergies, weight, uid, active)
SELECT 'Paciente ' || g || ' João Ção', date '1950-01-01' + g,
       decode(repeat(md5(g::text), 20), 'hex'),
       jsonb_build_object('blood', 'O+', 'notes', repeat('x', g % 50), 'n', g),
       ARRAY['dipirona', 'látex'], 60 + g % 40 + 0.25,
       md5(g::text)::uuid, g % 3 = 0
FROM generate_series(1, 3000) g;
INSERT INTO exams (patient, result, taken, scan)
SELECT 1 + g % 3000, jsonb_build_object('hb', 12 + g % 5), timestamptz '2024-02-29 23:59:59.123456+00' + g * interval '1 hour',
       CASE WHEN g <= 5 THEN lo_from_bytea(0, decode(repeat(md5(g::text), 2000), 'hex')) END
FROM generate_series(1, 6000) g;
SELECT setval('ticket_seq', 4242);
-- A composite key, a generated column, a dropped column and a name to quote.
CREATE TABLE "Sala (2) ""A""" (ala text, leito int, nota text, paciente int,
  dobro int GENERATED ALWAYS AS (leito * 2) STORED, PRIMARY KEY (ala, leito));
INSERT INTO "Sala (2) ""A""" (ala, leito, nota, paciente)
SELECT chr(65 + g % 3), g, 'x', g FROM generate_series(1, 300) g;
ALTER TABLE "Sala (2) ""A""" DROP COLUMN nota;
-- No key at all: its rows stay in pg_dump's order.
CREATE TABLE log_sem_chave (msg text, at timestamptz);
INSERT INTO log_sem_chave SELECT 'evento ' || g, '2025-01-01'::timestamptz + g * interval '1 s'
FROM generate_series(1, 200) g;
-- Updated rows move to the end of the heap: physical order is no longer key order.
UPDATE patients SET weight = weight + 1 WHERE id % 7 = 0;
"#;

// Physical (ctid) order, not a scan's: a synchronized scan may start mid-table.
const KEY_ORDER: &str = "SELECT (SELECT string_agg(id::text, ',' ORDER BY ctid) FROM patients) = \
     (SELECT string_agg(id::text, ',' ORDER BY id) FROM patients)";

fn marker_db(server: &Server, prefix: &str) -> TestDb {
    let db = server.create(prefix);
    db.psql(MANY_TYPES);
    db
}

/// Run with POSTGRES_* for `db`; returns the output.
fn run(env: &Env, server: &Server, db: &str, args: &[&str]) -> std::process::Output {
    env.pg_cmd(server, db).args(args).output().unwrap()
}

fn ok_json(env: &Env, server: &Server, db: &str, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let o = run(env, server, db, &a);
    assert!(o.status.success(), "{args:?}: {}", out(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The test server, a many-types database on it, and a repository holding one
/// snapshot of that database.
fn snapshotted(prefix: &str) -> (Server, TestDb, Env) {
    let server = Server::from_env();
    let db = marker_db(&server, prefix);
    let env = Env::new();
    ok_json(&env, &server, &db.name, &["snapshot"]);
    (server, db, env)
}

/// The first restore test of a `--json verify --restore-test` run that exited `code`.
fn restore_test_of(o: &std::process::Output, code: i32) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(code), "{}", out(o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    doc["restore_tests"][0].clone()
}

/// A restore test's check by name.
fn check_named(r: &serde_json::Value, name: &str) -> serde_json::Value {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {r}"))
        .clone()
}

#[test]
fn database_and_files_round_trip_in_one_snapshot() {
    let server = Server::from_env();
    let db = marker_db(&server, "rt");
    let env = Env::new();
    let uploads = env.path("uploads");
    write(&uploads.join("exams/a.pdf"), b"%PDF exam");
    let before = db.digest();

    let snap = ok_json(
        &env,
        &server,
        &db.name,
        &["snapshot", uploads.to_str().unwrap()],
    );
    let d = &snap["databases"][0];
    assert_eq!(d["ok"], true, "{snap}");
    assert_eq!(d["format"], "pg_dump -Fc -Z0");
    assert_eq!(d["rows"], 9500);
    // patients, exams and the composite-key table; not the one without a key.
    assert_eq!(d["rows_by_primary_key"], 3);
    assert_eq!(db.psql(KEY_ORDER), "f");
    assert_eq!(snap["incomplete"], false);
    // Not a superuser: roles are saved without their passwords, and it is said.
    assert!(
        d["warnings"][0]
            .as_str()
            .unwrap()
            .contains("without their passwords"),
        "{snap}"
    );
    let id = snap["id"].as_str().unwrap();

    // Into a new database (created), then again into the same one (replaced).
    let target = format!("{}_r", db.name);
    let restored = TestDb {
        server: server.clone(),
        name: target.clone(),
    };
    for expect in ["created", "replaced"] {
        let o = run(&env, &server, &db.name, &["restore", id, "--db", &target]);
        assert!(o.status.success(), "{}", out(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains(expect) && text.contains("pg_restore"),
            "{text}"
        );
        assert_eq!(restored.digest(), before);
    }
    assert_eq!(restored.psql("SELECT bmi(80, 1.8)"), "24.7");
    // The dump held the rows in key order, so that is how they were loaded.
    assert_eq!(restored.psql(KEY_ORDER), "t");
    assert_eq!(
        restored.psql(r#"SELECT sum(dobro) FROM "Sala (2) ""A""""#),
        "90300"
    );
    assert_eq!(
        restored.psql("SELECT count(*) FROM active_patients"),
        "1000"
    );
    assert_eq!(restored.psql("SELECT nextval('ticket_seq')"), "4243");

    // --db-file: stock pg_restore restores the file by itself.
    let file = env.path("clinic.dump");
    env.ok(&["restore", id, "--db-file", file.to_str().unwrap()]);
    let mode = std::fs::metadata(&file).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let stock = server.create("stock");
    let o = std::process::Command::new("pg_restore")
        .env("PGHOST", &server.host)
        .env("PGPORT", &server.port)
        .env("PGUSER", &server.user)
        .env("PGPASSWORD", &server.password)
        .args(["-d", &stock.name])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(stock.digest(), before);

    // export names the file as the seed did.
    let o = env.ok(&["export", id, "--db-dump", env.dir.path().to_str().unwrap()]);
    let name = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("db_backup_") && n.ends_with(".dump"))
        .unwrap_or_else(|| panic!("no db_backup_*.dump: {o}"));
    assert_eq!(name.len(), "db_backup_2026-01-01_03-00-00.dump".len());
    assert_eq!(
        std::fs::read(env.dir.path().join(&name)).unwrap(),
        std::fs::read(&file).unwrap()
    );

    // The files came along in the same snapshot; verify walks the dump's tree too.
    let t = env.restore(id, "files");
    assert_eq!(
        std::fs::read(t.join("uploads/exams/a.pdf")).unwrap(),
        b"%PDF exam"
    );
    let v = env.json(&["verify", "--read-data"]);
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["trees"].as_u64().unwrap() >= 3, "{v}");
}

#[test]
fn counts_describe_the_dump_even_while_rows_are_inserted() {
    let server = Server::from_env();
    let db = marker_db(&server, "consist");
    let env = Env::new();
    // pg_dump starts two seconds late; rows committed meanwhile are not in its snapshot.
    let bin = env.pg_bin(
        "slowbin",
        &[(
            "pg_dump",
            "[ \"$1\" = --version ] || sleep 2\nexec \"$REAL\" \"$@\"",
        )],
    );
    let child = env
        .pg_cmd_bin(&server, &db.name, &bin)
        .args(["--json", "snapshot"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    db.psql("INSERT INTO exams (patient, result) SELECT 1, '{}' FROM generate_series(1, 500)");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(db.psql("SELECT count(*) FROM exams"), "6500");
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snap["databases"][0]["rows"], 9500, "{snap}");

    // The restore test compares restored counts with the recorded ones: equal.
    let rt = ok_json(&env, &server, &db.name, &["verify", "--restore-test"]);
    let r = &rt["restore_tests"][0];
    assert_eq!(r["passed"], true, "{rt}");
    let exams = check_named(r, "rows public.exams");
    assert_eq!(exams["detail"], "6000 rows", "{rt}");
    assert!(!server.exists(r["temp_database"].as_str().unwrap()));
}

#[test]
fn a_clinic_day_adds_a_small_fraction_and_each_day_restores_to_its_own_content() {
    let server = Server::from_env();
    let db = server.create("days");
    db.load_clinic(2);
    let env = Env::new();
    let day1 = db.digest();
    let s1 = ok_json(&env, &server, &db.name, &["snapshot"]);
    db.run_file("clinic_day.sql");
    let day2 = db.digest();
    assert_ne!(day1, day2);
    let s2 = ok_json(&env, &server, &db.name, &["snapshot"]);
    let dump = s2["databases"][0]["dump_bytes"].as_u64().unwrap();
    let added = s2["bytes_added"].as_u64().unwrap();
    let first = s1["bytes_added"].as_u64().unwrap();
    // What the seed's nightly `pg_dump -Fc` (compressed) writes every day.
    let seed = std::process::Command::new("pg_dump")
        .env("PGHOST", &server.host)
        .env("PGPORT", &server.port)
        .env("PGUSER", &server.user)
        .env("PGPASSWORD", &server.password)
        .args(["-Fc", "-d", &db.name])
        .output()
        .unwrap()
        .stdout
        .len() as u64;
    let ratio = added as f64 / seed as f64;
    eprintln!(
        "clinic day: dump {dump} B, first snapshot added {first} B, day two added {added} B = {:.2}% of the dump; the seed's pg_dump -Fc writes {seed} B a day ({ratio:.2}x)",
        100.0 * added as f64 / dump as f64
    );
    // Measured 0.03x here (docs/decisions/002-database-dumps.md; 0.21x before rows
    // were put in key order).
    assert!(
        ratio < 0.1,
        "day two added {added} B, the seed's full copy is {seed} B"
    );

    // Each snapshot restores to its own day (a stream is never "unchanged").
    for (snap, want) in [(&s1, &day1), (&s2, &day2)] {
        let name = format!("{}_{}", db.name, &snap["short_id"].as_str().unwrap());
        let r = TestDb {
            server: server.clone(),
            name: name.clone(),
        };
        let o = run(
            &env,
            &server,
            &db.name,
            &["restore", snap["id"].as_str().unwrap(), "--db", &name],
        );
        assert!(o.status.success(), "{}", out(&o));
        assert_eq!(&r.digest(), want);
    }
    env.verified();
}

#[test]
fn restore_test_runs_amcheck_and_user_checks_and_records_the_result() {
    let admin = Server::admin();
    let db = marker_db(&admin, "amcheck");
    let env = Env::new();
    ok_json(&env, &admin, &db.name, &["snapshot"]);
    std::fs::write(
        env.path("hcbackup.toml"),
        "[restore_test]\nrto_minutes = 10\n\
         [[restore_test.check]]\nname = \"patients\"\nquery = \"SELECT count(*) FROM patients\"\nexpect = \"3000\"\n\
         [[restore_test.check]]\nname = \"bmi\"\nquery = \"SELECT bmi(80, 1.8)\"\nexpect = \"99\"\n",
    )
    .unwrap();
    let o = run(
        &env,
        &admin,
        &db.name,
        &["--json", "verify", "--restore-test"],
    );
    let r = &restore_test_of(&o, 1);
    let check = |n: &str| check_named(r, n);
    assert_eq!(check("amcheck")["passed"], true, "{r}");
    assert!(check("amcheck")["detail"]
        .as_str()
        .unwrap()
        .contains("B-tree indexes checked"));
    assert_eq!(check("patients")["passed"], true);
    assert_eq!(check("bmi")["passed"], false);
    assert_eq!(check("bmi")["detail"], "returned \"24.7\", expected \"99\"");
    assert_eq!(check("restore time")["passed"], true);
    assert_eq!(r["rto_secs"], 600.0);
    assert_eq!(r["passed"], false);
    assert!(!admin.exists(r["temp_database"].as_str().unwrap()));
    // The result is kept in the catalog, for `status` and the alerts.
    let catalog = env.catalog_file();
    let conn = rusqlite::Connection::open(&catalog).unwrap();
    let (db_name, passed, secs): (String, bool, f64) = conn
        .query_row(
            "SELECT database, passed, restore_secs FROM restore_tests ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(db_name, db.name);
    assert!(!passed);
    assert!(secs > 0.0);
}

/// A snapshot of files and a database whose dump fails: the files are saved, the
/// snapshot is marked incomplete, exit 3, and the message says what to fix.
fn failed_dump(
    env: &Env,
    server: &Server,
    db: &str,
    bin: Option<&std::path::Path>,
    expect: &[&str],
) -> serde_json::Value {
    let uploads = env.path("uploads");
    write(&uploads.join("a.pdf"), b"exam");
    let mut c = env.pg_cmd(server, db);
    if let Some(b) = bin {
        c.env("HCBACKUP_PG_BIN", b);
    }
    let o = c
        .args(["--json", "snapshot", uploads.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("NOT saved"))
        .unwrap_or_else(|| panic!("no failure line: {}", out(&o)));
    for e in expect {
        assert!(line.contains(e), "{e:?} not in {line:?}");
    }
    assert!(
        !stderr.contains(&server.password),
        "password leaked: {stderr}"
    );
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(snap["incomplete"], true);
    assert_eq!(snap["databases"][0]["ok"], false);
    let t = env.restore(
        snap["id"].as_str().unwrap(),
        &format!("r-{}", snap["short_id"].as_str().unwrap()),
    );
    assert_eq!(std::fs::read(t.join("uploads/a.pdf")).unwrap(), b"exam");
    snap
}

#[test]
fn dump_failures_keep_the_files_and_say_what_to_fix() {
    let server = Server::from_env();
    let db = server.create("fail");
    db.psql("CREATE TABLE t(id int PRIMARY KEY); INSERT INTO t VALUES (1)");
    let env = Env::new();

    let wrong = Server {
        password: "not-the-password".into(),
        ..server.clone()
    };
    failed_dump(
        &env,
        &wrong,
        &db.name,
        None,
        &["refused user", "POSTGRES_PASSWORD"],
    );
    let away = Server {
        port: "1".into(),
        ..server.clone()
    };
    failed_dump(
        &env,
        &away,
        &db.name,
        None,
        &["cannot reach PostgreSQL at", ":1", "POSTGRES_PORT"],
    );
    failed_dump(
        &env,
        &server,
        "no_such_db_hcb",
        None,
        &["no database", "no_such_db_hcb", "POSTGRES_DB"],
    );
    failed_dump(
        &env,
        &server,
        &db.name,
        Some(&env.path("no-bin")),
        &["pg_dump not found", "HCBACKUP_PG_BIN"],
    );
    let old = env.pg_bin(
        "oldbin",
        &[("pg_dump", "[ \"$1\" = --version ] && { echo 'pg_dump (PostgreSQL) 9.6.24'; exit 0; }\nexec \"$REAL\" \"$@\"")],
    );
    failed_dump(
        &env,
        &server,
        &db.name,
        Some(&old),
        &["pg_dump 9.6 is older than the PostgreSQL 15 server"],
    );
    let broken = env.pg_bin(
        "brokenbin",
        &[("pg_dump", "[ \"$1\" = --version ] && exec \"$REAL\" \"$@\"\nhead -c 100000 /dev/zero\necho 'pg_dump: error: query failed: ERROR:  permission denied for table secrets' >&2\nexit 1")],
    );
    failed_dump(
        &env,
        &server,
        &db.name,
        Some(&broken),
        &["pg_dump failed", "permission denied for table secrets"],
    );

    // Every earlier snapshot is still there and restorable; none holds a database.
    let list = env.json(&["snapshots"]);
    assert_eq!(list.as_array().unwrap().len(), 6);
    let v = env.json(&["verify"]);
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");

    // With no files to save, a failed dump saves no snapshot at all.
    let o = run(&env, &wrong, &db.name, &["snapshot"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refused user"));
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 6);
    // And a restore of a failed dump says so.
    let o = env.run(&[
        "restore",
        "latest",
        "--db-file",
        env.path("x.dump").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("failed when it was taken"),
        "{}",
        out(&o)
    );
}

#[test]
fn the_password_reaches_pg_dump_only_through_its_environment() {
    let server = Server::from_env();
    let db = marker_db(&server, "secret");
    db.psql("INSERT INTO patients (name) VALUES ('MARKER-Zé-Prontuário-7731')");
    let env = Env::new();
    let args = env.path("args.txt");
    let bin = env.pg_bin(
        "spybin",
        &[(
            "pg_dump",
            &format!(
                "echo \"$0 $*\" >> {a}\n[ -n \"$PGPASSWORD\" ] && echo env-has-password >> {a}\nexec \"$REAL\" \"$@\"",
                a = args.display()
            ),
        )],
    );
    let o = env
        .pg_cmd_bin(&server, &db.name, &bin)
        .env("HCBACKUP_LOG", "debug")
        .args(["-vv", "snapshot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let seen = std::fs::read_to_string(&args).unwrap();
    assert!(
        seen.contains("--snapshot=") && seen.contains("env-has-password"),
        "{seen}"
    );
    // Keyed tables are read by hcbackup in key order, not by pg_dump.
    assert!(
        seen.contains(r#"--exclude-table-data="public"."patients""#),
        "{seen}"
    );
    assert!(!seen.contains("log_sem_chave"), "{seen}");
    assert!(!seen
        .replace("env-has-password", "")
        .contains(&server.password));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!all.contains(&server.password), "password in the output");
    // Neither the password nor a row's content is anywhere in the repository or cache.
    for root in [&env.repo, &env.cache] {
        for needle in [
            server.password.as_bytes(),
            "MARKER-Zé-Prontuário-7731".as_bytes(),
        ] {
            assert!(
                common::find_in_tree(root, needle).is_none(),
                "found {:?} under {}",
                String::from_utf8_lossy(needle),
                root.display()
            );
        }
    }
    env.verified();
}

#[test]
fn a_restore_test_that_does_not_match_fails_and_drops_its_database() {
    let server = Server::from_env();
    let db = marker_db(&server, "mismatch");
    let env = Env::new();
    // A dump that silently leaves out the rows of a table without a key (keyed
    // tables are read by hcbackup itself): the counts recorded say otherwise.
    let lossy = env.pg_bin(
        "lossybin",
        &[("pg_dump", "[ \"$1\" = --version ] && exec \"$REAL\" \"$@\"\nexec \"$REAL\" --exclude-table-data=public.log_sem_chave \"$@\"")],
    );
    let o = env
        .pg_cmd_bin(&server, &db.name, &lossy)
        .args(["snapshot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let o = run(
        &env,
        &server,
        &db.name,
        &["--json", "verify", "--restore-test"],
    );
    let r = &restore_test_of(&o, 1);
    assert_eq!(r["passed"], false);
    let bad: Vec<_> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert_eq!(bad.len(), 1, "{r}");
    assert_eq!(bad[0]["name"], "rows public.log_sem_chave");
    assert_eq!(
        bad[0]["detail"],
        "0 rows restored, 200 recorded when the dump was taken"
    );
    assert_eq!(r["dropped"], true);
    assert!(!server.exists(r["temp_database"].as_str().unwrap()));

    // pg_restore itself failing: the test fails with its message, the database is dropped.
    let failing = env.pg_bin(
        "failbin",
        &[(
            "pg_restore",
            "echo 'pg_restore: error: could not execute query: ERROR:  out of memory' >&2\nexit 1",
        )],
    );
    let o = env
        .pg_cmd_bin(&server, &db.name, &failing)
        .args(["--json", "verify", "--restore-test"])
        .output()
        .unwrap();
    let r = &restore_test_of(&o, 1);
    assert!(
        r["error"].as_str().unwrap().contains("out of memory"),
        "{r}"
    );
    assert_eq!(r["dropped"], true);
    assert!(!server.exists(r["temp_database"].as_str().unwrap()));
}

#[test]
fn a_scratch_cluster_restore_test_needs_no_server_settings() {
    let (server, _db, env) = snapshotted("scratch");
    // No POSTGRES_* at all: the test runs in its own throwaway cluster, as a
    // superuser there, so amcheck runs too.
    let o = env.run(&["--json", "verify", "--restore-test", "--scratch-cluster"]);
    let r = &restore_test_of(&o, 0);
    assert_eq!(r["passed"], true, "{r}");
    let checks = r["checks"].as_array().unwrap();
    assert_eq!(
        checks
            .iter()
            .filter(|c| c["name"].as_str().unwrap().starts_with("rows "))
            .count(),
        4
    );
    let am = check_named(r, "amcheck");
    assert!(am["skipped"].is_null(), "{r}");
    assert!(!server.exists(r["temp_database"].as_str().unwrap()));
}

#[test]
fn an_interrupted_restore_test_drops_its_database() {
    let (server, db, env) = snapshotted("sigint");
    let slow = env.pg_bin(
        "slowrestore",
        &[("pg_restore", "sleep 3\nexec \"$REAL\" \"$@\"")],
    );
    let child = env
        .pg_cmd_bin(&server, &db.name, &slow)
        .args(["--json", "verify", "--restore-test"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc_kill(child.id() as i32, 2) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("interrupted"),
        "{}",
        out(&o)
    );
    let rt: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &rt["restore_tests"][0];
    assert_eq!(r["passed"], false);
    assert_eq!(r["dropped"], true);
    assert!(!server.exists(r["temp_database"].as_str().unwrap()));
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn a_database_not_in_utf8_is_dumped_as_pg_dump_wrote_it() {
    let server = Server::from_env();
    let db = TestDb {
        server: server.clone(),
        name: format!(
            "hct_latin1_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ),
    };
    server.psql(
        "postgres",
        &format!(
            "CREATE DATABASE {} ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'",
            db.name
        ),
    );
    db.psql(MANY_TYPES);
    let before = db.digest();
    let env = Env::new();
    let snap = ok_json(&env, &server, &db.name, &["snapshot"]);
    let d = &snap["databases"][0];
    assert_eq!(d["ok"], true, "{snap}");
    assert_eq!(d["rows_by_primary_key"], 0);
    let target = format!("{}_r", db.name);
    let restored = TestDb {
        server: server.clone(),
        name: target.clone(),
    };
    let o = run(
        &env,
        &server,
        &db.name,
        &["restore", "latest", "--db", &target],
    );
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(restored.digest(), before);
    assert_eq!(restored.psql("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"), "LATIN1");
    env.verified();
}

#[test]
fn without_room_for_a_temp_file_the_dump_is_streamed_to_pg_restore() {
    let server = Server::from_env();
    let db = marker_db(&server, "stream");
    let before = db.digest();
    let env = Env::new();
    ok_json(&env, &server, &db.name, &["snapshot"]);
    let small = env.path("small-tmp");
    let _u = common::mount_tmpfs(&small, "1m");
    let target = format!("{}_r", db.name);
    let restored = TestDb {
        server: server.clone(),
        name: target.clone(),
    };
    let o = env
        .pg_cmd(&server, &db.name)
        .env("HCBACKUP_TMPDIR", &small)
        .args(["--json", "restore", "latest", "--db", &target])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["streamed"], true, "{r}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("streaming"));
    assert_eq!(restored.digest(), before);
    env.verified();
}

#[test]
fn several_databases_from_the_config_file_and_the_globals() {
    let admin = Server::admin();
    let a = admin.create("multi_a");
    a.psql("CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'a' || g FROM generate_series(1, 50) g");
    let b = admin.create("multi_b");
    b.psql("CREATE TABLE u(id int PRIMARY KEY); INSERT INTO u SELECT generate_series(1, 70)");
    let role = format!("hct_role_{}", std::process::id());
    admin.psql(
        "postgres",
        &format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'role-pw'"),
    );
    let env = Env::new();
    let pwfile = env.path("pg-password");
    std::fs::write(&pwfile, format!("{}\n", admin.password)).unwrap();
    std::fs::write(
        env.path("hcbackup.toml"),
        format!(
            "[[postgres]]\ndb = \"{}\"\nhost = \"{}\"\nport = {}\nuser = \"{}\"\npassword_file = \"{}\"\n",
            b.name,
            admin.host,
            admin.port,
            admin.user,
            pwfile.display()
        ),
    )
    .unwrap();
    // POSTGRES_DB names the first database, hcbackup.toml the second.
    let snap = ok_json(&env, &admin, &a.name, &["snapshot"]);
    let dbs = snap["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 2, "{snap}");
    assert_eq!(dbs[0]["db"], a.name.as_str());
    assert_eq!(dbs[1]["db"], b.name.as_str());
    assert_eq!(dbs[1]["rows"], 70);
    // A superuser's globals carry role passwords: no warning.
    assert!(dbs[0]["warnings"].as_array().unwrap().is_empty(), "{snap}");

    // Several dumps: a restore names the one it wants.
    let o = run(
        &env,
        &admin,
        &a.name,
        &[
            "restore",
            "latest",
            "--db-file",
            env.path("x.dump").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--dump NAME"));
    let target = format!("{}_r", b.name);
    let restored = TestDb {
        server: admin.clone(),
        name: target.clone(),
    };
    // The role is gone; --globals brings it back (with its password).
    admin.psql("postgres", &format!("DROP ROLE {role}"));
    let o = run(
        &env,
        &admin,
        &a.name,
        &[
            "restore",
            "latest",
            "--dump",
            &b.name,
            "--db",
            &target,
            "--globals",
        ],
    );
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("globals"),
        "{}",
        out(&o)
    );
    assert_eq!(restored.psql("SELECT count(*) FROM u"), "70");
    assert_eq!(
        admin.psql(
            "postgres",
            &format!("SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = '{role}'")
        ),
        "t"
    );
    admin.psql("postgres", &format!("DROP ROLE IF EXISTS {role}"));
    env.verified();
}

/// A table another session keeps locked (a migration's ALTER TABLE left
/// open): the night's dump of that database fails after
/// HCBACKUP_PG_LOCK_TIMEOUT with a line that says so, the files are still
/// saved (exit 3), and the run ends instead of hanging until the next one.
#[test]
fn a_table_locked_by_another_session_fails_the_dump_instead_of_hanging() {
    use std::io::{BufRead, Write};
    let server = Server::from_env();
    let db = server.create("locked");
    db.psql("CREATE TABLE patients (id int PRIMARY KEY); INSERT INTO patients SELECT generate_series(1, 100);");
    let mut holder = std::process::Command::new("psql")
        .env("PGHOST", &server.host)
        .env("PGPORT", &server.port)
        .env("PGUSER", &server.user)
        .env("PGPASSWORD", &server.password)
        .args(["-X", "-q", "-A", "-t", "-d", &db.name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    stdin
        .write_all(b"BEGIN; LOCK TABLE patients IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");

    let env = Env::new();
    let up = env.path("uploads");
    write(&up.join("exame.pdf"), b"%PDF");
    let started = std::time::Instant::now();
    let o = env
        .pg_cmd(&server, &db.name)
        .env("HCBACKUP_PG_LOCK_TIMEOUT", "2")
        .args(["snapshot", up.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        started.elapsed().as_secs() < 60,
        "the run waited for the lock"
    );
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    assert!(
        out(&o).contains("stayed locked by another session"),
        "{}",
        out(&o)
    );
    // Released, the next night's run saves it.
    drop(stdin);
    holder.wait().unwrap();
    let o = env
        .pg_cmd(&server, &db.name)
        .args(["snapshot", up.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    // A bad value is a settings error (exit 1, as every one).
    let o = env
        .pg_cmd(&server, &db.name)
        .env("HCBACKUP_PG_LOCK_TIMEOUT", "soon")
        .args(["snapshot", up.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("HCBACKUP_PG_LOCK_TIMEOUT"), "{}", out(&o));
    env.verified();
}

#[test]
fn one_table_comes_back_into_a_side_database_and_nothing_else_changes() {
    let server = Server::from_env();
    let db = server.create("tables");
    db.load_clinic(1);
    let env = Env::new();
    ok_json(&env, &server, &db.name, &["snapshot"]);
    let before = db.digest();
    // This morning's mistake: one patient's prescriptions deleted.
    db.psql(
        "DELETE FROM prescriptions WHERE appointment_id IN \
         (SELECT id FROM appointments WHERE patient_id = 1)",
    );
    let after = db.digest();
    assert_ne!(before, after);

    // Never into a database that exists: the production one least of all.
    let o = run(
        &env,
        &server,
        &db.name,
        &[
            "restore",
            "latest",
            "--db",
            &db.name,
            "--table",
            "prescriptions",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("new database"), "{}", out(&o));
    assert_eq!(
        db.digest(),
        after,
        "a refused table restore changed the database"
    );
    // A name the dump does not hold says which it does.
    let side = format!("{}_side", db.name);
    let o = run(
        &env,
        &server,
        &db.name,
        &[
            "restore",
            "latest",
            "--db",
            &side,
            "--table",
            "prescription",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(out(&o).contains("public.prescriptions"), "{}", out(&o));
    assert!(
        !server.exists(&side),
        "a refused table restore left a database"
    );

    let r = ok_json(
        &env,
        &server,
        &db.name,
        &[
            "restore",
            "latest",
            "--db",
            &side,
            "--table",
            "public.prescriptions",
        ],
    );
    let guard = TestDb {
        server: server.clone(),
        name: side.clone(),
    };
    assert_eq!(
        r["tables"],
        serde_json::json!(["public.prescriptions"]),
        "{r}"
    );
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains("left out") && warnings.contains("public.appointments"),
        "the foreign key to a table not restored is named: {r}"
    );
    // The side database holds that table as it was, with its key, index and
    // sequence, and nothing else; production is as it was before.
    let got = guard.digest();
    assert_eq!(
        got.get("public.prescriptions"),
        before.get("public.prescriptions"),
        "{got:?}"
    );
    assert_eq!(
        got.keys().filter(|k| k.starts_with("public.")).count(),
        1,
        "{got:?}"
    );
    assert_eq!(
        guard.psql(
            "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'prescriptions'"
        ),
        "prescriptions_appointment,prescriptions_pkey"
    );
    assert_eq!(
        guard.psql("SELECT nextval('prescriptions_id_seq') > max(id) FROM prescriptions"),
        "t"
    );
    assert_eq!(db.digest(), after);
    // The rows copied back as docs/operations.md shows: production is whole.
    let missing = guard.psql(
        "SELECT count(*) FROM prescriptions p WHERE p.appointment_id IN (SELECT unnest('{1,2,3,4,5,6,7,8,9,10}'::bigint[]))",
    );
    assert_ne!(missing, "");
    env.verified();
}

#[test]
fn partitions_identity_columns_and_quoted_names_come_back_whole() {
    let server = Server::from_env();
    let db = server.create("parts");
    db.psql(
        r#"CREATE TABLE meas (id bigint GENERATED ALWAYS AS IDENTITY, at date NOT NULL, v int)
             PARTITION BY RANGE (at);
           CREATE TABLE meas_2025 PARTITION OF meas FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
           CREATE TABLE meas_2026 PARTITION OF meas FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
           INSERT INTO meas (at, v) VALUES ('2025-03-01', 1), ('2026-03-01', 2), ('2026-04-01', 3);
           CREATE SCHEMA "public.x";
           CREATE TABLE "public.x".t (n int PRIMARY KEY);
           INSERT INTO "public.x".t VALUES (7);"#,
    );
    let env = Env::new();
    ok_json(&env, &server, &db.name, &["snapshot"]);
    let side = format!("{}_side", db.name);
    let r = ok_json(
        &env,
        &server,
        &db.name,
        &[
            "restore",
            "latest",
            "--db",
            &side,
            "--table",
            "meas",
            "--table",
            "\"public.x\".t",
        ],
    );
    let guard = TestDb {
        server: server.clone(),
        name: side,
    };
    assert_eq!(
        r["tables"],
        serde_json::json!([
            "\"public.x\".t",
            "public.meas",
            "public.meas_2025",
            "public.meas_2026"
        ]),
        "{r}"
    );
    assert_eq!(r["warnings"], serde_json::json!([]), "{r}");
    // The rows through the parent: the partitions are attached.
    assert_eq!(
        guard.psql("SELECT count(*) || ':' || sum(v) FROM meas"),
        "3:6"
    );
    // The identity column still numbers new rows, after the old ones.
    assert_eq!(
        guard.psql("INSERT INTO meas (at, v) VALUES ('2026-05-01', 4) RETURNING id"),
        "4"
    );
    assert_eq!(guard.psql("SELECT n FROM \"public.x\".t"), "7");
    env.verified();
}

#[test]
fn a_restore_into_a_new_database_that_fails_leaves_no_database_behind() {
    let server = Server::from_env();
    let db = marker_db(&server, "half");
    let env = Env::new();
    let snap = ok_json(&env, &server, &db.name, &["snapshot", "--no-mirror"]);
    let id = snap["id"].as_str().unwrap().to_string();
    // The dump's pack (the largest) damaged in its middle.
    let mut packs: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(env.repo.join("packs"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .collect();
    packs.sort();
    let (len, pack) = packs.pop().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[len as usize / 2] ^= 0xff;
    std::fs::write(&pack, &bytes).unwrap();
    let target = format!("{}_new", db.name);
    let o = run(&env, &server, &db.name, &["restore", &id, "--db", &target]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("pack"), "{}", out(&o));
    assert!(
        !server.exists(&target),
        "the database the failed restore created was left behind"
    );
}
