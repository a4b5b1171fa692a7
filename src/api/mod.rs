//! The Commerce customer REST API: one HTTP exchange per call, errors classified.
//!
//! Each call passes the shared [`Throttle`] first, so every request counts against `--rate`.
//! Retries live in [`crate::exec`]; this module only says whether an error is worth retrying.
//! A refused token is replaced once (IMS) before the 401 becomes fatal.

pub mod auth;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::throttle::Throttle;
use auth::TokenSource;
pub use auth::{AuthError, Credentials};

/// Magento's answer to a create whose email is already taken in that website.
pub const ALREADY_EXISTS: &str =
    "A customer with the same email address already exists in an associated website.";

/// Where and how to talk to Commerce.
#[derive(Clone, Debug)]
pub struct Settings {
    /// REST base, without a trailing slash: `{endpoint}/V1/customers`.
    pub endpoint: String,
    pub credentials: Credentials,
    /// Store view code, sent as the `Store:` header.
    pub store: Option<String>,
    /// Whole-request timeout; a slow answer counts as a transient failure.
    pub timeout: Duration,
    /// Connections kept open for reuse.
    pub max_idle: usize,
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No answer: connection refused or dropped, timeout, unreadable body. The request may or
    /// may not have been applied.
    #[error("no answer from {url}: {detail}")]
    Transport { url: String, detail: String },
    /// The API answered with an error status; `message` is its own, placeholders filled in.
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The token could not be obtained.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API refused a fresh token: wrong credentials or missing permissions.
    #[error(
        "authentication failed: {url} answered HTTP 401 to a fresh token: {message} \
         (check the integration's permissions for customers)"
    )]
    Unauthorized { url: String, message: String },
    /// Still transient after every retry.
    #[error("{last} (gave up after {retries} retries)")]
    GaveUp { retries: u32, last: Box<ApiError> },
    /// The run was interrupted before an answer came; the request may have been applied.
    #[error("{detail}")]
    Interrupted { detail: String },
    /// A 2xx answer whose body is not what the API documents.
    #[error("unexpected answer from {url}: {detail}")]
    Unexpected { url: String, detail: String },
}

impl ApiError {
    /// Worth another try: no answer, 408, 429 or 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport { .. } => true,
            ApiError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..600).contains(status)
            }
            _ => false,
        }
    }

    /// Ends the whole run: nothing else will get through either.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ApiError::Auth(_) | ApiError::Unauthorized { .. })
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Unauthorized { .. } => Some(401),
            ApiError::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Server-requested wait before the next try.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The answer to a create is Magento's duplicate-email error.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ApiError::Status { status: 400, message, .. } if message == ALREADY_EXISTS)
    }
}

/// The Commerce client; cheap to share behind an `Arc`.
pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    tokens: TokenSource,
    throttle: Arc<Throttle>,
}

