//! `serve`: the status API behind the bearer token (none, wrong, right), /metrics
//! parsed as Prometheus text, /healthz, and the dashboard rendered by headless
//! Chromium with the numbers of a known repository.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use common::*;
use serde_json::Value;

const TOKEN: &str = "s3cr3t-token-for-the-clinic-monitor";

/// A running `hcbackup serve` on a free loopback port; killed on drop.
struct Served {
    child: Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(env: &Env, args: &[&str]) -> Served {
    let mut child = env
        .cmd()
        .env("HCBACKUP_STATUS_TOKEN", TOKEN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Served { child, port }
}

/// One HTTP/1.1 request; returns the status, the headers (lower-case) and the body.
fn request(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// A repository with two snapshots a day apart, mirrored to a USB disk, verified.
fn known_repository() -> Env {
    let env = Env::new();
    env.usb_destination();
    let src = env.path("uploads");
    write(&src.join("exams/a.dcm"), &noise(1, 300_000));
    write(&src.join("records/b.txt"), &text(2, 40_000));
    env.ok(&[
        "snapshot",
        "--no-mirror",
        "--time",
        "2026-11-27T03:00:00Z",
        src.to_str().unwrap(),
    ]);
    write(&src.join("exams/c.dcm"), &noise(3, 100_000));
    env.ok(&[
        "snapshot",
        "--time",
        "2026-11-28T03:00:00Z",
        src.to_str().unwrap(),
    ]);
    env.verified();
    env
}

/// Sizes as the CLI and the dashboard print them.
fn size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let (mut v, mut i) = (n as f64, 0);
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

#[test]
fn the_status_api_answers_only_to_the_token_and_metrics_parse() {
    let env = known_repository();
    let want = env.json(&["status", "--max-age", "1000"]);
    let s = serve(&env, &[]);

    assert_eq!(request(s.port, "GET", "/healthz", None).0, 200);
    for token in [
        None,
        Some("wrong-token-of-some-length"),
        Some(""),
        Some(&TOKEN[..10]),
    ] {
        let (code, head, body) = request(s.port, "GET", "/api/backup/status", token);
        assert_eq!(code, 401, "{token:?}: {body}");
        assert!(head.contains("www-authenticate: bearer"), "{head}");
        assert!(!body.contains("stored_bytes"));
        assert_eq!(request(s.port, "GET", "/metrics", token).0, 401);
        assert_eq!(request(s.port, "GET", "/api/backup/history", token).0, 401);
    }
    let (code, head, body) = request(s.port, "GET", "/api/backup/status", Some(TOKEN));
    assert_eq!(code, 200, "{body}");
    assert!(head.contains("content-type: application/json"));
    let got: Value = serde_json::from_str(&body).unwrap();
    for k in [
        "snapshots",
        "stored_bytes",
        "latest_bytes",
        "dedup_ratio",
        "repository",
    ] {
        assert_eq!(got[k], want[k], "{k}");
    }
    assert_eq!(got["snapshots"], 2);
    assert_eq!(got["destinations"][0]["name"], "usb");
    assert_eq!(got["destinations"][0]["snapshots_behind"], 0);
    assert_eq!(got["last_verify"]["result"], "ok");

    let (code, _, body) = request(s.port, "GET", "/api/backup/history", Some(TOKEN));
    assert_eq!(code, 200);
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 2);
    assert_eq!(h[0]["bytes"], 340_000);
    assert_eq!(h[1]["bytes"], 440_000);
    assert!(h[1]["added"].as_u64().unwrap() < h[0]["added"].as_u64().unwrap());

    // /metrics: the Prometheus text format, every sample line parsed.
    let (code, head, body) = request(s.port, "GET", "/metrics", Some(TOKEN));
    assert_eq!(code, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap();
    let sample_lines = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(scrape.samples.len(), sample_lines, "{body}");
    for line in body.lines().filter(|l| l.starts_with("# TYPE")) {
        assert!(line.ends_with(" gauge"), "{line}");
    }
    let value = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("{name} in {body}"));
        match s.value {
            prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(value("hcbackup_snapshots", None), 2.0);
    assert_eq!(
        value("hcbackup_stored_bytes", None),
        want["stored_bytes"].as_f64().unwrap()
    );
    assert_eq!(
        value("hcbackup_dedup_ratio", None),
        want["dedup_ratio"].as_f64().unwrap()
    );
    let src = env.path("uploads").display().to_string();
    assert_eq!(
        value(
            "hcbackup_last_good_snapshot_timestamp_seconds",
            Some(("source", &src))
        ),
        1_795_834_800.0 // 2026-11-28T03:00:00Z
    );
    assert_eq!(
        value(
            "hcbackup_destination_snapshots_behind",
            Some(("destination", "usb"))
        ),
        0.0
    );
    assert_eq!(value("hcbackup_last_verify_success", None), 1.0);

    assert_eq!(
        request(s.port, "POST", "/api/backup/status", Some(TOKEN)).0,
        405
    );
    assert_eq!(request(s.port, "GET", "/nothing", Some(TOKEN)).0, 404);
    // The page itself carries no data, so it needs no token.
    let (code, _, page) = request(s.port, "GET", "/", None);
    assert_eq!(code, 200);
    assert!(!page.contains(&src));
}

#[test]
fn serve_without_a_token_refuses_to_start() {
    let env = Env::new();
    let o = env.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HCBACKUP_STATUS_TOKEN"));
}

/// The page after its scripts ran, as headless Chromium (Debian's `chromium`) sees it.
fn render(url: &str) -> String {
    String::from_utf8(chromium(url, (1280, 900), "--dump-dom")).unwrap()
}

/// Run headless Chromium on `url` in a window of `size`, in São Paulo's time
/// zone, with `what` (`--dump-dom`, or `--screenshot=FILE`); its stdout.
fn chromium(url: &str, size: (u32, u32), what: &str) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .env("TZ", "America/Sao_Paulo")
        .arg(format!("--window-size={},{}", size.0, size.1))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(what)
        .arg(url)
        .output()
        .expect("chromium: install Debian's chromium package (scripts/services.sh does)");
    assert!(o.status.success(), "{}", out(&o));
    o.stdout
}

/// A PNG's width and height (its IHDR chunk).
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&png[16..20]), be(&png[20..24]))
}

