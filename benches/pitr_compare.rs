//! Point-in-time recovery side by side, in one run: hcbackup against
//! pgBackRest (Debian package; zstd, AES-256-CBC repository encryption) on the
//! same generated clinic cluster (benches/sql/clinic_schema.sql) under the
//! same write load. For each tool, a fresh cluster (as the `postgres` OS
//! user) archives into it, loaded and vacuumed (a settled database;
//! HCBACKUP_BENCH_PITR_FRESH=1 keeps the bare bulk load); then:
//!
//! 1. day-1 base backup: time and bytes stored;
//! 2. an unthrottled write load (pgbench, appointments and patients) for
//!    HCBACKUP_BENCH_PITR_SECS seconds: WAL written per second, segments
//!    archived per second, the largest backlog of segments waiting
//!    (`archive_status/*.ready`) and how long the backlog took to drain after
//!    the load stopped (the archiving lag);
//! 3. a clinic day (benches/sql/clinic_day.sql), then the day-2 base backup
//!    (pgBackRest: `--type=incr`): bytes added;
//! 4. restore to a time (the end of the load) into a new folder, the server
//!    started on it until recovery has ended: seconds.
//!
//! `cargo bench --bench pitr_compare`, as root (the clusters run as
//! `postgres`). Size: HCBACKUP_BENCH_PITR_SCALE (default 20, about 240 MB of
//! dump). Work folder: HCBACKUP_BENCH_DIR (default /var/tmp/hcbackup-pitr-bench).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{dir_size, version};

const BIN: &str = "/usr/lib/postgresql/15/bin";

fn postgres(program: &str) -> Command {
    let mut c = Command::new("runuser");
    c.current_dir("/")
        .args(["-u", "postgres", "--"])
        .arg(program);
    c
}

fn run(mut c: Command) -> String {
    let o = c.output().expect("run");
    assert!(
        o.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

struct Cluster {
    data: PathBuf,
    sock: PathBuf,
    port: u16,
}

impl Cluster {
    fn psql(&self, sql: &str) -> String {
        let mut c = postgres(&format!("{BIN}/psql"));
        c.args(["-X", "-A", "-t", "-q", "-h"])
            .arg(&self.sock)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]);
        run(c)
    }

    fn psql_file(&self, file: &Path, scale: u32) {
        let mut c = postgres(&format!("{BIN}/psql"));
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-v"])
            .arg(format!("scale={scale}"))
            .arg("-h")
            .arg(&self.sock)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-f"])
            .arg(file);
        run(c);
    }

    fn ctl(&self, what: &str) {
        let mut c = postgres(&format!("{BIN}/pg_ctl"));
        c.arg("-D")
            .arg(&self.data)
            .args(["-l"])
            .arg(self.data.with_extension("log"))
            .args(["-w", "-m", "fast", what]);
        run(c);
    }
}

/// What one tool measured.
#[derive(Default)]
struct Row {
    base1_secs: f64,
    base1_bytes: u64,
    wal_mib_s: f64,
    archived_per_s: f64,
    max_backlog: usize,
    drain_secs: f64,
    base2_secs: f64,
    base2_added: u64,
    restore_secs: f64,
    layout_secs: f64,
}

/// A base backup command (`true`: the day-2 one).
type BackupCmd = Box<dyn Fn(bool) -> Command>;
/// A restore-to-time command: the new data folder, the target (RFC 3339 UTC).
/// hcbackup's starts the server itself (`--start`, port 5491) and returns
/// once recovery has ended; pgBackRest's only lays the folder out.
type RestoreCmd = Box<dyn Fn(&Path, &str) -> Command>;

/// How a tool archives, backs up and restores.
struct Tool {
    name: &'static str,
    repo: PathBuf,
    archive_command: String,
    backup: BackupCmd,
    restore: RestoreCmd,
}

