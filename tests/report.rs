//! `report`: compliance evidence from a known repository — policies, last backups
//! and a restore test against the RPO/RTO, restores with their reasons, holds,
//! key changes, the audit chain (and a broken one named) — as Markdown and HTML.

mod common;

use common::pg::Server;
use common::*;

#[test]
fn the_report_carries_the_evidence_of_a_known_repository() {
    let admin = Server::admin();
    let db = admin.create("report");
    db.psql("CREATE TABLE patients(id int primary key); INSERT INTO patients SELECT generate_series(1, 100);");
    let env = Env::new();
    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(1, 200_000));
    let pg = |args: &[&str]| {
        let o = env.pg_cmd(&admin, &db.name).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", out(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    pg(&["snapshot", src.to_str().unwrap()]);
    pg(&["verify", "--restore-test"]);
    let target = env.path("drill");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--reason",
        "restore drill <ticket 7>",
    ]);
    env.ok(&["hold", "add", "latest", "--reason", "processo 0012345-67"]);
    let pwfile = env.path("escrow-password");
    std::fs::write(&pwfile, "escrow password for the notary").unwrap();
    env.ok(&[
        "key",
        "add",
        "--new-password-file",
        pwfile.to_str().unwrap(),
    ]);

    let md = pg(&["report"]);
    for want in [
        "# hcbackup compliance report",
        "- Backups: fresh",
        "- Audit chain: intact (",
        "| local | --keep-daily 30 | default |",
        &format!(
            "| RPO: files {} | 24 h | last good snapshot 0.0 h old | met |",
            src.display()
        ),
        "| RTO: database | 15 min |",
        "| RTO: files | 30 min | slowest restore: 195.3 KiB in ",
        "| passed |",
        "| restore drill &lt;ticket 7&gt; |",
        "| processo 0012345-67 |",
        "| key add |",
    ] {
        assert!(md.contains(want), "{want:?} not in:\n{md}");
    }
    let db_line = md
        .lines()
        .find(|l| l.starts_with("| RTO: database"))
        .unwrap();
    assert!(db_line.ends_with("| met |"), "{db_line}");

    // HTML: the same, escaped, to a file.
    let html = env.path("report.html");
    pg(&[
        "report",
        "--format",
        "html",
        "--output",
        html.to_str().unwrap(),
    ]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("<td>restore drill &lt;ticket 7&gt;</td>"));
    assert!(!page.contains("<ticket 7>"));

    // A tampered audit log is what the report says first.
    let conn = rusqlite::Connection::open(env.catalog_file()).unwrap();
    conn.execute(
        "UPDATE audit SET event = replace(event, 'restore drill', 'nothing here') WHERE seq = 5",
        [],
    )
    .unwrap();
    drop(conn);
    let md = pg(&["report"]);
    assert!(md.contains("- Audit chain: BROKEN at event #5"), "{md}");
}
