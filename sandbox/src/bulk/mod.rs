//! Commerce's asynchronous bulk API: the bulks a shop has accepted, their operations and the
//! FIFO queue its consumer works through. Magento keeps these in `magento_bulk` and
//! `magento_operation` and a message queue; here they are kept in memory, in [`BulkQueue`].
//!
//! Rooms: this module (bulks, operations and their status answers, pure but for the lock),
//! `routes` (the HTTP face: submission and the status routes), `consumer` (the tokio task
//! that applies operations at the configured rate).
//!
//! Bulks are not journaled, also when the sandbox has a data directory: a restarted sandbox
//! answers an uuid it gave before with "Bulk uuid ... not exist" and has dropped its open
//! operations, as a shop whose queue was purged would. What an operation did to customers is
//! journaled by the customer store like any synchronous write, so customers and their ids
//! stay consistent across restarts; a client that finds a bulk gone has to look up by e-mail
//! what it created, which is the case a real shop's lost answers put it in anyway.

pub(crate) mod consumer;
pub(crate) mod routes;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::routes::lock;

/// Operation statuses (`AsynchronousOperations\Api\Data\OperationInterface::STATUS_TYPE_*`).
pub(crate) const STATUS_COMPLETE: u8 = 1;
pub(crate) const STATUS_RETRIABLY_FAILED: u8 = 2;
pub(crate) const STATUS_NOT_RETRIABLY_FAILED: u8 = 3;
pub(crate) const STATUS_OPEN: u8 = 4;

/// The consumer's default speed in operations per second: a shop's `async.operations.all`
/// consumer saving customers one by one manages a few hundred to a few thousand a second.
pub const DEFAULT_CONSUMER_RATE: u32 = 1000;

/// `user_type` of bulks scheduled with an admin (IMS) token
/// (`Authorization\Model\UserContextInterface::USER_TYPE_ADMIN`).
const USER_TYPE_ADMIN: i64 = 2;

/// What a bulk's operations do, by the route that accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `POST .../async/bulk/V1/customers`: `AccountManagementInterface::createAccount`.
    Create,
    /// `PUT .../async/bulk/V1/customers/byCustomerId`: `CustomerRepositoryInterface::save`.
    Save,
}

impl Kind {
    /// The queue topic (`WebapiAsync\Model\Config::generateTopicNameFromService`).
    pub(crate) fn topic(self) -> &'static str {
        match self {
            Kind::Create => {
                "async.magento.customer.api.accountmanagementinterface.createaccount.post"
            }
            Kind::Save => "async.magento.customer.api.customerrepositoryinterface.save.put",
        }
    }

    /// The `result_message` of a completed operation: `OperationProcessor::executeHandler`
    /// writes `Service execution success <class>::<method>` of the handler it called.
    fn success_message(self) -> &'static str {
        match self {
            Kind::Create => {
                "Service execution success Magento\\Customer\\Model\\AccountManagement\\Interceptor::createAccount"
            }
            Kind::Save => {
                "Service execution success Magento\\Customer\\Model\\ResourceModel\\CustomerRepository\\Interceptor::save"
            }
        }
    }
}

/// One operation of a bulk: an item of the request and what became of it.
#[derive(Debug)]
pub(crate) struct Operation {
    /// The item as sent (bound and type-checked at submission); dropped once the operation
    /// is complete, when Magento drops its `serialized_data` too.
    item: Option<Value>,
    status: u8,
    result_message: Option<String>,
    result_data: Option<String>,
    error_code: Option<i64>,
}

/// An accepted bulk.
#[derive(Debug)]
pub(crate) struct Bulk {
    pub(crate) kind: Kind,
    /// The store view of the request, for creates that name neither store nor website.
    pub(crate) scope: Option<i64>,
    start_time: String,
    pub(crate) operations: Vec<Operation>,
}

/// What the consumer did with one operation.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Applied; the synchronous route's answer.
    Done(Value),
    /// Refused by the shop's rules (status 3).
    Failed(ApiError),
    /// Not applied, may be retried (status 2): the message and code of the database error.
    Retriable(&'static str, i64),
}

#[derive(Debug, Default)]
struct Bulks {
    by_uuid: HashMap<String, Bulk>,
    /// Open operations, oldest first: (bulk uuid, operation index).
    queue: VecDeque<(String, usize)>,
}

/// The bulks of one sandbox and the queue of their open operations.
#[derive(Debug)]
pub(crate) struct BulkQueue {
    inner: Mutex<Bulks>,
    /// Woken when operations are queued.
    pub(crate) queued: Notify,
    /// Operations per second the consumer applies (0 = as fast as it can).
    pub(crate) rate: u32,
}

impl BulkQueue {
    pub(crate) fn new(rate: u32) -> Self {
        Self {
            inner: Mutex::default(),
            queued: Notify::new(),
            rate,
        }
    }

