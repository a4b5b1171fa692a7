//! Sending planned rows: lost-response recovery, and the outcome of each row. Every call goes
//! through a [`Retrier`] (see [`crate::retry`] for what is tried again and how long it waits).
//!
//! # Lost answers
//! A create whose answer never arrived may have happened. Its retry (or the next run, after a
//! kill) then meets Magento's "already exists" error; the row is resolved by looking the
//! customer up by email and website, adopting its id, and sending a PUT only if the stored
//! record differs from the row. So whatever fails in between, each key exists once.
//!
//! # Answers
//! Nothing is recorded from an answer that is not about the customer sent, or that gives an id
//! another key has (see `answers.rs`).

mod answers;

use std::sync::Arc;

use secrecy::SecretString;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, Client};
use crate::customer::{Customer, Fields, default_address, remote_fields};
use crate::outcome::{Outcome, Skip};
use crate::plan::{Planned, Step};
use crate::retry::{Retrier, RetryPolicy, Waiting};
use crate::state::{Entry, Store};
use answers::{Ids, checked_id};

/// Sends rows through a [`Client`].
pub struct Executor {
    client: Arc<Client>,
    retrier: Retrier,
    /// The ids recorded, so that none is recorded for two keys.
    ids: Ids,
}

/// A row the API confirmed.
struct Done {
    entry: Entry,
    fields: Option<Fields>,
    note: String,
}

impl Done {
    /// From the customer as the API saved it, answered by `call` (a PUT to `put_to`), once the
    /// answer is seen to be about the customer sent.
    fn new(
        customer: &Customer,
        saved: &Value,
        hash: u128,
        note: String,
        (call, put_to): (&str, Option<u64>),
    ) -> Result<Self, Failure> {
        let customer_id = checked_id(sent(customer), saved, put_to).map_err(|detail| Failure {
            error: unexpected(call, detail),
            customer_id: put_to,
        })?;
        Ok(Done {
            entry: Entry {
                customer_id,
                payload_hash: hash,
                synced_at: chrono::Utc::now().timestamp(),
                address_id: customer
                    .address
                    .as_ref()
                    .and(default_address(saved))
                    .and_then(id_of),
            },
            fields: Some(customer.fields()),
            note,
        })
    }
}

/// Where an update goes.
struct Target {
    id: u64,
    /// Our address among the customer's, when known.
    address_id: Option<u64>,
    send_address: bool,
    /// The customer as the API last returned it, when already fetched.
    current: Option<Value>,
}

/// A row's send failed, with the customer id when one is known.
struct Failure {
    error: ApiError,
    customer_id: Option<u64>,
}

impl Executor {
    /// An executor; `cancel` interrupts backoffs and, after a grace period, requests in flight.
    /// `store` is read (once, when a new id is first answered) for the ids it already has.
    pub fn new(
        client: Arc<Client>,
        policy: RetryPolicy,
        cancel: CancellationToken,
        store: Arc<Store>,
    ) -> Self {
        Executor {
            client,
            retrier: Retrier::new(policy, cancel),
            ids: Ids::new(store),
        }
    }

    /// Requests sent so far (retries and look-ups included).
    pub fn requests(&self) -> u64 {
        self.client.throttle().requests()
    }

    /// Retries made so far.
    pub fn retries(&self) -> u64 {
        self.retrier.retries()
    }

    /// The long waits servers asked for, as they happen (for the progress line).
    pub fn waiting(&self) -> Arc<Waiting> {
        self.retrier.waiting()
    }

    /// Deletes a customer; one that is already gone counts as deleted.
    pub async fn delete(&self, id: u64) -> Result<(), ApiError> {
        match self.retry(|| self.client.delete(id)).await {
            Err(ApiError::Status { status: 404, .. }) => Ok(()),
            other => other,
        }
    }

    async fn retry<T, F, Fut>(&self, call: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        self.retrier.run(call).await
    }

