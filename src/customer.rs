//! The desired customer record: what one valid CSV row asks the shop to hold.
//!
//! It owns the two derived forms every other module needs: the JSON `customer` object that
//! Commerce takes on POST and PUT, and the payload hash the state store keeps so that an
//! unchanged row sends nothing on the next run.

use std::cell::RefCell;

use serde_json::{Map, Value, json};

mod key;
pub use key::{Key, KeyKind, custom_attribute};

/// One value we send, borrowed from the [`Customer`].
enum Val<'a> {
    Text(&'a str),
    Number(u64),
    Flag(bool),
    /// Street lines.
    Lines(&'a [Text]),
}

/// A value of a [`Customer`]: names, dates and address lines mostly fit in its 24 bytes
/// without a heap allocation, which a million rows would otherwise make a dozen times each
/// (allocation was a third of the time spent reading a file).
pub type Text = compact_str::CompactString;

/// The `gender` of a customer whose file clears it: a code Magento does not use, so that a
/// gender stays a number.
pub const GENDER_CLEARED: u8 = 0;

/// One customer as the input file wants it. Empty optional cells are `None`: "not given",
/// never "clear the field". A field the file clears (its `--empty-value` token) is `Some` of
/// an empty text: sent as `null` at the top level of the customer (Magento's merge on PUT
/// sets every key present, and `null` unsets it) and as `""` inside a custom attribute or an
/// address that exists (what Magento's own import writes for the token); left out of a
/// create, which has nothing to clear (as Magento's import skips empty values of a new
/// customer).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Customer {
    /// The email as written in the file (trimmed); the key uses its lower-cased form.
    pub email: String,
    pub firstname: Text,
    pub lastname: Text,
    pub middlename: Option<Text>,
    pub prefix: Option<Text>,
    pub suffix: Option<Text>,
    /// `YYYY-MM-DD`.
    pub dob: Option<Text>,
    /// Magento's codes: 1 male, 2 female, 3 not specified; [`GENDER_CLEARED`] clears it.
    pub gender: Option<u8>,
    pub taxvat: Option<Text>,
    pub group_id: Option<u32>,
    pub website_id: u32,
    pub store_id: Option<u32>,
    pub is_subscribed: Option<bool>,
    /// `custom:<code>` columns, sorted by code so that the hash does not depend on column order.
    pub custom_attributes: Vec<(Text, Text)>,
    pub address: Option<Address>,
    /// The further addresses of `address2_*`, `address3_*`, ... columns: the one at index `i`
    /// is `address{i+2}_*`, `None` where the row gives none (so that each keeps its number,
    /// and its Commerce id, when a lower one is left empty). Never default addresses.
    pub further_addresses: Vec<Option<Address>>,
    /// The custom attribute whose value (among `custom_attributes`) identifies the customer,
    /// under `--key custom:<code>`; `None`: the e-mail does.
    pub key_attribute: Option<Text>,
}

/// An address a row may carry: the default one (sent as default billing and shipping), or a
/// further one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub street: Vec<Text>,
    pub city: Text,
    pub postcode: Text,
    pub country_id: Text,
    pub region: Option<Text>,
    pub telephone: Text,
    pub company: Option<Text>,
    /// `region` as the shop has it, once checked ([`crate::shop`]): sent as `region_id` and a
    /// whole region object; not hashed nor among the fields, which keep the file's text.
    pub shop_region: Option<Region>,
}

/// A region of the shop's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub id: u32,
    pub code: Text,
    pub name: Text,
}

impl Customer {
    /// The key the state store and the in-file duplicate check use.
    pub fn key(&self) -> Key {
        match &self.key_attribute {
            None => Key::new(self.website_id, &self.email),
            Some(code) => Key::custom(self.website_id, self.custom_value(code).unwrap_or("")),
        }
    }

    /// The value the row gives custom attribute `code`, if any.
    pub fn custom_value(&self, code: &str) -> Option<&str> {
        let mut attributes = self.custom_attributes.iter();
        attributes.find(|(c, _)| c == code).map(|(_, v)| v.as_str())
    }

