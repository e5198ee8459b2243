//! The database side by side, in one run: hcbackup against the seed's nightly
//! `pg_dump -Fc` and against restic reading the same `pg_dump -Fc -Z0` stream on
//! stdin, on a generated clinic database (benches/sql/clinic_schema.sql).
//!
//! Day 1, a realistic clinic day (benches/sql/clinic_day.sql), and the worst case
//! (1% of one table updated uniformly, clinic_worst_day.sql): time and bytes added.
//! Then the restore: `hcbackup restore --db` against `pg_restore` of a file.
//!
//! `cargo bench --bench db_compare`. Server: HCBACKUP_TEST_PG_* (scripts/services.sh
//! exports them) or POSTGRES_*; the role must be able to create databases. Size:
//! HCBACKUP_BENCH_DB_SCALE (default 80, about 1 GB of dump). Work folder:
//! HCBACKUP_BENCH_DIR (default a temp folder). Needs restic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod common;
use common::dir_size;

struct Pg {
    host: String,
    port: String,
    user: String,
    password: String,
}

fn var(a: &str, b: &str, default: &str) -> String {
    std::env::var(a)
        .or_else(|_| std::env::var(b))
        .unwrap_or_else(|_| default.to_string())
}

impl Pg {
    fn from_env() -> Pg {
        Pg {
            host: var("HCBACKUP_TEST_PG_HOST", "POSTGRES_HOST", "127.0.0.1"),
            port: var("HCBACKUP_TEST_PG_PORT", "POSTGRES_PORT", "5432"),
            user: var("HCBACKUP_TEST_PG_USER", "POSTGRES_USER", "postgres"),
            password: var("HCBACKUP_TEST_PG_PASSWORD", "POSTGRES_PASSWORD", ""),
        }
    }

    fn env(&self, c: &mut Command) {
        c.env("PGHOST", &self.host)
            .env("PGPORT", &self.port)
            .env("PGUSER", &self.user)
            .env("PGPASSWORD", &self.password)
            .env("POSTGRES_HOST", &self.host)
            .env("POSTGRES_PORT", &self.port)
            .env("POSTGRES_USER", &self.user)
            .env("POSTGRES_PASSWORD", &self.password);
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        self.env(&mut c);
        c
    }

