//! A stored customer: the JSON text the store keeps per customer, the fields of
//! `CustomerInterface` a record may have, and the fields the store reads from a record. Shared by the store (which keeps them) and the search (which runs
//! over them), so that neither needs the other's insides.

use serde_json::{Map, Value};

/// Integer fields of `CustomerInterface`.
pub(crate) const CUSTOMER_INTS: &[&str] = &[
    "id",
    "group_id",
    "gender",
    "store_id",
    "website_id",
    "disable_auto_group_change",
];
/// String fields of `CustomerInterface`.
pub(crate) const CUSTOMER_STRINGS: &[&str] = &[
    "default_billing",
    "default_shipping",
    "confirmation",
    "created_at",
    "updated_at",
    "created_in",
    "dob",
    "email",
    "firstname",
    "lastname",
    "middlename",
    "prefix",
    "suffix",
    "taxvat",
];
/// Fields of `CustomerInterface` with their own merge rules.
pub(crate) const SPECIAL_KEYS: &[&str] =
    &["addresses", "custom_attributes", "extension_attributes"];

/// A stored customer, kept as its JSON text: a million customers as parsed maps took over
/// 6 GB, as text under 1 GB. Parsing one costs microseconds, and only the customer a request
/// names (or the page a search returns) is parsed, apart from filtered searches.
#[derive(Debug)]
pub(crate) struct Stored(Box<str>);

impl Stored {
    /// Keeps a record in the exact shape `GET /V1/customers/{id}` returns.
    pub(crate) fn new(record: &Map<String, Value>) -> Self {
        let text = serde_json::to_string(record).expect("a JSON map serialises to memory");
        Stored(text.into_boxed_str())
    }

    /// Keeps the text of a record this store wrote earlier (read back from its journal)
    /// without parsing it again.
    pub(crate) fn from_text(text: &str) -> Self {
        Stored(text.into())
    }

    /// The customer as JSON text.
    pub(crate) fn text(&self) -> &str {
        &self.0
    }

    /// The customer as a map.
    pub(crate) fn record(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).expect("a stored customer is a JSON object this store wrote")
    }
}

/// An integer field of a record.
pub(crate) fn int_of(map: &Map<String, Value>, key: &str) -> Option<i64> {
    map.get(key).and_then(Value::as_i64)
}

/// Magento's unique key of a customer: (website_id, lower-cased email).
pub(crate) fn email_key(rec: &Map<String, Value>) -> Option<(i64, String)> {
    let email = rec.get("email")?.as_str()?;
    Some((int_of(rec, "website_id")?, email.to_lowercase()))
}

/// The addresses of a customer record.
pub(crate) fn addresses_of(rec: &Map<String, Value>) -> impl Iterator<Item = &Map<String, Value>> {
    rec.get("addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}