    /// The `customer` object of a POST or PUT body, without `addresses` (see
    /// [`Customer::address_json`]). `id` goes in for updates, always equal to the URL id.
    pub fn to_json(&self, id: Option<u64>) -> Value {
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
            match value {
                Some(v) if v.is_empty() && id.is_none() => None,
                Some(v) if v.is_empty() => c.insert(name.into(), Value::Null),
                Some(v) => c.insert(name.into(), json!(v)),
                None => None,
            };
        }
        match self.gender {
            Some(GENDER_CLEARED) if id.is_none() => {}
            Some(GENDER_CLEARED) => {
                c.insert("gender".into(), Value::Null);
            }
            Some(g) => {
                c.insert("gender".into(), json!(g));
            }
            None => {}
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
        let attrs: Vec<Value> = self
            .custom_attributes
            .iter()
            .filter(|(_, value)| id.is_some() || !value.is_empty())
            .map(|(code, value)| json!({ "attribute_code": code, "value": value }))
            .collect();
        if !attrs.is_empty() {
            c.insert("custom_attributes".into(), Value::Array(attrs));
        }
        Value::Object(c)
    }

    /// The row's address as a default billing and shipping address; `id` names the address it
    /// replaces, so that an update never adds a second one.
    pub fn address_json(&self, id: Option<u64>) -> Option<Value> {
        self.address.as_ref().map(|a| a.to_json(self, id, true))
    }

    /// Further address number `n` (2 for `address2_*`), not default; `id` names the address
    /// it replaces.
    pub fn further_address_json(&self, n: usize, id: Option<u64>) -> Option<Value> {
        let a = self.further_addresses.get(n.checked_sub(2)?)?.as_ref()?;
        Some(a.to_json(self, id, false))
    }

    /// The further addresses the row gives, with their numbers (2 for `address2_*`).
    pub fn further(&self) -> impl Iterator<Item = (usize, &Address)> {
        self.further_addresses
            .iter()
            .enumerate()
            .filter_map(|(i, a)| Some((i + 2, a.as_ref()?)))
    }

    /// Whether the row gives any address, default or further.
    pub fn has_addresses(&self) -> bool {
        self.address.is_some() || self.further().next().is_some()
    }

