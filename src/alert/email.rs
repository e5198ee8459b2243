//! Alerts by email: lettre's SMTP transport, STARTTLS when the server offers it
//! (required when a login is configured, so a password never crosses in the
//! clear), implicit TLS on port 465.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::Alert;
use crate::config::lookup::Lookup;
use crate::error::{Error, Result};

/// How the connection is protected (HCBACKUP_SMTP_TLS).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TlsMode {
    /// STARTTLS if the server offers it, plain otherwise.
    Opportunistic,
    /// STARTTLS or fail.
    Required,
    /// TLS from the first byte (port 465).
    Wrapper,
    /// Never (a relay on loopback).
    None,
}

#[derive(Clone, Debug)]
pub struct EmailConfig {
    pub to: Vec<String>,
    pub from: String,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: TlsMode,
}

impl EmailConfig {
    pub fn read(env: &dyn Lookup, to: &str) -> Result<EmailConfig> {
        let host = env.var("SMTP_HOST").ok_or_else(|| {
            Error::Config(
                "BACKUP_NOTIFICATION_EMAIL is set but SMTP_HOST is not: set the mail server (SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD)".into(),
            )
        })?;
        let port = match env.var("SMTP_PORT") {
            Some(p) => p
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "SMTP_PORT={p:?}: give a port number (1-65535), such as 587"
                    ))
                })?,
            None => 587,
        };
        let user = env.var("SMTP_USER");
        let tls = match env.var("HCBACKUP_SMTP_TLS").as_deref() {
            None if port == 465 => TlsMode::Wrapper,
            None if user.is_some() => TlsMode::Required,
            None | Some("opportunistic") => TlsMode::Opportunistic,
            Some("starttls" | "required") => TlsMode::Required,
            Some("tls" | "wrapper") => TlsMode::Wrapper,
            Some("none") => TlsMode::None,
            Some(o) => {
                return Err(Error::Config(format!(
                    "HCBACKUP_SMTP_TLS {o}: give starttls, opportunistic, tls or none"
                )))
            }
        };
        let to: Vec<String> = to
            .split([',', ';', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let from = env
            .var("SMTP_FROM")
            .unwrap_or_else(|| format!("hcbackup@{}", crate::util::hostname()));
        for a in to.iter().chain(std::iter::once(&from)) {
            a.parse::<lettre::Address>().map_err(|e| {
                Error::Config(format!(
                    "email address {a}: {e} (BACKUP_NOTIFICATION_EMAIL, SMTP_FROM)"
                ))
            })?;
        }
        Ok(EmailConfig {
            to,
            from,
            host,
            port,
            user,
            password: env.var("SMTP_PASSWORD"),
            tls,
        })
    }
}

pub fn send(cfg: &EmailConfig, alert: &Alert) -> std::result::Result<(), String> {
    let mut msg = Message::builder()
        .from(cfg.from.parse().map_err(|e| format!("SMTP_FROM: {e}"))?)
        .subject(alert.subject())
        .header(ContentType::TEXT_PLAIN);
    for to in &cfg.to {
        msg = msg.to(to.parse().map_err(|e| format!("{to}: {e}"))?);
    }
    let msg = msg
        .body(alert.body())
        .map_err(|e| format!("building the message: {e}"))?;
    let params =
        || TlsParameters::new(cfg.host.clone()).map_err(|e| format!("TLS for {}: {e}", cfg.host));
    let tls = match cfg.tls {
        TlsMode::Opportunistic => Tls::Opportunistic(params()?),
        TlsMode::Required => Tls::Required(params()?),
        TlsMode::Wrapper => Tls::Wrapper(params()?),
        TlsMode::None => Tls::None,
    };
    let mut b = SmtpTransport::builder_dangerous(&cfg.host)
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)));
    if let Some(user) = &cfg.user {
        b = b.credentials(Credentials::new(
            user.clone(),
            cfg.password.clone().unwrap_or_default(),
        ));
    }
    b.build()
        .send(&msg)
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {e}", cfg.host, cfg.port))
}
