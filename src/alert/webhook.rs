//! Alerts by webhook: one POST of Slack-compatible JSON (`text`, read by Slack,
//! Mattermost, Rocket.Chat, Teams' Slack-style connectors) with the alert's fields
//! under `hcbackup` for anything that parses it. hyper with rustls (ring) and the
//! system's roots, the TLS stack of every other network crate here.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::Alert;

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn send(url: &str, alert: &Alert) -> Result<(), String> {
    let body = serde_json::json!({
        "text": format!("{}\n{}", alert.subject(), alert.body()),
        "hcbackup": alert,
    });
    let req = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("hcbackup/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("webhook {}: {e}", redact(url)))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("webhook: starting a runtime: {e}"))?;
    let result = rt.block_on(async {
        let resp = if url.starts_with("https://") {
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
                .map_err(|e| format!("no TLS root certificates (install ca-certificates): {e}"))?
                .https_only()
                .enable_http1()
                .build();
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
            tokio::time::timeout(TIMEOUT, client.request(req)).await
        } else {
            let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
            tokio::time::timeout(TIMEOUT, client.request(req)).await
        };
        let resp = resp
            .map_err(|_| "no answer in 30 s".to_string())?
            .map_err(|e| chain(&e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = resp
            .into_body()
            .collect()
            .await
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(200)
                    .collect()
            })
            .unwrap_or_default();
        // The server's answer may echo the request, and the webhook's secret path
        // with it: that path never reaches a message.
        let path = url
            .split_once("://")
            .and_then(|(_, r)| r.split_once('/'))
            .map(|(_, p)| p);
        let text = match path {
            Some(p) if !p.is_empty() => text.replace(p, "…"),
            _ => text,
        };
        Err(format!(
            "HTTP {status}: {}",
            crate::model::tree::sanitize(&text)
        ))
    });
    result.map_err(|e: String| format!("webhook {}: {e}", redact(url)))
}

/// The address without its path: a Slack webhook's path is its secret.
fn redact(url: &str) -> String {
    let Some(i) = url.find("://") else {
        return "(address not shown)".into();
    };
    let authority = url[i + 3..].split(['/', '?', '#']).next().unwrap_or("");
    // `user:password@host`: the host alone.
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{}://{host}/…", &url[..i])
}

/// An error and its causes on one line (hyper's own says only "client error").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(&format!(": {c}"));
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn an_address_is_shown_without_its_secrets() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/SECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact("http://user:PASSWD@127.0.0.1:9/x?token=1"),
            "http://127.0.0.1:9/…"
        );
        assert_eq!(redact("hooks.example/SECRET"), "(address not shown)");
    }
}