    /// Hash of everything we send (no ids, no password): equal hashes mean nothing to send.
    /// The planner does this for every row, so the bytes go to one reused buffer and are hashed
    /// at once (xxh3 of the same bytes fed piece by piece cost twice as much).
    pub fn payload_hash(&self) -> u128 {
        thread_local! {
            static BYTES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        BYTES.with_borrow_mut(|b| {
            b.clear();
            self.visit(|name, suffix, value| {
                b.extend_from_slice(name.as_bytes());
                b.extend_from_slice(suffix.as_bytes());
                match value {
                    Val::Text(t) => {
                        b.extend_from_slice(b"\0t");
                        b.extend_from_slice(t.as_bytes());
                    }
                    Val::Number(n) => {
                        b.extend_from_slice(b"\0n");
                        b.extend_from_slice(&n.to_le_bytes());
                    }
                    Val::Flag(f) => b.extend_from_slice(if f { b"\0b1" } else { b"\0b0" }),
                    Val::Lines(lines) => {
                        b.extend_from_slice(b"\0l");
                        for l in lines {
                            b.extend_from_slice(l.as_bytes());
                            b.push(b'\n');
                        }
                    }
                }
                b.push(0xff);
            });
            xxhash_rust::xxh3::xxh3_128(b)
        })
    }

    /// The values we send, flattened to `field -> text`: the form the state store keeps of the
    /// last payload sent, and what change messages compare. Address fields go by their short
    /// names (`city`), custom attributes as `custom:<code>`.
    pub fn fields(&self) -> Fields {
        let mut f = Fields::new();
        self.visit(|name, suffix, value| {
            let text = match value {
                Val::Text(t) => t.to_owned(),
                Val::Number(n) => n.to_string(),
                Val::Flag(b) => b.to_string(),
                Val::Lines(lines) => lines.join("|"),
            };
            f.insert(format!("{name}{suffix}"), text);
        });
        f
    }

    /// Calls `f(name, name_suffix, value)` for every value we send (the suffix is a custom
    /// attribute's code after `custom:`, empty otherwise).
    fn visit(&self, mut f: impl FnMut(&str, &str, Val<'_>)) {
        let mut text = |name: &str, v: Option<&str>| {
            if let Some(v) = v {
                f(name, "", Val::Text(v));
            }
        };
        text("email", Some(&self.email));
        text("firstname", Some(&self.firstname));
        text("lastname", Some(&self.lastname));
        text("middlename", self.middlename.as_deref());
        text("prefix", self.prefix.as_deref());
        text("suffix", self.suffix.as_deref());
        text("dob", self.dob.as_deref());
        text("taxvat", self.taxvat.as_deref());
        if self.gender == Some(GENDER_CLEARED) {
            f("gender", "", Val::Text(""));
        }
        let numbers = [
            (
                "gender",
                self.gender.filter(|&g| g != GENDER_CLEARED).map(u64::from),
            ),
            ("group_id", self.group_id.map(u64::from)),
            ("website_id", Some(u64::from(self.website_id))),
            ("store_id", self.store_id.map(u64::from)),
        ];
        for (name, v) in numbers {
            if let Some(n) = v {
                f(name, "", Val::Number(n));
            }
        }
        if let Some(b) = self.is_subscribed {
            f("is_subscribed", "", Val::Flag(b));
        }
        for (code, value) in &self.custom_attributes {
            f("custom:", code, Val::Text(value));
        }
        if let Some(a) = &self.address {
            a.visit("", &mut f);
        }
        // After everything else, so that a row without further addresses hashes as before.
        for (n, a) in self.further() {
            a.visit(&format!("address{n}_"), &mut f);
        }
    }

    /// The fields we would send whose value `known` (last sent, or read from the shop) does not
    /// already hold (`new` is empty for a field the file clears). Fields we do not send are
    /// left alone: an empty cell never clears anything.
    pub fn changes(&self, known: &Fields) -> Vec<Change> {
        self.fields()
            .into_iter()
            .filter_map(|(field, new)| {
                let old = known.get(&field);
                (!holds(old, &new)).then(|| Change {
                    old: old.cloned(),
                    field,
                    new,
                })
            })
            .collect()
    }

    /// True when any address field, of the default address or a further one, would change;
    /// or the name, which the row's addresses carry too (see `Address::to_json`).
    pub fn address_changes(&self, known: &Fields) -> bool {
        let carried = |field: &str| {
            is_address_field(field)
                || (self.has_addresses() && matches!(field, "firstname" | "lastname"))
        };
        self.fields()
            .iter()
            .any(|(field, new)| carried(field) && !holds(known.get(field), new))
    }
}

/// Whether a field known as `old` already holds `new`: the same text, or, for a field the
/// file clears (empty), no value at all.
fn holds(old: Option<&String>, new: &str) -> bool {
    match old {
        Some(old) => old == new,
        None => new.is_empty(),
    }
}

/// The address fields by their short names, as [`Customer::fields`] names them.
const ADDRESS_FIELDS: [&str; 7] = [
    "street",
    "city",
    "postcode",
    "country_id",
    "region",
    "telephone",
    "company",
];

/// Whether a [`Customer::fields`] name is an address field: a short name, or `address{n}_`
/// and a short name.
fn is_address_field(field: &str) -> bool {
    let short = field
        .strip_prefix("address")
        .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()))
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(field);
    ADDRESS_FIELDS.contains(&short)
}

/// Flattened customer values (see [`Customer::fields`]).
pub type Fields = std::collections::BTreeMap<String, String>;

/// One field an update changes, in the terms of [`Customer::fields`]. Reports show it as
/// `field: old -> new` (its `Display`), or as data (JSON Lines, the xlsx `changes` sheet, the
/// HTML review).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub field: String,
    /// `None` when the field had no value.
    pub old: Option<String>,
    pub new: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let old = self.old.as_deref().unwrap_or("(none)");
        write!(f, "{}: {old} -> {}", self.field, self.new)
    }
}