    /// Sends one planned create or update and says what came of it. A fatal error (the
    /// credentials stopped working) comes back beside the row's outcome, so that the caller
    /// can stop the run.
    pub async fn send(&self, planned: Planned) -> (Outcome, Option<ApiError>) {
        let Planned { row, step } = planned;
        let action = step.action();
        let known = match &step {
            Step::Update { entry, .. } => Some(entry.customer_id),
            _ => None,
        };
        let (customer, result) = match step {
            Step::Create {
                customer,
                password,
                hash,
            } => {
                let r = self.create(&customer, password.as_ref(), hash).await;
                (customer, r)
            }
            Step::Update {
                customer,
                entry,
                hash,
                changes,
                send_address,
            } => {
                let target = Target {
                    id: entry.customer_id,
                    address_id: entry.address_id,
                    send_address,
                    current: None,
                };
                let r = match self.update(&customer, target, hash).await {
                    Ok(mut done) => {
                        done.note = changes.join("; ");
                        Ok(done)
                    }
                    // Deleted in the shop since our last sync: the file still wants the
                    // customer, so it is created again (or adopted, if it came back).
                    Err(Failure {
                        error:
                            ApiError::Status {
                                status: 404,
                                message,
                                ..
                            },
                        ..
                    }) if message.starts_with("No such entity") => {
                        self.create(&customer, None, hash).await.map(|mut done| {
                            done.note = format!(
                                "customer {} no longer existed in the shop; created again as {}",
                                entry.customer_id, done.entry.customer_id
                            );
                            done
                        })
                    }
                    Err(f) => Err(f),
                };
                (customer, r)
            }
            // The sync loop hands over only creates and updates.
            other => unreachable!("{} rows are not sent", other.action().as_str()),
        };
        let result = match result {
            Ok(done) => self
                .ids
                .take(done.entry.customer_id, row.line, known)
                .await
                .map(|()| done)
                .map_err(|detail| Failure {
                    error: unexpected("the shop", detail),
                    customer_id: None,
                }),
            Err(f) => Err(f),
        };
        match result {
            Ok(Done {
                entry,
                fields,
                note,
            }) => (
                Outcome::saved(row, action, customer.key(), entry, fields, note),
                None,
            ),
            Err(Failure { error, customer_id }) => {
                let outcome = Outcome::failed(row, action, customer.key(), customer_id, &error);
                (outcome, error.is_fatal().then_some(error))
            }
        }
    }

    async fn create(
        &self,
        customer: &Customer,
        password: Option<&SecretString>,
        hash: u128,
    ) -> Result<Done, Failure> {
        let mut body = customer.to_json(None);
        if let Some(a) = customer.address_json(None) {
            body["addresses"] = Value::Array(vec![a]);
        }
        let created = self.retry(|| self.client.create(&body, password)).await;
        match created {
            Ok(saved) => Done::new(customer, &saved, hash, String::new(), (CREATE, None)),
            Err(e) if e.is_already_exists() => self.adopt(customer, hash).await,
            Err(error) => Err(Failure {
                error,
                customer_id: None,
            }),
        }
    }

    /// The email is taken in this website (an earlier create whose answer was lost, or a shop
    /// that already had the customer): take that customer over instead of creating another.
    async fn adopt(&self, customer: &Customer, hash: u128) -> Result<Done, Failure> {
        let found = self
            .retry(|| self.client.find(&customer.email, customer.website_id))
            .await
            .map_err(|error| Failure {
                error,
                customer_id: None,
            })?;
        let Some(remote) = found else {
            return Err(Failure {
                error: ApiError::Status {
                    status: 400,
                    message: format!(
                        "{} (and no customer with this email was found in website {})",
                        crate::api::ALREADY_EXISTS,
                        customer.website_id
                    ),
                    retry_after: None,
                },
                customer_id: None,
            });
        };
        let id = checked_id(sent(customer), &remote, None).map_err(|detail| Failure {
            error: unexpected(SEARCH, detail),
            customer_id: None,
        })?;
        let known = remote_fields(&remote);
        let changes = customer.changes(&known);
        if changes.is_empty() {
            let note = format!("adopted existing customer {id}: already up to date");
            return Done::new(customer, &remote, hash, note, (SEARCH, None));
        }
        let target = Target {
            id,
            address_id: default_address(&remote).and_then(id_of),
            send_address: customer.address_changes(&known),
            current: Some(remote),
        };
        let mut done = self.update(customer, target, hash).await?;
        done.note = format!(
            "adopted existing customer {id} and updated it: {}",
            changes.join("; ")
        );
        Ok(done)
    }

