//! Answers are checked before anything is recorded from them: a shop (or whatever answers in
//! its place) that gives a customer an id that cannot be its own would otherwise have later
//! updates sent to the wrong customer.
//!
//! The answer to a write must give a positive id, the e-mail (case aside) and the website
//! sent, and, to a PUT, the id it was sent to ([`checked_id`]). One id is recorded for one key
//! only: not for two rows of a run, nor for a key when the state store records it for another
//! key already ([`Ids`]). Anything else fails the row, and nothing of it is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::customer::website_of;
use crate::redact;
use crate::state::{Index, StateError, Store};

/// Most of a value from an answer that a message shows (bytes, before the ellipsis).
const SHOWN: usize = 256;

/// The customer id of a write's answer, if the answer is about the customer sent (its e-mail
/// and website); `put_to` is the id a PUT went to. `Err` says what is wrong with it.
pub fn checked_id(
    (email, website_id): (&str, u32),
    saved: &Value,
    put_to: Option<u64>,
) -> Result<u64, String> {
    let id = match saved.get("id") {
        None | Some(Value::Null) => return Err("the answer gives no customer id".to_owned()),
        Some(v) => v.as_u64().filter(|id| *id > 0).ok_or_else(|| {
            format!(
                "the answer's customer id {} is not a positive number",
                shown(&v.to_string())
            )
        })?,
    };
    if let Some(sent) = put_to
        && id != sent
    {
        return Err(format!(
            "the update of customer {sent} was answered with customer {id}"
        ));
    }
    match saved.get("email").and_then(Value::as_str) {
        None => return Err(format!("the answer for customer {id} has no e-mail")),
        Some(e) if !same_email(e, email) => {
            return Err(format!(
                "the answer for customer {id} has the e-mail {}, not {email} as sent",
                shown(e),
            ));
        }
        Some(_) => {}
    }
    match website_of(saved) {
        Some(w) if w == website_id => Ok(id),
        Some(w) => Err(format!(
            "the answer puts customer {id} in website {w}, not in website {website_id} as sent"
        )),
        None => Err(format!("the answer for customer {id} has no website_id")),
    }
}

