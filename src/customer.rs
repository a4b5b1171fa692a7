//! The desired customer record: what one valid CSV row asks the shop to hold.
//!
//! It owns the two derived forms every other module needs: the JSON `customer` object that
//! Commerce takes on POST and PUT, and the payload hash the state store keeps so that an
//! unchanged row sends nothing on the next run.

use serde_json::{Map, Value, json};
use xxhash_rust::xxh3::xxh3_128;

/// One customer as the input file wants it. Empty optional cells are `None`: "not given",
/// never "clear the field".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Customer {
    /// The email as written in the file (trimmed); the key uses its lower-cased form.
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    pub middlename: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    /// `YYYY-MM-DD`.
    pub dob: Option<String>,
    /// Magento's codes: 1 male, 2 female, 3 not specified.
    pub gender: Option<u8>,
    pub taxvat: Option<String>,
    pub group_id: Option<u32>,
    pub website_id: u32,
    pub store_id: Option<u32>,
    pub is_subscribed: Option<bool>,
    /// `custom:<code>` columns, sorted by code so that the hash does not depend on column order.
    pub custom_attributes: Vec<(String, String)>,
    pub address: Option<Address>,
}

/// The one default address a row may carry; sent as default billing and shipping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub street: Vec<String>,
    pub city: String,
    pub postcode: String,
    pub country_id: String,
    pub region: Option<String>,
    pub telephone: String,
    pub company: Option<String>,
}

impl Customer {
    /// The key the state store and the in-file duplicate check use.
    pub fn key(&self) -> Key {
        Key::new(self.website_id, &self.email)
    }

    /// The `customer` object of a POST or PUT body. `id` goes in for updates (always equal to
    /// the URL id); `address_id` names the address we created earlier, so that a PUT updates it
    /// instead of adding a second one.
    pub fn to_json(&self, id: Option<u64>, address_id: Option<u64>) -> Value {
        let mut c = Map::new();
        if let Some(id) = id {
            c.insert("id".into(), json!(id));
        }
        c.insert("email".into(), json!(self.email));
        c.insert("firstname".into(), json!(self.firstname));
        c.insert("lastname".into(), json!(self.lastname));
        let optional = [
            ("middlename", &self.middlename),
            ("prefix", &self.prefix),
            ("suffix", &self.suffix),
            ("dob", &self.dob),
            ("taxvat", &self.taxvat),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                c.insert(name.into(), json!(v));
            }
        }
        if let Some(g) = self.gender {
            c.insert("gender".into(), json!(g));
        }
        if let Some(g) = self.group_id {
            c.insert("group_id".into(), json!(g));
        }
        c.insert("website_id".into(), json!(self.website_id));
        if let Some(s) = self.store_id {
            c.insert("store_id".into(), json!(s));
        }
        if let Some(s) = self.is_subscribed {
            c.insert("extension_attributes".into(), json!({ "is_subscribed": s }));
        }
        if !self.custom_attributes.is_empty() {
            let attrs: Vec<Value> = self
                .custom_attributes
                .iter()
                .map(|(code, value)| json!({ "attribute_code": code, "value": value }))
                .collect();
            c.insert("custom_attributes".into(), Value::Array(attrs));
        }
        if let Some(a) = &self.address {
            c.insert("addresses".into(), json!([a.to_json(self, address_id)]));
        }
        Value::Object(c)
    }

    /// Hash of everything we send (no ids, no password): equal hashes mean nothing to send.
    pub fn payload_hash(&self) -> u128 {
        let bytes = serde_json::to_vec(&self.to_json(None, None))
            .expect("serialising a JSON value to memory cannot fail");
        xxh3_128(&bytes)
    }

    /// The fields whose values differ from `remote` (a customer as the API returns it), as
    /// `field: old -> new`. Empty when the remote record already holds what we would send.
    pub fn differences(&self, remote: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let desired = self.to_json(None, None);
        let Some(desired) = desired.as_object() else {
            return out;
        };
        for (field, want) in desired {
            let have = remote.get(field).unwrap_or(&Value::Null);
            let same = match field.as_str() {
                "email" => have
                    .as_str()
                    .is_some_and(|h| h.eq_ignore_ascii_case(&self.email)),
                "extension_attributes" => {
                    have.get("is_subscribed").and_then(Value::as_bool) == self.is_subscribed
                }
                "custom_attributes" => self.custom_attributes.iter().all(|(code, value)| {
                    have.as_array().is_some_and(|list| {
                        list.iter().any(|a| {
                            a.get("attribute_code").and_then(Value::as_str) == Some(code)
                                && a.get("value").map(display) == Some(value.clone())
                        })
                    })
                }),
                "addresses" => self.address.as_ref().is_some_and(|a| a.matches_any(have)),
                _ => display(have) == display(want),
            };
            if !same {
                out.push(format!("{field}: {} -> {}", display(have), display(want)));
            }
        }
        out
    }
}

