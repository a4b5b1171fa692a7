//! Submitting one bulk: its items built (for updates, from the customers as the shop has
//! them), its rows recorded in the state store before the request leaves, its uuid recorded
//! as soon as the shop answers. Also what the loop and a submission share: the loop's context
//! and its rows.

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::answer::{self, Accepted};
use super::{Rows, Shop};
use crate::api::{ApiError, BulkKind, create_item};
use crate::exec::{create_body, full_record};
use crate::plan::{Planned, Step};
use crate::retry::Retrier;
use crate::state::{BulkRecord, BulkRow, StateError, Store};

/// How the loop works.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Rows per bulk (`--bulk`).
    pub size: usize,
    /// Submissions, and polls, in flight at once (`--concurrency`).
    pub concurrency: usize,
    /// Resubmissions of a row the queue failed in a retriable way (`--retries`).
    pub retries: u32,
    /// How long the queue may work none of the operations in flight before the run stops
    /// waiting for them.
    pub stall_limit: Duration,
}

/// What the loop works with.
pub(super) struct Cx<'a> {
    pub(super) settings: Settings,
    pub(super) shop: &'a dyn Shop,
    pub(super) rows: &'a dyn Rows,
    pub(super) store: Arc<Store>,
    pub(super) retrier: &'a Retrier,
    pub(super) cancel: CancellationToken,
}

/// A row in the loop, with the times the queue failed it in a retriable way.
pub(super) struct Row {
    pub(super) planned: Planned,
    pub(super) tries: u32,
    /// An earlier submission of the row may have reached the shop: a customer found already
    /// there may be its own create's (counted as created, not as found).
    pub(super) sent_before: bool,
}

impl Row {
    pub(super) fn kind(&self) -> BulkKind {
        match self.planned.step {
            Step::Update { .. } => BulkKind::Update,
            _ => BulkKind::Create,
        }
    }
}

/// What came of a submission.
pub(super) enum Submission {
    Accepted {
        record: u64,
        accepted: Accepted,
        rows: Vec<Row>,
    },
    /// Nothing could have been queued (or nothing was left to submit): the rows go as
    /// requests of their own.
    Alone(Vec<Row>),
    /// The shop found the request too large (413) and queued nothing: the rows go again, in
    /// smaller bulks.
    TooLarge(Vec<Row>),
    Failed {
        rows: Vec<Row>,
        error: ApiError,
        unwritten: bool,
    },
}

/// Forgets a bulk's record, every row of it ended; off the async workers.
pub(super) fn resolved(cx: &Cx<'_>, record: u64) {
    let store = Arc::clone(&cx.store);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.bulk_resolved(record) {
            tracing::warn!("cannot forget a resolved bulk: {e}");
        }
    });
}

/// The state store's answer to a blocking call made off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    call: impl FnOnce(&Store) -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .unwrap_or_else(|_| {
            Err(StateError::Io {
                path: "state-store".into(),
                source: std::io::Error::other("a state store task stopped"),
            })
        })
}

/// What the store keeps of a row until its bulk is resolved.
fn recorded(row: &Row) -> BulkRow {
    let (customer, hash, id) = match &row.planned.step {
        Step::Create { customer, hash, .. } => (customer, *hash, None),
        Step::Update {
            customer,
            hash,
            entry,
            ..
        } => (customer, *hash, Some(entry.customer_id)),
        other => unreachable!("{} rows are not sent", other.action().as_str()),
    };
    BulkRow {
        website_id: customer.website_id,
        email: customer.email.trim().to_lowercase(),
        custom_key: (customer.key_attribute.as_ref())
            .map(|code| (code.to_string(), customer.key().value)),
        line: row.planned.row.line,
        hash,
        customer_id: id,
        address: customer.address.is_some(),
    }
}

