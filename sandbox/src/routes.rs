//! The sandbox's HTTP face: an axum [`Router`] with the IMS token route, the customer routes
//! and the shop's read routes, in Magento's order of checks (route, then ACL, then body
//! decoding, then validation), plus the middleware that records every request for
//! [`super::Stats`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::ServiceExt;

use super::RequestRecord;
use super::bulk::{self, BulkQueue};
use super::error::ApiError;
use super::faults::{AfterWrite, FaultGate, Refusal};
use super::search::SearchCriteria;
use super::shop::{Shop, read};
use super::store::{CustomerStore, LazyStore};

/// Path of the IMS token route.
pub(crate) const IMS_PATH: &str = "/ims/token/v3";

/// ACL resources Magento names in its 401 answers.
const ACL_READ: &str = "Magento_Customer::customer";
pub(crate) const ACL_MANAGE: &str = "Magento_Customer::manage";
const ACL_DELETE: &str = "Magento_Customer::delete";
/// The ACL resources of the shop's read routes, named when a request has no valid token: on
/// Adobe Commerce as a Cloud Service every route needs the IMS token (PaaS serves the store
/// and directory routes anonymously).
const ACL_STORES: &str = "Magento_Backend::stores";
const ACL_GROUPS: &str = "Magento_Customer::group";

/// Everything the handlers share.
pub(crate) struct AppState {
    /// The shop the sandbox stands for.
    pub(crate) shop: Shop,
    pub(crate) store: LazyStore,
    /// Issued bearer tokens and when they expire; in memory only, so they die with the process.
    pub(crate) tokens: Mutex<HashMap<String, Instant>>,
    pub(crate) requests: Mutex<Vec<RequestRecord>>,
    pub(crate) connections: AtomicU64,
    pub(crate) tokens_issued: AtomicU64,
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) faults: FaultGate,
    /// The async bulks and the queue of their operations.
    pub(crate) bulks: BulkQueue,
    /// Whether `requests` is kept.
    pub(crate) log_requests: bool,
}

/// Put into every request's extensions by the connection task: a handler fires it to have
/// its connection closed without an answer.
#[derive(Clone, Debug, Default)]
pub(crate) struct KillSwitch(pub(crate) Arc<Notify>);

/// The customer store, read from its journal on first use; Magento's 500 when that fails.
pub(crate) async fn customers(state: &AppState) -> Result<MutexGuard<'_, CustomerStore>, ApiError> {
    match state.store.get().await {
        Ok(store) => Ok(lock(store)),
        Err(e) => {
            tracing::error!(error = %e, "the sandbox cannot read its customers");
            Err(ApiError::internal())
        }
    }
}

/// Locks a mutex, ignoring poisoning: every critical section leaves the data consistent
/// (the store journals before it mutates), so a panicked holder does not corrupt it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sandbox's routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let customers = Router::new()
        .route("/sandbox/V1/customers", post(create))
        .route("/sandbox/V1/customers/search", get(search))
        .route(
            "/sandbox/V1/customers/{id}",
            get(get_one).put(update).delete(delete),
        )
        .merge(bulk::routes::router())
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), delay));
    let shop = Router::new()
        .route("/sandbox/V1/store/websites", get(websites))
        .route("/sandbox/V1/store/storeViews", get(store_views))
        .route("/sandbox/V1/customerGroups/search", get(customer_groups))
        .route("/sandbox/V1/directory/countries", get(countries))
        .route("/sandbox/V1/directory/countries/{id}", get(country))
        .route(
            "/sandbox/V1/attributeMetadata/customer/custom",
            get(custom_attributes),
        );
    let routes = Router::new()
        .route(IMS_PATH, post(ims_token))
        .merge(customers)
        .merge(shop)
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(Arc::clone(&state));
    // Outside the routes, so that the rewrite comes before routing and the record keeps the
    // path as sent.
    let mut router = Router::new().fallback_service(routes.map_request(paas_path));
    if state.log_requests {
        router = router.layer(middleware::from_fn_with_state(state, record));
    }
    router
}