    /// PUTs the full desired record. When the address must go too, the customer's current
    /// address list is sent back whole with ours replaced (a PUT with `addresses` replaces the
    /// list, so leaving the others out would delete them).
    async fn update(
        &self,
        customer: &Customer,
        target: Target,
        hash: u128,
    ) -> Result<Done, Failure> {
        let id = target.id;
        let failure = |error| Failure {
            error,
            customer_id: Some(id),
        };
        let mut body = customer.to_json(Some(id));
        if target.send_address {
            let current = match target.current {
                Some(c) => c,
                None => self.retry(|| self.client.get(id)).await.map_err(failure)?,
            };
            body["addresses"] = merged_addresses(customer, &current, target.address_id);
        }
        let saved = self
            .retry(|| self.client.update(id, &body))
            .await
            .map_err(failure)?;
        let call = format!("PUT /V1/customers/{id}");
        Done::new(customer, &saved, hash, String::new(), (&call, Some(id)))
    }
}

/// The outcome of a row to send that is not sent, because the run is stopping.
pub fn skipped(planned: Planned, why: Skip) -> Outcome {
    Outcome::skipped(planned.row, planned.step.action(), why)
}

/// The outcome of a row that sends nothing (or of any row in a dry run, which sends nothing).
pub fn unsent(planned: Planned, dry_run: bool) -> Outcome {
    let Planned { row, step } = planned;
    match step {
        Step::Invalid(message) => Outcome::invalid(row, message),
        Step::Unchanged {
            customer_id,
            note,
            refresh,
        } => Outcome::unchanged(row, customer_id, note, refresh, dry_run),
        Step::Create { .. } => Outcome::would_create(row),
        Step::Update { entry, changes, .. } => {
            Outcome::would_update(row, entry.customer_id, &changes)
        }
    }
}

/// The calls whose answers are checked, as messages name them.
const CREATE: &str = "POST /V1/customers";
const SEARCH: &str = "GET /V1/customers/search";

/// What an answer about `customer` must repeat of it.
fn sent(customer: &Customer) -> (&str, u32) {
    (&customer.email, customer.website_id)
}

/// An answer that cannot be recorded: `call` is what was answered.
fn unexpected(call: &str, detail: String) -> ApiError {
    ApiError::Unexpected {
        url: call.to_owned(),
        detail,
    }
}

fn id_of(v: &Value) -> Option<u64> {
    v.get("id").and_then(Value::as_u64)
}

/// The customer's addresses with ours in place of the one it replaces (by id, else the current
/// default), every other address kept as it is but no longer default.
fn merged_addresses(customer: &Customer, current: &Value, ours: Option<u64>) -> Value {
    let list = current
        .get("addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let replaced = ours
        .filter(|id| list.iter().any(|a| id_of(a) == Some(*id)))
        .or_else(|| default_address(current).and_then(id_of));
    let mut out: Vec<Value> = list
        .into_iter()
        .filter(|a| id_of(a) != replaced)
        .map(|mut a| {
            a["default_billing"] = Value::Bool(false);
            a["default_shipping"] = Value::Bool(false);
            a
        })
        .collect();
    out.extend(customer.address_json(replaced));
    Value::Array(out)
}
