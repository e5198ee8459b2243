//! `hcbackup serve`: a small HTTP/1.1 server for monitors and people. Loopback by
//! default. `/healthz` (no token), `/` (the dashboard page: code, no data),
//! `/api/backup/status`, `/api/backup/history`, `/api/backup/runs` and `/metrics` (each behind the
//! bearer token HCBACKUP_STATUS_TOKEN, compared in constant time).
//!
//! Connections are served concurrently on one thread (the answers take
//! milliseconds and share one repository handle), thousands at once
//! (`connection_cap`); each has 5 s to send its headers (16 KiB at most) and 10 s in all, and
//! one request. Request bodies are never read. So idle or slow sockets, opened
//! without the token, cannot stall `/healthz` or the monitor.

pub mod metrics;

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::error::{Error, Result};
use crate::ops::history::Point;
use crate::ops::status::Status;

const DASHBOARD: &str = include_str!("dashboard.html");
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once (at most; see `connection_cap`); more wait in the
/// listen queue.
pub const MAX_CONNECTIONS: usize = 4096;

/// How many connections may be open at once: `MAX_CONNECTIONS`, within the
/// open-files limit (raised to its hard limit first). Idle sockets cost a few KiB
/// each, so a local user must open thousands, from several processes, to make
/// `/healthz` wait for a header timeout.
fn connection_cap() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    (lim.rlim_cur as usize)
        .saturating_sub(64)
        .clamp(64, MAX_CONNECTIONS)
}
/// Largest request head (request line and headers) read.
const MAX_HEAD: usize = 16 * 1024;

/// What the server answers with, computed per request.
pub struct Routes<'a> {
    /// BLAKE3 of the token: comparing hashes (blake3's `==` is constant-time) hides
    /// both the token's bytes and its length from timing.
    token: blake3::Hash,
    pub status: Box<dyn Fn() -> Result<Status> + 'a>,
    pub history: Box<dyn Fn() -> Result<Vec<Point>> + 'a>,
    pub runs: Box<dyn Fn() -> Result<Vec<crate::ops::runs::Run>> + 'a>,
}

impl<'a> Routes<'a> {
    pub fn new(
        token: &str,
        status: Box<dyn Fn() -> Result<Status> + 'a>,
        history: Box<dyn Fn() -> Result<Vec<Point>> + 'a>,
        runs: Box<dyn Fn() -> Result<Vec<crate::ops::runs::Run>> + 'a>,
    ) -> Routes<'a> {
        Routes {
            token: blake3::hash(token.as_bytes()),
            status,
            history,
            runs,
        }
    }

    fn authorized<B>(&self, req: &Request<B>) -> bool {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme's name is case-insensitive (RFC 9110 §11.1).
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .unwrap_or("");
        // Always hash and compare, token or not: the same work either way.
        let ok = blake3::hash(given.as_bytes()) == self.token;
        ok && !given.is_empty()
    }

    /// The answer to one request.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        }
        let path = req.uri().path();
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/" | "/index.html" => {
                respond(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD.into())
            }
            "/api/backup/status" | "/api/backup/history" | "/api/backup/runs" | "/metrics" => {
                if !self.authorized(req) {
                    let mut r = json(
                        StatusCode::UNAUTHORIZED,
                        &serde_json::json!({"error": "a valid bearer token is required (Authorization: Bearer HCBACKUP_STATUS_TOKEN)"}),
                    );
                    r.headers_mut().insert(
                        hyper::header::WWW_AUTHENTICATE,
                        hyper::header::HeaderValue::from_static("Bearer realm=\"hcbackup\""),
                    );
                    return r;
                }
                let answer = match path {
                    "/api/backup/status" => (self.status)()
                        .map(|s| json(StatusCode::OK, &serde_json::to_value(s).expect("json"))),
                    "/api/backup/history" => (self.history)()
                        .map(|h| json(StatusCode::OK, &serde_json::to_value(h).expect("json"))),
                    "/api/backup/runs" => (self.runs)()
                        .map(|r| json(StatusCode::OK, &serde_json::to_value(r).expect("json"))),
                    _ => (self.status)().map(|s| {
                        respond(
                            StatusCode::OK,
                            "text/plain; version=0.0.4; charset=utf-8",
                            metrics::render(&s),
                        )
                    }),
                };
                answer.unwrap_or_else(|e| {
                    tracing::warn!("{path}: {e}");
                    json(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &serde_json::json!({"error": e.to_string()}),
                    )
                })
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn respond(status: StatusCode, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        "x-content-type-options",
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    r
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    respond(status, "text/plain; charset=utf-8", body.into())
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    respond(
        status,
        "application/json",
        serde_json::to_string_pretty(v).expect("json"),
    )
}

/// Serve on `listener` until the process ends.
pub fn serve(listener: std::net::TcpListener, routes: &Routes<'_>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("starting the server: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Failed(format!("listening: {e}")))?;
    rt.block_on(async {
        use futures_util::stream::{FuturesUnordered, StreamExt};
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::Failed(format!("listening: {e}")))?;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.keep_alive(false)
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEAD);
        let mut open = FuturesUnordered::new();
        let cap = connection_cap();
        loop {
            tokio::select! {
                accepted = listener.accept(), if open.len() < cap => {
                    let stream = match accepted {
                        Ok((s, _)) => s,
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            continue;
                        }
                    };
                    let conn = http.serve_connection(
                        TokioIo::new(stream),
                        hyper::service::service_fn(|req| async move {
                            Ok::<_, Infallible>(routes.handle(&req))
                        }),
                    );
                    open.push(async move {
                        match tokio::time::timeout(REQUEST_TIMEOUT, conn).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::debug!("connection: {e}"),
                            Err(_) => tracing::debug!("connection: no answer within 10 s"),
                        }
                    });
                }
                Some(()) = open.next(), if !open.is_empty() => {}
            }
        }
    })
}