/// Changes as the report's `message` gives them: `field: old -> new` pairs joined by `; `.
pub fn joined(changes: &[Change]) -> String {
    let parts: Vec<String> = changes.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// The fields of a customer as the API returns it, in the form of [`Customer::fields`]; the
/// address is the customer's default billing address.
pub fn remote_fields(remote: &Value) -> Fields {
    let mut f = Fields::new();
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    for name in [
        "email",
        "firstname",
        "lastname",
        "middlename",
        "prefix",
        "suffix",
        "dob",
        "gender",
        "taxvat",
        "group_id",
        "website_id",
        "store_id",
    ] {
        if let Some(v) = remote.get(name).and_then(text) {
            f.insert(name.to_owned(), v);
        }
    }
    if let Some(s) = remote
        .pointer("/extension_attributes/is_subscribed")
        .and_then(text)
    {
        f.insert("is_subscribed".into(), s);
    }
    for a in remote
        .get("custom_attributes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(code), Some(value)) = (
            a.get("attribute_code").and_then(Value::as_str),
            a.get("value").and_then(text),
        ) {
            f.insert(format!("custom:{code}"), value);
        }
    }
    if let Some(a) = default_address(remote) {
        put_address(a, "", &mut f);
    }
    f
}

/// [`remote_fields`], and the fields of the further addresses whose ids are `further` (index
/// `i` is `address{i+2}_*`'s), for a customer whose addresses were found among the shop's.
pub fn remote_fields_with(remote: &Value, further: &[Option<u64>]) -> Fields {
    let mut f = remote_fields(remote);
    let list = remote.get("addresses").and_then(Value::as_array);
    for (i, id) in further.iter().enumerate() {
        let found = list
            .into_iter()
            .flatten()
            .find(|a| id.is_some() && a.get("id").and_then(Value::as_u64) == *id);
        if let Some(a) = found {
            put_address(a, &format!("address{}_", i + 2), &mut f);
        }
    }
    f
}

/// An address of an API answer into `f`, its fields named `prefix` and the short name.
fn put_address(a: &Value, prefix: &str, f: &mut Fields) {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let street: Vec<&str> = a
        .get("street")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    f.insert(format!("{prefix}street"), street.join("|"));
    for name in ["city", "postcode", "country_id", "telephone", "company"] {
        if let Some(v) = a.get(name).and_then(text) {
            f.insert(format!("{prefix}{name}"), v);
        }
    }
    if let Some(r) = a.pointer("/region/region").and_then(text) {
        f.insert(format!("{prefix}region"), r);
    }
}

/// The website of a customer in an API answer (a number, or its digits as a string).
pub fn website_of(remote: &Value) -> Option<u32> {
    let website = remote.get("website_id")?;
    let id = (website.as_u64()).or_else(|| website.as_str()?.parse().ok())?;
    u32::try_from(id).ok()
}

/// The customer's default billing address in an API answer.
pub fn default_address(remote: &Value) -> Option<&Value> {
    let id = remote.get("default_billing").and_then(|v| match v {
        Value::String(s) => s.parse::<u64>().ok(),
        other => other.as_u64(),
    });
    let list = remote.get("addresses")?.as_array()?;
    list.iter().find(|a| {
        a.get("default_billing").and_then(Value::as_bool) == Some(true)
            || (id.is_some() && a.get("id").and_then(Value::as_u64) == id)
    })
}

impl Address {
    /// An address with nothing in it yet, to be filled field by field.
    pub fn empty() -> Self {
        Address {
            street: Vec::new(),
            city: Text::default(),
            postcode: Text::default(),
            country_id: Text::default(),
            region: None,
            telephone: Text::default(),
            company: None,
            shop_region: None,
        }
    }

    /// Calls `f(prefix, name, value)` for every value of the address we send.
    fn visit(&self, prefix: &str, f: &mut impl FnMut(&str, &str, Val<'_>)) {
        // The default address's fields are named `street`, ...: the name goes first.
        let mut put = |name: &str, v: Val<'_>| match prefix {
            "" => f(name, "", v),
            p => f(p, name, v),
        };
        put("street", Val::Lines(&self.street));
        let texts = [
            ("city", Some(self.city.as_str())),
            ("postcode", Some(&self.postcode)),
            ("country_id", Some(&self.country_id)),
            ("region", self.region.as_deref()),
            ("telephone", Some(&self.telephone)),
            ("company", self.company.as_deref()),
        ];
        for (name, v) in texts {
            if let Some(v) = v {
                put(name, Val::Text(v));
            }
        }
    }

