//! The Commerce customer REST API: one HTTP exchange per call, errors classified.
//!
//! Each call passes the shared [`Throttle`] first, so every request counts against `--rate`.
//! Retries live in [`crate::exec`]; this module only says whether an error is worth retrying.
//! A refused token is replaced once (IMS) before the 401 becomes fatal.
//!
//! A server is not trusted further than it must be: redirects are never followed (a 301 would
//! turn a create into a read whose answer looks like a created customer, a 307 would send the
//! body, password included, elsewhere), so a 3xx fails the call; bodies are read within caps
//! and messages kept from them are short and without secrets (see [`answer`]).

mod answer;
pub mod auth;
mod bulk;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::redact;
use crate::throttle::Throttle;
use answer::Body;
pub use answer::{MAX_BODY, MAX_MESSAGE, MAX_PAGE_BODY, error_message};
use auth::TokenSource;
pub use auth::{AuthError, Credentials};
pub use bulk::{BulkKind, bulk_path, create_item, email_lists, with_email};

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
    /// The API refused a token just issued, or the ready token given (which cannot be
    /// replaced): wrong credentials or missing permissions.
    #[error(
        "authentication failed: {url} answered HTTP 401 to a token it cannot have expired: \
         {message} (check the credentials and the integration's permissions for customers)"
    )]
    Unauthorized { url: String, message: String },
    /// Still transient after every retry.
    #[error("{last} (gave up after {retries} retries)")]
    GaveUp { retries: u32, last: Box<ApiError> },
    /// The run was interrupted before an answer came; the request may have been applied.
    #[error("{detail}")]
    Interrupted { detail: String },
    /// A 2xx answer whose body is not what the API documents, or is too large to read.
    #[error("unexpected answer from {url}: {detail}")]
    Unexpected { url: String, detail: String },
    /// A 3xx: not followed, so the request went nowhere else; a write may not have been applied.
    #[error(
        "HTTP {status} from {url}: a redirect to {location}; redirects are not followed, so \
         that a write is never sent elsewhere or turned into a read (check --endpoint)"
    )]
    Redirected {
        status: u16,
        url: String,
        location: String,
    },
}

