//! Sending planned rows: lost-response recovery, and the outcome of each row. Every call goes
//! through a [`Retrier`] (see [`crate::retry`] for what is tried again and how long it waits).
//!
//! # Lost answers
//! A create whose answer never arrived may have happened. Its retry (or the next run, after a
//! kill) then meets Magento's "already exists" error; the row is resolved by looking the
//! customer up by email and website (under `--key custom:<code>`, by that attribute: see
//! `legacy.rs`), adopting its id, and sending a PUT only if the stored record differs from the
//! row. So whatever fails in between, each key exists once.
//!
//! An update or a delete whose answer never arrived may have happened too, and nothing in the
//! shop tells so later. Its key is marked in doubt before the request leaves (an update's by
//! the planner, a delete's by [`Executor::delete`]); the mark is cleared by the confirmation,
//! or here when every try was refused outright (a 4xx: nothing was applied) or none was sent
//! (see `doubt.rs`). A key still in doubt is sent again by the next run.
//!
//! # Answers
//! Nothing is recorded from an answer that is not about the customer sent, or that gives an id
//! another key has (see `answers.rs`).

mod addresses;
mod answers;
mod bulk;
mod doubt;
mod legacy;

use std::sync::{Arc, OnceLock};

use secrecy::SecretString;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, Client};
use crate::customer::{Change, Customer, Fields, Key, remote_fields_with};
use crate::outage::Watch;
use crate::outcome::{Action, Outcome, RowRef, Saved, Skip};
use crate::plan::{Planned, Step};
use crate::retry::{Retrier, RetryPolicy, Waiting};
use crate::state::{Doubt, Entry, Index, StateError, Store};
use addresses::{Ours, id_of, merged, ours_in};
use answers::Ids;
use doubt::Tries;

pub use answers::checked_id;
pub use bulk::{create_body, full_record};

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
    /// The fields an update changed.
    changes: Vec<Change>,
    /// What the row is counted as when not what it was planned as: a create that found the
    /// customer already in the shop, and not through a try of its own, is an update of it
    /// (or unchanged).
    counted: Option<Action>,
}

impl Done {
    /// An adoption counted as what it did (updated, or unchanged) when no earlier try of the
    /// row can have made the customer (`before`); else as the create it stands for.
    fn found_before(mut self, before: bool) -> Self {
        if before {
            self.counted = Some(match self.changes.is_empty() {
                true => Action::Unchanged,
                false => Action::Update,
            });
        }
        self
    }

    /// From the customer as the API saved it, answered by `call` (a PUT to `put_to`, with
    /// further addresses of these ids), once the answer is seen to be about the customer sent.
    fn new(
        customer: &Customer,
        saved: &Value,
        hash: u128,
        note: String,
        (call, put_to, further): (&str, Option<u64>, &[Option<u64>]),
    ) -> Result<Self, Failure> {
        let customer_id = checked_id(sent(customer), saved, put_to).map_err(|detail| Failure {
            error: unexpected(call, detail),
            customer_id: put_to,
            // The shop answered 2xx: it wrote something.
            unwritten: false,
        })?;
        let ours = ours_in(customer, saved, further);
        Ok(Done {
            entry: Entry {
                customer_id,
                payload_hash: hash,
                synced_at: chrono::Utc::now().timestamp(),
                address_id: ours.default,
                further_address_ids: ours.further,
            },
            fields: Some(customer.fields()),
            note,
            changes: Vec::new(),
            counted: None,
        })
    }
}

/// Where an update goes.
struct Target {
    id: u64,
    /// Our addresses among the customer's, when known.
    ours: Ours,
    send_address: bool,
    /// The customer as the API last returned it, when already fetched.
    current: Option<Value>,
}

/// A row's send failed, with the customer id when one is known.
struct Failure {
    error: ApiError,
    customer_id: Option<u64>,
    /// No write of the row can have reached the shop: its doubt mark may go.
    unwritten: bool,
}

impl Failure {
    /// A failure before any write of the row was sent, or of a create (never in doubt).
    fn new(error: ApiError, customer_id: Option<u64>) -> Self {
        Failure {
            error,
            customer_id,
            unwritten: true,
        }
    }
}