/// E-mails as Commerce compares them: its `_ci` collation ignores case.
fn same_email(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// A value from an answer, fit for a message: short, and without secrets.
fn shown(value: &str) -> String {
    redact::clipped(value, SHOWN, &[])
}

/// The ids recorded in this run (by the line of the row they were recorded for: in one run a
/// key has one row), and, read once when first needed, every id the state store held.
pub(super) struct Ids {
    run: Mutex<HashMap<u64, u64>>,
    store: Arc<Store>,
    /// The index the run's rows are planned against, once there: every key of the store when
    /// the run began, with its id.
    pub(super) index: Option<Arc<OnceLock<Arc<Index>>>>,
    stored: OnceCell<Vec<u64>>,
}

impl Ids {
    pub(super) fn new(store: Arc<Store>) -> Self {
        Ids {
            run: Mutex::default(),
            store,
            index: None,
            stored: OnceCell::new(),
        }
    }

    /// Takes `id` for the row on `line`, whose key the store knew with the id `known`;
    /// refuses an id that is another key's.
    pub(super) async fn take(&self, id: u64, line: u64, known: Option<u64>) -> Result<(), String> {
        // Only an id new to the key can be another key's in the store: the store holds one
        // id a key, and this key's row has not been recorded yet.
        let another_keys = known != Some(id) && self.stored().await?.binary_search(&id).is_ok();
        let mut run = self.run.lock().unwrap_or_else(PoisonError::into_inner);
        let verdict = id_verdict(id, line, run.get(&id).copied(), another_keys);
        if verdict.is_ok() {
            run.insert(id, line);
        }
        verdict
    }

    /// Every id in the store when the run began, sorted, the first time only: from the
    /// run's index when there is one (ids recorded since are in `run`), else from a scan of
    /// the store, off the async workers (at a million keys, a scan took 8 s).
    async fn stored(&self) -> Result<&[u64], String> {
        let scan = || async {
            let store = Arc::clone(&self.store);
            let index = self.index.as_ref().and_then(|cell| cell.get()).cloned();
            let ids = tokio::task::spawn_blocking(move || -> Result<Vec<u64>, StateError> {
                let mut ids = match index {
                    Some(index) => index.customer_ids().collect(),
                    None => store
                        .entries()
                        .map(|e| e.map(|(_, entry)| entry.customer_id))
                        .collect::<Result<Vec<_>, _>>()?,
                };
                ids.sort_unstable();
                Ok(ids)
            })
            .await
            .map_err(|_| "internal error: the state store scan stopped".to_owned())?;
            ids.map_err(|e| format!("cannot check the answer's id against the state store: {e}"))
        };
        self.stored.get_or_try_init(scan).await.map(Vec::as_slice)
    }
}

/// Whether `id` may be recorded for the row on `line`: `run_line` is the row it was recorded
/// for earlier in this run, `another_keys` whether the store records it for another key.
fn id_verdict(id: u64, line: u64, run_line: Option<u64>, another_keys: bool) -> Result<(), String> {
    match run_line {
        Some(first) if first != line => Err(format!(
            "the shop answered customer id {id}, which it already gave the row on line {first} \
             in this run; nothing was recorded"
        )),
        _ if another_keys => Err(format!(
            "the shop answered customer id {id}, which the state store records for another \
             e-mail (see `custsync state export`); nothing was recorded"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_answer_must_be_about_the_customer_sent() {
        let sent = ("Ann@Example.com", 2);
        // (answer, PUT to) -> id or the start of the reason
        let cases: [(Value, Option<u64>, Result<u64, &str>); 12] = [
            (
                json!({"id": 7, "email": "ann@example.com", "website_id": 2}),
                None,
                Ok(7),
            ),
            (
                json!({"id": 7, "email": "ANN@EXAMPLE.COM", "website_id": "2"}),
                Some(7),
                Ok(7),
            ),
            (
                json!({"email": "ann@example.com", "website_id": 2}),
                None,
                Err("the answer gives no customer id"),
            ),
            (
                json!({"id": 0, "email": "ann@example.com", "website_id": 2}),
                None,
                Err("the answer's customer id 0 is not a positive number"),
            ),
            (
                json!({"id": -3, "email": "ann@example.com", "website_id": 2}),
                None,
                Err("the answer's customer id -3 is not"),
            ),
            (
                json!({"id": "7", "email": "ann@example.com", "website_id": 2}),
                None,
                Err("the answer's customer id \"7\" is not"),
            ),
            (
                json!({"id": 8, "email": "ann@example.com", "website_id": 2}),
                Some(7),
                Err("the update of customer 7 was answered with customer 8"),
            ),
            (
                json!({"id": 7, "email": "bo@example.com", "website_id": 2}),
                None,
                Err("the answer for customer 7 has the e-mail bo@example.com, not Ann@Example.com"),
            ),
            (
                json!({"id": 7, "website_id": 2}),
                None,
                Err("the answer for customer 7 has no e-mail"),
            ),
            (
                json!({"id": 7, "email": "ann@example.com", "website_id": 1}),
                None,
                Err("the answer puts customer 7 in website 1, not in website 2"),
            ),
            (
                json!({"id": 7, "email": "ann@example.com"}),
                None,
                Err("the answer for customer 7 has no website_id"),
            ),
            (
                json!({"id": 7, "email": "x".repeat(10_000), "website_id": 2}),
                None,
                Err("the answer for customer 7 has the e-mail xxx"),
            ),
        ];
        for (answer, put_to, want) in cases {
            let got = checked_id(sent, &answer, put_to);
            match (&got, want) {
                (Ok(id), Ok(w)) => assert_eq!(*id, w),
                (Err(why), Err(w)) => {
                    assert!(why.starts_with(w), "{why}");
                    assert!(why.len() < 400, "a value from the answer is clipped");
                }
                _ => panic!("{answer}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn an_id_is_recorded_for_one_key_only() {
        // (id, line, recorded this run for line, another key's in the store) -> ok
        let cases = [
            (5, 2, None, false, true),
            (5, 2, Some(2), false, true),
            (5, 3, Some(2), false, false),
            (5, 2, None, true, false),
            (5, 3, Some(2), true, false),
        ];
        for (id, line, run_line, store, ok) in cases {
            assert_eq!(
                id_verdict(id, line, run_line, store).is_ok(),
                ok,
                "{id} {line} {run_line:?} {store}"
            );
        }
        assert_eq!(
            id_verdict(5, 3, Some(2), false).expect_err("twice"),
            "the shop answered customer id 5, which it already gave the row on line 2 in this \
             run; nothing was recorded"
        );
    }

    #[tokio::test]
    async fn ids_are_checked_against_the_run_and_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("s")).expect("open"));
        let entry = crate::state::Entry {
            customer_id: 9,
            payload_hash: 1,
            synced_at: 0,
            address_id: None,
            further_address_ids: Vec::new(),
        };
        store
            .put(&crate::customer::Key::new(1, "x@example.com"), entry, None)
            .expect("put");
        let ids = Ids::new(store);
        ids.take(5, 2, None).await.expect("new");
        assert!(ids.take(5, 3, None).await.is_err(), "line 2's");
        assert!(ids.take(9, 4, None).await.is_err(), "x@example.com's");
        ids.take(9, 5, Some(9)).await.expect("the key's own id");
        ids.take(6, 6, Some(9)).await.expect("a new id for a key");
    }
}