#[test]
fn the_dashboard_renders_the_repositorys_numbers_in_chromium() {
    let env = known_repository();
    // Judged seven hours after the last snapshot: fresh, whatever today's date.
    let now = "2026-11-28T10:00:00Z";
    let want = env.json(&["status", "--now", now]);
    assert_eq!(want["fresh"], true, "{want}");
    let s = serve(&env, &["--now", now]);
    let dom = render(&format!("http://127.0.0.1:{}/#token={TOKEN}", s.port));
    let text_of = |id: &str| -> String {
        let start = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("#{id} in {dom}"));
        let rest = &dom[start..];
        let open = rest.find('>').unwrap() + 1;
        let close = rest.find("</").unwrap();
        rest[open..close].to_string()
    };
    assert_eq!(text_of("snapshots"), "2");
    assert_eq!(
        text_of("stored"),
        size(want["stored_bytes"].as_u64().unwrap())
    );
    assert_eq!(text_of("latest"), size(440_000));
    assert_eq!(
        text_of("dedup"),
        format!("{:.1}x", want["dedup_ratio"].as_f64().unwrap())
    );
    assert_eq!(text_of("state"), "FRESH");
    assert!(dom.contains("7.0 h ago"), "the source's age");
    assert!(text_of("verify").ends_with(" ok"));
    assert!(dom.contains("up to date"), "the USB copy's lag");
    // Each copy's recovery window, the primary's and the USB disk's.
    assert_eq!(
        dom.matches("2026-11-27 00:00:00 to 2026-11-28 00:00:00 (1.0 days, 2 snapshots)")
            .count(),
        2,
        "{dom}"
    );
    // Times in the browser's zone, to the second: the last snapshot, 03:00 UTC
    // on 28 November, is midnight in São Paulo.
    assert!(dom.contains("2026-11-28 00:00:00"), "{dom}");
    // The recent runs, from the audit log: the snapshots, the mirror, the verify.
    let runs = &dom[dom.find("id=\"runs\"").unwrap()..];
    let runs = &runs[..runs.find("</table>").unwrap()];
    for op in ["<td>snapshot</td>", "<td>verify</td>"] {
        assert!(runs.contains(op), "{op} in {runs}");
    }
    assert!(runs.contains("class=\"good\">ok<"), "{runs}");
    // Charts carry a date axis.
    assert!(dom.contains("class=\"axis\""), "{dom}");
    // It fits a laptop and a phone: nothing sticks out sideways, and the
    // screenshots have the window's width.
    for (w, h) in [(1280, 900), (390, 844)] {
        let url = format!("http://127.0.0.1:{}/#token={TOKEN}", s.port);
        let dom = String::from_utf8(chromium(&url, (w, h), "--dump-dom")).unwrap();
        assert!(dom.contains("data-overflow=\"no\""), "{w}px: {dom}");
        assert!(
            dom.contains(">FRESH<") && dom.contains("Recent runs"),
            "{w}px"
        );
        let shot = tempfile::tempdir().unwrap();
        let file = shot.path().join("dashboard.png");
        chromium(&url, (w, h), &format!("--screenshot={}", file.display()));
        let png = std::fs::read(&file).unwrap();
        assert_eq!(png_size(&png).0, w, "{w}px screenshot");
        assert!(png.len() > 10_000, "{w}px screenshot is not blank");
    }
    // One bar per snapshot in the daily chart, one point per snapshot in the others.
    for chart in ["chart-added", "chart-total", "chart-dedup"] {
        let start = dom.find(&format!("id=\"{chart}\"")).unwrap();
        let end = start + dom[start..].find("</svg>").unwrap();
        assert_eq!(
            dom[start..end].matches("class=\"point\"").count(),
            2,
            "{chart}"
        );
    }

    // A wrong token: no numbers, the token form instead.
    let dom = render(&format!(
        "http://127.0.0.1:{}/#token=wrong-token-wrong-token",
        s.port
    ));
    assert!(dom.contains("token not accepted"), "{dom}");
    assert!(
        dom.contains("check it against HCBACKUP_STATUS_TOKEN"),
        "{dom}"
    );
    assert!(!dom.contains("id=\"snapshots\">2<"));
}

#[test]
fn a_stale_repository_shows_its_problems_on_the_dashboard() {
    let env = known_repository();
    // Three days after the last snapshot.
    let s = serve(&env, &["--now", "2026-12-01T03:00:00Z"]);
    let dom = render(&format!("http://127.0.0.1:{}/#token={TOKEN}", s.port));
    assert!(dom.contains(">STALE<"), "{dom}");
    assert!(
        dom.contains("last good snapshot is 72.0 hours old (limit 26)"),
        "{dom}"
    );
    let (_, _, body) = request(s.port, "GET", "/metrics", Some(TOKEN));
    assert!(body.contains("\nhcbackup_fresh 0\n"), "{body}");
}
