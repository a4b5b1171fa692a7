//! `custsync pull`: record the customers a shop already has, so that the first sync against it
//! updates them instead of meeting "already exists" for each.
//!
//! Pages through `GET /V1/customers/search` (oldest first), under the same rate limit and
//! retries as the sync. Each customer becomes a mapping `(website_id, email) -> id` with the
//! shop's current values, and the payload hash a row asking for exactly those values would
//! have ([`pulled`]): the next sync finds such a row unchanged by its hash, as after a sync of
//! its own, and compares values only for the rows whose hash differs. The index it writes
//! also holds each customer's values hash ([`ValuesHashes`]): a row of the file holding
//! exactly those values is then unchanged without even being validated. Under `--key
//! custom:<code>` the mapping is `(website_id, that attribute's value) -> id`, and a customer
//! without a value is skipped (counted apart: a sync would create it, see [`Pulled::unkeyed`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, Client};
use crate::config::PullConfig;
use crate::connect::{self, ConnectError};
use crate::console;
use crate::customer::{
    Address, Customer, Fields, Key, KeyKind, Text, custom_attribute, default_address,
    remote_fields_with,
};
use crate::defaults::MAX_PAGE_SIZE;
use crate::input;
use crate::retry::Retrier;
use crate::state::{Doubt, Entry, Op, StateError, Store};
use crate::throttle::Throttle;

/// Failures that stop a pull.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("internal error: closing the state store stopped unexpectedly")]
    Panicked,
}

/// What a pull did.
#[derive(Debug, Default)]
pub struct Pulled {
    pub customers: u64,
    pub pages: u32,
    pub skipped: u64,
    /// Under a custom key: customers without a value for it, skipped.
    pub unkeyed: u64,
    /// Stopped by SIGINT/SIGTERM; what was pulled is recorded.
    pub interrupted: bool,
    /// Mappings of the store that the shop no longer backs, dropped: the customer is gone, or
    /// its id now goes with another key (its e-mail changed in the shop).
    pub dropped: u64,
}

/// Runs `custsync pull`: opens the store (refused when it is bound to another target),
/// connects (the embedded sandbox without an endpoint) and pulls.
pub async fn run(cfg: &PullConfig, cancel: &CancellationToken) -> Result<Pulled, PullError> {
    let store = Store::open(&cfg.connect.state_dir)?;
    connect::admit(&store, &cfg.connect, false, cfg.quiet)?;
    store.admit_key(&cfg.key, false)?;
    let throttle = Arc::new(Throttle::new(cfg.rate));
    let (sandbox, client) = connect::connect(&cfg.connect, 4, throttle).await?;
    let client = client.expect("not a dry run, so the configuration has credentials");
    let retrier = Retrier::new(cfg.retry, cancel.clone());
    let how = How {
        page_size: cfg.page_size,
        key: &cfg.key,
        quiet: cfg.quiet,
    };
    let pulled = pull(&client, &retrier, &store, how, cancel).await;
    if let Some(sb) = sandbox {
        sb.shutdown().await;
    }
    // The first sync after a pull should not replay what the pull wrote (see `Store::close`).
    let replay = pulled
        .as_ref()
        .is_ok_and(|p| p.customers >= crate::state::REPLAY_AFTER);
    let closed = tokio::task::spawn_blocking(move || store.close(replay)).await;
    // A pull that failed says why, not what closing its store then said.
    let pulled = pulled?;
    closed.map_err(|_| PullError::Panicked)??;
    Ok(pulled)
}

/// How a pull pages and records.
struct How<'a> {
    page_size: u32,
    key: &'a KeyKind,
    quiet: bool,
}

