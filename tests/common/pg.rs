//! The real PostgreSQL that scripts/services.sh starts: test databases with unique
//! names, psql, content digests, and wrapper programs that pretend to be pg_dump.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Env;

/// Connection settings of the test server (HCBACKUP_TEST_PG_*; set by scripts/services.sh).
#[derive(Clone)]
pub struct Server {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts PostgreSQL")
    })
}

impl Server {
    pub fn from_env() -> Server {
        Server {
            host: var("HCBACKUP_TEST_PG_HOST"),
            port: var("HCBACKUP_TEST_PG_PORT"),
            user: var("HCBACKUP_TEST_PG_USER"),
            password: var("HCBACKUP_TEST_PG_PASSWORD"),
        }
    }

    /// The superuser test role (amcheck, role passwords in globals).
    pub fn admin() -> Server {
        Server {
            user: var("HCBACKUP_TEST_PG_ADMIN_USER"),
            password: var("HCBACKUP_TEST_PG_ADMIN_PASSWORD"),
            ..Server::from_env()
        }
    }

    fn psql_cmd(&self, db: &str) -> Command {
        let mut c = Command::new("psql");
        c.env("PGHOST", &self.host)
            .env("PGPORT", &self.port)
            .env("PGUSER", &self.user)
            .env("PGPASSWORD", &self.password)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db]);
        c
    }

    /// Run SQL; returns psql's output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let o = self.psql_cmd(db).args(["-c", sql]).output().unwrap();
        assert!(
            o.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    /// Run a SQL file with psql variables.
    pub fn psql_file(&self, db: &str, file: &Path, vars: &[(&str, &str)]) {
        let mut c = self.psql_cmd(db);
        for (k, v) in vars {
            c.arg("-v").arg(format!("{k}={v}"));
        }
        let o = c.arg("-f").arg(file).output().unwrap();
        assert!(
            o.status.success(),
            "psql -f {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn exists(&self, db: &str) -> bool {
        self.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        ) == "1"
    }

    /// A new empty database, dropped when the guard goes.
    pub fn create(&self, prefix: &str) -> TestDb {
        let name = format!(
            "hct_{prefix}_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        TestDb {
            server: self.clone(),
            name,
        }
    }

    /// Per table: row count and an md5 of all rows in a stable order; plus large
    /// objects, sequences, a view and a function when they exist.
    pub fn digest(&self, db: &str) -> BTreeMap<String, String> {
        let tables = self.psql(
            db,
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog','information_schema') ORDER BY 1",
        );
        let mut out = BTreeMap::new();
        for t in tables.lines() {
            let v = self.psql(
                db,
                &format!(
                    "SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x"
                ),
            );
            out.insert(t.to_string(), v);
        }
        out.insert(
            "large objects".into(),
            self.psql(
                db,
                "SELECT count(*) || ' ' || coalesce(md5(string_agg(md5(lo_get(oid)), ',' ORDER BY oid)), '') FROM pg_largeobject_metadata",
            ),
        );
        out.insert(
            "sequences".into(),
            self.psql(
                db,
                "SELECT coalesce(string_agg(sequencename || '=' || coalesce(last_value, 0), ',' ORDER BY sequencename), '') FROM pg_sequences",
            ),
        );
        out
    }
}

/// A test database; dropped (forcefully) when this goes out of scope.
pub struct TestDb {
    pub server: Server,
    pub name: String,
}

impl TestDb {
    pub fn psql(&self, sql: &str) -> String {
        self.server.psql(&self.name, sql)
    }

    pub fn digest(&self) -> BTreeMap<String, String> {
        self.server.digest(&self.name)
    }

    /// Load the clinic schema at `scale` (benches/sql/clinic_schema.sql).
    pub fn load_clinic(&self, scale: u32) {
        self.server.psql_file(
            &self.name,
            &sql_file("clinic_schema.sql"),
            &[("scale", &scale.to_string())],
        );
    }

    pub fn run_file(&self, name: &str) {
        self.server.psql_file(&self.name, &sql_file(name), &[]);
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self
            .server
            .psql_cmd("postgres")
            .args([
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

pub fn sql_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/sql")
        .join(name)
}

impl Env {
    /// The binary with POSTGRES_* pointing at `db` on `server`.
    pub fn pg_cmd(&self, server: &Server, db: &str) -> Command {
        self.pg_cmd_repo(server, db, self.repo.as_os_str())
    }

    /// `pg_cmd` on another repository location (a cloud one, say).
    pub fn pg_cmd_repo(&self, server: &Server, db: &str, repo: &std::ffi::OsStr) -> Command {
        let mut c = self.cmd_repo(repo);
        c.env("POSTGRES_HOST", &server.host)
            .env("POSTGRES_PORT", &server.port)
            .env("POSTGRES_USER", &server.user)
            .env("POSTGRES_PASSWORD", &server.password)
            .env("POSTGRES_DB", db);
        c
    }

    /// `pg_cmd` with the PostgreSQL programs taken from `bin` (see `pg_bin`).
    pub fn pg_cmd_bin(&self, server: &Server, db: &str, bin: &Path) -> Command {
        let mut c = self.pg_cmd(server, db);
        c.env("HCBACKUP_PG_BIN", bin);
        c
    }

    /// A folder of PostgreSQL programs for HCBACKUP_PG_BIN: the real ones, except
    /// those given as shell scripts (`$REAL` in a script is the real program).
    pub fn pg_bin(&self, name: &str, scripts: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        for prog in ["pg_dump", "pg_dumpall", "pg_restore", "psql"] {
            let real = which(prog);
            let p = dir.join(prog);
            match scripts.iter().find(|(n, _)| *n == prog) {
                Some((_, body)) => {
                    std::fs::write(&p, format!("#!/bin/sh\nREAL={}\n{body}\n", real.display()))
                        .unwrap();
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
                }
                None => std::os::unix::fs::symlink(&real, &p).unwrap(),
            }
        }
        dir
    }
}

fn which(prog: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(prog))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{prog} is not on PATH"))
}
