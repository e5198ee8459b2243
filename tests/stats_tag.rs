//! `stats` (sizes and ratios, per source and per snapshot) and `tag` (changing
//! the tags of existing snapshots without losing one, a hold, or a crash).

mod common;

use common::pg::Server;
use common::*;

#[test]
fn stats_says_what_is_held_what_is_stored_and_the_ratios() {
    let server = Server::from_env();
    let db = server.create("statsdb");
    db.psql("CREATE TABLE patients (id int PRIMARY KEY, name text); INSERT INTO patients SELECT g, 'p' || g FROM generate_series(1, 2000) g;");
    let env = Env::new();
    let up = env.path("uploads");
    write(&up.join("exam.dcm"), &noise(3, 1_000_000));
    write(&up.join("ficha.txt"), &text(4, 50_000));
    let snap = |tags: &[&str]| {
        let mut c = env.pg_cmd(&server, &db.name);
        c.args(["--json", "snapshot", up.to_str().unwrap()]);
        for t in tags {
            c.args(["--tag", t]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", out(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    snap(&["nightly"]);
    snap(&["nightly"]);
    write(&up.join("new.pdf"), &noise(5, 200_000));
    snap(&[]);

    let s = env.json(&["stats"]);
    assert_eq!(s["snapshots"], 3, "{s}");
    let src = |name: &str| {
        s["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["source"] == name)
            .unwrap_or_else(|| panic!("no source {name}: {s}"))
            .clone()
    };
    let files = src("uploads");
    assert_eq!(files["snapshots"], 3);
    assert_eq!(files["latest_bytes"], 1_250_000);
    assert_eq!(files["logical_bytes"], 2 * 1_050_000 + 1_250_000);
    assert_eq!(files["raw_bytes"], 1_250_000, "each byte once: {files}");
    assert!(files["dedup_ratio"].as_f64().unwrap() > 2.6, "{files}");
    // Noise does not compress: stored is the distinct bytes plus sealing.
    let stored = files["stored_bytes"].as_u64().unwrap();
    assert!((1_000_000..1_300_000).contains(&stored), "{files}");
    let dbs = src(&format!("database {}", db.name));
    assert_eq!(dbs["snapshots"], 3);
    assert!(dbs["latest_bytes"].as_u64().unwrap() > 10_000, "{dbs}");
    let repo = &s["repository"];
    assert_eq!(
        repo["stored_bytes"].as_u64().unwrap(),
        pack_files(&env.repo)
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum::<u64>()
    );
    assert!(repo["dedup_ratio"].as_f64().unwrap() > 2.0, "{repo}");
    let per = s["per_snapshot"].as_array().unwrap();
    assert_eq!(per.len(), 3);
    assert!(per[1]["bytes_added"].as_u64().unwrap() < 50_000, "{s}");
    // A filter narrows the snapshots counted; the human table names each source.
    let tagged = env.json(&["stats", "--tag", "nightly"]);
    assert_eq!(tagged["snapshots"], 2, "{tagged}");
    let human = env.ok(&["stats"]);
    assert!(
        human.contains(&format!("database {}", db.name)) && human.contains("deduplication"),
        "{human}"
    );
    env.verified();
}

#[test]
fn tag_changes_tags_keeps_holds_and_survives_a_crash() {
    let env = Env::new();
    let up = env.path("uploads");
    write(&up.join("laudo.pdf"), b"%PDF laudo");
    let first = env.json(&["snapshot", up.to_str().unwrap(), "--tag", "nightly"]);
    write(&up.join("laudo2.pdf"), b"%PDF laudo 2");
    env.snapshot(&[&up]);
    let old = first["id"].as_str().unwrap().to_string();
    env.ok(&["hold", "add", &old[..8], "--reason", "processo 123"]);

    let done = env.json(&[
        "tag",
        &old[..8],
        "--add",
        "before-migration",
        "--remove",
        "nightly",
    ]);
    let new = done[0]["new_id"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(done[0]["tags"], serde_json::json!(["before-migration"]));
    let ids = env.snapshot_ids();
    assert!(ids.contains(&new) && !ids.contains(&old), "{ids:?}");
    let listed = env.json(&["snapshots", "--tag", "before-migration"]);
    assert_eq!(listed[0]["original"], old.as_str(), "{listed}");
    // Its hold moved with it: a policy keeping nothing does not remove it.
    let holds = env.json(&["hold", "list"]).to_string();
    assert!(holds.contains(&new) && !holds.contains(&old), "{holds}");
    env.ok(&["forget", "--keep-last", "1"]);
    assert!(env.snapshot_ids().contains(&new));

    // Killed after writing the new manifest, before removing the old: both
    // exist, and the same command finishes the job with the same id.
    let latest = env.snapshot_ids().last().unwrap().clone();
    env.killed_at(
        "tag-after-write",
        &["tag", "latest", "--set", "a", "--set", "b"],
    );
    assert_eq!(env.snapshot_ids().len(), 3);
    // Left so, the two manifests count as one snapshot for a policy: neither
    // is forgotten by --keep-last 1, and forget says how to finish.
    let o = env.run(&["forget", "--keep-last", "1", "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan[0]["removed"], 0, "{plan}");
    assert!(out(&o).contains("merges them"), "{}", out(&o));
    let again = env.json(&["tag", &latest[..8], "--set", "a", "--set", "b"]);
    let retagged = again[0]["new_id"].as_str().unwrap();
    let ids = env.snapshot_ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&retagged.to_string()));
    // Nothing to change: nothing written.
    let none = env.ok(&["tag", "latest", "--add", "a"]);
    assert!(none.contains("0 of 1 snapshots changed"), "{none}");
    env.ok(&["tag", "latest", "--set", ""]);
    assert_eq!(
        env.json(&["snapshots", "--latest", "1"])[0]["tags"],
        serde_json::json!([])
    );
    // Killed again, then any tag of the snapshot (here through the manifest
    // `latest` names, which may be either) merges the two, keeping both sets
    // of tags.
    env.killed_at("tag-after-write", &["tag", "latest", "--add", "kept"]);
    assert_eq!(env.snapshot_ids().len(), 3);
    let merged = env.json(&["tag", "latest", "--remove", "none"]);
    assert_eq!(merged[0]["tags"], serde_json::json!(["kept"]), "{merged}");
    assert_eq!(env.snapshot_ids().len(), 2);

    // Bad asks: one line, exit 2, nothing changed.
    for args in [
        vec!["tag", "latest"],
        vec!["tag", "--add", "x"],
        vec!["tag", "latest", "--add", "safety-dump"],
        vec!["tag", "latest", "--add", " x"],
        vec!["tag", "ffffffff", "--add", "x"],
    ] {
        let o = env.run(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?}: {}", out(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).lines().count(),
            1,
            "{}",
            out(&o)
        );
    }
    assert_eq!(env.snapshot_ids().len(), 2);
    let audit = env.json(&["audit"]).to_string();
    assert!(audit.contains("\"tag\""), "{audit}");
    env.verified();
}