impl ApiError {
    /// Worth another try: no answer (from the shop, or from IMS for a token), 408, 429 or 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport { .. } | ApiError::Auth(AuthError::Unavailable { .. }) => true,
            ApiError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..600).contains(status)
            }
            _ => false,
        }
    }

    /// Ends the whole run: nothing else will get through either.
    pub fn is_fatal(&self) -> bool {
        match self {
            ApiError::Auth(AuthError::Unavailable { .. }) => false,
            ApiError::Auth(_) | ApiError::Unauthorized { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            ApiError::Unauthorized { .. } => Some(401),
            ApiError::Redirected { status, .. } => Some(*status),
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

    /// The same failure again, for another row it ended too (an `ApiError` is not `Clone`:
    /// a token failure keeps only its text).
    pub fn twin(&self) -> ApiError {
        match self {
            ApiError::Transport { url, detail } => ApiError::Transport {
                url: url.clone(),
                detail: detail.clone(),
            },
            ApiError::Status {
                status,
                message,
                retry_after,
            } => ApiError::Status {
                status: *status,
                message: message.clone(),
                retry_after: *retry_after,
            },
            ApiError::Auth(e) => ApiError::Unexpected {
                url: "the token".into(),
                detail: e.to_string(),
            },
            ApiError::Unauthorized { url, message } => ApiError::Unauthorized {
                url: url.clone(),
                message: message.clone(),
            },
            ApiError::GaveUp { retries, last } => ApiError::GaveUp {
                retries: *retries,
                last: Box::new(last.twin()),
            },
            ApiError::Interrupted { detail } => ApiError::Interrupted {
                detail: detail.clone(),
            },
            ApiError::Unexpected { url, detail } => ApiError::Unexpected {
                url: url.clone(),
                detail: detail.clone(),
            },
            ApiError::Redirected {
                status,
                url,
                location,
            } => ApiError::Redirected {
                status: *status,
                url: url.clone(),
                location: location.clone(),
            },
        }
    }
}

/// The Commerce client; cheap to share behind an `Arc`.
pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    /// The endpoint as messages and logs show it: without credentials.
    shown_endpoint: String,
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
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Unexpected {
                url: redact::url(&settings.endpoint),
                detail: redact::text(&format!("cannot build the HTTP client: {e}")),
            })?;
        redact::register_url_credentials(&settings.endpoint);
        let tokens = TokenSource::new(http.clone(), settings.credentials.clone());
        Ok(Client {
            http,
            shown_endpoint: redact::url(&settings.endpoint),
            settings,
            tokens,
            throttle,
        })
    }

    /// The throttle every request passes.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// The endpoint as messages show it: without credentials.
    pub fn endpoint(&self) -> &str {
        &self.shown_endpoint
    }

    /// `GET {path}` of a read endpoint (a shop's websites, countries...), in the scope of the
    /// store view `store` when given (the `Store:` header, instead of `--store`'s).
    pub async fn read(
        &self,
        path: &str,
        query: &[(&str, &str)],
        store: Option<&str>,
    ) -> Result<Value, ApiError> {
        let store = store.or(self.settings.store.as_deref());
        let path = path.to_owned();
        self.call_in(store, Method::GET, path, None, query, MAX_PAGE_BODY, &[])
            .await
    }

    /// `POST /V1/customers`; returns the saved customer.
    pub async fn create(
        &self,
        customer: &Value,
        password: Option<&SecretString>,
    ) -> Result<Value, ApiError> {
        let mut body = json!({ "customer": customer });
        let mut hidden = Vec::new();
        if let Some(p) = password {
            body["password"] = json!(p.expose_secret());
            hidden.push(p.expose_secret());
        }
        let path = "V1/customers".into();
        self.call(Method::POST, path, Some(&body), &[], MAX_BODY, &hidden)
            .await
    }

    /// `PUT /V1/customers/{id}`; returns the saved customer.
    pub async fn update(&self, id: u64, customer: &Value) -> Result<Value, ApiError> {
        let body = json!({ "customer": customer });
        let path = format!("V1/customers/{id}");
        self.call(Method::PUT, path, Some(&body), &[], MAX_BODY, &[])
            .await
    }

    /// `DELETE /V1/customers/{id}`.
    pub async fn delete(&self, id: u64) -> Result<(), ApiError> {
        let path = format!("V1/customers/{id}");
        self.call(Method::DELETE, path, None, &[], MAX_BODY, &[])
            .await
            .map(drop)
    }

    /// `GET /V1/customers/{id}`.
    pub async fn get(&self, id: u64) -> Result<Value, ApiError> {
        let path = format!("V1/customers/{id}");
        self.call(Method::GET, path, None, &[], MAX_BODY, &[]).await
    }

    /// The customer with this email in this website, if any (email compared as Magento does,
    /// case-insensitively).
    pub async fn find(&self, email: &str, website_id: u32) -> Result<Option<Value>, ApiError> {
        let items = self.search_eq("email", email, website_id, 2).await?;
        Ok(items.into_iter().find(|c| {
            c.get("email")
                .and_then(Value::as_str)
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        }))
    }

    /// The customers of this website whose custom attribute `code` is `value` as Magento
    /// compares it (its `_ci` collation: without regard to case); a few at most.
    pub async fn find_by_attribute(
        &self,
        code: &str,
        value: &str,
        website_id: u32,
    ) -> Result<Vec<Value>, ApiError> {
        self.search_eq(code, value, website_id, 20).await
    }

    /// `GET /V1/customers/search` for the first `size` customers of a website whose `field`
    /// equals `value`.
    async fn search_eq(
        &self,
        field: &str,
        value: &str,
        website_id: u32,
        size: u32,
    ) -> Result<Vec<Value>, ApiError> {
        let (website, size) = (website_id.to_string(), size.to_string());
        let query = [
            ("searchCriteria[filterGroups][0][filters][0][field]", field),
            ("searchCriteria[filterGroups][0][filters][0][value]", value),
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
            ("searchCriteria[pageSize]", &size),
            ("searchCriteria[currentPage]", "1"),
        ];
        let path = "V1/customers/search".into();
        let found = self
            .call(Method::GET, path, None, &query, MAX_BODY, &[])
            .await?;
        let items = found.get("items").and_then(Value::as_array);
        Ok(items.cloned().unwrap_or_default())
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
        let found = self
            .call(Method::GET, url.into(), None, &query, MAX_PAGE_BODY, &[])
            .await?;
        let total = found.get("total_count").and_then(Value::as_u64);
        let items = found.get("items").and_then(Value::as_array);
        match (items, total) {
            (Some(items), Some(total)) => Ok((items.clone(), total)),
            _ => Err(ApiError::Unexpected {
                url: format!("{}/{url}", self.shown_endpoint),
                detail: "a search answer without items or total_count".into(),
            }),
        }
    }

    /// One exchange: at most `cap` bytes of the answer are read; `hidden` are secrets this
    /// request carries besides the token (a password), kept out of any message.
    async fn call(
        &self,
        method: Method,
        path: String,
        body: Option<&Value>,
        query: &[(&str, &str)],
        cap: usize,
        hidden: &[&str],
    ) -> Result<Value, ApiError> {
        let store = self.settings.store.as_deref();
        self.call_in(store, method, path, body, query, cap, hidden)
            .await
    }

    /// [`Client::call`] in the scope of the store view `store`.
    #[allow(clippy::too_many_arguments)]
    async fn call_in(
        &self,
        store: Option<&str>,
        method: Method,
        path: String,
        body: Option<&Value>,
        query: &[(&str, &str)],
        cap: usize,
        hidden: &[&str],
    ) -> Result<Value, ApiError> {
        let url = format!("{}/{path}", self.settings.endpoint);
        let shown = format!("{}/{path}", self.shown_endpoint);
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
            if let Some(store) = store {
                request = request.header("Store", store);
            }
            if let Some(b) = body {
                request = request.json(b);
            }
            tracing::trace!(%method, url = %shown, "request");
            let transport = |e: reqwest::Error| ApiError::Transport {
                url: shown.clone(),
                detail: redact::text(&describe(&e)),
            };
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            tracing::debug!(%method, url = %shown, status = status.as_u16(), "response");
            if status.is_redirection() {
                return Err(ApiError::Redirected {
                    status: status.as_u16(),
                    url: shown,
                    location: answer::location(response.headers()),
                });
            }
            let retry_after = answer::retry_after(response.headers());
            let answer = answer::read(response, cap).await.map_err(transport)?;
            if status.is_success() {
                self.throttle.on_success();
                return parse(status, &answer, cap).map_err(|detail| ApiError::Unexpected {
                    url: shown.clone(),
                    detail,
                });
            }
            let message = answer::message(status, &answer, hidden);
            if status == StatusCode::UNAUTHORIZED {
                let fresh_token_refused = match (first_401, bearer.issued_at) {
                    (Some(first), Some(issued)) => issued >= first,
                    // A ready token cannot be replaced.
                    (_, None) => true,
                    (None, Some(_)) => false,
                };
                if fresh_token_refused {
                    return Err(ApiError::Unauthorized {
                        url: shown,
                        message,
                    });
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

/// A success answer's JSON; one over the cap is not parsed at all.
fn parse(status: StatusCode, answer: &Body, cap: usize) -> Result<Value, String> {
    if answer.too_large {
        return Err(format!("HTTP {status}: {}", Body::too_large_note(cap)));
    }
    serde_json::from_slice(&answer.bytes)
        .map_err(|e| format!("HTTP {status} with a body that is not JSON: {e}"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_twin_says_what_its_original_says() {
        let gave_up = ApiError::GaveUp {
            retries: 3,
            last: Box::new(ApiError::Status {
                status: 500,
                message: "Internal Server Error".into(),
                retry_after: None,
            }),
        };
        let redirect = ApiError::Redirected {
            status: 301,
            url: "https://a".into(),
            location: "https://b".into(),
        };
        let odd = ApiError::Unexpected {
            url: "the bulk".into(),
            detail: "no bulk_uuid".into(),
        };
        for e in [gave_up, redirect, odd] {
            let copy = e.twin().twin();
            assert_eq!(copy.to_string(), e.to_string());
            assert_eq!(copy.status(), e.status());
        }
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
        let redirected = ApiError::Redirected {
            status: 301,
            url: String::new(),
            location: String::new(),
        };
        assert!(!redirected.is_transient() && !redirected.is_fatal());
        assert_eq!(redirected.status(), Some(301));
    }
}
