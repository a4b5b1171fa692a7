//! `--notify URL`: the summary JSON posted to a webhook at the end of a run, so that a
//! scheduler, a chat channel or a monitoring system hears of every nightly run.
//!
//! A notification is a courtesy, never the run's outcome: whatever goes wrong is one warning,
//! and the exit code stays the run's. It is held to the same distrust as the Commerce client:
//! a short timeout, no redirects (a 3xx would carry the summary elsewhere), and messages that
//! show the webhook only by its origin (the path of a webhook URL is often its secret) and
//! nothing a server could echo of a secret.

use std::time::Duration;

use serde::Serialize;

use crate::console;
use crate::redact;

/// How long a notification may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Posts `summary` as JSON to `url`; a failure is printed as a warning, which `--quiet` drops
/// only when the run exits 0 (`ok`), like every other line.
pub async fn post(url: &str, summary: &impl Serialize, ok: bool) {
    if let Err(why) = send(url, summary).await {
        let warning = format!("warning: the notification to {} failed: {why}", origin(url));
        if ok {
            console::warn(&warning);
        } else {
            console::alert(&warning);
        }
    }
}

async fn send(url: &str, summary: &impl Serialize) -> Result<(), String> {
    // reqwest is built without a bundled crypto provider; ring keeps the build lean.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .user_agent(concat!("custsync/", env!("CARGO_PKG_VERSION")))
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| redact::text(&e.to_string()))?;
    let response = client
        .post(url)
        .json(summary)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(format!(
            "HTTP {status}: a redirect, which is not followed (give the webhook's final URL)"
        ));
    }
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok(())
}

/// A transport error without the URL (which may hold a secret) and without any header.
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what
    } else {
        redact::text(&format!("{what}: {cause}"))
    }
}

/// Scheme, host and port of a URL: how a webhook is named in messages.
fn origin(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}/…", u.origin().ascii_serialization()),
        Err(_) => "the --notify URL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_is_named_by_its_origin_only() {
        let cases = [
            (
                "https://hooks.example.com/services/T0/B0/s3cret",
                "https://hooks.example.com/…",
            ),
            (
                "http://user:pw@127.0.0.1:9000/hook?token=x",
                "http://127.0.0.1:9000/…",
            ),
            ("not a url", "the --notify URL"),
        ];
        for (url, want) in cases {
            assert_eq!(origin(url), want);
        }
    }
}