/// Serves the PaaS forms of the routes: `/rest/<store>/V1/...` and
/// `/rest/<store>/async/bulk/V1/...` become `/sandbox/V1/...` and `/sandbox/V1/async/bulk/...`
/// with the store code as the `Store` header (`all`: every store view), as Magento's
/// `Webapi\Controller\PathProcessor` takes the store from the path (`/rest/V1/...`: the
/// default store view, no header here). An unknown store code is left to the store-scope
/// check, a route miss as in Magento. Anything else (the SaaS form of an async route under
/// `/rest/` included) is left as it is and matches no route.
fn paas_path(mut request: Request) -> Request {
    let Some(rest) = request.uri().path().strip_prefix("/rest/") else {
        return request;
    };
    let (store, rest) = match rest.split_once('/') {
        Some((first, _)) if first == "V1" || first == "async" => (None, rest),
        Some((store, rest)) => (Some(store.to_owned()), rest),
        None => return request,
    };
    let path = if let Some(route) = rest.strip_prefix("async/bulk/V1/") {
        format!("/sandbox/V1/async/bulk/{route}")
    } else if rest.starts_with("V1/") && !rest.starts_with("V1/async/") {
        format!("/sandbox/{rest}")
    } else {
        return request;
    };
    let uri = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let Ok(uri) = uri.parse::<Uri>() else {
        return request;
    };
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    match store.map(|s| HeaderValue::from_str(&s)) {
        Some(Ok(code)) => {
            headers.insert("store", code);
        }
        // A store code no header can carry is no store code the shop has.
        Some(Err(_)) => {
            headers.insert("store", HeaderValue::from_static("no such store"));
        }
        None => {
            headers.remove("store");
        }
    }
    request
}

/// Records one [`RequestRecord`] per request when its answer is known, or with status 0 when
/// the request's future is dropped unanswered (connection killed or closed by the client).
struct RecordGuard {
    state: Arc<AppState>,
    at: Instant,
    method: String,
    path: String,
    status: u16,
    store: Option<String>,
    api_key: Option<String>,
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        lock(&self.state.requests).push(RequestRecord {
            at: self.at,
            method: std::mem::take(&mut self.method),
            path: std::mem::take(&mut self.path),
            status: self.status,
            store: self.store.take(),
            api_key: self.api_key.take(),
        });
    }
}

async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let mut guard = RecordGuard {
        state,
        at: Instant::now(),
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        status: 0,
        store: header(&request, "store"),
        api_key: header(&request, "x-api-key"),
    };
    let response = next.run(request).await;
    guard.status = response.status().as_u16();
    response
}

/// Answers a customer request the injected latency after it arrived, its own work included,
/// as a server that far away would (work done first, then the wait, is what keeps the answer
/// on time when many requests arrive at once).
async fn delay(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    let response = next.run(request).await;
    state.faults.answer_after(arrived).await;
    response
}

fn header(request: &Request, name: &str) -> Option<String> {
    let value = request.headers().get(name)?;
    value.to_str().ok().map(str::to_owned)
}

async fn not_found() -> Response {
    error_response(&ApiError::route_miss())
}

// ---- IMS -------------------------------------------------------------------------------

async fn ims_token(State(state): State<Arc<AppState>>, uri: Uri, body: Bytes) -> Response {
    // IMS takes the fields as query parameters too; the body wins when both are sent.
    let mut fields: HashMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    fields.extend(form_urlencoded::parse(&body).into_owned());
    let field = |k: &str| fields.get(k).map_or("", String::as_str);

    if field("grant_type") != "client_credentials" {
        return ims_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "unsupported grant_type",
        );
    }
    if field("client_id") != state.client_id {
        return ims_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "invalid client_id parameter",
        );
    }
    if field("client_secret") != state.client_secret.expose_secret() {
        return ims_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "invalid client_secret parameter",
        );
    }
    if !field("scope")
        .split(',')
        .any(|s| s.trim() == "commerce.accs")
    {
        return ims_error(StatusCode::BAD_REQUEST, "invalid_scope", "invalid scope");
    }

    let ttl = state.faults.token_ttl();
    let now = Instant::now();
    // A TTL too large for the clock means "never expires" in practice.
    let expires = now
        .checked_add(ttl)
        .unwrap_or(now + Duration::from_secs(86_400 * 365 * 100));
    let token = format!("eyJ{}", random_chars(40));
    {
        let mut tokens = lock(&state.tokens);
        tokens.retain(|_, &mut exp| exp > now);
        tokens.insert(token.clone(), expires);
    }
    state.tokens_issued.fetch_add(1, Ordering::Relaxed);
    Json(json!({"access_token": token, "token_type": "bearer", "expires_in": ttl.as_secs()}))
        .into_response()
}

