//! Receivers for the alert tests: a webhook listener on loopback that answers
//! with a chosen status and hands over each request body, and the SMTP sink's
//! Maildir (aiosmtpd, started by scripts/services.sh) read by recipient.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

pub struct Webhook {
    pub url: String,
    bodies: mpsc::Receiver<String>,
}

impl Webhook {
    /// Listen on a free loopback port; every request gets `status`.
    pub fn start(status: u16) -> Webhook {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/services/T000/B000/secret",
            l.local_addr().unwrap()
        );
        let (tx, bodies) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                let mut line = String::new();
                let mut first = String::new();
                r.read_line(&mut first).unwrap();
                loop {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let _ = tx.send(format!("{first}{}", String::from_utf8_lossy(&body)));
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
            }
        });
        Webhook { url, bodies }
    }

    /// The next request's body as JSON (its request line is checked to be a POST
    /// to the webhook's path).
    pub fn next(&self) -> serde_json::Value {
        let got = self
            .bodies
            .recv_timeout(Duration::from_secs(30))
            .expect("a webhook call");
        let (line, body) = got.split_once("\r\n").unwrap();
        assert!(
            line.starts_with("POST /services/T000/B000/secret "),
            "{line}"
        );
        serde_json::from_str(body).unwrap()
    }

    /// No request within a short while.
    pub fn none(&self) -> bool {
        self.bodies
            .recv_timeout(Duration::from_millis(300))
            .is_err()
    }
}

/// The SMTP sink's port (scripts/services.sh exports it).
pub fn smtp_port() -> String {
    std::env::var("HCBACKUP_TEST_SMTP_PORT")
        .expect("HCBACKUP_TEST_SMTP_PORT: run the tests with scripts/test.sh (it starts aiosmtpd)")
}

/// A recipient no other test (or earlier run) uses.
pub fn unique_address(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{tag}-{}-{nanos}-{n}@clinic.test", std::process::id())
}

/// Messages the sink filed for `to` (raw RFC 5322 text, quoted-printable undone).
pub fn mail_to(to: &str) -> Vec<String> {
    let dir = std::path::PathBuf::from(
        std::env::var("HCBACKUP_TEST_MAILDIR").expect("HCBACKUP_TEST_MAILDIR"),
    )
    .join("new");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
        if text.contains(&format!("X-RcptTo: {to}")) {
            out.push(text.replace("=\n", "").replace("=3D", "="));
        }
    }
    out
}