impl Address {
    fn to_json(&self, customer: &Customer, id: Option<u64>) -> Value {
        let mut a = Map::new();
        if let Some(id) = id {
            a.insert("id".into(), json!(id));
        }
        a.insert("firstname".into(), json!(customer.firstname));
        a.insert("lastname".into(), json!(customer.lastname));
        a.insert("street".into(), json!(self.street));
        a.insert("city".into(), json!(self.city));
        a.insert("postcode".into(), json!(self.postcode));
        a.insert("country_id".into(), json!(self.country_id));
        if let Some(r) = &self.region {
            a.insert("region".into(), json!({ "region": r }));
        }
        a.insert("telephone".into(), json!(self.telephone));
        if let Some(c) = &self.company {
            a.insert("company".into(), json!(c));
        }
        a.insert("default_billing".into(), json!(true));
        a.insert("default_shipping".into(), json!(true));
        Value::Object(a)
    }

    /// True when one of the remote addresses carries exactly these values.
    fn matches_any(&self, remote: &Value) -> bool {
        let Some(list) = remote.as_array() else {
            return false;
        };
        list.iter().any(|r| {
            let s = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or_default();
            let street: Vec<&str> = r
                .get("street")
                .and_then(Value::as_array)
                .map(|l| l.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let region = r
                .get("region")
                .and_then(|v| v.get("region"))
                .and_then(Value::as_str);
            street == self.street
                && s("city") == self.city
                && s("postcode") == self.postcode
                && s("country_id") == self.country_id
                && s("telephone") == self.telephone
                && (self.region.is_none() || region == self.region.as_deref())
                && (self.company.is_none()
                    || r.get("company").and_then(Value::as_str) == self.company.as_deref())
        })
    }
}

/// A value as a person reads it in a report: strings bare, absent as `(none)`.
fn display(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `(website_id, lower-cased trimmed email)`: the identity of a customer for custsync.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub website_id: u32,
    pub email: String,
}

impl Key {
    /// Builds the key, normalising the email the way Magento's `_ci` collation compares it.
    pub fn new(website_id: u32, email: &str) -> Self {
        Key {
            website_id,
            email: email.trim().to_lowercase(),
        }
    }

    /// The state store's byte form: website id big-endian (so exports sort by website), then the email.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(4 + self.email.len());
        b.extend_from_slice(&self.website_id.to_be_bytes());
        b.extend_from_slice(self.email.as_bytes());
        b
    }

    /// The reverse of [`Key::to_bytes`]; `None` for bytes this version did not write.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let (id, email) = b.split_at_checked(4)?;
        Some(Key {
            website_id: u32::from_be_bytes(id.try_into().ok()?),
            email: std::str::from_utf8(email).ok()?.to_owned(),
        })
    }

    /// A 128-bit digest, enough to tell a million keys apart without holding their text.
    pub fn digest(&self) -> u128 {
        xxh3_128(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ann() -> Customer {
        Customer {
            email: "Ann@Example.com".into(),
            firstname: "Ann".into(),
            lastname: "Lee".into(),
            middlename: None,
            prefix: None,
            suffix: None,
            dob: Some("1990-05-17".into()),
            gender: Some(2),
            taxvat: None,
            group_id: None,
            website_id: 1,
            store_id: None,
            is_subscribed: Some(true),
            custom_attributes: vec![("loyalty_no".into(), "123".into())],
            address: None,
        }
    }

    #[test]
    fn key_is_case_insensitive_and_round_trips() {
        let k = ann().key();
        assert_eq!(k, Key::new(1, " ann@example.COM "));
        assert_eq!(Key::from_bytes(&k.to_bytes()), Some(k.clone()));
        assert_ne!(k.digest(), Key::new(2, "ann@example.com").digest());
    }

    #[test]
    fn json_carries_id_only_when_asked_and_leaves_out_absent_fields() {
        let c = ann();
        let create = c.to_json(None, None);
        assert!(create.get("id").is_none());
        assert!(create.get("middlename").is_none());
        assert_eq!(create["extension_attributes"]["is_subscribed"], json!(true));
        assert_eq!(c.to_json(Some(7), None)["id"], json!(7));
    }

    #[test]
    fn hash_changes_with_any_sent_field() {
        let a = ann();
        let mut b = ann();
        assert_eq!(a.payload_hash(), b.payload_hash());
        b.lastname = "Lee-Updated".into();
        assert_ne!(a.payload_hash(), b.payload_hash());
    }

    #[test]
    fn differences_name_changed_fields() {
        let c = ann();
        let mut remote = c.to_json(Some(3), None);
        assert!(c.differences(&remote).is_empty());
        remote["lastname"] = json!("Doe");
        assert_eq!(
            c.differences(&remote),
            vec!["lastname: Doe -> Lee".to_string()]
        );
    }
}
