//! The HTTP face of the bulk API: submission (`POST .../V1/async/bulk/customers`,
//! `PUT .../V1/async/bulk/customers/byCustomerId`) and the status routes
//! (`GET .../V1/bulk/{uuid}/status`, `.../detailed-status`, `.../operation-status/{status}`),
//! admitted like the synchronous customer routes (store scope, faults, bearer token). The
//! PaaS forms (`/rest/<store>/async/bulk/V1/...`, `/rest/<store>/V1/bulk/...`) reach the
//! same handlers through the path rewrite in `crate::routes`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::Utc;
use serde_json::{Value, json};

use super::Kind;
use crate::error::ApiError;
use crate::routes::{
    ACL_MANAGE, AppState, KillSwitch, admit, answer, deliver, read_write, refusal_response,
};
use crate::store;

/// Most items one async request may carry: `EntityArrayValidator::
/// DEFAULT_ASYNC_INPUT_ARRAY_SIZE_LIMIT` (the deployment config
/// `webapi/async/default_input_array_size_limit` can change it on PaaS).
pub(crate) const MAX_ITEMS: usize = 5000;

/// The ACL resource of the status routes (`AsynchronousOperations/etc/webapi.xml`).
const ACL_BULK: &str = "Magento_Logging::system_magento_logging_bulk_operations";

/// The largest bulk request body taken (413 above). Magento sets no limit of its own; the
/// web server in front of it does, by its configuration. 5,000 items of a few KiB each (a
/// customer with two addresses is about 1.5 KiB) fit; axum's default of 2 MiB refused
/// realistic bulks of 2,000 and more, which a shop configured for bulks takes.
const MAX_BULK_BODY: usize = 32 * 1024 * 1024;

/// The bulk routes, SaaS form (under the sandbox's `/sandbox` tenant).
pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/sandbox/V1/async/bulk/customers", post(submit_create))
        .route(
            "/sandbox/V1/async/bulk/customers/byCustomerId",
            put(submit_save),
        )
        .route("/sandbox/V1/bulk/{uuid}/status", get(short_status))
        .route(
            "/sandbox/V1/bulk/{uuid}/detailed-status",
            get(detailed_status),
        )
        .route(
            "/sandbox/V1/bulk/{uuid}/operation-status/{status}",
            get(operation_status),
        )
        .layer(DefaultBodyLimit::max(MAX_BULK_BODY))
}

async fn submit_create(
    State(state): State<Arc<AppState>>,
    Extension(kill): Extension<KillSwitch>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    submit(&state, &kill, &headers, &body, Kind::Create).await
}

async fn submit_save(
    State(state): State<Arc<AppState>>,
    Extension(kill): Extension<KillSwitch>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    submit(&state, &kill, &headers, &body, Kind::Save).await
}

/// Admits the request, binds every item (a bad one fails the whole request, nothing
/// queued), queues them as one bulk and answers 202, unless a fault loses the answer.
async fn submit(
    state: &AppState,
    kill: &KillSwitch,
    headers: &HeaderMap,
    body: &[u8],
    kind: Kind,
) -> Response {
    let (scope, body) = match read_write(state, headers, ACL_MANAGE, body) {
        Ok(read) => read,
        Err(refusal) => return refusal_response(refusal),
    };
    let items = match body.and_then(bind_items) {
        Ok(items) => items,
        Err(error) => return answer(Err(error)),
    };
    let accepted = state.bulks.submit(kind, scope, items, Utc::now());
    let response = (StatusCode::ACCEPTED, Json(accepted)).into_response();
    deliver(kill, state.faults.after_bulk(), response).await
}

/// The items of a bulk body, bound as `WebapiAsync\Controller\Rest\Asynchronous\
/// InputParamsResolver::resolve` does: the body's entries in order, an entry that is not an
/// object skipped, each of the others bound like a synchronous request body. Too many
/// items is `EntityArrayValidator`'s `InvalidArgumentException`, a 400.
fn bind_items(body: Value) -> Result<Vec<Value>, ApiError> {
    let entries: Vec<Value> = match body {
        Value::Array(items) => items,
        Value::Object(map) => map.into_iter().map(|(_, v)| v).collect(),
        _ => return Err(ApiError::decoding()),
    };
    if entries.len() > MAX_ITEMS {
        return Err(ApiError::bad("Maximum items of type \"%type\" is %max").with_params(
            json!({"type": "Magento\\Customer\\Api\\Data\\CustomerInterface", "max": MAX_ITEMS}),
        ));
    }
    let items: Vec<Value> = entries.into_iter().filter(Value::is_object).collect();
    for item in &items {
        store::bind(item)?;
    }
    Ok(items)
}

async fn short_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uuid: Result<Path<String>, PathRejection>,
) -> Response {
    status(&state, &headers, uuid, false)
}

async fn detailed_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uuid: Result<Path<String>, PathRejection>,
) -> Response {
    status(&state, &headers, uuid, true)
}

fn status(
    state: &AppState,
    headers: &HeaderMap,
    uuid: Result<Path<String>, PathRejection>,
    detailed: bool,
) -> Response {
    if let Err(refusal) = admit(state, headers, ACL_BULK) {
        return refusal_response(refusal);
    }
    let uuid = uuid.map(|Path(uuid)| uuid).unwrap_or_default();
    answer(state.bulks.status(&uuid, detailed))
}

async fn operation_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    if let Err(refusal) = admit(&state, &headers, ACL_BULK) {
        return refusal_response(refusal);
    }
    let (uuid, raw) = params.map(|Path(p)| p).unwrap_or_default();
    // The service method declares `int $status`: anything else fails binding.
    let count = raw
        .parse::<i64>()
        .map_err(|_| ApiError::wrong_type(&json!(raw), "int"))
        .map(|status| json!(state.bulks.count(&uuid, status)));
    answer(count)
}
