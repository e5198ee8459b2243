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