fn ims_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if let Ok(id) = HeaderValue::from_str(&random_chars(32)) {
        response.headers_mut().insert("x-debug-id", id);
    }
    response
}

/// Random URL-safe characters. fastrand is not a CSPRNG; that is fine for tokens of a local
/// test server that dies with the process.
fn random_chars(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..n)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

// ---- customer routes -------------------------------------------------------------------

/// The checks every customer request passes before its own work: store scope (part of route
/// matching), faults, then the bearer token. Gives the request's store view, if any.
pub(crate) fn admit(
    state: &AppState,
    headers: &HeaderMap,
    resource: &str,
) -> Result<Option<i64>, Refusal> {
    let scope =
        store_scope(&state.shop, headers).ok_or_else(|| Refusal::from(ApiError::route_miss()))?;
    state.faults.before()?;
    if !authorized(state, headers) {
        return Err(unauthorized(resource).into());
    }
    Ok(scope)
}

fn unauthorized(resource: &str) -> ApiError {
    ApiError::new(401, "The consumer isn't authorized to access %resources.")
        .with_params(json!({ "resources": resource }))
}

/// `Some(scope)` for a known `Store` header (`all` or none = no particular store view);
/// `None` for an unknown code, which Magento answers as a route miss.
fn store_scope(shop: &Shop, headers: &HeaderMap) -> Option<Option<i64>> {
    let Some(code) = headers.get("store") else {
        return Some(None);
    };
    match code.to_str().ok()?.trim() {
        "all" => Some(None),
        code => shop.store_by_code(code).map(|s| Some(s.id)),
    }
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    token.is_some_and(|t| {
        lock(&state.tokens)
            .get(t)
            .is_some_and(|&exp| exp > Instant::now())
    })
}

fn decode(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|_| ApiError::decoding())
}

/// How a write request is read, by the customer routes and the bulk routes alike: `admit`ted
/// with `resource`, then its body decoded. The store view and the body, whose error the route
/// answers in its own order (after the store's, which decoding first would hide), or the
/// refusal.
pub(crate) fn read_write(
    state: &AppState,
    headers: &HeaderMap,
    resource: &str,
    body: &[u8],
) -> Result<(Option<i64>, Result<Value, ApiError>), Refusal> {
    let scope = admit(state, headers, resource)?;
    Ok((scope, decode(body)))
}

async fn create(
    State(state): State<Arc<AppState>>,
    Extension(kill): Extension<KillSwitch>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (scope, body) = match read_write(&state, &headers, ACL_MANAGE, &body) {
        Ok(read) => read,
        Err(refusal) => return refusal_response(refusal),
    };
    let result = match customers(&state).await {
        Ok(mut store) => body.and_then(|b| store.create(&state.shop, &b, scope, Utc::now())),
        Err(e) => Err(e),
    };
    answer_write(&state, &kill, result).await
}

async fn update(
    State(state): State<Arc<AppState>>,
    Extension(kill): Extension<KillSwitch>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let body = match read_write(&state, &headers, ACL_MANAGE, &body) {
        Ok((_, body)) => body,
        Err(refusal) => return refusal_response(refusal),
    };
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let result = match customers(&state).await {
        Ok(mut store) => body.and_then(|b| store.update(&state.shop, &id, &b, Utc::now())),
        Err(e) => Err(e),
    };
    answer_write(&state, &kill, result).await
}