    /// Whether an address in an API answer holds what this one sends (ids and default flags
    /// aside): how a further address created without an id is found again.
    pub fn same_as(&self, remote: &Value) -> bool {
        let text = |name: &str| remote.get(name).and_then(Value::as_str);
        let street: Option<Vec<&str>> = remote
            .get("street")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).collect());
        street.is_some_and(|s| s.iter().copied().eq(self.street.iter().map(Text::as_str)))
            && text("city") == Some(self.city.as_str())
            && text("postcode") == Some(self.postcode.as_str())
            && text("country_id") == Some(self.country_id.as_str())
            && text("telephone") == Some(self.telephone.as_str())
    }

    fn to_json(&self, customer: &Customer, id: Option<u64>, default: bool) -> Value {
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
        // A cleared value goes only to an address that exists: a new one has nothing to clear.
        let sent = |v: &Option<Text>| v.clone().filter(|v| id.is_some() || !v.is_empty());
        if let Some(r) = &self.shop_region {
            a.insert("region_id".into(), json!(r.id));
            let region = json!({ "region_id": r.id, "region_code": r.code, "region": r.name });
            a.insert("region".into(), region);
        } else if let Some(r) = sent(&self.region) {
            a.insert("region".into(), json!({ "region": r }));
        }
        a.insert("telephone".into(), json!(self.telephone));
        if let Some(c) = sent(&self.company) {
            a.insert("company".into(), json!(c));
        }
        a.insert("default_billing".into(), json!(default));
        a.insert("default_shipping".into(), json!(default));
        Value::Object(a)
    }
}

