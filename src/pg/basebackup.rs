//! A physical base backup: `pg_basebackup -D - -Ft -X none` writes the
//! cluster as one tar on its stdout, which the snapshot streams through the
//! engine (never staged on disk). The WAL it needs comes from the archive
//! (`wal-push`), so `-X none`; pg_basebackup waits until the last segment of
//! the backup is archived before it ends. A `TarWatch` passes the stream on
//! unchanged and keeps the two small members that say what the backup is:
//! `backup_label` (start LSN, timeline) and `backup_manifest` (stop LSN).

use std::io::{self, Read};
use std::process::{Child, ChildStdout, Stdio};
use std::thread::JoinHandle;

use super::tools;
use crate::config::PgTarget;
use crate::error::{Error, Result};

/// What the backup's own files say about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Label {
    pub start_lsn: String,
    /// The WAL file the backup starts in.
    pub start_wal: String,
    pub timeline: u32,
    pub start_time: String,
    pub label: String,
}

/// A running pg_basebackup.
pub struct BaseBackup {
    child: Child,
    stdout: Option<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
}

impl BaseBackup {
    /// Start a base backup of `t`'s cluster, labelled `label`.
    pub fn start(t: &PgTarget, label: &str) -> Result<BaseBackup> {
        let mut c = tools::command("pg_basebackup", t);
        c.args([
            "-D",
            "-",
            "-F",
            "t",
            "-X",
            "none",
            "-c",
            "fast",
            "--no-password",
            "-l",
        ])
        .arg(label)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = tools::spawn("pg_basebackup", &mut c)?;
        let stderr = Some(tools::collect_stderr(&mut child));
        let stdout = child.stdout.take();
        Ok(BaseBackup {
            child,
            stdout,
            stderr,
        })
    }

    /// The tar stream, watched.
    pub fn reader(&mut self) -> TarWatch<ChildStdout> {
        TarWatch::new(self.stdout.take().expect("read once"))
    }

    /// Wait for pg_basebackup; its own error line when it failed.
    pub fn finish(mut self) -> Result<()> {
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io("waiting for pg_basebackup", e))?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        let why = tools::error_line(&stderr).unwrap_or_else(|| status.to_string());
        // The hint only where it is the likely cause.
        let lower = why.to_ascii_lowercase();
        let hint = if lower.contains("replication")
            || lower.contains("pg_hba")
            || lower.contains("permission")
        {
            " (the user needs the REPLICATION attribute and a `replication` line in pg_hba.conf)"
        } else if lower.contains("archiv") {
            " (archive_mode must be on with archive_command = 'hcbackup wal-push %p')"
        } else {
            ""
        };
        Err(Error::Failed(format!("pg_basebackup failed: {why}{hint}")))
    }
}

impl Drop for BaseBackup {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The largest member kept (a manifest lists every file of the cluster).
const MAX_KEPT: u64 = 64 << 20;

enum State {
    /// Reading a 512-byte header (this many bytes of it so far).
    Header(usize),
    /// Reading a member's data: bytes left, then padding; kept when named.
    Data {
        left: u64,
        pad: u64,
        keep: Option<&'static str>,
    },
    /// After the end-of-archive blocks.
    End,
}

/// Passes a tar stream through unchanged, keeping `backup_label` and
/// `backup_manifest`.
pub struct TarWatch<R> {
    inner: R,
    state: State,
    header: [u8; 512],
    /// A GNU long name (type `L`) for the next member.
    long_name: Option<Vec<u8>>,
    pub label: Option<Vec<u8>>,
    pub manifest: Option<Vec<u8>>,
    kept: Vec<u8>,
}

impl<R: Read> TarWatch<R> {
    pub fn new(inner: R) -> Self {
        TarWatch {
            inner,
            state: State::Header(0),
            header: [0; 512],
            long_name: None,
            label: None,
            manifest: None,
            kept: Vec::new(),
        }
    }