/// Builds a bulk's items (for updates, from the customers as the shop has them), records the
/// bulk, submits it, and records its uuid. Rows that cannot go in a bulk come back beside.
pub(super) async fn submit(
    cx: &Cx<'_>,
    kind: BulkKind,
    rows: Vec<Row>,
) -> Result<(Submission, Vec<Row>), StateError> {
    let (rows, alone, items) = match kind {
        BulkKind::Create => {
            let items = (rows.iter())
                .map(|row| match &row.planned.step {
                    Step::Create {
                        customer, password, ..
                    } => create_item(
                        create_body(customer),
                        password.as_ref().map(ExposeSecret::expose_secret),
                    ),
                    other => unreachable!("{} in a create bulk", other.action().as_str()),
                })
                .collect();
            (rows, Vec::new(), items)
        }
        BulkKind::Update => match updates(cx, rows).await {
            Ok(split) => split,
            Err((rows, error)) => {
                let failed = Submission::Failed {
                    rows,
                    error,
                    unwritten: true,
                };
                return Ok((failed, Vec::new()));
            }
        },
    };
    if rows.is_empty() {
        return Ok((Submission::Alone(Vec::new()), alone));
    }
    let record = BulkRecord {
        create: kind == BulkKind::Create,
        uuid: None,
        rows: rows.iter().map(recorded).collect(),
    };
    let id = blocking(&cx.store, move |s| s.record_bulk(&record)).await?;
    let hidden: Vec<&str> = (rows.iter())
        .filter_map(|row| match &row.planned.step {
            Step::Create {
                password: Some(p), ..
            } => Some(p.expose_secret()),
            _ => None,
        })
        .collect();
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let answer = cx
        .retrier
        .run(|| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            cx.shop.submit(kind, &items, &hidden)
        })
        .await;
    let mut rows = rows;
    if attempts.into_inner() > 1 {
        rows.iter_mut().for_each(|row| row.sent_before = true);
    }
    let accepted = match answer.map(|a| answer::accepted(&a)) {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(detail)) => {
            let error = ApiError::Unexpected {
                url: "the bulk submission".into(),
                detail,
            };
            let failed = Submission::Failed {
                rows,
                error,
                unwritten: false,
            };
            return Ok((failed, alone));
        }
        Err(ApiError::Status { status: 413, .. }) if rows.len() > 1 => {
            blocking(&cx.store, move |s| s.bulk_resolved(id)).await?;
            return Ok((Submission::TooLarge(rows), alone));
        }
        // Refused as a whole (an item that does not bind fails them all): nothing was
        // queued, so each row goes alone, to be answered on its own.
        Err(e) if refused_whole(&e) => {
            tracing::info!("a bulk was refused ({e}); its rows are sent one by one");
            blocking(&cx.store, move |s| s.bulk_resolved(id)).await?;
            let mut alone = alone;
            alone.extend(rows);
            return Ok((Submission::Alone(Vec::new()), alone));
        }
        Err(error) => {
            let failed = Submission::Failed {
                rows,
                error,
                unwritten: false,
            };
            return Ok((failed, alone));
        }
    };
    let uuid = accepted.uuid.clone();
    blocking(&cx.store, move |s| s.bulk_accepted(id, &uuid)).await?;
    let accepted = Submission::Accepted {
        record: id,
        accepted,
        rows,
    };
    Ok((accepted, alone))
}

/// The items of an update bulk: each customer as the shop has it (read a search page at a
/// time) with the file's values put in. Rows whose customer the shop no longer has go
/// alone (their own request finds it gone and creates it again).
async fn updates(
    cx: &Cx<'_>,
    rows: Vec<Row>,
) -> Result<(Vec<Row>, Vec<Row>, Vec<Value>), (Vec<Row>, ApiError)> {
    let id_of = |row: &Row| match &row.planned.step {
        Step::Update { entry, .. } => entry.customer_id,
        _ => 0,
    };
    let ids: Vec<u64> = rows.iter().map(id_of).collect();
    let current = match cx
        .retrier
        .by_pages(&ids, |page| cx.shop.current(page))
        .await
    {
        Ok(current) => current,
        Err(e) => return Err((rows, e)),
    };
    let by_id: HashMap<u64, &Value> = (current.iter())
        .filter_map(|c| Some((c.get("id")?.as_u64()?, c)))
        .collect();
    let (mut sent, mut alone, mut items) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        match (&row.planned.step, by_id.get(&id_of(&row))) {
            (
                Step::Update {
                    customer, entry, ..
                },
                Some(current),
            ) => {
                items
                    .push(serde_json::json!({ "customer": full_record(customer, current, entry) }));
                sent.push(row);
            }
            _ => alone.push(row),
        }
    }
    Ok((sent, alone, items))
}

/// Whether a submission's failure proves that nothing of the bulk was queued, and that its
/// rows may be answered one by one: a 4xx that is not about the credentials or the rate.
fn refused_whole(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { status, .. } if (400..500).contains(status) && ![401, 408, 429].contains(status))
}
