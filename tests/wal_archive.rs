//! A real PostgreSQL cluster archiving into a repository: `archive_command =
//! 'hcbackup wal-push %p'` run by the server as its own OS user, every
//! segment archived without a failure, and each one fetched back byte-exact
//! (issue #19, step 1). The cluster is a private one (`common::cluster`).

mod common;

use common::cluster::Archive;
use common::*;

#[test]
fn a_real_cluster_archives_every_segment_and_each_comes_back_byte_exact() {
    let env = Env::uninit();
    let archive = Archive::new(&env);
    let cluster = archive.cluster("data");
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
    cluster.archive_now();
    let failed = cluster.psql("SELECT failed_count FROM pg_stat_archiver");
    assert_eq!(failed, "0", "archive_command failed");

    // Every segment the server marked archived comes back byte-exact.
    let wal = cluster.data.join("pg_wal");
    let done: Vec<String> = std::fs::read_dir(wal.join("archive_status"))
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
        let mut fetch = env.cmd_repo(archive.repo.as_os_str());
        fetch.args(["wal-fetch", name]).arg(&dest);
        let o = fetch.output().unwrap();
        assert!(o.status.success(), "{name}: {}", out(&o));
        assert!(
            std::fs::read(&dest).unwrap() == std::fs::read(wal.join(name)).unwrap(),
            "{name} differs"
        );
    }
    drop(cluster);
    // The repository is whole, WAL included.
    let v = env
        .cmd_repo(archive.repo.as_os_str())
        .args(["--json", "verify", "--read-data"])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", out(&v));
}

/// The repository is unreachable for a while (here: not writable by the
/// server's user): archive_command fails, PostgreSQL keeps the segments and
/// retries, and once the repository is back the backlog drains: nothing that
/// was written is lost.
#[test]
fn a_repository_that_is_down_loses_nothing_and_the_backlog_drains() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    let env = Env::uninit();
    let archive = Archive::new(&env);
    let cluster = archive.cluster("data");
    cluster.configure("archive_timeout = 0");
    cluster.pg_ctl("start");
    cluster.psql("CREATE TABLE visits (id int PRIMARY KEY, note text)");
    cluster.archive_now();
    let wal_dir = archive.repo.join("wal");
    let mode = std::fs::metadata(&wal_dir).unwrap().permissions().mode();
    std::fs::set_permissions(&wal_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let mut switched = Vec::new();
    for round in 0..3 {
        cluster.psql(&format!(
            "INSERT INTO visits SELECT g, 'round {round}' FROM generate_series({}, {}) g",
            round * 1000 + 1,
            (round + 1) * 1000
        ));
        switched.push(cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())"));
        cluster.psql("SELECT pg_switch_wal()");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while cluster.psql("SELECT failed_count FROM pg_stat_archiver") == "0" {
        assert!(Instant::now() < deadline, "archive_command never failed");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Not archived: still in pg_wal, marked ready.
    for n in &switched {
        assert!(
            cluster.data.join("pg_wal").join(n).exists(),
            "{n} was recycled"
        );
    }
    std::fs::set_permissions(&wal_dir, std::fs::Permissions::from_mode(mode)).unwrap();
    cluster.archive_now();
    let back = env.path("back");
    for n in &switched {
        let o = env
            .cmd_repo(archive.repo.as_os_str())
            .args(["wal-fetch", n])
            .arg(&back)
            .output()
            .unwrap();
        assert!(o.status.success(), "{n}: {}", out(&o));
        assert!(
            std::fs::read(&back).unwrap()
                == std::fs::read(cluster.data.join("pg_wal").join(n)).unwrap()
        );
    }
    drop(cluster);
    let v = env
        .cmd_repo(archive.repo.as_os_str())
        .args(["--json", "verify", "--read-data"])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", out(&v));
}
