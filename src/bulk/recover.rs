//! The bulks an earlier run left behind (killed, interrupted, an answer lost, an operation
//! left open), resolved before this run plans, so that the plan sees every customer they
//! created.
//!
//! A bulk whose uuid is known is polled (with a backoff, for at most a while): each completed
//! operation's customer is checked against its row's key and recorded with the hash of the
//! payload sent. A bulk whose answer never came cannot be polled; its creates are looked up
//! by e-mail, and a customer found is recorded as `pull` records one (hash unknown: the plan
//! compares values). Nothing else needs doing: a row not recorded is planned again, its create
//! adopted when it meets "already exists", and an update stays in doubt (marked when it was
//! planned), so it is sent again whole. A bulk still open when the wait ends keeps its record
//! for the run after.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::Shop;
use super::answer::{self, Verdict};
use crate::api::ApiError;
use crate::customer::{custom_attribute, default_address, remote_fields};
use crate::exec::checked_id;
use crate::retry::Retrier;
use crate::state::{BulkRecord, BulkRow, Entry, StateError, Store};

/// The first wait between two polls of a bulk still open; doubled each time, up to the cap.
const FIRST_WAIT: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(15);

/// What the resolution did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Bulks resolved (their records gone).
    pub bulks: usize,
    /// Mappings recorded.
    pub recorded: usize,
    /// Bulks left for a later run: still open, or the shop could not tell.
    pub left: usize,
}

/// Resolves every bulk the store records, waiting at most `patience` for the open ones.
pub async fn resolve(
    shop: &dyn Shop,
    store: &Arc<Store>,
    retrier: &Retrier,
    patience: Duration,
) -> Result<Resolved, StateError> {
    let bulks = {
        let store = Arc::clone(store);
        tokio::task::spawn_blocking(move || store.bulks())
            .await
            .unwrap_or_else(|_| Ok(Vec::new()))?
    };
    let mut done = Resolved::default();
    let until = Instant::now() + patience;
    for (id, bulk) in bulks {
        let found = match &bulk.uuid {
            Some(uuid) => match polled(shop, retrier, uuid, &bulk, until).await {
                // The shop no longer knows the bulk (its queue was purged): as if its answer
                // had been lost.
                Err(ApiError::Status { status: 404, .. }) => looked_up(shop, retrier, &bulk).await,
                other => other,
            },
            None => looked_up(shop, retrier, &bulk).await,
        };
        let Ok((mappings, complete)) = found else {
            done.left += 1;
            continue;
        };
        done.recorded += mappings.len();
        let store = Arc::clone(store);
        tokio::task::spawn_blocking(move || -> Result<(), StateError> {
            for (row, entry, saved) in &mappings {
                let key = row.key();
                // The ids of addresses the answer does not tell are kept from the store.
                let mut entry = entry.clone();
                if let Some(old) = store
                    .get(&key)?
                    .filter(|o| o.customer_id == entry.customer_id)
                {
                    entry.address_id = entry.address_id.or(old.address_id);
                    if entry.further_address_ids.is_empty() {
                        entry.further_address_ids = old.further_address_ids;
                    }
                }
                store.put(&key, entry, Some(&remote_fields(saved)))?;
                store.settle(&key)?;
            }
            if complete {
                store.bulk_resolved(id)?;
            }
            store.flush()
        })
        .await
        .unwrap_or_else(|_| Ok(()))?;
        if complete {
            done.bulks += 1;
        } else {
            done.left += 1;
        }
    }
    Ok(done)
}

/// A mapping to record: the row, its entry, the customer as the shop answered it.
type Mapping = (BulkRow, Entry, Value);

/// Polls bulk `uuid` until no operation is open or `until`; the mappings of its completed
/// operations, and whether it is complete.
async fn polled(
    shop: &dyn Shop,
    retrier: &Retrier,
    uuid: &str,
    bulk: &BulkRecord,
    until: Instant,
) -> Result<(Vec<Mapping>, bool), ApiError> {
    let mut wait = FIRST_WAIT;
    loop {
        let status = retrier.run(|| shop.status(uuid)).await?;
        let ops = answer::operations(&status).map_err(|detail| ApiError::Unexpected {
            url: format!("the status of bulk {uuid}"),
            detail,
        })?;
        let open = ops.iter().any(|op| op.status == 4);
        if open && Instant::now() + wait < until {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_WAIT);
            continue;
        }
        let mut mappings = Vec::new();
        for op in ops {
            let (Verdict::Saved(saved), Some(row)) =
                (answer::verdict(&op, bulk.create), bulk.rows.get(op.index))
            else {
                continue;
            };
            if let Some(entry) = entry_of(row, &saved, row.hash) {
                mappings.push((row.clone(), entry, saved));
            }
        }
        return Ok((mappings, !open));
    }
}

/// The creates of a bulk whose answer was lost, looked up by e-mail.
async fn looked_up(
    shop: &dyn Shop,
    retrier: &Retrier,
    bulk: &BulkRecord,
) -> Result<(Vec<Mapping>, bool), ApiError> {
    let mut mappings = Vec::new();
    if bulk.create {
        for row in &bulk.rows {
            let found = retrier
                .run(|| shop.find(&row.email, row.website_id))
                .await?;
            if let Some(saved) = found
                && let Some(entry) = entry_of(row, &saved, 0)
            {
                mappings.push((row.clone(), entry, saved));
            }
        }
    }
    Ok((mappings, true))
}

/// The entry for `row` from the customer the shop answered, if the answer is about the row's
/// customer; `hash` is recorded with it (0: not known, so the plan compares values).
fn entry_of(row: &BulkRow, saved: &Value, hash: u128) -> Option<Entry> {
    let checked =
        checked_id((&row.email, row.website_id), saved, row.customer_id).and_then(|id| match &row
            .custom_key
        {
            // Found by its e-mail, the customer is the row's only if it has the row's key.
            Some((code, value))
                if custom_attribute(saved, code).is_none_or(|v| v.trim() != value) =>
            {
                Err(format!(
                    "customer {id} has this email, but not {code} {value}"
                ))
            }
            _ => Ok(id),
        });
    match checked {
        Ok(id) => Some(Entry {
            customer_id: id,
            payload_hash: hash,
            synced_at: chrono::Utc::now().timestamp(),
            address_id: row
                .address
                .then(|| default_address(saved).and_then(|a| a.get("id")?.as_u64()))
                .flatten(),
            further_address_ids: Vec::new(),
        }),
        Err(detail) => {
            tracing::warn!(
                "line {} of an earlier run's bulk: {detail}; not recorded",
                row.line
            );
            None
        }
    }
}
