//! The sandbox shop's customers: Magento's create/update/delete rules applied to JSON records
//! kept in memory, with an optional append-only journal on disk. Pure logic, no HTTP.
//!
//! Records are kept in the exact shape `GET /V1/customers/{id}` returns, so reads are clones.
//! Each change is decided first (`rules`, `addresses`, `scope`), then journaled, then made
//! visible (`customers`), so a change that fails anywhere leaves nothing behind.
//!
//! Rooms: `rules` (create and update as Magento decides them), `addresses` (the address list
//! on save), `scope` (websites and store views), `customers` (the maps in memory), `journal`
//! (the data directory and the journal that makes the customers durable). The shop's
//! configuration (`crate::shop`) comes with each call that needs it.

mod addresses;
mod customers;
mod journal;
mod rules;
mod scope;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::error::{ApiError, SandboxError};
use crate::search::SearchCriteria;
use crate::shop::Shop;
use customers::Customers;
use journal::Journal;
use rules::{no_such_customer, parse_id};

/// Fields a customer search may filter on: the `customer_entity` columns and attributes, the
/// full `name` and the default billing address's fields that `CustomerRepository::getList`
/// joins in; the shop's custom attributes are allowed too.
const FILTER_FIELDS: &[&str] = &[
    "entity_id",
    "email",
    "website_id",
    "group_id",
    "store_id",
    "created_at",
    "updated_at",
    "created_in",
    "firstname",
    "lastname",
    "middlename",
    "prefix",
    "suffix",
    "dob",
    "gender",
    "taxvat",
    "default_billing",
    "default_shipping",
    "confirmation",
    "disable_auto_group_change",
    "increment_id",
    "name",
    "billing_postcode",
    "billing_city",
    "billing_telephone",
    "billing_region",
    "billing_country_id",
    "company",
];

/// Binds one item of an async bulk request (`rules::bind`): a 400 when the synchronous route
/// would refuse its keys or types.
pub(crate) fn bind(body: &Value) -> Result<(), ApiError> {
    rules::bind(body)
}

/// Customers in memory plus the journal that makes them durable.
#[derive(Debug)]
pub(crate) struct CustomerStore {
    customers: Customers,
    journal: Option<Journal>,
}

/// The customer store, replayed from its journal when a customer request first needs it: a
/// sync that sends nothing (the re-run of an unchanged file) must not wait for a journal of a
/// million customers, nor hold them in memory.
#[derive(Debug)]
pub(crate) struct LazyStore {
    dir: Option<PathBuf>,
    /// Held from the start: two sandboxes on one journal would corrupt it.
    _lock: Option<File>,
    store: tokio::sync::OnceCell<Mutex<CustomerStore>>,
}

impl LazyStore {
    /// Takes the data directory (created with mode 0700) without reading it; `None` keeps
    /// customers in memory only.
    pub(crate) fn new(dir: Option<PathBuf>) -> Result<Self, SandboxError> {
        let lock = match &dir {
            Some(dir) => {
                journal::create_private_dir(dir)?;
                Some(journal::lock(dir)?)
            }
            None => None,
        };
        Ok(Self {
            dir,
            _lock: lock,
            store: tokio::sync::OnceCell::new(),
        })
    }

    /// The store, replaying the journal on a blocking thread the first time.
    pub(crate) async fn get(&self) -> Result<&Mutex<CustomerStore>, SandboxError> {
        self.store
            .get_or_try_init(|| async {
                let dir = self.dir.clone();
                let open = tokio::task::spawn_blocking(move || CustomerStore::open(dir.as_deref()));
                match open.await {
                    Ok(store) => store.map(Mutex::new),
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            })
            .await
    }

    /// The store, if anything has needed it yet.
    pub(crate) fn loaded(&self) -> Option<&Mutex<CustomerStore>> {
        self.store.get()
    }
}

impl CustomerStore {
    /// Opens the store: in memory when `dir` is `None`, else replaying and compacting
    /// `dir/customers.jsonl` (the caller holds the directory's lock).
    fn open(dir: Option<&Path>) -> Result<Self, SandboxError> {
        let mut customers = Customers::new();
        let journal = match dir {
            Some(dir) => Some(Journal::open(dir, &mut customers)?),
            None => None,
        };
        Ok(Self { customers, journal })
    }

    /// Flushes the journal to disk (used on shutdown).
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.journal.as_ref().map_or(Ok(()), Journal::sync)
    }

