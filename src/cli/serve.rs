//! `hcbackup serve [--listen ADDR]`: the status API, Prometheus metrics and the
//! dashboard (src/serve), on loopback unless told otherwise.

use super::status::{compute_with, StatusArgs};
use super::Ctx;
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    pub listen: String,
    #[command(flatten)]
    pub status: StatusArgs,
    /// Snapshots the history (the dashboard's charts) covers, newest last.
    #[arg(long, value_name = "N", default_value_t = 400)]
    pub history: usize,
}

/// Runs the dashboard's table lists.
const RECENT_RUNS: usize = 20;

pub fn run(ctx: &Ctx, a: ServeArgs) -> Result<i32> {
    let token = match &ctx.settings.status_token {
        Some(t) => t.0.clone(),
        None => zeroize::Zeroizing::new(String::new()),
    };
    if token.trim().chars().count() < 16 {
        return Err(Error::Usage(
            "serve needs HCBACKUP_STATUS_TOKEN, at least 16 characters (e.g. `openssl rand -hex 32`): the status, history and metrics answer only to it".into(),
        ));
    }
    let repo = ctx.open()?;
    let listener = std::net::TcpListener::bind(&a.listen).map_err(|e| {
        Error::Failed(format!(
            "cannot listen on {}: {e}; choose another --listen address",
            a.listen
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Failed(format!("listening: {e}")))?;
    if !addr.ip().is_loopback() {
        eprintln!(
            "hcbackup: warning: serving on {addr}, not loopback, without TLS: put a TLS proxy in front and keep the token secret"
        );
    }
    outln!("serving on http://{addr}/ (dashboard), /api/backup/status, /metrics, /healthz");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let status_args = &a.status;
    let routes = crate::serve::Routes::new(
        token.trim(),
        Box::new(|| {
            let now = super::now_flag(&status_args.now)?;
            compute_with(ctx, &repo, now, status_args)
        }),
        Box::new(|| crate::ops::history::run(&repo, a.history)),
        Box::new(|| crate::ops::runs::recent(&repo, RECENT_RUNS)),
    );
    crate::serve::serve(listener, &routes)?;
    Ok(crate::error::exit::OK)
}