/// Test fixtures other modules' tests use too.
#[cfg(test)]
pub(crate) mod tests {
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
            further_addresses: Vec::new(),
            key_attribute: None,
        }
    }

    #[test]
    fn payload_hash_is_stable_across_versions() {
        // State stores keep these hashes: a change here makes every row look changed.
        let mut c = ann();
        assert_eq!(c.payload_hash(), 0x7b09f6289fffd6c5eaad809fc308bc92);
        c.address = Some(Address {
            street: vec!["Main Street 1".into(), "Apt 2".into()],
            city: "Lund".into(),
            postcode: "22100".into(),
            country_id: "SE".into(),
            region: None,
            telephone: "+46 555".into(),
            company: None,
            shop_region: None,
        });
        assert_eq!(c.payload_hash(), 0xa8137d0a744fc01e5b352f4b4ad138c4);
    }

    #[test]
    fn json_carries_id_only_when_asked_and_leaves_out_absent_fields() {
        let c = ann();
        let create = c.to_json(None);
        assert!(create.get("id").is_none());
        assert!(create.get("middlename").is_none());
        assert_eq!(create["extension_attributes"]["is_subscribed"], json!(true));
        assert_eq!(c.to_json(Some(7))["id"], json!(7));
    }

    #[test]
    fn a_cleared_field_is_sent_as_nothing_and_differs_from_one_not_given() {
        let mut c = ann();
        let given = c.payload_hash();
        c.middlename = Some(Text::default());
        c.gender = Some(GENDER_CLEARED);
        c.custom_attributes = vec![("loyalty_no".into(), Text::default())];
        c.address = Some(Address {
            street: vec!["1 Main".into()],
            city: "Lund".into(),
            postcode: "22100".into(),
            country_id: "SE".into(),
            region: None,
            telephone: "123".into(),
            company: Some(Text::default()),
            shop_region: None,
        });
        let json = c.to_json(Some(3));
        assert_eq!(json["middlename"], Value::Null);
        assert_eq!(json["gender"], Value::Null);
        assert!(json.as_object().expect("object").contains_key("middlename"));
        assert_eq!(json["custom_attributes"][0]["value"], json!(""));
        assert_eq!(
            c.address_json(Some(9)).expect("address")["company"],
            json!("")
        );
        let create = c.to_json(None);
        assert!(
            create.get("middlename").is_none(),
            "a create has nothing to clear"
        );
        assert!(create.get("gender").is_none());
        assert!(create.get("custom_attributes").is_none());
        assert!(
            c.address_json(None)
                .expect("address")
                .get("company")
                .is_none()
        );
        let mut not_given = c.clone();
        not_given.middlename = None;
        assert_ne!(c.payload_hash(), not_given.payload_hash());
        assert_ne!(c.payload_hash(), given);

        let mut known = c.fields();
        assert!(c.changes(&known).is_empty(), "the last payload sent");
        known.remove("middlename");
        known.remove("gender");
        known.remove("company");
        assert!(
            c.changes(&known).is_empty(),
            "the shop has none: nothing to clear"
        );
        assert!(!c.address_changes(&known));
        known.insert("middlename".into(), "Maria".into());
        known.insert("gender".into(), "2".into());
        assert_eq!(
            joined(&c.changes(&known)),
            "gender: 2 -> ; middlename: Maria -> "
        );
    }

    #[test]
    fn further_addresses_are_fields_of_their_own_and_found_in_the_shop_by_id() {
        let mut c = ann();
        let plain = c.payload_hash();
        let mut second = Address::empty();
        second.street = vec!["Hamngatan 3".into()];
        second.city = "Malmö".into();
        second.postcode = "21120".into();
        second.country_id = "SE".into();
        second.telephone = "040".into();
        c.further_addresses = vec![Some(second)];
        assert_ne!(c.payload_hash(), plain);
        assert!(c.address_json(None).is_none());
        let json = c.further_address_json(2, Some(8)).expect("address2");
        assert_eq!(
            (json["id"].clone(), json["default_billing"].clone()),
            (json!(8), json!(false))
        );
        assert!(c.further_address_json(3, None).is_none());
        assert_eq!(c.fields()["address2_street"], "Hamngatan 3");
        assert!(is_address_field("address2_city") && is_address_field("city"));
        assert!(!is_address_field("address2_shoe") && !is_address_field("email"));

        let mut remote = c.to_json(Some(3));
        remote["addresses"] = json!([json]);
        assert!(
            c.address_changes(&remote_fields(&remote)),
            "not found: sent"
        );
        let known = remote_fields_with(&remote, &[Some(8)]);
        assert!(c.changes(&known).is_empty(), "{:?}", c.changes(&known));
        remote["addresses"][0]["city"] = json!("Lund");
        let known = remote_fields_with(&remote, &[Some(8)]);
        assert_eq!(joined(&c.changes(&known)), "address2_city: Lund -> Malmö");
        assert!(c.address_changes(&known));

        // The addresses carry the name: a new lastname goes to them too.
        let mut known = c.fields();
        assert!(!c.address_changes(&known));
        known.insert("lastname".into(), "Berg".into());
        assert!(c.address_changes(&known));
        c.further_addresses.clear();
        assert!(
            !c.address_changes(&known),
            "no address of the row's to carry it"
        );
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
    fn changes_name_changed_fields_and_ignore_fields_not_sent() {
        let mut c = ann();
        c.address = Some(Address {
            street: vec!["1 Main".into(), "Apt 2".into()],
            city: "Lund".into(),
            postcode: "22100".into(),
            country_id: "SE".into(),
            region: None,
            telephone: "123".into(),
            company: None,
            shop_region: None,
        });
        let mut remote = c.to_json(Some(3));
        remote["addresses"] = json!([c.address_json(Some(9))]);
        remote["default_billing"] = json!("9");
        remote["taxvat"] = json!("X1");
        let known = remote_fields(&remote);
        assert!(c.changes(&known).is_empty(), "{:?}", c.changes(&known));
        let mut expected = c.fields();
        expected.insert("taxvat".into(), "X1".into());
        assert_eq!(known, expected);
        remote["lastname"] = json!("Doe");
        remote["addresses"][0]["city"] = json!("Malmö");
        let known = remote_fields(&remote);
        let changes = c.changes(&known);
        assert_eq!(
            joined(&changes),
            "city: Malmö -> Lund; lastname: Doe -> Lee"
        );
        assert_eq!(
            changes[0],
            Change {
                field: "city".into(),
                old: Some("Malmö".into()),
                new: "Lund".into()
            }
        );
        remote["taxvat"] = json!(null);
        c.taxvat = Some("X2".into());
        let added = c.changes(&remote_fields(&remote));
        assert_eq!(
            added.last().map(ToString::to_string).as_deref(),
            Some("taxvat: (none) -> X2")
        );
        assert!(c.address_changes(&known));
    }
}
