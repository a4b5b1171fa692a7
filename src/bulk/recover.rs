//! The bulks an earlier run left behind (killed, interrupted, an answer lost, an operation
//! left open), resolved before this run plans, so that the plan sees every customer they
//! created.
//!
//! A bulk whose uuid is known is polled (with a backoff, for at most a while): each completed
//! operation's customer is checked against its row's key and recorded with the hash of the
//! payload sent. A bulk whose answer never came cannot be polled; its creates are looked up
//! by e-mail (a hundred a search), and a customer found is recorded as `pull` records one
//! (hash unknown: the plan compares values). Nothing else needs doing: a row not recorded is planned again, its create
//! adopted when it meets "already exists", and an update stays in doubt (marked when it was
//! planned), so it is sent again whole. A bulk still open when the wait ends keeps its record
//! for the run after.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::Shop;
use super::answer::{self, Verdict};
use crate::api::{ApiError, email_lists, with_email};
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
        // An interrupt ends the wait: the bulk stays recorded for the run after.
        if open && Instant::now() + wait < until && retrier.pause(wait).await {
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

/// The creates of a bulk whose answer was lost (or that never left: its record is written
/// before it waits for the rate limit), looked up by e-mail, a hundred a search for each
/// website; an e-mail holding a comma, which would split the search's list, alone.
async fn looked_up(
    shop: &dyn Shop,
    retrier: &Retrier,
    bulk: &BulkRecord,
) -> Result<(Vec<Mapping>, bool), ApiError> {
    let mut mappings = Vec::new();
    if !bulk.create {
        return Ok((mappings, true));
    }
    let (lists, alone) = email_lists(&bulk.rows, |row| (row.website_id, row.email.as_str()));
    for (website_id, rows) in lists {
        let emails: Vec<&str> = rows.iter().map(|row| row.email.as_str()).collect();
        let found = retrier.run(|| shop.by_emails(&emails, website_id)).await?;
        for row in rows {
            if let Some(saved) = with_email(&found, &row.email)
                && let Some(entry) = entry_of(row, saved, 0)
            {
                mappings.push((row.clone(), entry, saved.clone()));
            }
        }
    }
    for row in alone {
        let found = retrier
            .run(|| shop.find(&row.email, row.website_id))
            .await?;
        if let Some(saved) = found
            && let Some(entry) = entry_of(row, &saved, 0)
        {
            mappings.push((row.clone(), entry, saved));
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::future::BoxFuture;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::api::BulkKind;
    use crate::retry::RetryPolicy;

    /// A shop that has the customers `have` (e-mail, website, id), and counts its searches.
    #[derive(Default)]
    struct Searched {
        have: Vec<(String, u32, u64)>,
        lists: Mutex<Vec<(usize, u32)>>,
        alone: Mutex<Vec<String>>,
    }

    impl Searched {
        fn customer(&self, email: &str, website_id: u32) -> Option<Value> {
            (self.have.iter())
                .find(|(e, w, _)| e.eq_ignore_ascii_case(email) && *w == website_id)
                .map(|(e, w, id)| json!({"id": id, "email": e, "website_id": w}))
        }
    }

    impl Shop for Searched {
        fn submit<'a>(
            &'a self,
            _: BulkKind,
            _: &'a [Value],
            _: &'a [&'a str],
        ) -> BoxFuture<'a, Result<Value, ApiError>> {
            unreachable!("nothing is submitted")
        }
        fn status<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Value, ApiError>> {
            // One operation, still open.
            let status = json!({"operations_list": [{"id": 0, "status": 4}]});
            Box::pin(async move { Ok(status) })
        }
        fn current<'a>(&'a self, _: &'a [u64]) -> BoxFuture<'a, Result<Vec<Value>, ApiError>> {
            unreachable!("no update is read")
        }
        fn by_emails<'a>(
            &'a self,
            emails: &'a [&'a str],
            website_id: u32,
        ) -> BoxFuture<'a, Result<Vec<Value>, ApiError>> {
            self.lists
                .lock()
                .expect("lock")
                .push((emails.len(), website_id));
            let found = (emails.iter())
                .filter_map(|e| self.customer(e, website_id))
                .collect();
            Box::pin(async move { Ok(found) })
        }
        fn find<'a>(
            &'a self,
            email: &'a str,
            website_id: u32,
        ) -> BoxFuture<'a, Result<Option<Value>, ApiError>> {
            self.alone.lock().expect("lock").push(email.to_owned());
            let found = self.customer(email, website_id);
            Box::pin(async move { Ok(found) })
        }
    }

    fn row(email: &str, website_id: u32) -> BulkRow {
        BulkRow {
            website_id,
            email: email.to_owned(),
            custom_key: None,
            line: 2,
            hash: 7,
            customer_id: None,
            address: false,
        }
    }

    #[tokio::test]
    async fn a_bulk_still_open_is_left_with_its_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("s")).expect("store"));
        let bulk = BulkRecord {
            create: true,
            uuid: Some("u-1".into()),
            rows: vec![row("a@x.io", 1)],
        };
        store.record_bulk(&bulk).expect("record");
        let retrier = Retrier::new(RetryPolicy::default(), CancellationToken::new());
        let done = resolve(&Searched::default(), &store, &retrier, Duration::ZERO)
            .await
            .expect("resolve");
        assert_eq!(
            done,
            Resolved {
                bulks: 0,
                recorded: 0,
                left: 1
            }
        );
        assert_eq!(store.bulks_len(), 1, "kept for the run after");

        // An interrupt ends the wait at once.
        let cancel = CancellationToken::new();
        cancel.cancel();
        let retrier = Retrier::new(RetryPolicy::default(), cancel);
        let started = std::time::Instant::now();
        let patience = Duration::from_secs(60);
        let done = resolve(&Searched::default(), &store, &retrier, patience)
            .await
            .expect("resolve");
        assert_eq!(done.left, 1);
        assert!(started.elapsed() < Duration::from_secs(5), "did not wait");
    }

    #[tokio::test]
    async fn a_lost_bulk_is_looked_up_a_hundred_emails_a_search() {
        let mut rows: Vec<BulkRow> = (0..250).map(|i| row(&format!("a{i}@x.io"), 1)).collect();
        rows.extend((0..30).map(|i| row(&format!("b{i}@x.io"), 2)));
        rows.push(row("last,first@x.io", 1));
        // The shop has every other customer of website 1 (one with its e-mail in capitals),
        // all of website 2, and the one whose e-mail holds a comma.
        let mut have: Vec<(String, u32, u64)> = (0..250)
            .step_by(2)
            .map(|i| (format!("a{i}@x.io"), 1, 1000 + i))
            .collect();
        have[0].0 = "A0@X.IO".to_owned();
        have.extend((0..30).map(|i| (format!("b{i}@x.io"), 2, 2000 + i)));
        have.push(("last,first@x.io".to_owned(), 1, 3000));
        let shop = Searched {
            have,
            ..Searched::default()
        };
        let bulk = BulkRecord {
            create: true,
            uuid: None,
            rows,
        };
        let retrier = Retrier::new(RetryPolicy::default(), CancellationToken::new());

        let (mappings, complete) = looked_up(&shop, &retrier, &bulk).await.expect("looked up");

        assert!(complete);
        let lists = shop.lists.lock().expect("lock").clone();
        assert_eq!(lists, [(100, 1), (100, 1), (50, 1), (30, 2)]);
        assert_eq!(*shop.alone.lock().expect("lock"), ["last,first@x.io"]);
        let mut ids: Vec<(String, u64)> = (mappings.iter())
            .map(|(row, entry, _)| (row.email.clone(), entry.customer_id))
            .collect();
        ids.sort();
        assert_eq!(ids.len(), 125 + 30 + 1, "each customer the shop has, once");
        assert!(
            ids.contains(&("a0@x.io".to_owned(), 1000)),
            "found in capitals"
        );
        assert!(ids.contains(&("a248@x.io".to_owned(), 1248)));
        assert!(ids.contains(&("b29@x.io".to_owned(), 2029)));
        assert!(ids.contains(&("last,first@x.io".to_owned(), 3000)));
        assert!(!ids.iter().any(|(e, _)| e == "a1@x.io"), "not in the shop");
        // Found by e-mail, the payload hash is not known: the next plan compares values.
        assert!(mappings.iter().all(|(_, entry, _)| entry.payload_hash == 0));
    }
}