/// Pages through every customer of the shop and records them in `store`.
async fn pull(
    client: &Client,
    retrier: &Retrier,
    store: &Store,
    How {
        page_size,
        key,
        quiet,
    }: How<'_>,
    cancel: &CancellationToken,
) -> Result<Pulled, PullError> {
    let page_size = page_size.clamp(1, MAX_PAGE_SIZE);
    let started = Instant::now();
    // Over a store that had mappings, each id the shop has with the key it now goes with
    // (`None`: no key under `--key custom:<code>`), to drop the mappings it no longer backs.
    let mut owners: Option<HashMap<u64, Option<u64>>> = (!store.is_empty()).then(HashMap::new);
    let writer = store.writer()?;
    let mut values = ValuesHashes::default();
    // Under a custom key, the customer each key was read for, and the keys several hold.
    let mut holders: Option<HashMap<u64, u64>> = key.attribute().is_some().then(HashMap::new);
    let mut shared: Vec<(Key, u64, u64)> = Vec::new();
    let mut done = Pulled::default();
    let mut bar: Option<ProgressBar> = None;
    let mut last_line = Instant::now();
    loop {
        if cancel.is_cancelled() {
            done.interrupted = true;
            break;
        }
        let page = done.pages + 1;
        let (items, total) = retrier.run(|| client.page(page, page_size)).await?;
        done.pages = page;
        for c in &items {
            let owner = match pulled(c, key) {
                Ok(mapped) => {
                    let (id, digest) = (mapped.entry.customer_id, mapped.key.digest());
                    let owner = (id, Some(digest));
                    let other = holders.as_mut().and_then(|h| h.insert(digest, id));
                    if let Some(other) = other.filter(|&other| other != id) {
                        shared.push((mapped.key.clone(), other, id));
                    }
                    values.note(&mapped);
                    writer.send(Op::Put(mapped.key, mapped.entry, Some(mapped.fields)));
                    done.customers += 1;
                    Some(owner)
                }
                Err(Unmapped::NoKey) => {
                    done.unkeyed += 1;
                    c.get("id").and_then(Value::as_u64).map(|id| (id, None))
                }
                Err(Unmapped::Broken) => {
                    done.skipped += 1;
                    None
                }
            };
            if let (Some(owners), Some((id, digest))) = (owners.as_mut(), owner) {
                owners.insert(id, digest);
            }
        }
        if !quiet {
            if console::fancy() {
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(total);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{bar:30} {pos}/{len} customers [{elapsed_precise}]",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b
                });
                b.set_position(done.seen());
            } else if last_line.elapsed().as_secs() >= 10 {
                let seen = done.seen();
                let mut fields = serde_json::Map::new();
                fields.insert("customers".into(), seen.into());
                fields.insert("total".into(), total.into());
                console::progress_line(&format!("progress: {seen} of {total} customers"), fields);
                last_line = Instant::now();
            }
        }
        // A page past the end repeats the last one, so stop on the count, not on an empty page.
        if items.is_empty() || u64::from(page) * u64::from(page_size) >= total {
            break;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    writer.finish()?;
    unrecord(store, key, &shared)?;
    // Only a pull that saw every customer knows which are gone.
    if let Some(owners) = owners.filter(|_| !done.interrupted) {
        done.dropped = drop_unbacked(store, &owners)?;
    }
    // The next sync plans against an index instead of a sled read per row.
    values.write_index(store)?;
    tracing::debug!(elapsed = ?started.elapsed(), "pull finished");
    Ok(done)
}

/// Leaves unrecorded each custom key that several of the shop's customers hold (`shared`:
/// the key and two of them), rather than map it to whichever was read last: a row of the
/// key would update that customer with another's values. Each is marked in doubt for its
/// create, so a sync looks its row's customer up by the key first, finds several and refuses
/// the row, naming the value, until one of them keeps it.
fn unrecord(store: &Store, kind: &KeyKind, shared: &[(Key, u64, u64)]) -> Result<(), StateError> {
    let code = kind.attribute().unwrap_or_default();
    let mut marks = Vec::with_capacity(shared.len());
    for (key, a, b) in shared {
        console::alert(&format!(
            "customers {a} and {b} of website {} both have {code} {:?}: it is not recorded, and \
             a sync refuses its row until one of them keeps it",
            key.website_id, key.value
        ));
        store.forget(key)?;
        marks.push((key.clone(), Doubt::Create));
    }
    store.doubt(&marks)
}

/// Drops the mappings of `store` whose id the shop does not have, or has under another key
/// (`owners`: id -> the digest of its key now): without it, a customer whose e-mail changed
/// in the shop kept its old key beside the new one, and the old one, still named by the
/// file, was planned unchanged while the new one counted as absent, to be deleted.
fn drop_unbacked(store: &Store, owners: &HashMap<u64, Option<u64>>) -> Result<u64, StateError> {
    let mut unbacked = Vec::new();
    for mapping in store.entries() {
        let (key, entry) = mapping?;
        let backed = match owners.get(&entry.customer_id) {
            None => false,
            Some(None) => true,
            Some(Some(digest)) => *digest == key.digest(),
        };
        if !backed {
            unbacked.push(key);
        }
    }
    for key in &unbacked {
        store.forget(key)?;
    }
    Ok(unbacked.len() as u64)
}

