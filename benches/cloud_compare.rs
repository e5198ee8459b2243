//! Mirror and cloud-restore throughput against plain transfers of the same bytes
//! with the same SDK, on loopback against the S3 test server (moto):
//!
//! 1. a clinic-like set is snapshotted into a local repository;
//! 2. `hcbackup mirror` to an empty bucket, against a plain upload of the same
//!    repository files with aws-sdk-s3 (eight transfers in flight, as mirror uses);
//! 3. `hcbackup --repo s3://… restore latest` on a fresh catalog (a new machine),
//!    against a plain download of the same objects.
//!
//! `source scripts/services.sh && start_services && cargo bench --bench cloud_compare`.
//! Size: HCBACKUP_BENCH_MB (default 512). Ratios are what to quote: moto is a
//! Python server and sets the absolute speed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

#[path = "../tests/common/data.rs"]
mod data;
use data::{noise, text};

const TRANSFERS: usize = 8;

fn put(p: &Path, d: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, d).unwrap();
}

/// Documents, images, DICOM-like series, a video and small attachments.
fn generate(root: &Path, mb: usize) {
    let scale = mb as f64 / 512.0;
    let n = |x: f64| ((x * scale).round() as usize).max(1);
    for i in 0..n(1000.0) {
        put(
            &root.join(format!("prontuarios/{:02}/doc{i:05}.pdf", i % 50)),
            &text(i as u64, 20_000 + (i * 7919) % 150_000),
        );
    }
    for i in 0..n(80.0) {
        put(
            &root.join(format!("exames/img{i:04}.jpg")),
            &noise(10_000 + i as u64, 1_000_000 + (i * 104_729) % 2_000_000),
        );
    }
    for i in 0..n(20.0) {
        put(
            &root.join(format!("dicom/ser{i:03}.dcm")),
            &noise(20_000 + i as u64, 5_000_000),
        );
    }
    put(
        &root.join("telemedicina/consulta.mp4"),
        &noise(30_000, n(100.0) << 20),
    );
    for i in 0..n(2000.0) {
        put(
            &root.join(format!("anexos/{:02}/{i:05}.txt", i % 20)),
            &text(40_000 + i as u64, 1000 + i % 3000),
        );
    }
}

fn files(root: &Path, out: &mut Vec<(String, PathBuf)>, rel: &str) {
    for e in fs::read_dir(root).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if e.file_type().unwrap().is_dir() {
            files(&e.path(), out, &r);
        } else if !r.starts_with("locks") {
            out.push((r, e.path()));
        }
    }
}

fn bucket(endpoint: &str, name: &str) {
    let o = Command::new("curl")
        .args(["-fsS", "-X", "PUT", &format!("{endpoint}/{name}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "creating bucket {name}");
}

fn hcbackup(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hcbackup"));
    c.env("HCBACKUP_PASSWORD", "bench")
        .env("HCBACKUP_CACHE_DIR", cache);
    c
}

fn run(c: &mut Command) -> f64 {
    let t = Instant::now();
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    t.elapsed().as_secs_f64()
}

/// `work` items over TRANSFERS threads.
fn parallel<T: Sync>(items: &[T], f: impl Fn(&T) + Sync) {
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..TRANSFERS {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                match items.get(i) {
                    Some(it) => f(it),
                    None => return,
                }
            });
        }
    });
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") || std::env::args().any(|a| a == "--list") {
        return;
    }
    let endpoint = std::env::var("HCBACKUP_TEST_S3_ENDPOINT")
        .expect("start the S3 test server first: source scripts/services.sh && start_services");
    let mb: usize = std::env::var("HCBACKUP_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let w = work.path();
    let src = w.join("uploads");
    generate(&src, mb);
    let repo = w.join("repo");
    let cache = w.join("cache");
    run(hcbackup(&cache).arg("--repo").arg(&repo).arg("init"));
    run(hcbackup(&cache)
        .arg("--repo")
        .arg(&repo)
        .args(["snapshot", "--no-mirror"])
        .arg(&src));
    let mut objects = Vec::new();
    files(&repo, &mut objects, "");
    let bytes: u64 = objects
        .iter()
        .map(|(_, p)| fs::metadata(p).unwrap().len())
        .sum();
    let mib = bytes as f64 / (1 << 20) as f64;

    let id = format!("{:08x}", rand::random::<u32>());
    let (b_mirror, b_plain) = (format!("hcb-bench-m-{id}"), format!("hcb-bench-p-{id}"));
    bucket(&endpoint, &b_mirror);
    bucket(&endpoint, &b_plain);

    // hcbackup mirror.
    let t_mirror = run(hcbackup(&cache)
        .arg("--repo")
        .arg(&repo)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("S3_BACKUP_BUCKET", &b_mirror)
        .arg("mirror"));

    // Plain SDK upload and download of the same files.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let shared = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .load(),
    );
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    );
    let t = Instant::now();
    parallel(&objects, |(key, path)| {
        let body = fs::read(path).unwrap();
        rt.block_on(
            client
                .put_object()
                .bucket(&b_plain)
                .key(format!("backups/{key}"))
                .body(body.into())
                .send(),
        )
        .unwrap();
    });
    let t_upload = t.elapsed().as_secs_f64();
    let t = Instant::now();
    parallel(&objects, |(key, _)| {
        let r = rt
            .block_on(
                client
                    .get_object()
                    .bucket(&b_plain)
                    .key(format!("backups/{key}"))
                    .send(),
            )
            .unwrap();
        let d = rt.block_on(r.body.collect()).unwrap().into_bytes();
        assert!(!d.is_empty() || key.starts_with("locks"));
    });
    let t_download = t.elapsed().as_secs_f64();

    // A new machine: no local repository, no catalog; restore from the mirror.
    let target = w.join("restored");
    let t_restore = run(hcbackup(&w.join("fresh-cache"))
        .arg("--repo")
        .arg(format!("s3://{b_mirror}/backups"))
        .env("AWS_ENDPOINT_URL", &endpoint)
        .args(["restore", "latest", "--target"])
        .arg(&target));

    println!(
        "cloud_compare: {mib:.0} MiB repository ({} objects), S3 test server at {endpoint}",
        objects.len()
    );
    println!(
        "{:<40} {:>9} {:>10} {:>11}",
        "", "seconds", "MiB/s", "vs plain"
    );
    let line = |label: &str, t: f64, base: f64| {
        println!("{label:<40} {t:>9.2} {:>10.1} {:>10.2}×", mib / t, base / t);
    };
    line("plain SDK upload (8 in flight)", t_upload, t_upload);
    line("hcbackup mirror", t_mirror, t_upload);
    line("plain SDK download (8 in flight)", t_download, t_download);
    line("hcbackup restore, fresh catalog", t_restore, t_download);
}
