//! Google's answers in the storage error vocabulary.
//!
//! Drive reports most refusals as JSON `{"error": {"code", "message", "errors":
//! [{"reason"}]}}`; the reason tells a rate limit (403 `rateLimitExceeded`,
//! `userRateLimitExceeded`; retried) from a permission problem (403 otherwise; not
//! retried) and a service account without storage quota (403
//! `storageQuotaExceeded`; needs a shared drive).

use google_drive3::common;

use crate::storage::StorageError;

/// What went wrong, for `what` (an object path or a folder).
pub fn classify(what: &str, e: common::Error) -> StorageError {
    match e {
        common::Error::HttpError(e) => StorageError::Transient(format!(
            "Google Drive {what}: connection failed: {}",
            chain(&e)
        )),
        common::Error::Io(e) => StorageError::Transient(format!("Google Drive {what}: {e}")),
        common::Error::MissingToken(e) => token_error(e),
        common::Error::BadRequest(v) => {
            let code = v["error"]["code"].as_u64().unwrap_or(400) as u16;
            let reason = v["error"]["errors"][0]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let message = v["error"]["message"].as_str().unwrap_or_default();
            from_status(what, code, &reason, message)
        }
        common::Error::Failure(r) => from_status(what, r.status().as_u16(), "", ""),
        common::Error::JsonDecodeError(body, err) => StorageError::Transient(format!(
            "Google Drive {what}: unreadable answer ({err}): {}",
            body.chars().take(120).collect::<String>()
        )),
        other => {
            StorageError::Permanent(format!("Google Drive {what}: {}", other.to_string().trim()))
        }
    }
}

/// An HTTP status (and Google's reason, when the body had one) as a storage error.
pub fn from_status(what: &str, code: u16, reason: &str, message: &str) -> StorageError {
    let detail = if message.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code} {message}")
    };
    let msg = format!("Google Drive {what}: {detail}");
    match (code, reason) {
        (404, _) => StorageError::NotFound(what.to_string()),
        (403, "storageQuotaExceeded") if message.contains("Service Accounts") => {
            StorageError::Permanent(format!(
                "Google Drive refused {what}: a service account has no storage quota of its own; \
                 put GOOGLE_DRIVE_BACKUP_FOLDER in a shared drive and add the service account to it as Content manager"
            ))
        }
        (403, "storageQuotaExceeded") => StorageError::Full(format!("{what} (Google Drive quota)")),
        (403, "rateLimitExceeded" | "userRateLimitExceeded" | "sharingRateLimitExceeded")
        | (429, _)
        | (408, _)
        | (500..=599, _) => StorageError::Transient(msg),
        (401, _) => StorageError::Auth(format!(
            "{msg}; check GOOGLE_CREDENTIALS (the service account's JSON key)"
        )),
        (403, _) => StorageError::Auth(format!(
            "{msg}; share the folder with the service account (Editor or Content manager)"
        )),
        _ => StorageError::Permanent(msg),
    }
}

/// The service account's token could not be had: a network problem is worth a
/// retry, a refusal is a credentials problem.
fn token_error(e: Box<dyn std::error::Error + Send + Sync>) -> StorageError {
    let text = chain(e.as_ref());
    match e.downcast_ref::<yup_oauth2_error::Error>() {
        Some(
            yup_oauth2_error::Error::HttpError(_)
            | yup_oauth2_error::Error::HttpClientError(_)
            | yup_oauth2_error::Error::LowLevelError(_)
            | yup_oauth2_error::Error::JSONError(_),
        ) => StorageError::Transient(format!("getting a Google access token: {text}")),
        _ => StorageError::Auth(format!(
            "getting a Google access token: {text}; check GOOGLE_CREDENTIALS (the service account's JSON key)"
        )),
    }
}

mod yup_oauth2_error {
    pub use google_drive3::yup_oauth2::Error;
}

/// An error and its sources on one line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string().trim().to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(t.trim()) {
            s.push_str(": ");
            s.push_str(t.trim());
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}