impl Pulled {
    /// Customers looked at, recorded or not.
    fn seen(&self) -> u64 {
        self.customers + self.skipped + self.unkeyed
    }
}

/// The values hash of each customer pulled, by key digest, for the index a pull writes.
/// Public for the bench, which fills a store as pull does.
#[derive(Default)]
pub struct ValuesHashes(Vec<(u64, u64)>);

impl ValuesHashes {
    /// Notes the values hash of a customer [`pulled`]; a later one of the same key wins, as
    /// its entry does.
    pub fn note(&mut self, mapped: &Mapped) {
        self.0.push((mapped.key.digest(), mapped.values_hash));
    }

    /// Writes the index of `store`, from a scan of it, with the values hashes noted.
    pub fn write_index(self, store: &Store) -> Result<(), StateError> {
        let mut index = store.build_index()?;
        index.set_rows(&self.0);
        store.save_index(&index)
    }
}

/// Why a customer of the search is not recorded.
#[derive(Debug, PartialEq)]
pub enum Unmapped {
    /// No id, email or website.
    Broken,
    /// No value for the custom key.
    NoKey,
}

/// What pull records of one customer.
#[derive(Debug)]
pub struct Mapped {
    pub key: Key,
    pub entry: Entry,
    /// The shop's values, for the next sync to compare a row's with.
    pub fields: Fields,
    /// The values hash of a row holding those values (see `input/values.rs`); 0 for none.
    pub values_hash: u64,
}

/// What pull records of a customer as the search returns it, under `kind`. Public for the
/// bench, which fills a store as pull does.
pub fn pulled(c: &Value, kind: &KeyKind) -> Result<Mapped, Unmapped> {
    let broken = || Unmapped::Broken;
    let id = c.get("id").and_then(Value::as_u64).ok_or_else(broken)?;
    let email = c.get("email").and_then(Value::as_str).ok_or_else(broken)?;
    let website = (c.get("website_id").and_then(Value::as_u64))
        .and_then(|w| u32::try_from(w).ok())
        .ok_or_else(broken)?;
    let key = match kind.attribute() {
        None => Key::new(website, email),
        Some(code) => match custom_attribute(c, code) {
            Some(value) if !value.trim().is_empty() => Key::custom(website, &value),
            _ => return Err(Unmapped::NoKey),
        },
    };
    let address_id = default_address(c).and_then(|a| a.get("id")?.as_u64());
    let further = further_addresses(c, address_id);
    let further_address_ids: Vec<Option<u64>> =
        further.iter().map(|a| a.get("id")?.as_u64()).collect();
    let row = as_row(c, &further);
    let entry = Entry {
        customer_id: id,
        // 0 (no payload of ours hashes to it) when the answer cannot be read as a row: the
        // next sync then compares values.
        payload_hash: row.as_ref().map_or(0, Customer::payload_hash),
        synced_at: chrono::Utc::now().timestamp(),
        address_id,
        further_address_ids,
    };
    let fields = remote_fields_with(c, &entry.further_address_ids);
    let values_hash = row.map_or(0, |row| {
        input::values_hash_of(&row.fields(), kind, key.digest(), entry.payload_hash)
    });
    Ok(Mapped {
        key,
        entry,
        fields,
        values_hash,
    })
}

/// The customer's addresses besides the default one (`default`), by ascending id: a file's
/// `address2_*` is taken to be the first of them, `address3_*` the second, and so on, so that
/// an edit of one updates it in place instead of adding another.
fn further_addresses(c: &Value, default: Option<u64>) -> Vec<&Value> {
    let list = c.get("addresses").and_then(Value::as_array);
    let mut further: Vec<&Value> = (list.into_iter().flatten())
        .filter(|a| {
            let id = a.get("id").and_then(Value::as_u64);
            id.is_some() && id != default
        })
        .collect();
    further.sort_by_key(|a| a.get("id").and_then(Value::as_u64));
    further
}

