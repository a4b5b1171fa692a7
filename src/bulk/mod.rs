//! `--bulk N`: creates and updates sent through Commerce's asynchronous bulk API, N rows a
//! request, the shop's own queue doing the work.
//!
//! ```text
//! planned rows --Feed--> batches by kind (creates, updates) --record (state), submit--> 202
//!   --uuid recorded--> polled when the schedule says it should be done --> each operation
//!   decided (answer.rs) --> the row's end, as the executor decides it --> the sync's sink
//! ```
//!
//! The parts: `answer.rs` reads the shop's answers and decides each operation (pure),
//! `schedule.rs` says when a bulk is worth a poll (pure), `run.rs` is the loop that submits
//! (`submit.rs`: one bulk recorded and submitted) and polls, `recover.rs` resolves, before the next run plans, the bulks a run left behind.
//! The loop talks to the shop through [`Shop`] and ends rows through [`Rows`], so that its
//! logic can be tested against fakes; [`crate::api::Client`] and [`crate::exec::Executor`]
//! are the real ones.
//!
//! # Guarantees
//! An id is recorded only from a completed operation, checked as a request's answer is
//! ([`Rows::answered`]). A bulk's rows are in the state store, flushed, before its request
//! leaves, and its uuid as soon as the answer names it ([`crate::state::BulkRecord`]); a
//! submission whose answer was lost is submitted again (a create that the lost one queued
//! then fails as "already exists" and is adopted; an update saves the same record twice).
//! Bulk updates send the complete customer ([`crate::exec::full_record`]), since the queue
//! saves without the merge a PUT gets.

mod answer;
mod recover;
mod run;
mod schedule;
mod submit;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::api::{ApiError, BulkKind, Client};
use crate::exec::{Ended, Executor};
use crate::plan::Planned;

pub use recover::{Resolved, resolve};
pub use run::{Feed, Settings, start};

/// The shop as the bulk loop needs it.
pub trait Shop: Sync {
    /// Submits one bulk of `items`; `hidden` are secrets they carry.
    fn submit<'a>(
        &'a self,
        kind: BulkKind,
        items: &'a [Value],
        hidden: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Value, ApiError>>;
    /// The detailed status of the bulk `uuid`.
    fn status<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, Result<Value, ApiError>>;
    /// The customers with these ids (a search page at most), as the shop has them, in one
    /// request.
    fn current<'a>(&'a self, ids: &'a [u64]) -> BoxFuture<'a, Result<Vec<Value>, ApiError>>;
    /// The customers of this website with these e-mails (none holding a comma), in one
    /// request.
    fn by_emails<'a>(
        &'a self,
        emails: &'a [&'a str],
        website_id: u32,
    ) -> BoxFuture<'a, Result<Vec<Value>, ApiError>>;
    /// The customer with this e-mail in this website, if any.
    fn find<'a>(
        &'a self,
        email: &'a str,
        website_id: u32,
    ) -> BoxFuture<'a, Result<Option<Value>, ApiError>>;
}

impl Shop for Client {
    fn submit<'a>(
        &'a self,
        kind: BulkKind,
        items: &'a [Value],
        hidden: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(self.bulk_submit(kind, items, hidden))
    }
    fn status<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, Result<Value, ApiError>> {
        Box::pin(self.bulk_status(uuid))
    }
    fn current<'a>(&'a self, ids: &'a [u64]) -> BoxFuture<'a, Result<Vec<Value>, ApiError>> {
        Box::pin(self.by_ids(ids))
    }
    fn by_emails<'a>(
        &'a self,
        emails: &'a [&'a str],
        website_id: u32,
    ) -> BoxFuture<'a, Result<Vec<Value>, ApiError>> {
        Box::pin(Client::by_emails(self, emails, website_id))
    }
    fn find<'a>(
        &'a self,
        email: &'a str,
        website_id: u32,
    ) -> BoxFuture<'a, Result<Option<Value>, ApiError>> {
        Box::pin(Client::find(self, email, website_id))
    }
}

/// How a row's end is decided, once the shop's queue has worked (or refused) it.
pub trait Rows: Sync {
    /// The operation completed with `saved`.
    fn answered<'a>(&'a self, planned: Planned, saved: Value) -> BoxFuture<'a, Ended>;
    /// Creates of one bulk status that failed as "already exists", adopted together; each
    /// says whether an earlier submission of it may have reached the shop.
    fn adopt_all(&self, planned: Vec<(Planned, bool)>) -> BoxFuture<'_, Vec<Ended>>;
    /// The row failed with `error`; `unwritten`: nothing of it can have reached the shop.
    fn refused(&self, planned: Planned, error: ApiError, unwritten: bool) -> BoxFuture<'_, Ended>;
    /// The row goes as a request of its own.
    fn send(&self, planned: Planned) -> BoxFuture<'_, Ended>;
}

impl Rows for Executor {
    fn answered<'a>(&'a self, planned: Planned, saved: Value) -> BoxFuture<'a, Ended> {
        Box::pin(async move { Executor::answered(self, planned, &saved).await })
    }
    fn adopt_all(&self, planned: Vec<(Planned, bool)>) -> BoxFuture<'_, Vec<Ended>> {
        Box::pin(Executor::adopt_all(self, planned))
    }
    fn refused(&self, planned: Planned, error: ApiError, unwritten: bool) -> BoxFuture<'_, Ended> {
        Box::pin(Executor::refused(self, planned, error, unwritten))
    }
    fn send(&self, planned: Planned) -> BoxFuture<'_, Ended> {
        Box::pin(Executor::send(self, planned))
    }
}
