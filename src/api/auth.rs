//! Bearer tokens for the Commerce API: a ready token, or Adobe IMS client credentials.
//!
//! The IMS token is fetched lazily (a run with nothing to send asks for none), cached until
//! shortly before `expires_in` runs out, and refreshed by one worker at a time: the others wait
//! on the same lock and then reuse the fresh token, so a 401 storm causes one refresh.
//!
//! The secret and every token are registered with [`crate::redact`] as they come in, and IMS
//! is held to the same rules as the API: no redirect is followed (that would post the secret
//! elsewhere), bodies are read within a cap, and messages kept from them are short and clean.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::answer::{self, Body, MAX_BODY, MAX_MESSAGE};
use crate::redact;

/// How the client proves who it is.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// `CUSTSYNC_ACCESS_TOKEN`: sent as is, never refreshed.
    Token(SecretString),
    /// IMS server-to-server (client_credentials).
    Ims {
        url: String,
        client_id: String,
        secret: SecretString,
        scopes: String,
    },
}

/// Authentication failures; all of them end the run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// IMS refused the credentials.
    #[error("authentication failed: IMS at {url} answered HTTP {status}: {reason}")]
    Rejected {
        url: String,
        status: u16,
        reason: String,
    },
    /// IMS could not be reached or failed (5xx): transient, like a shop that does not answer
    /// (nothing can be sent without a token).
    #[error("no token: IMS at {url} could not be used: {detail}")]
    Unavailable { url: String, detail: String },
    /// IMS answered, but not with a token: another server, or a misconfigured one.
    #[error("authentication failed: IMS at {url} answered something unusable: {detail}")]
    Unusable { url: String, detail: String },
    /// IMS answered with a redirect, which is not followed.
    #[error(
        "authentication failed: IMS at {url} answered HTTP {status}, a redirect to {location}; \
         redirects are not followed, so that the client secret goes nowhere else (check --ims-url)"
    )]
    Redirected {
        url: String,
        status: u16,
        location: String,
    },
}

/// A token together with the generation it belongs to, so that a 401 invalidates only the
/// token that was refused and not a fresher one another worker already fetched.
pub struct Bearer {
    pub token: SecretString,
    pub generation: u64,
    /// When IMS issued it (`None` for a ready token).
    pub issued_at: Option<Instant>,
}

struct Cached {
    token: SecretString,
    issued_at: Instant,
    refresh_at: Instant,
    generation: u64,
}

/// Hands out bearer tokens; see the module doc.
pub struct TokenSource {
    http: reqwest::Client,
    credentials: Credentials,
    cached: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ImsError {
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenSource {
    /// A token source over `http`; registers the secret it holds with [`crate::redact`].
    pub fn new(http: reqwest::Client, credentials: Credentials) -> Self {
        match &credentials {
            Credentials::Token(token) => redact::register(token.expose_secret()),
            Credentials::Ims { url, secret, .. } => {
                redact::register(secret.expose_secret());
                redact::register_url_credentials(url);
            }
        }
        TokenSource {
            http,
            credentials,
            cached: Mutex::new(None),
        }
    }

    /// The IMS client id, which Adobe's gateway wants as `x-api-key`.
    pub fn api_key(&self) -> Option<&str> {
        match &self.credentials {
            Credentials::Ims { client_id, .. } => Some(client_id),
            Credentials::Token(_) => None,
        }
    }

    /// A valid token, fetching one when none is cached or the cached one is about to expire.
    pub async fn bearer(&self) -> Result<Bearer, AuthError> {
        let (url, client_id, secret, scopes) = match &self.credentials {
            Credentials::Token(t) => {
                return Ok(Bearer {
                    token: t.clone(),
                    generation: 0,
                    issued_at: None,
                });
            }
            Credentials::Ims {
                url,
                client_id,
                secret,
                scopes,
            } => (url, client_id, secret, scopes),
        };
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(Bearer {
                token: c.token.clone(),
                generation: c.generation,
                issued_at: Some(c.issued_at),
            });
        }
        let generation = cached.as_ref().map_or(1, |c| c.generation + 1);
        let issued_at = Instant::now();
        let (token, lifetime) = self.fetch(url, client_id, secret, scopes).await?;
        // Renew when a fifth of the lifetime is left (at most five minutes before expiry), so
        // requests in flight do not carry a token that dies under them.
        let margin = (lifetime / 5).min(Duration::from_secs(300));
        *cached = Some(Cached {
            token: token.clone(),
            issued_at,
            refresh_at: issued_at + lifetime - margin,
            generation,
        });
        tracing::debug!(
            generation,
            lifetime_s = lifetime.as_secs(),
            "IMS token obtained"
        );
        Ok(Bearer {
            token,
            generation,
            issued_at: Some(issued_at),
        })
    }

    /// The API refused the token of `generation`: drop it unless it was already replaced.
    pub async fn invalidate(&self, generation: u64) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| c.generation == generation)
            && let Some(c) = cached.as_mut()
        {
            c.refresh_at = Instant::now();
        }
    }

    async fn fetch(
        &self,
        url: &str,
        client_id: &str,
        secret: &SecretString,
        scopes: &str,
    ) -> Result<(SecretString, Duration), AuthError> {
        let shown = redact::url(url);
        let unavailable = |detail: String| AuthError::Unavailable {
            url: shown.clone(),
            detail: redact::text(&detail),
        };
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.expose_secret()),
            ("scope", scopes),
        ];
        // Transient trouble (network, 5xx) gets a few quick tries; a refusal is final.
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let result = self.http.post(url).form(&form).send().await;
            match result {
                Ok(r) if r.status().is_server_error() && attempt < 3 => {}
                Ok(r) => break r,
                Err(e) if attempt < 3 => tracing::debug!(
                    "IMS request failed, retrying: {}",
                    redact::text(&e.without_url().to_string())
                ),
                Err(e) => return Err(unavailable(e.without_url().to_string())),
            }
            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
        };
        let status = response.status();
        if status.is_redirection() {
            return Err(AuthError::Redirected {
                url: shown,
                status: status.as_u16(),
                location: answer::location(response.headers()),
            });
        }
        let body = answer::read(response, MAX_BODY)
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if status.is_server_error() {
            let detail = format!("HTTP {}: {}", status.as_u16(), reason(&body));
            return Err(unavailable(detail));
        }
        if !status.is_success() {
            return Err(AuthError::Rejected {
                url: shown,
                status: status.as_u16(),
                reason: reason(&body),
            });
        }
        let unusable = |detail: String| AuthError::Unusable {
            url: shown.clone(),
            detail: redact::text(&detail),
        };
        if body.too_large {
            return Err(unusable(Body::too_large_note(MAX_BODY)));
        }
        let parsed: TokenResponse = serde_json::from_slice(&body.bytes)
            .map_err(|e| unusable(format!("unreadable token response: {e}")))?;
        redact::register_token(&parsed.access_token);
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(86_399).max(1));
        Ok((SecretString::from(parsed.access_token), lifetime))
    }
}

/// Why IMS refused: its `error` and `error_description`, else the start of what it said;
/// without secrets (an IMS error may echo the form, client secret included) and short.
fn reason(body: &Body) -> String {
    let described = serde_json::from_slice::<ImsError>(&body.bytes)
        .ok()
        .map(|e| {
            [e.error, e.error_description]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ")
        })
        .filter(|r| !r.is_empty());
    let reason = match described {
        Some(r) => redact::clipped(&r, MAX_MESSAGE, &[]),
        None => answer::start(body, &[]),
    };
    answer::noted(reason, body)
}