fn hcbackup(work: &Path, c: &Cluster) -> Tool {
    let exe = env!("CARGO_BIN_EXE_hcbackup");
    let repo = work.join("hcbackup-repo");
    let vars = format!(
        "HCBACKUP_PASSWORD_FILE={} HCBACKUP_CACHE_DIR={}",
        work.join("pw").display(),
        work.join("hcb-cache").display()
    );
    let env = |c: &mut Command| {
        for kv in vars.split(' ') {
            c.arg(kv);
        }
    };
    let mut init = postgres("env");
    env(&mut init);
    init.arg(exe).arg("--repo").arg(&repo).arg("init");
    run(init);
    let (sock, port) = (c.sock.display().to_string(), c.port.to_string());
    let repo2 = repo.clone();
    let vars2 = vars.clone();
    Tool {
        name: "hcbackup",
        archive_command: format!("{vars} {exe} --repo {} wal-push %p", repo.display()),
        backup: Box::new(move |_incremental| {
            let mut b = postgres("env");
            for kv in vars2.split(' ') {
                b.arg(kv);
            }
            b.arg(format!("POSTGRES_HOST={sock}"))
                .arg(format!("POSTGRES_PORT={port}"))
                .arg("POSTGRES_USER=postgres")
                .arg("POSTGRES_DB=postgres")
                .arg(exe)
                .arg("--repo")
                .arg(&repo2)
                .args(["-q", "snapshot", "--physical", "--no-mirror"]);
            b
        }),
        restore: Box::new({
            let (vars, repo) = (vars.clone(), repo.clone());
            move |dir, at| {
                let mut r = postgres("env");
                for kv in vars.split(' ') {
                    r.arg(kv);
                }
                r.arg(exe)
                    .arg("--repo")
                    .arg(&repo)
                    .args(["-q", "restore", "latest", "--pgdata"])
                    .arg(dir)
                    .args(["--to-time", at, "--start", "--port", "5491"]);
                r
            }
        }),
        repo,
    }
}

fn pgbackrest(work: &Path, c: &Cluster) -> Tool {
    let conf = work.join("pgbackrest.conf");
    let repo = work.join("pgbackrest-repo");
    std::fs::write(
        &conf,
        format!(
            "[global]\nrepo1-path={}\nrepo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=bench-cipher-pass-0123456789\ncompress-type=zst\nstart-fast=y\nlog-level-console=warn\nlog-path={}\nlock-path={}\n\n[clinic]\npg1-path={}\npg1-port={}\npg1-socket-path={}\n",
            repo.display(),
            work.join("pgbr-log").display(),
            work.join("pgbr-lock").display(),
            c.data.display(),
            c.port,
            c.sock.display()
        ),
    )
    .unwrap();
    run({
        let mut x = Command::new("chown");
        x.args(["-R", "postgres:postgres"]).arg(work);
        x
    });
    let br = move |conf: &Path| {
        let mut b = postgres("pgbackrest");
        b.arg(format!("--config={}", conf.display()))
            .arg("--stanza=clinic");
        b
    };
    let conf2 = conf.clone();
    let conf3 = conf.clone();
    Tool {
        name: "pgBackRest",
        archive_command: format!(
            "pgbackrest --config={} --stanza=clinic archive-push %p",
            conf.display()
        ),
        backup: Box::new(move |incremental| {
            let mut b = br(&conf2);
            b.arg("backup").arg(if incremental {
                "--type=incr"
            } else {
                "--type=full"
            });
            b
        }),
        restore: Box::new(move |dir, at| {
            let mut r = br(&conf3);
            r.arg("restore")
                .arg(format!("--pg1-path={}", dir.display()))
                .arg("--type=time")
                .arg(format!(
                    "--target={}",
                    at.replace('T', " ").replace('Z', "+00")
                ))
                .arg("--target-action=promote");
            r
        }),
        repo,
    }
}

/// Segments waiting for the archiver.
fn backlog(c: &Cluster) -> usize {
    std::fs::read_dir(c.data.join("pg_wal/archive_status"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
                .count()
        })
        .unwrap_or(0)
}