/// An address of the answer as a row's cells would give it; `None` when it lacks what a row
/// needs.
fn address_of(a: &Value) -> Option<Address> {
    let text = |v: Option<&Value>| -> Option<Text> {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(Text::from)
    };
    Some(Address {
        street: a
            .get("street")?
            .as_array()?
            .iter()
            .map(|l| l.as_str().map(Text::from))
            .collect::<Option<_>>()?,
        city: text(a.get("city"))?,
        postcode: text(a.get("postcode"))?,
        country_id: text(a.get("country_id"))?,
        region: text(a.pointer("/region/region")),
        telephone: text(a.get("telephone"))?,
        company: text(a.get("company")),
        shop_region: None,
    })
}

/// The customer a row would have to give to send exactly what the shop holds: every value
/// the answer has, typed as a row types it, so that its [`Customer::payload_hash`] equals that
/// of a row asking for the same values. A row that gives less, more or other values hashes
/// differently and is compared by its values, as before; `None` when the answer lacks what a
/// row needs.
fn as_row(c: &Value, further: &[&Value]) -> Option<Customer> {
    let text = |v: Option<&Value>| -> Option<Text> {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(Text::from)
    };
    let number = |name: &str| -> Option<u32> {
        match c.get(name)? {
            Value::Number(n) => u32::try_from(n.as_u64()?).ok(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    let mut custom_attributes: Vec<(Text, Text)> = Vec::new();
    for a in c
        .get("custom_attributes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        custom_attributes.push((
            text(a.get("attribute_code"))?,
            text(a.get("value")).unwrap_or_default(),
        ));
    }
    custom_attributes.sort();
    let address = match default_address(c) {
        None => None,
        Some(a) => Some(address_of(a)?),
    };
    let further_addresses = (further.iter())
        .map(|a| address_of(a).map(Some))
        .collect::<Option<Vec<_>>>()?;
    Some(Customer {
        email: c.get("email")?.as_str()?.to_owned(),
        firstname: text(c.get("firstname"))?,
        lastname: text(c.get("lastname"))?,
        middlename: text(c.get("middlename")),
        prefix: text(c.get("prefix")),
        suffix: text(c.get("suffix")),
        dob: text(c.get("dob")),
        gender: number("gender")
            .filter(|&g| g != 0)
            .and_then(|g| u8::try_from(g).ok()),
        taxvat: text(c.get("taxvat")),
        group_id: number("group_id"),
        website_id: number("website_id")?,
        store_id: number("store_id"),
        // The shop says of every customer whether they subscribed: `false` unless they did.
        // A row that says nothing of it asks for nothing (it is not sent), so it holds what
        // the shop holds, and should hash as such; one that says `false` is then compared by
        // its values.
        is_subscribed: c
            .pointer("/extension_attributes/is_subscribed")
            .and_then(Value::as_bool)
            .filter(|&subscribed| subscribed),
        custom_attributes,
        address,
        further_addresses,
        // Not in the payload, so not in its hash.
        key_attribute: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::customer::tests::ann;

    #[test]
    fn customers_are_recorded_by_the_key_the_pull_is_given() {
        let legacy = KeyKind::Custom("legacy_id".into());
        let with = json!({"id": 5, "email": "A@x.io", "website_id": 1,
            "custom_attributes": [{"attribute_code": "legacy_id", "value": " L-9 "}]});
        let without = json!({"id": 6, "email": "b@x.io", "website_id": 1});
        let blank = json!({"id": 7, "email": "c@x.io", "website_id": 1,
            "custom_attributes": [{"attribute_code": "legacy_id", "value": ""}]});
        let key = |c: &Value, k: &KeyKind| pulled(c, k).map(|m| m.key);
        assert_eq!(key(&with, &KeyKind::Email), Ok(Key::new(1, "a@x.io")));
        assert_eq!(key(&with, &legacy), Ok(Key::custom(1, "L-9")));
        assert_eq!(key(&without, &legacy), Err(Unmapped::NoKey));
        assert_eq!(key(&blank, &legacy), Err(Unmapped::NoKey));
        assert_eq!(key(&json!({"id": 8}), &legacy), Err(Unmapped::Broken));
    }

    /// A customer as the search returns it once a row's values were saved.
    fn remote(c: &Customer, id: u64) -> Value {
        let mut v = c.to_json(Some(id));
        let mut list: Vec<Value> = c.address_json(Some(id * 10)).into_iter().collect();
        // The further addresses with higher ids than the default, in the shop's order.
        for (n, _) in c.further() {
            list.extend(c.further_address_json(n, Some(id * 10 + n as u64)));
        }
        if !list.is_empty() {
            list.reverse();
            v["addresses"] = json!(list);
        }
        v
    }

    #[test]
    fn further_addresses_are_pulled_as_address2_on_by_id() {
        let mut c = with_address(ann());
        let mut second = c.address.clone().expect("address");
        second.city = "Ystad".into();
        let mut third = second.clone();
        third.city = "Malmö".into();
        c.further_addresses = vec![Some(second), Some(third)];
        let Mapped { entry, fields, .. } = pulled(&remote(&c, 7), &KeyKind::Email).expect("pulled");
        assert_eq!(entry.address_id, Some(70));
        assert_eq!(entry.further_address_ids, [Some(72), Some(73)]);
        assert_eq!(fields["address2_city"], "Ystad");
        assert_eq!(fields["address3_city"], "Malmö");
        assert_eq!(
            entry.payload_hash,
            c.payload_hash(),
            "the row asking for them"
        );
        assert_eq!(fields, c.fields());
    }

    fn with_address(mut c: Customer) -> Customer {
        c.address = Some(Address {
            street: vec!["Storgatan 1".into(), "Lgh 2".into()],
            city: "Lund".into(),
            postcode: "22100".into(),
            country_id: "SE".into(),
            region: Some("Skåne".into()),
            telephone: "+46 555".into(),
            company: None,
            shop_region: None,
        });
        c
    }

    #[test]
    fn what_was_pulled_hashes_as_the_row_that_asks_for_it() {
        for c in [ann(), with_address(ann())] {
            let m = pulled(&remote(&c, 7), &KeyKind::Email).expect("pulled");
            assert_eq!(m.key, c.key());
            assert_eq!(m.entry.payload_hash, c.payload_hash(), "{c:?}");
            assert_eq!(m.fields, c.fields());
            let values = input::values_hash_of(
                &c.fields(),
                &KeyKind::Email,
                m.key.digest(),
                c.payload_hash(),
            );
            assert_ne!(values, 0);
            assert_eq!(m.values_hash, values);
        }
    }

    #[test]
    fn not_subscribed_hashes_as_a_row_that_says_nothing_of_it() {
        // (what the shop says, what the row says) -> the same hash
        let cases = [
            (json!(false), None, true),
            (json!(false), Some(false), false),
            (json!(true), Some(true), true),
            (json!(true), None, false),
        ];
        for (shop, row, same) in cases {
            let mut answer = remote(&ann(), 7);
            answer["extension_attributes"] = json!({ "is_subscribed": shop });
            let m = pulled(&answer, &KeyKind::Email).expect("pulled");
            let mut c = ann();
            c.is_subscribed = row;
            assert_eq!(
                m.entry.payload_hash == c.payload_hash(),
                same,
                "{shop} {row:?}"
            );
            assert_eq!(
                m.fields["is_subscribed"],
                shop.to_string(),
                "the values keep it"
            );
        }
    }

    #[test]
    fn a_row_that_asks_for_anything_else_hashes_otherwise() {
        let shop = with_address(ann());
        let Mapped { entry, .. } = pulled(&remote(&shop, 7), &KeyKind::Email).expect("pulled");
        let mut other = shop.clone();
        other.lastname = "Park".into();
        let mut fewer = shop.clone();
        fewer.dob = None;
        let mut moved = shop.clone();
        if let Some(a) = moved.address.as_mut() {
            a.city = "Malmö".into();
        }
        for row in [other, fewer, moved] {
            assert_ne!(entry.payload_hash, row.payload_hash(), "{row:?}");
        }
        // An answer a row cannot ask for leaves the hash unknown: values decide.
        let mut odd = remote(&shop, 7);
        odd["firstname"] = Value::Null;
        assert_eq!(
            pulled(&odd, &KeyKind::Email)
                .expect("pulled")
                .entry
                .payload_hash,
            0
        );
    }
}