/// What came of a row handed to the executor.
#[derive(Debug)]
pub struct Ended {
    /// The row's report line and state change.
    pub outcome: Outcome,
    /// The error that must stop the run (the credentials stopped working), if one did.
    pub fatal: Option<ApiError>,
    /// The key whose doubt mark can go although nothing was confirmed: its update was
    /// refused outright, or never sent.
    pub settled: Option<Key>,
}

impl From<Outcome> for Ended {
    /// A row that sent nothing and settles nothing.
    fn from(outcome: Outcome) -> Self {
        Ended {
            outcome,
            fatal: None,
            settled: None,
        }
    }
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

    /// The same, reading the ids the store already has from the run's index once it is
    /// there (see [`crate::sync`]) instead of from a scan of the store.
    pub fn knowing(mut self, index: Arc<OnceLock<Arc<Index>>>) -> Self {
        self.ids.index = Some(index);
        self
    }

    /// The same, its retrier showing every try to `watch` (see [`crate::outage`]).
    pub fn watching(self, watch: Arc<Watch>) -> Self {
        Executor {
            retrier: self.retrier.watching(watch),
            ..self
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

    /// Deletes `key`'s customer `id` and forgets the mapping; a customer already gone counts
    /// as deleted. The key is marked in doubt (durably) before the request leaves, and stays
    /// so when the answer is lost, for the next run to delete it again or send it again. The
    /// outer error is the state store's; the inner one the API's, for the caller to report.
    ///
    /// The store is written in place: call this only on a multi-thread runtime (it moves the
    /// other tasks off this thread meanwhile).
    pub async fn delete(
        &self,
        store: &Store,
        key: &Key,
        id: u64,
    ) -> Result<Result<(), ApiError>, StateError> {
        use tokio::task::block_in_place as blocking;
        blocking(|| store.doubt(&[(key.clone(), Doubt::Delete)]))?;
        let tries = Tries::default();
        let result = match self.retry(|| tries.watch(self.client.delete(id))).await {
            Err(ApiError::Status { status: 404, .. }) => Ok(()),
            other => other,
        };
        match &result {
            Ok(()) => {
                blocking(|| store.forget(key))?;
            }
            Err(_) if tries.none_applied() => blocking(|| store.settle(key))?,
            Err(_) => {}
        }
        Ok(result)
    }

    /// The shop's customers of these ids as they are now (those it has), a search a page.
    pub async fn current(&self, ids: &[u64]) -> Result<Vec<Value>, ApiError> {
        self.retrier
            .by_pages(ids, |page| self.client.by_ids(page))
            .await
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
    pub async fn send(&self, planned: Planned) -> Ended {
        let Planned { row, step } = planned;
        let action = step.action();
        let known = match &step {
            Step::Update { entry, .. } => Some(entry.customer_id),
            _ => None,
        };
        let (customer, result, in_doubt) = match step {
            Step::Create {
                customer,
                password,
                hash,
                recheck,
            } => {
                let r = match customer.key_attribute.as_deref().filter(|_| recheck) {
                    Some(code) => {
                        self.create_unless_found(&customer, code, password.as_ref(), hash)
                            .await
                    }
                    None => self.create(&customer, password.as_ref(), hash).await,
                };
                // Under a custom key the create was marked in doubt; a refusal clears it.
                let in_doubt = customer.key_attribute.is_some();
                (customer, r, in_doubt)
            }
            Step::Update {
                customer,
                entry,
                hash,
                changes,
                send_address,
                doubt,
            } => {
                let target = Target {
                    id: entry.customer_id,
                    ours: Ours {
                        default: entry.address_id,
                        further: entry.further_address_ids.clone(),
                    },
                    send_address,
                    current: None,
                };
                let r = match self.update(&customer, target, hash).await {
                    Ok(mut done) => {
                        // Why it was sent again when in doubt; then its changes.
                        done.note = doubt.map(Doubt::message).unwrap_or_default().to_owned();
                        done.changes = changes;
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
                    }) if message.starts_with("No such entity") => self
                        .create(&customer, None, hash)
                        .await
                        .map(|mut done| {
                            done.note = format!(
                                "customer {} no longer existed in the shop; created again as {}",
                                entry.customer_id, done.entry.customer_id
                            );
                            done
                        })
                        // The shop lacks the customer the store maps: still in doubt.
                        .map_err(|f| Failure {
                            unwritten: false,
                            ..f
                        }),
                    Err(f) => Err(f),
                };
                (customer, r, true)
            }
            // The sync loop hands over only creates and updates.
            other => unreachable!("{} rows are not sent", other.action().as_str()),
        };
        self.conclude(row, action, customer, known, result, in_doubt)
            .await
    }

    /// The end of a row's send: an answer's id taken (one id, one key) and the outcome built;
    /// `known` is the id the store had for the key, `in_doubt` whether the row was an update.
    async fn conclude(
        &self,
        row: RowRef,
        action: Action,
        customer: Box<Customer>,
        known: Option<u64>,
        result: Result<Done, Failure>,
        in_doubt: bool,
    ) -> Ended {
        let result = match result {
            Ok(done) => self
                .ids
                .take(done.entry.customer_id, row.line, known)
                .await
                .map(|()| done)
                .map_err(|detail| Failure {
                    error: unexpected("the shop", detail),
                    customer_id: None,
                    // Answered 2xx: written.
                    unwritten: false,
                }),
            Err(f) => Err(f),
        };
        match result {
            Ok(Done {
                entry,
                fields,
                note,
                changes,
                counted,
            }) => {
                let action = counted.unwrap_or(action);
                let saved = Saved {
                    key: customer.key(),
                    entry,
                    fields,
                    note,
                    changes,
                };
                let created = (action == Action::Create).then_some(customer);
                Ended {
                    outcome: Outcome::saved(row, action, saved, created),
                    fatal: None,
                    settled: None,
                }
            }
            Err(Failure {
                error,
                customer_id,
                unwritten,
            }) => Ended {
                outcome: match (&error, unwritten) {
                    // Stopped before it left (a bulk never submitted): nothing to resend with
                    // --only-failed, as for a row the per-request path never sent.
                    (ApiError::Interrupted { .. }, true) => {
                        Outcome::failed(row, action, customer.key(), customer_id, &error).unmarked()
                    }
                    _ => Outcome::failed(row, action, customer.key(), customer_id, &error),
                },
                fatal: error.is_fatal().then_some(error),
                settled: (in_doubt && unwritten).then(|| customer.key()),
            },
        }
    }

    async fn create(
        &self,
        customer: &Customer,
        password: Option<&SecretString>,
        hash: u128,
    ) -> Result<Done, Failure> {
        let body = create_body(customer);
        let tries = Tries::default();
        let created = (self.retry(|| tries.watch(self.client.create(&body, password)))).await;
        match created {
            Ok(saved) => Done::new(customer, &saved, hash, String::new(), (CREATE, None, &[])),
            Err(e) if e.is_already_exists() => {
                let done = self.adopt(customer, hash).await?;
                // Already there before this run's first try: the shop had the customer.
                Ok(done.found_before(tries.none_applied()))
            }
            // A try that may have reached the shop keeps a create's doubt mark (custom keys).
            Err(error) => Err(Failure {
                error,
                customer_id: None,
                unwritten: tries.none_applied(),
            }),
        }
    }

    /// The email is taken in this website (an earlier create whose answer was lost, or a shop
    /// that already had the customer): take that customer over instead of creating another.
    async fn adopt(&self, customer: &Customer, hash: u128) -> Result<Done, Failure> {
        let remote = match customer.key_attribute.as_deref() {
            Some(code) => self.find_by_key(customer, code).await?,
            None => self.find_by_email(customer).await?,
        };
        self.adopt_remote(customer, hash, remote).await
    }

    /// Takes over `remote`, the customer found for the row's key (see [`Executor::adopt`]).
    async fn adopt_remote(
        &self,
        customer: &Customer,
        hash: u128,
        remote: Value,
    ) -> Result<Done, Failure> {
        // Under a custom key the customer found may have another e-mail (the row's changed):
        // the answer is checked for its own, and the update below sends the row's.
        let email = (remote.get("email").and_then(Value::as_str)).unwrap_or(&customer.email);
        let id = checked_id((email, customer.website_id), &remote, None)
            .map_err(|detail| Failure::new(unexpected(SEARCH, detail), None))?;
        // Further addresses are found among the shop's by what they hold.
        let mut ours = ours_in(customer, &remote, &[]);
        let known = remote_fields_with(&remote, &ours.further);
        let changes = customer.changes(&known);
        if changes.is_empty() {
            let note = format!("adopted existing customer {id}: already up to date");
            return Done::new(customer, &remote, hash, note, (SEARCH, None, &ours.further));
        }
        // The shop's default address is the one ours replaces, whether or not it matches.
        ours.default = crate::customer::default_address(&remote).and_then(id_of);
        let target = Target {
            id,
            ours,
            send_address: customer.address_changes(&known),
            current: Some(remote),
        };
        let mut done = self.update(customer, target, hash).await?;
        done.note = format!("adopted existing customer {id} and updated it");
        done.changes = changes;
        Ok(done)
    }

    /// The customer of the row's e-mail in its website, for a create refused as "already
    /// exists" under the e-mail key.
    async fn find_by_email(&self, customer: &Customer) -> Result<Value, Failure> {
        let found = self
            .retry(|| self.client.find(&customer.email, customer.website_id))
            .await
            .map_err(|error| Failure::new(error, None))?;
        found.ok_or_else(|| not_found(customer))
    }

    /// PUTs the full desired record. When the address must go too, the customer's current
    /// address list is sent back whole with ours replaced (a PUT with `addresses` replaces the
    /// list, so leaving the others out would delete them).
    async fn update(
        &self,
        customer: &Customer,
        mut target: Target,
        hash: u128,
    ) -> Result<Done, Failure> {
        let id = target.id;
        let mut body = customer.to_json(Some(id));
        if target.send_address {
            let current = match target.current {
                Some(c) => c,
                None => self
                    .retry(|| self.client.get(id))
                    .await
                    .map_err(|error| Failure::new(error, Some(id)))?,
            };
            // A further address the store has no id for (the store was seeded by `pull`, or the
            // address was added since) replaces one of the shop's that holds the same.
            target.ours.further = ours_in(customer, &current, &target.ours.further).further;
            body["addresses"] = merged(customer, &current, &target.ours);
        }
        let tries = Tries::default();
        let saved = self
            .retry(|| tries.watch(self.client.update(id, &body)))
            .await
            .map_err(|error| Failure {
                error,
                customer_id: Some(id),
                unwritten: tries.none_applied(),
            })?;
        let call = format!("PUT /V1/customers/{id}");
        let further = &target.ours.further;
        Done::new(
            customer,
            &saved,
            hash,
            String::new(),
            (&call, Some(id), further),
        )
    }
}

/// What came of a row to send that is not sent, because the run is stopping: an update's
/// doubt mark goes, since it never left.
pub fn skipped(planned: Planned, why: Skip) -> Ended {
    Ended {
        settled: planned.step.updated_key(),
        outcome: Outcome::skipped(planned.row, planned.step.action(), why),
        fatal: None,
    }
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
        Step::Create { customer, .. } => Outcome::would_create(row, customer),
        Step::Update {
            entry,
            changes,
            doubt,
            ..
        } => {
            let note = doubt.map(Doubt::message);
            Outcome::would_update(row, entry.customer_id, changes, note)
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

/// The failure of an adoption that found no customer for the row's e-mail in its website.
fn not_found(customer: &Customer) -> Failure {
    let error = ApiError::Status {
        status: 400,
        message: format!(
            "{} (and no customer with this email was found in website {})",
            crate::api::ALREADY_EXISTS,
            customer.website_id
        ),
        retry_after: None,
    };
    Failure::new(error, None)
}
