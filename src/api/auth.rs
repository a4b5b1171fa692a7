//! Bearer tokens for the Commerce API: a ready token, or Adobe IMS client credentials.
//!
//! The IMS token is fetched lazily (a run with nothing to send asks for none), cached until
//! shortly before `expires_in` runs out, and refreshed by one worker at a time: the others wait
//! on the same lock and then reuse the fresh token, so a 401 storm causes one refresh.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

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
    /// IMS could not be reached or answered something unreadable.
    #[error("authentication failed: IMS at {url} could not be used: {detail}")]
    Unavailable { url: String, detail: String },
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
    /// A token source over `http`.
    pub fn new(http: reqwest::Client, credentials: Credentials) -> Self {
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
        let unavailable = |detail: String| AuthError::Unavailable {
            url: url.to_owned(),
            detail,
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
                Err(e) if attempt < 3 => tracing::debug!("IMS request failed, retrying: {e}"),
                Err(e) => return Err(unavailable(e.without_url().to_string())),
            }
            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
        };
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !status.is_success() {
            let reason = match serde_json::from_slice::<ImsError>(&body) {
                Ok(ImsError {
                    error,
                    error_description,
                }) => [error, error_description]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": "),
                Err(_) => String::from_utf8_lossy(&body).chars().take(200).collect(),
            };
            return Err(AuthError::Rejected {
                url: url.to_owned(),
                status: status.as_u16(),
                reason,
            });
        }
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("unreadable token response: {e}")))?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(86_399).max(1));
        Ok((SecretString::from(parsed.access_token), lifetime))
    }
}