    /// Accepts a bulk of bound items, queues every item as an open operation and gives the
    /// 202 answer (`AsynchronousRequestProcessor`: `bulk_uuid`, `request_items`, `errors`).
    pub(crate) fn submit(
        &self,
        kind: Kind,
        scope: Option<i64>,
        items: Vec<Value>,
        now: DateTime<Utc>,
    ) -> Value {
        let uuid = new_uuid();
        let mut request_items = Vec::with_capacity(items.len());
        let operations: Vec<Operation> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                request_items.push(json!({
                    "id": i,
                    "data_hash": sha256_hex(&item.to_string()),
                    "status": "accepted",
                }));
                Operation {
                    item: Some(item),
                    status: STATUS_OPEN,
                    result_message: None,
                    result_data: None,
                    error_code: None,
                }
            })
            .collect();
        let count = operations.len();
        {
            let mut bulks = lock(&self.inner);
            bulks.queue.extend((0..count).map(|i| (uuid.clone(), i)));
            bulks.by_uuid.insert(
                uuid.clone(),
                Bulk {
                    kind,
                    scope,
                    start_time: now.format("%Y-%m-%d %H:%M:%S").to_string(),
                    operations,
                },
            );
        }
        self.queued.notify_one();
        json!({"bulk_uuid": uuid, "request_items": request_items, "errors": false})
    }

    /// The next open operation, oldest first: its bulk's uuid and kind, its index, the
    /// request's scope and the item.
    pub(crate) fn next(&self) -> Option<(String, usize, Kind, Option<i64>, Value)> {
        let mut bulks = lock(&self.inner);
        let (uuid, index) = bulks.queue.pop_front()?;
        let bulk = bulks.by_uuid.get(&uuid)?;
        let item = bulk.operations.get(index)?.item.clone()?;
        Some((uuid, index, bulk.kind, bulk.scope, item))
    }

    /// Records what became of an operation, as `OperationProcessor::process` and
    /// `OperationManagement::changeOperationStatus` do: a completed operation gets the
    /// service's output as JSON text and loses its `serialized_data`; a failed one keeps it
    /// and gets the exception's rendered message and code.
    pub(crate) fn finish(&self, uuid: &str, index: usize, outcome: Outcome) {
        let mut bulks = lock(&self.inner);
        let Some(bulk) = bulks.by_uuid.get_mut(uuid) else {
            return;
        };
        let kind = bulk.kind;
        let Some(op) = bulk.operations.get_mut(index) else {
            return;
        };
        match outcome {
            Outcome::Done(answer) => {
                op.status = STATUS_COMPLETE;
                op.result_message = Some(kind.success_message().to_owned());
                op.result_data = Some(answer.to_string());
                op.item = None;
                op.error_code = None;
            }
            Outcome::Failed(error) => {
                op.status = STATUS_NOT_RETRIABLY_FAILED;
                op.result_message = Some(error.rendered());
                // A LocalizedException's code: 0 unless the thrower set one.
                op.error_code = Some(0);
            }
            Outcome::Retriable(message, code) => {
                op.status = STATUS_RETRIABLY_FAILED;
                op.result_message = Some(message.to_owned());
                op.error_code = Some(code);
            }
        }
    }

    /// `GET /V1/bulk/{uuid}/detailed-status` (`detailed`) or `.../status`.
    pub(crate) fn status(&self, uuid: &str, detailed: bool) -> Result<Value, ApiError> {
        let bulks = lock(&self.inner);
        let bulk = bulks.by_uuid.get(uuid).ok_or_else(|| unknown_bulk(uuid))?;
        let operations: Vec<Value> = bulk
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| op.to_json(i, uuid, bulk.kind, detailed))
            .collect();
        Ok(json!({
            "operations_list": operations,
            "user_type": USER_TYPE_ADMIN,
            "bulk_id": uuid,
            "description": format!("Topic {}", bulk.kind.topic()),
            "start_time": bulk.start_time,
            "user_id": 1,
            "operation_count": bulk.operations.len(),
        }))
    }

    /// `GET /V1/bulk/{uuid}/operation-status/{status}`: a bare count, 0 for an uuid the shop
    /// does not know (`BulkOperationsStatus::getOperationsCountByBulkIdAndStatus` only counts).
    pub(crate) fn count(&self, uuid: &str, status: i64) -> usize {
        let bulks = lock(&self.inner);
        bulks.by_uuid.get(uuid).map_or(0, |bulk| {
            bulk.operations
                .iter()
                .filter(|op| i64::from(op.status) == status)
                .count()
        })
    }
}

impl Operation {
    /// One item of `operations_list`; null fields are left out, as in every Magento answer.
    fn to_json(&self, index: usize, uuid: &str, kind: Kind, detailed: bool) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(index));
        if detailed {
            out.insert("bulk_uuid".into(), json!(uuid));
            out.insert("topic_name".into(), json!(kind.topic()));
            if let Some(item) = &self.item {
                // `MassSchedule::publishMass`'s envelope around the encoded message.
                let envelope = json!({"entity_id": null, "entity_link": "", "meta_information": item.to_string()});
                out.insert("serialized_data".into(), json!(envelope.to_string()));
            }
            if let Some(data) = &self.result_data {
                out.insert("result_serialized_data".into(), json!(data));
            }
        }
        out.insert("status".into(), json!(self.status));
        if let Some(message) = &self.result_message {
            out.insert("result_message".into(), json!(message));
        }
        if let Some(code) = self.error_code {
            out.insert("error_code".into(), json!(code));
        }
        Value::Object(out)
    }
}

/// `BulkOperationsStatus::getBulkDetailedStatus` and `getBulkShortStatus` for an uuid
/// without a bulk: `NoSuchEntityException`, so a 404.
fn unknown_bulk(uuid: &str) -> ApiError {
    ApiError::new(404, "Bulk uuid %bulkUuid not exist").with_params(json!({ "bulkUuid": uuid }))
}

/// A random version-4 UUID, as `DataObject\IdentityService::generateId` gives.
fn new_uuid() -> String {
    let mut bytes: [u8; 16] = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `data_hash` of a request item: SHA-256 of the encoded message, in hex.
fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests;
