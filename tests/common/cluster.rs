//! A private PostgreSQL cluster for the WAL and point-in-time tests: initdb in
//! a temporary folder as the server's OS user, its own port and socket, WAL
//! archived into a repository by `hcbackup wal-push` (archive_command), run as
//! that user with its own password file and catalog.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{out, Env, PASSWORD};

pub const PG_USER: &str = "postgres";

/// The newest /usr/lib/postgresql/N/bin (Debian's layout).
pub fn server_bin() -> PathBuf {
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
pub fn as_postgres(program: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new("runuser");
    // Not the test's own folder: a `.env` there (the README's main job
    // writes one) is root's, and that user may not read it.
    c.current_dir("/");
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

/// Run `c`; its stdout, trimmed. Panics with everything it printed on failure.
pub fn run(mut c: Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{:?}: {}", c, out(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Cluster {
    pub bin: PathBuf,
    pub data: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
}

impl Cluster {
    pub fn psql(&self, sql: &str) -> String {
        let mut c = as_postgres(&self.bin.join("psql"), &[]);
        c.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket)
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql]);
        run(c)
    }

    pub fn pg_ctl(&self, what: &str) {
        let mut c = as_postgres(&self.bin.join("pg_ctl"), &[]);
        c.arg("-D").arg(&self.data).args(["-w", "-t", "120", what]);
        if what == "start" {
            c.arg("-l").arg(self.log());
        }
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "pg_ctl {what}: {}\nserver log:\n{}",
            out(&o),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    pub fn log(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    /// Append settings to postgresql.conf.
    pub fn configure(&self, conf: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, format!("\n{conf}\n").as_bytes()).unwrap();
    }

    /// Switch to a new WAL segment and wait until the one in use before it
    /// is archived.
    pub fn archive_now(&self) {
        let last = self.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
        self.psql("SELECT pg_switch_wal()");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let archived =
                self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            if archived.as_str() >= last.as_str() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{last} not archived in 60 s (last: {archived:?}); server log: {}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
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

/// A repository, catalog and password file that belong to the server's user,
/// under `env`'s folder, and the variables `hcbackup` needs to use them.
pub struct Archive {
    pub work: PathBuf,
    pub repo: PathBuf,
    pub settings: Vec<(String, String)>,
}

impl Archive {
    pub fn new(env: &Env) -> Archive {
        let work = env.path("pg");
        std::fs::create_dir_all(&work).unwrap();
        let (repo, cache, pw) = (work.join("repo"), work.join("cache"), work.join("password"));
        std::fs::write(&pw, PASSWORD).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(env.path(""), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut chown = Command::new("chown");
        chown
            .args(["-R", &format!("{PG_USER}:{PG_USER}")])
            .arg(&work);
        run(chown);
        let settings = vec![
            (
                "HCBACKUP_PASSWORD_FILE".to_string(),
                pw.display().to_string(),
            ),
            (
                "HCBACKUP_CACHE_DIR".to_string(),
                cache.display().to_string(),
            ),
            ("HCBACKUP_TEST_KDF".to_string(), "1".to_string()),
            ("HCBACKUP_PRUNE_GRACE_SECS".to_string(), "0".to_string()),
        ];
        let a = Archive {
            work,
            repo,
            settings,
        };
        run(a.hcbackup(&["init"], &[]));
        a
    }

    /// `hcbackup --repo REPO ARGS` as the server's user, with `extra` variables.
    pub fn hcbackup(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        self.hcbackup_at(&self.repo, args, extra)
    }

    /// `hcbackup` as the server's user on the repository at `repo` (a copy).
    pub fn hcbackup_at(&self, repo: &Path, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let mut vars: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        vars.extend_from_slice(extra);
        let mut c = as_postgres(Path::new(env!("CARGO_BIN_EXE_hcbackup")), &vars);
        c.current_dir(&self.work).arg("--repo").arg(repo).args(args);
        c
    }

    /// `snapshot --physical --no-mirror` (with `--json`) of `cluster`, as the
    /// server's user (its REPLICATION right).
    pub fn base_backup(&self, cluster: &Cluster) -> std::process::Output {
        self.hcbackup_on(
            cluster,
            &["--json", "snapshot", "--physical", "--no-mirror"],
        )
        .output()
        .unwrap()
    }

    /// `hcbackup ARGS` as the server's user with POSTGRES_* naming `cluster`.
    pub fn hcbackup_on(&self, cluster: &Cluster, args: &[&str]) -> Command {
        let (port, socket) = (
            cluster.port.to_string(),
            cluster.socket.display().to_string(),
        );
        let pg = [
            ("POSTGRES_HOST", socket.as_str()),
            ("POSTGRES_PORT", port.as_str()),
            ("POSTGRES_USER", PG_USER),
            ("POSTGRES_DB", "postgres"),
        ];
        self.hcbackup(args, &pg)
    }

    /// A new cluster in `name` whose archive_command pushes into this repository.
    pub fn cluster(&self, name: &str) -> Cluster {
        let bin = server_bin();
        let data = self.work.join(name);
        let mut initdb = as_postgres(&bin.join("initdb"), &[]);
        initdb
            .args(["-A", "trust", "-U", PG_USER, "--no-sync", "-D"])
            .arg(&data);
        run(initdb);
        let cluster = Cluster {
            bin,
            data,
            socket: self.work.clone(),
            port: free_port(),
        };
        let vars: String = self
            .settings
            .iter()
            .map(|(k, v)| format!("{k}={v} "))
            .collect();
        cluster.configure(&format!(
            "port = {}\nlisten_addresses = ''\nunix_socket_directories = '{}'\nwal_level = replica\narchive_mode = on\narchive_command = '{vars}{} --repo {} wal-push %p'\nwal_keep_size = '1GB'\nfsync = off\n",
            cluster.port,
            self.work.display(),
            env!("CARGO_BIN_EXE_hcbackup"),
            self.repo.display()
        ));
        cluster
    }
}