    fn header_done(&mut self) -> io::Result<()> {
        let h = &self.header;
        if h.iter().all(|b| *b == 0) {
            self.state = State::End;
            return Ok(());
        }
        let size = octal(&h[124..136]).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "a tar header's size is not a number",
            )
        })?;
        let name = match self.long_name.take() {
            Some(n) => n,
            None => {
                let field = |r: std::ops::Range<usize>| {
                    let f = &h[r];
                    f[..f.iter().position(|b| *b == 0).unwrap_or(f.len())].to_vec()
                };
                let (name, prefix) = (field(0..100), field(345..500));
                if prefix.is_empty() || &h[257..262] != b"ustar" {
                    name
                } else {
                    [prefix, b"/".to_vec(), name].concat()
                }
            }
        };
        let kind = h[156];
        let keep = match (kind, name.as_slice()) {
            (b'L', _) => Some("long name"),
            (b'0' | 0, b"backup_label" | b"./backup_label") => Some("backup_label"),
            (b'0' | 0, b"backup_manifest" | b"./backup_manifest") => Some("backup_manifest"),
            _ => None,
        };
        if keep.is_some() && size > MAX_KEPT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a backup_label or backup_manifest far too large",
            ));
        }
        self.kept.clear();
        self.state = State::Data {
            left: size,
            pad: (512 - size % 512) % 512,
            keep,
        };
        self.data_done_if_empty();
        Ok(())
    }

    fn data_done_if_empty(&mut self) {
        if let State::Data {
            left: 0,
            pad: 0,
            keep,
        } = self.state
        {
            self.member_done(keep);
            self.state = State::Header(0);
        }
    }

    fn member_done(&mut self, keep: Option<&'static str>) {
        let kept = std::mem::take(&mut self.kept);
        match keep {
            Some("long name") => {
                let end = kept.iter().position(|b| *b == 0).unwrap_or(kept.len());
                self.long_name = Some(kept[..end].to_vec());
            }
            Some("backup_label") => self.label = Some(kept),
            Some("backup_manifest") => self.manifest = Some(kept),
            _ => {}
        }
    }

    /// Follow `buf` (bytes that passed through) through the archive's layout.
    fn watch(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match &mut self.state {
                State::End => return Ok(()),
                State::Header(n) => {
                    let take = (512 - *n).min(buf.len());
                    self.header[*n..*n + take].copy_from_slice(&buf[..take]);
                    *n += take;
                    buf = &buf[take..];
                    if *n == 512 {
                        self.header_done()?;
                    }
                }
                State::Data { left, pad, keep } => {
                    let keep = *keep;
                    if *left > 0 {
                        let take = (*left).min(buf.len() as u64) as usize;
                        if keep.is_some() {
                            self.kept.extend_from_slice(&buf[..take]);
                        }
                        *left -= take as u64;
                        buf = &buf[take..];
                    } else {
                        let take = (*pad).min(buf.len() as u64) as usize;
                        *pad -= take as u64;
                        buf = &buf[take..];
                    }
                    if let State::Data {
                        left: 0, pad: 0, ..
                    } = self.state
                    {
                        self.member_done(keep);
                        self.state = State::Header(0);
                    }
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for TarWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.watch(&buf[..n])?;
        Ok(n)
    }
}

/// A tar number: octal digits (spaces and NULs around them), or base-256.
fn octal(f: &[u8]) -> Option<u64> {
    if f[0] & 0x80 != 0 {
        return f[1..]
            .iter()
            .try_fold(0u64, |acc, b| acc.checked_mul(256)?.checked_add(*b as u64));
    }
    let s = std::str::from_utf8(f).ok()?;
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// The backup_label's start LSN, WAL file, timeline, time and label.
pub fn parse_label(text: &[u8]) -> Result<Label> {
    let text = String::from_utf8_lossy(text);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    let bad = |what: &str| Error::Failed(format!("pg_basebackup's backup_label has no {what}"));
    let start = field("START WAL LOCATION:").ok_or_else(|| bad("START WAL LOCATION"))?;
    // `0/2000028 (file 000000010000000000000002)`
    let (lsn, rest) = start.split_once(' ').ok_or_else(|| bad("start LSN"))?;
    let wal = rest
        .trim()
        .strip_prefix("(file ")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad("start WAL file"))?;
    Ok(Label {
        start_lsn: lsn.to_string(),
        start_wal: wal.to_string(),
        timeline: field("START TIMELINE:")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("START TIMELINE"))?,
        start_time: field("START TIME:").unwrap_or_default(),
        label: field("LABEL:").unwrap_or_default(),
    })
}

/// The manifest's WAL range: (timeline, start LSN, end LSN) of the last range.
pub fn parse_manifest(text: &[u8]) -> Result<(u32, String, String)> {
    #[derive(serde::Deserialize)]
    struct Range {
        #[serde(rename = "Timeline")]
        timeline: u32,
        #[serde(rename = "Start-LSN")]
        start: String,
        #[serde(rename = "End-LSN")]
        end: String,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(rename = "WAL-Ranges")]
        wal: Vec<Range>,
    }
    let m: Manifest = serde_json::from_slice(text).map_err(|e| {
        Error::Failed(format!(
            "pg_basebackup's backup_manifest does not parse: {e}"
        ))
    })?;
    let r = m.wal.into_iter().last().ok_or_else(|| {
        Error::Failed("pg_basebackup's backup_manifest names no WAL range".into())
    })?;
    Ok((r.timeline, r.start, r.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    const LABEL: &[u8] = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-01 06:40:00 UTC\nLABEL: hcbackup nightly\nSTART TIMELINE: 1\n";

    #[test]
    fn the_label_and_manifest_are_kept_and_the_stream_passes_unchanged() {
        let long = format!("base/16384/{}", "x".repeat(150));
        let manifest = br#"{"PostgreSQL-Backup-Manifest-Version": 1, "Files": [], "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}]}"#;
        let tar = tar_of(&[
            ("PG_VERSION", b"15\n"),
            (&long, &[7u8; 9000]),
            ("backup_label", LABEL),
            ("global/pg_control", &[1u8; 8192]),
            ("backup_manifest", manifest),
        ]);
        // Read in odd pieces, as a pipe gives them.
        let mut w = TarWatch::new(&tar[..]);
        let mut out = Vec::new();
        let mut buf = [0u8; 333];
        loop {
            let n = w.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, tar);
        let label = parse_label(w.label.as_deref().unwrap()).unwrap();
        assert_eq!(
            label,
            Label {
                start_lsn: "0/2000028".into(),
                start_wal: "000000010000000000000002".into(),
                timeline: 1,
                start_time: "2026-12-01 06:40:00 UTC".into(),
                label: "hcbackup nightly".into(),
            }
        );
        let (tl, start, end) = parse_manifest(w.manifest.as_deref().unwrap()).unwrap();
        assert_eq!(
            (tl, start.as_str(), end.as_str()),
            (1, "0/2000028", "0/2000100")
        );
    }

    #[test]
    fn a_label_without_its_fields_is_an_error() {
        assert!(parse_label(b"LABEL: x\n").is_err());
        assert!(parse_label(b"START WAL LOCATION: 0/1\nSTART TIMELINE: 1\n").is_err());
        assert!(parse_manifest(b"{\"WAL-Ranges\": []}").is_err());
        assert!(parse_manifest(b"not json").is_err());
    }
}