fn archived(c: &Cluster) -> u64 {
    c.psql("SELECT archived_count FROM pg_stat_archiver")
        .parse()
        .unwrap()
}

fn lsn(c: &Cluster) -> u64 {
    c.psql("SELECT pg_current_wal_lsn() - '0/0'")
        .parse()
        .unwrap()
}

fn measure(work: &Path, make: fn(&Path, &Cluster) -> Tool, scale: u32, secs: u64) -> (String, Row) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();
    std::fs::write(work.join("pw"), "bench-password-0123456789").unwrap();
    std::fs::set_permissions(
        work.join("pw"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    run({
        let mut x = Command::new("chown");
        x.args(["-R", "postgres:postgres"]).arg(work);
        x
    });
    let c = Cluster {
        data: work.join("data"),
        sock: work.to_path_buf(),
        port: 5490,
    };
    let mut initdb = postgres(&format!("{BIN}/initdb"));
    initdb
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&c.data);
    run(initdb);
    let tool = make(work, &c);
    let conf = format!(
        "\nport = {}\nlisten_addresses = ''\nunix_socket_directories = '{}'\nwal_level = replica\narchive_mode = on\narchive_command = '{}'\narchive_timeout = 60\nmax_wal_size = '2GB'\n",
        c.port,
        c.sock.display(),
        tool.archive_command
    );
    let pgconf = c.data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&pgconf).unwrap();
    text.push_str(&conf);
    std::fs::write(&pgconf, text).unwrap();
    c.ctl("start");
    c.psql_file(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/sql/clinic_schema.sql"),
        scale,
    );
    // A settled database, as a clinic's is: vacuumed (hint bits and the
    // visibility map set), not a bulk load the first vacuum after day 1
    // would rewrite page by page (HCBACKUP_BENCH_PITR_FRESH=1 skips this).
    if std::env::var_os("HCBACKUP_BENCH_PITR_FRESH").is_none() {
        c.psql("VACUUM ANALYZE");
        c.psql("CHECKPOINT");
    }
    if tool.name == "pgBackRest" {
        let mut s = postgres("pgbackrest");
        s.arg(format!(
            "--config={}",
            work.join("pgbackrest.conf").display()
        ))
        .args(["--stanza=clinic", "stanza-create"]);
        run(s);
    }
    let mut row = Row::default();
    // 1. Day 1.
    let t = Instant::now();
    run((tool.backup)(false));
    row.base1_secs = t.elapsed().as_secs_f64();
    row.base1_bytes = dir_size(&tool.repo);
    // 2. The write load.
    let script = work.join("load.sql");
    std::fs::write(
        &script,
        "\\set p random(1, 1000 * :scale)\nINSERT INTO appointments (patient_id, doctor, scheduled_at, status, notes) VALUES (:p, 'Dr. Bench', now(), 'scheduled', repeat('nota de consulta ', 12));\nUPDATE patients SET phone = md5(random()::text) WHERE id = :p;\n",
    )
    .unwrap();
    let (wal0, arch0) = (lsn(&c), archived(&c));
    let t = Instant::now();
    let mut load = postgres(&format!("{BIN}/pgbench"));
    load.args(["-n", "-c", "2", "-j", "1", "-T", &secs.to_string(), "-D"])
        .arg(format!("scale={scale}"))
        .arg("-f")
        .arg(&script)
        .arg("-h")
        .arg(&c.sock)
        .args(["-p", &c.port.to_string(), "postgres"])
        .stdout(std::process::Stdio::null());
    let mut child = load.spawn().unwrap();
    while child.try_wait().unwrap().is_none() {
        row.max_backlog = row.max_backlog.max(backlog(&c));
        std::thread::sleep(Duration::from_millis(250));
    }
    let load_secs = t.elapsed().as_secs_f64();
    let at = c.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    );
    let wal1 = lsn(&c);
    c.psql("SELECT pg_switch_wal()");
    let t = Instant::now();
    while backlog(&c) > 0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    row.drain_secs = t.elapsed().as_secs_f64();
    row.wal_mib_s = (wal1 - wal0) as f64 / 1048576.0 / load_secs;
    row.archived_per_s = (archived(&c) - arch0) as f64 / (load_secs + row.drain_secs);
    // 3. Day 2.
    c.psql_file(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/sql/clinic_day.sql"),
        scale,
    );
    let before = dir_size(&tool.repo);
    let t = Instant::now();
    run((tool.backup)(true));
    row.base2_secs = t.elapsed().as_secs_f64();
    row.base2_added = dir_size(&tool.repo) - before;
    c.ctl("stop");
    // 4. Restore to the end of the load, and recover.
    let target = work.join("restored");
    let t = Instant::now();
    run((tool.restore)(&target, &at));
    row.layout_secs = t.elapsed().as_secs_f64();
    let r = Cluster {
        data: target.clone(),
        sock: c.sock.clone(),
        port: 5491,
    };
    if tool.name == "hcbackup" {
        row.restore_secs = row.layout_secs;
        row.layout_secs = f64::NAN;
        r.ctl("stop");
        return (tool.name.to_string(), row);
    }
    let auto = target.join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
    text.push_str("\nport = 5491\narchive_mode = off\nlog_line_prefix = '%m '\n");
    std::fs::write(&auto, text).unwrap();
    let mut start = postgres(&format!("{BIN}/pg_ctl"));
    start
        .arg("-D")
        .arg(&target)
        .arg("-l")
        .arg(target.with_extension("log"))
        .args(["-W", "start"]);
    run(start);
    while target.join("recovery.signal").exists() {
        assert!(
            target.join("postmaster.pid").exists() || t.elapsed() < Duration::from_secs(10),
            "{} recovery failed: see {}",
            tool.name,
            target.with_extension("log").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    row.restore_secs = t.elapsed().as_secs_f64();
    r.ctl("stop");
    (tool.name.to_string(), row)
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn main() {
    let scale: u32 = std::env::var("HCBACKUP_BENCH_PITR_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let secs: u64 = std::env::var("HCBACKUP_BENCH_PITR_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let work = PathBuf::from(
        std::env::var("HCBACKUP_BENCH_DIR")
            .unwrap_or_else(|_| "/var/tmp/hcbackup-pitr-bench".into()),
    );
    println!(
        "PITR side by side: clinic scale {scale}, {secs} s of write load; {}",
        version("pgbackrest", "version")
    );
    let rows = [
        measure(&work.join("hcbackup"), hcbackup, scale, secs),
        measure(&work.join("pgbackrest"), pgbackrest, scale, secs),
    ];
    println!(
        "{:<11} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8} {:>9} {:>10} {:>10} {:>9}",
        "tool",
        "base1 s",
        "base1 MiB",
        "WAL MiB/s",
        "archived/s",
        "backlog",
        "drain s",
        "base2 s",
        "base2 +MiB",
        "restore s",
        "layout s"
    );
    for (name, r) in &rows {
        println!(
            "{:<11} {:>9.1} {:>9.1} {:>9.2} {:>10.2} {:>8} {:>8.1} {:>9.1} {:>10.1} {:>10.1} {:>9.1}",
            name,
            r.base1_secs,
            mib(r.base1_bytes),
            r.wal_mib_s,
            r.archived_per_s,
            r.max_backlog,
            r.drain_secs,
            r.base2_secs,
            mib(r.base2_added),
            r.restore_secs,
            r.layout_secs
        );
    }
    let (h, p) = (&rows[0].1, &rows[1].1);
    println!(
        "ratios hcbackup/pgBackRest: base1 time {:.2}, base1 size {:.2}, day-2 bytes {:.2}, restore-to-time {:.2}",
        h.base1_secs / p.base1_secs,
        h.base1_bytes as f64 / p.base1_bytes as f64,
        h.base2_added as f64 / p.base2_added.max(1) as f64,
        h.restore_secs / p.restore_secs
    );
}