    fn psql(&self, db: &str, args: &[&str]) {
        let o = self
            .cmd("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "psql {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn run(c: &mut Command) -> (f64, Vec<u8>) {
    let t = Instant::now();
    let o = c.stderr(Stdio::inherit()).output().unwrap();
    assert!(o.status.success(), "{c:?} failed");
    (t.elapsed().as_secs_f64(), o.stdout)
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

struct Day {
    seed_secs: f64,
    seed_bytes: u64,
    z0_secs: f64,
    hcb_secs: f64,
    hcb_added: u64,
    restic_secs: f64,
    restic_added: u64,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches` builds and lists, but does not run, this.
    }
    let scale: u32 = std::env::var("HCBACKUP_BENCH_DB_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(80);
    let tmp;
    let work: PathBuf = match std::env::var_os("HCBACKUP_BENCH_DIR") {
        Some(d) => PathBuf::from(d).join("db"),
        None => {
            tmp = tempfile_dir();
            tmp.clone()
        }
    };
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let pg = Pg::from_env();
    let sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sql");
    let db = format!("hcb_bench_{}", std::process::id());
    let dbs = [db.clone(), format!("{db}_h"), format!("{db}_p")];
    for d in &dbs {
        pg.psql(
            "postgres",
            &["-c", &format!("DROP DATABASE IF EXISTS {d} WITH (FORCE)")],
        );
    }
    pg.psql("postgres", &["-c", &format!("CREATE DATABASE {db}")]);
    let t = Instant::now();
    pg.psql(
        &db,
        &[
            "-v",
            &format!("scale={scale}"),
            "-f",
            sql.join("clinic_schema.sql").to_str().unwrap(),
        ],
    );
    // A database that has lived: autovacuum has mapped the free space in its pages.
    pg.psql(
        &db,
        &[
            "-c",
            "VACUUM patients, appointments, prescriptions, medical_records",
        ],
    );
    println!(
        "generated database {db} (scale {scale}) in {:.0} s",
        t.elapsed().as_secs_f64()
    );

    let hcb_repo = work.join("repo-hcbackup");
    let restic_repo = work.join("repo-restic");
    let hcb = |args: &[&str]| {
        let mut c = pg.cmd(env!("CARGO_BIN_EXE_hcbackup"));
        c.env("HCBACKUP_PASSWORD", "bench")
            .env("HCBACKUP_CACHE_DIR", work.join("hcb-cache"))
            .env("POSTGRES_DB", &db)
            .env_remove("UPLOADS_DIR")
            .arg("--repo")
            .arg(&hcb_repo)
            .args(args);
        c
    };
    run(&mut hcb(&["init"]));
    let mut c = Command::new("restic");
    c.env("RESTIC_PASSWORD", "bench")
        .args(["-q", "init", "-r"])
        .arg(&restic_repo);
    run(&mut c);

    let day = |label: &str| -> Day {
        let seed_file = work.join("seed.dump");
        let (seed_secs, _) = run(pg
            .cmd("pg_dump")
            .args(["-Fc", "-d", &db, "-f"])
            .arg(&seed_file));
        let seed_bytes = std::fs::metadata(&seed_file).unwrap().len();
        let (z0_secs, _) = run(pg
            .cmd("sh")
            .args(["-c", &format!("pg_dump -Fc -Z0 -d {db} > /dev/null")]));
        let (hcb_secs, out) = run(&mut hcb(&["--json", "snapshot"]));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let hcb_added = v["bytes_added"].as_u64().unwrap();
        let before = dir_size(&restic_repo);
        let (restic_secs, _) = run(pg.cmd("sh").env("RESTIC_PASSWORD", "bench").env("RESTIC_CACHE_DIR", work.join("restic-cache")).args([
            "-c",
            &format!(
                "pg_dump -Fc -Z0 -d {db} | restic -q -r {} backup --stdin --stdin-filename {db}.dump",
                restic_repo.display()
            ),
        ]));
        let restic_added = dir_size(&restic_repo) - before;
        println!(
            "{label:<22} dump {:>8.1} MiB | seed pg_dump -Fc {:>6.1} s {:>8.1} MiB | pg_dump -Z0 alone {:>5.1} s | hcbackup {:>5.1} s {:>8.2} MiB | restic --stdin {:>5.1} s {:>8.2} MiB",
            mib(v["databases"][0]["dump_bytes"].as_u64().unwrap()),
            seed_secs,
            mib(seed_bytes),
            z0_secs,
            hcb_secs,
            mib(hcb_added),
            restic_secs,
            mib(restic_added)
        );
        Day {
            seed_secs,
            seed_bytes,
            z0_secs,
            hcb_secs,
            hcb_added,
            restic_secs,
            restic_added,
        }
    };
    let d1 = day("day 1");
    let unchanged = day("day 1 again");
    pg.psql(&db, &["-f", sql.join("clinic_day.sql").to_str().unwrap()]);
    let d2 = day("day 2 (clinic day)");
    pg.psql(
        &db,
        &["-f", sql.join("clinic_worst_day.sql").to_str().unwrap()],
    );
    let d3 = day("day 3 (1% spread)");

    // Restore: hcbackup into a new database, and pg_restore of the seed's file.
    let (hcb_restore, out) = run(&mut hcb(&["--json", "restore", "latest", "--db", &dbs[1]]));
    pg.psql("postgres", &["-c", &format!("CREATE DATABASE {}", dbs[2])]);
    let (pgr_restore, _) = run(pg
        .cmd("pg_restore")
        .args(["-j", "2", "-d", &dbs[2]])
        .arg(work.join("seed.dump")));
    println!("restore: hcbackup restore --db {hcb_restore:.1} s ({}); pg_restore -j 2 of the seed's file {pgr_restore:.1} s",
        String::from_utf8_lossy(&out).replace('\n', " "));

    println!("\n== ratios (one run) ==");
    println!("day-1 snapshot time: hcbackup / seed pg_dump -Fc = {:.2}x; hcbackup / pg_dump -Z0 alone = {:.2}x; hcbackup / restic = {:.2}x",
        d1.hcb_secs / d1.seed_secs, d1.hcb_secs / d1.z0_secs, d1.hcb_secs / d1.restic_secs);
    println!(
        "day-1 stored: hcbackup {:.1} MiB, restic {:.1} MiB, seed {:.1} MiB",
        mib(d1.hcb_added),
        mib(d1.restic_added),
        mib(d1.seed_bytes)
    );
    println!(
        "unchanged day added: hcbackup {:.3} MiB, restic {:.3} MiB",
        mib(unchanged.hcb_added),
        mib(unchanged.restic_added)
    );
    for (name, d) in [("clinic day", &d2), ("1% spread", &d3)] {
        println!(
            "{name}: hcbackup added {:.2} MiB = {:.2}x restic's {:.2} MiB and {:.3}x the seed's full copy {:.1} MiB; snapshot {:.1} s vs pg_dump -Z0 alone {:.1} s",
            mib(d.hcb_added),
            d.hcb_added as f64 / d.restic_added.max(1) as f64,
            mib(d.restic_added),
            d.hcb_added as f64 / d.seed_bytes as f64,
            mib(d.seed_bytes),
            d.hcb_secs,
            d.z0_secs
        );
    }
    println!("restore: hcbackup {hcb_restore:.1} s = {:.2}x pg_restore -j 2 of a file; the seed's RTO is 900 s", hcb_restore / pgr_restore);
    for d in &dbs {
        pg.psql(
            "postgres",
            &["-c", &format!("DROP DATABASE IF EXISTS {d} WITH (FORCE)")],
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("hcb-dbbench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