impl Client {
    /// Builds the client. Nothing is sent until the first call.
    pub fn new(settings: Settings, throttle: Arc<Throttle>) -> Result<Self, ApiError> {
        // reqwest is built without a bundled crypto provider; ring keeps the build lean.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("custsync/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(settings.max_idle)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ApiError::Unexpected {
                url: settings.endpoint.clone(),
                detail: format!("cannot build the HTTP client: {e}"),
            })?;
        let tokens = TokenSource::new(http.clone(), settings.credentials.clone());
        Ok(Client {
            http,
            settings,
            tokens,
            throttle,
        })
    }

    /// The throttle every request passes.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// `POST /V1/customers`; returns the saved customer.
    pub async fn create(
        &self,
        customer: &Value,
        password: Option<&SecretString>,
    ) -> Result<Value, ApiError> {
        let mut body = json!({ "customer": customer });
        if let Some(p) = password {
            body["password"] = json!(p.expose_secret());
        }
        self.call(Method::POST, "V1/customers".into(), Some(&body), &[])
            .await
    }

    /// `PUT /V1/customers/{id}`; returns the saved customer.
    pub async fn update(&self, id: u64, customer: &Value) -> Result<Value, ApiError> {
        let body = json!({ "customer": customer });
        self.call(Method::PUT, format!("V1/customers/{id}"), Some(&body), &[])
            .await
    }

    /// `DELETE /V1/customers/{id}`.
    pub async fn delete(&self, id: u64) -> Result<(), ApiError> {
        self.call(Method::DELETE, format!("V1/customers/{id}"), None, &[])
            .await
            .map(drop)
    }

    /// `GET /V1/customers/{id}`.
    pub async fn get(&self, id: u64) -> Result<Value, ApiError> {
        self.call(Method::GET, format!("V1/customers/{id}"), None, &[])
            .await
    }

    /// The customer with this email in this website, if any (email compared as Magento does,
    /// case-insensitively).
    pub async fn find(&self, email: &str, website_id: u32) -> Result<Option<Value>, ApiError> {
        let website = website_id.to_string();
        let query = [
            (
                "searchCriteria[filterGroups][0][filters][0][field]",
                "email",
            ),
            ("searchCriteria[filterGroups][0][filters][0][value]", email),
            (
                "searchCriteria[filterGroups][0][filters][0][conditionType]",
                "eq",
            ),
            (
                "searchCriteria[filterGroups][1][filters][0][field]",
                "website_id",
            ),
            (
                "searchCriteria[filterGroups][1][filters][0][value]",
                &website,
            ),
            (
                "searchCriteria[filterGroups][1][filters][0][conditionType]",
                "eq",
            ),
            ("searchCriteria[pageSize]", "2"),
            ("searchCriteria[currentPage]", "1"),
        ];
        let found = self
            .call(Method::GET, "V1/customers/search".into(), None, &query)
            .await?;
        let items = found.get("items").and_then(Value::as_array);
        Ok(items.and_then(|items| {
            items
                .iter()
                .find(|c| {
                    c.get("email")
                        .and_then(Value::as_str)
                        .is_some_and(|e| e.eq_ignore_ascii_case(email))
                })
                .cloned()
        }))
    }

    /// One page of all customers, oldest first: `(items, total_count)`.
    pub async fn page(&self, page: u32, size: u32) -> Result<(Vec<Value>, u64), ApiError> {
        let (page, size) = (page.to_string(), size.to_string());
        let query = [
            ("searchCriteria[pageSize]", size.as_str()),
            ("searchCriteria[currentPage]", page.as_str()),
            ("searchCriteria[sortOrders][0][field]", "entity_id"),
            ("searchCriteria[sortOrders][0][direction]", "ASC"),
        ];
        let url = "V1/customers/search";
        let found = self.call(Method::GET, url.into(), None, &query).await?;
        let total = found.get("total_count").and_then(Value::as_u64);
        let items = found.get("items").and_then(Value::as_array);
        match (items, total) {
            (Some(items), Some(total)) => Ok((items.clone(), total)),
            _ => Err(ApiError::Unexpected {
                url: format!("{}/{url}", self.settings.endpoint),
                detail: "a search answer without items or total_count".into(),
            }),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: String,
        body: Option<&Value>,
        query: &[(&str, &str)],
    ) -> Result<Value, ApiError> {
        let url = format!("{}/{path}", self.settings.endpoint);
        // When this call first met a 401: a token issued after that which is refused too means
        // the credentials lack permission, not that a token expired.
        let mut first_401: Option<tokio::time::Instant> = None;
        loop {
            // The rate-limit wait comes first, so that the token is as fresh as can be when sent.
            self.throttle.acquire().await;
            let bearer = self.tokens.bearer().await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(bearer.token.expose_secret())
                .header("Accept", "application/json");
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(key) = self.tokens.api_key() {
                request = request.header("x-api-key", key);
            }
            if let Some(store) = &self.settings.store {
                request = request.header("Store", store);
            }
            if let Some(b) = body {
                request = request.json(b);
            }
            tracing::trace!(%method, %url, "request");
            let transport = |e: reqwest::Error| ApiError::Transport {
                url: url.clone(),
                detail: describe(&e),
            };
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            let retry_after = retry_after(response.headers());
            let bytes = response.bytes().await.map_err(transport)?;
            tracing::debug!(%method, %url, status = status.as_u16(), "response");
            if status.is_success() {
                self.throttle.on_success();
                return serde_json::from_slice(&bytes).map_err(|e| ApiError::Unexpected {
                    url: url.clone(),
                    detail: format!("HTTP {status} with a body that is not JSON: {e}"),
                });
            }
            let message = error_message(status, &bytes);
            if status == StatusCode::UNAUTHORIZED {
                let fresh_token_refused = match (first_401, bearer.issued_at) {
                    (Some(first), Some(issued)) => issued >= first,
                    // A ready token cannot be replaced.
                    (_, None) => true,
                    (None, Some(_)) => false,
                };
                if fresh_token_refused {
                    return Err(ApiError::Unauthorized { url, message });
                }
                first_401.get_or_insert_with(tokio::time::Instant::now);
                self.tokens.invalidate(bearer.generation).await;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.throttle.on_throttled();
            }
            return Err(ApiError::Status {
                status: status.as_u16(),
                message,
                retry_after,
            });
        }
    }
}

/// A transport error's cause chain without the URL (reported separately) and without any header.
fn describe(e: &reqwest::Error) -> String {
    let mut parts = vec![if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else if e.is_body() || e.is_decode() {
        "the answer broke off".to_owned()
    } else {
        "request failed".to_owned()
    }];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(RETRY_AFTER)
        .map(HeaderValue::to_str)?
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The API's own message with its `%1` / `%name` placeholders filled from `parameters`; for
/// bodies that are not Magento's (a gateway page), the status and the start of the body.
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let Some(message) = parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
    else {
        let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
        let text = text.trim();
        return if text.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {text}")
        };
    };
    let params = parsed.as_ref().and_then(|v| v.get("parameters"));
    render(message, params)
}

fn render(message: &str, params: Option<&Value>) -> String {
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = message.to_owned();
    match params {
        Some(Value::Array(list)) => {
            // Highest index first, so that `%1` does not eat the start of `%10`.
            for (i, v) in list.iter().enumerate().rev() {
                out = out.replace(&format!("%{}", i + 1), &show(v));
            }
        }
        Some(Value::Object(map)) => {
            let mut names: Vec<&String> = map.keys().collect();
            names.sort_by_key(|n| std::cmp::Reverse(n.len()));
            for name in names {
                out = out.replace(&format!("%{name}"), &show(&map[name]));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_get_their_parameters() {
        let body = br#"{"message":"No such entity with %fieldName = %fieldValue","parameters":{"fieldName":"customerId","fieldValue":99}}"#;
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, body),
            "No such entity with customerId = 99"
        );
        let body = br#"{"message":"The password needs at least %1 characters.","parameters":[8]}"#;
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, body),
            "The password needs at least 8 characters."
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>"),
            "502 Bad Gateway: <html>bad gateway</html>"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).expect("header"));
        let d = retry_after(&h).expect("date");
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }

    #[test]
    fn classification() {
        let status = |s| ApiError::Status {
            status: s,
            message: String::new(),
            retry_after: None,
        };
        assert!(status(429).is_transient());
        assert!(status(503).is_transient());
        assert!(status(408).is_transient());
        assert!(!status(400).is_transient());
        assert!(!status(404).is_transient());
        let dup = ApiError::Status {
            status: 400,
            message: ALREADY_EXISTS.into(),
            retry_after: None,
        };
        assert!(dup.is_already_exists());
    }
}
