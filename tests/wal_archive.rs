//! A real PostgreSQL cluster archiving into a repository: `archive_command =
//! 'hcbackup wal-push %p'` run by the server as its own OS user, every
//! segment archived without a failure, and each one fetched back byte-exact
//! (issue #19, step 1). The cluster is a private one (initdb in a temporary
//! folder, its own port and socket), started and stopped by the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const PG_USER: &str = "postgres";

/// The newest /usr/lib/postgresql/N/bin (Debian's layout).
fn server_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server programs in /usr/lib/postgresql")
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().expect("initdb").1
}

/// `program` run as the server's OS user, with a cleared environment but `env`.
fn as_postgres(program: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", PG_USER, "--", "env", "-i"]);
    c.arg(format!(
        "PATH={}",
        std::env::var("PATH").unwrap_or_default()
    ));
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.arg(program);
    c
}

fn run(mut c: Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{:?}: {}", c, out(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn chown_to_postgres(p: &Path) {
    run({
        let mut c = Command::new("chown");
        c.args(["-R", &format!("{PG_USER}:{PG_USER}")]).arg(p);
        c
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    socket: PathBuf,
    port: u16,
}

impl Cluster {
    fn psql(&self, sql: &str) -> String {
        let mut c = as_postgres(&self.bin.join("psql"), &[]);
        c.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]);
        run(c)
    }

    fn pg_ctl(&self, what: &str) {
        let mut c = as_postgres(&self.bin.join("pg_ctl"), &[]);
        c.arg("-D").arg(&self.data).args(["-w", "-t", "60", what]);
        if what == "start" {
            c.arg("-l").arg(self.data.with_file_name("server.log"));
        }
        run(c);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = as_postgres(&self.bin.join("pg_ctl"), &[]);
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"]);
        let _ = c.output();
    }
}

#[test]
fn a_real_cluster_archives_every_segment_and_each_comes_back_byte_exact() {
    let env = Env::uninit();
    // Everything the server's user touches is its own: the repository, the
    // catalog, the password file, the cluster.
    let work = env.path("pg");
    std::fs::create_dir_all(&work).unwrap();
    let (repo, cache, pw) = (work.join("repo"), work.join("cache"), work.join("password"));
    std::fs::write(&pw, PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(
        env.path(""),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    chown_to_postgres(&work);
    let hcbackup = PathBuf::from(env!("CARGO_BIN_EXE_hcbackup"));
    let settings = [
        ("HCBACKUP_PASSWORD_FILE", pw.to_str().unwrap()),
        ("HCBACKUP_CACHE_DIR", cache.to_str().unwrap()),
        ("HCBACKUP_TEST_KDF", "1"),
    ];
    let mut init = as_postgres(&hcbackup, &settings);
    init.arg("--repo").arg(&repo).arg("init");
    run(init);

    let bin = server_bin();
    let data = work.join("data");
    let mut initdb = as_postgres(&bin.join("initdb"), &[]);
    initdb
        .args(["-A", "trust", "-U", PG_USER, "--no-sync", "-D"])
        .arg(&data);
    run(initdb);
    let cluster = Cluster {
        bin,
        data: data.clone(),
        socket: work.clone(),
        port: free_port(),
    };
    let archive_command = format!(
        "{} {} --repo {} wal-push %p",
        settings.map(|(k, v)| format!("{k}={v}")).join(" "),
        hcbackup.display(),
        repo.display()
    );
    let conf = format!(
        "\nport = {}\nlisten_addresses = ''\nunix_socket_directories = '{}'\nwal_level = replica\narchive_mode = on\narchive_command = '{archive_command}'\nwal_keep_size = '1GB'\nfsync = off\n",
        cluster.port,
        work.display()
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
    cluster.pg_ctl("start");

    // Some segments full of rows, and switched ones with zero tails.
    cluster.psql("CREATE TABLE visits (id int PRIMARY KEY, note text)");
    for round in 0..3 {
        cluster.psql(&format!(
            "INSERT INTO visits SELECT g, md5(g::text) FROM generate_series({}, {}) g",
            round * 100_000 + 1,
            (round + 1) * 100_000
        ));
        cluster.psql("SELECT pg_switch_wal()");
    }
    cluster.psql("INSERT INTO visits VALUES (0, 'marker')");
    let last = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    cluster.psql("SELECT pg_switch_wal()");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let archived = cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
        if archived.as_str() >= last.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{last} not archived in 60 s (last: {archived:?}); server log: {}",
            std::fs::read_to_string(work.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let failed = cluster.psql("SELECT failed_count FROM pg_stat_archiver");
    assert_eq!(failed, "0", "archive_command failed");

    // Every segment the server marked archived comes back byte-exact.
    let done: Vec<String> = std::fs::read_dir(data.join("pg_wal/archive_status"))
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().into_string().ok()?;
            n.strip_suffix(".done").map(str::to_string)
        })
        .collect();
    assert!(done.len() >= 4, "{done:?}");
    let back = env.path("back");
    std::fs::create_dir_all(&back).unwrap();
    for name in &done {
        let dest = back.join(name);
        let mut fetch = env.cmd_repo(repo.as_os_str());
        fetch
            .env("HCBACKUP_PASSWORD", PASSWORD)
            .args(["wal-fetch", name])
            .arg(&dest);
        let o = fetch.output().unwrap();
        assert!(o.status.success(), "{name}: {}", out(&o));
        assert!(
            std::fs::read(&dest).unwrap() == std::fs::read(data.join("pg_wal").join(name)).unwrap(),
            "{name} differs"
        );
    }
    drop(cluster);
    // The repository is whole, WAL included.
    let v = env
        .cmd_repo(repo.as_os_str())
        .args(["--json", "verify", "--read-data"])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", out(&v));
}