async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(kill): Extension<KillSwitch>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    if let Err(refusal) = admit(&state, &headers, ACL_DELETE) {
        return refusal_response(refusal);
    }
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let result = match customers(&state).await {
        Ok(mut store) => store.delete(&id).map(|()| Value::Bool(true)),
        Err(e) => Err(e),
    };
    answer_write(&state, &kill, result).await
}

async fn get_one(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    if let Err(refusal) = admit(&state, &headers, ACL_READ) {
        return refusal_response(refusal);
    }
    let id = id.map(|Path(id)| id).unwrap_or_default();
    answer(customers(&state).await.and_then(|store| store.get(&id)))
}

async fn search(State(state): State<Arc<AppState>>, headers: HeaderMap, uri: Uri) -> Response {
    if let Err(refusal) = admit(&state, &headers, ACL_READ) {
        return refusal_response(refusal);
    }
    let criteria = criteria(&uri);
    let result = match customers(&state).await {
        Ok(store) => criteria.and_then(|c| store.search(&state.shop, &c)),
        Err(e) => Err(e),
    };
    answer(result)
}

/// The `searchCriteria` of a query string.
fn criteria(uri: &Uri) -> Result<SearchCriteria, ApiError> {
    let pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    SearchCriteria::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

// ---- shop read routes ------------------------------------------------------------------

/// The checks of a read route: the store scope, then the bearer token (no injected faults,
/// which are the customer routes'). Gives the website of the request's store view, if any.
fn admit_read(
    state: &AppState,
    headers: &HeaderMap,
    resource: &str,
) -> Result<Option<i64>, ApiError> {
    let scope = store_scope(&state.shop, headers).ok_or_else(ApiError::route_miss)?;
    if !authorized(state, headers) {
        return Err(unauthorized(resource));
    }
    Ok(scope
        .and_then(|s| state.shop.store_view(s))
        .map(|s| s.website_id))
}

async fn websites(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    answer(admit_read(&state, &headers, ACL_STORES).map(|_| read::websites(&state.shop)))
}

async fn store_views(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    answer(admit_read(&state, &headers, ACL_STORES).map(|_| read::store_views(&state.shop)))
}

async fn customer_groups(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = admit_read(&state, &headers, ACL_GROUPS)
        .and_then(|_| criteria(&uri))
        .and_then(|c| read::customer_groups(&state.shop, &c));
    answer(result)
}

async fn countries(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let result = admit_read(&state, &headers, ACL_STORES);
    answer(result.map(|website| read::countries(&state.shop, website)))
}

async fn country(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = id.map(|Path(id)| id).unwrap_or_default();
    let result = admit_read(&state, &headers, ACL_STORES)
        .and_then(|website| read::country(&state.shop, website, &id));
    answer(result)
}

async fn custom_attributes(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let result = admit_read(&state, &headers, ACL_READ);
    answer(result.map(|_| read::custom_attributes(&state.shop)))
}

/// Answers a write, unless a fault says to fail or drop the connection after it.
async fn answer_write(
    state: &AppState,
    kill: &KillSwitch,
    result: Result<Value, ApiError>,
) -> Response {
    if result.is_err() {
        return answer(result);
    }
    deliver(kill, state.faults.after_write(), answer(result)).await
}

/// Gives `response`, or loses it after the work was done, as `fate` says: a 500 in its
/// place, or the connection closed without an answer.
pub(crate) async fn deliver(kill: &KillSwitch, fate: AfterWrite, response: Response) -> Response {
    match fate {
        AfterWrite::Answer => response,
        AfterWrite::Fail500 => error_response(&ApiError::internal()),
        AfterWrite::Drop => {
            kill.0.notify_one();
            // The connection task drops this future together with the connection.
            std::future::pending().await
        }
    }
}

pub(crate) fn answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => error_response(&error),
    }
}

fn error_response(error: &ApiError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(error.body())).into_response()
}

pub(crate) fn refusal_response(refusal: Refusal) -> Response {
    let mut response = error_response(&refusal.error);
    if let Some(secs) = refusal.retry_after {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    response
}