    /// How many customers there are.
    pub(crate) fn len(&self) -> usize {
        self.customers.len()
    }

    /// All customers in response shape, by id.
    pub(crate) fn all(&self) -> Vec<Value> {
        self.customers
            .values()
            .map(|c| Value::Object(c.record()))
            .collect()
    }

    /// `GET /V1/customers/{id}`.
    pub(crate) fn get(&self, id: &str) -> Result<Value, ApiError> {
        let id = parse_id(id)?;
        self.customers
            .get(id)
            .map(|c| Value::Object(c.record()))
            .ok_or_else(|| no_such_customer(id))
    }

    /// `DELETE /V1/customers/{id}`.
    pub(crate) fn delete(&mut self, id: &str) -> Result<(), ApiError> {
        let id = parse_id(id)?;
        if self.customers.get(id).is_none() {
            return Err(no_such_customer(id));
        }
        self.journal_append(&json!({"op": "delete", "id": id}))?;
        self.customers.remove(id);
        Ok(())
    }

    /// `GET /V1/customers/search`. A filter on a field the customer entity does not have is
    /// Magento's 400 `Invalid attribute name: %1` (`Eav\Model\Entity\Collection\
    /// AbstractCollection::_getAttributeFieldName`); a sort order on one is ignored there
    /// (`addAttributeToSort` finds no attribute), as here.
    pub(crate) fn search(&self, shop: &Shop, criteria: &SearchCriteria) -> Result<Value, ApiError> {
        if let Some(field) = criteria
            .filter_fields()
            .find(|f| !FILTER_FIELDS.contains(f) && shop.custom_attribute(f).is_none())
        {
            return Err(ApiError::bad("Invalid attribute name: %1").with_params(json!([field])));
        }
        // The search a client makes after a lost create names one email: take the few
        // customers the email index knows instead of reading every customer.
        let Some(email) = criteria.email_eq() else {
            return Ok(criteria.run(self.customers.values()));
        };
        let email = email.to_lowercase();
        let mut ids: Vec<i64> = shop
            .website_ids()
            .filter_map(|w| self.customers.holder(&(w, email.clone())))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(criteria.run(ids.iter().filter_map(|&id| self.customers.get(id))))
    }

    /// `POST /V1/customers` (`AccountManagement::createAccount`). `scope` is the store view
    /// of the request (`Store` header), used when the customer names neither store nor website.
    /// The answer has no `confirmation`: `AccountManagementApi::createAccount` sets it to null
    /// on the customer it returns (null fields are left out), whatever was stored.
    pub(crate) fn create(
        &mut self,
        shop: &Shop,
        body: &Value,
        scope: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let rec = rules::create(&self.customers, shop, body, scope, now)?;
        let mut answer = self.commit(rec)?;
        if let Some(answer) = answer.as_object_mut() {
            answer.remove("confirmation");
        }
        Ok(answer)
    }

    /// `PUT /V1/customers/{id}` with Magento 2.4's merge plugin: the stored customer with
    /// every key present in the request set on it (explicit `null` clears).
    pub(crate) fn update(
        &mut self,
        shop: &Shop,
        url_id: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let rec = rules::update(&self.customers, shop, url_id, body, now)?;
        self.commit(rec)
    }

    /// The save of one `PUT .../async/bulk/V1/customers/byCustomerId` operation: the body is
    /// the whole customer, with no merge (see `rules::save`).
    pub(crate) fn save(
        &mut self,
        shop: &Shop,
        body: &Value,
        scope: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let rec = rules::save(&self.customers, shop, body, scope, now)?;
        self.commit(rec)
    }

    fn journal_append(&mut self, record: &Value) -> Result<(), ApiError> {
        if let Some(journal) = &mut self.journal {
            journal.append(record).map_err(|e| {
                tracing::error!(path = %journal.path().display(), error = %e, "journal write failed");
                ApiError::internal()
            })?;
        }
        Ok(())
    }

    /// Journals the record, then makes it visible.
    fn commit(&mut self, rec: Map<String, Value>) -> Result<Value, ApiError> {
        let record = json!({"op": "put", "customer": rec});
        self.journal_append(&record)?;
        let answer = Value::Object(rec.clone());
        self.customers.insert(rec);
        Ok(answer)
    }
}

#[cfg(test)]
mod journal_tests;
#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod shop_tests;
#[cfg(test)]
mod tests;
