//! A customer's identity for custsync: the [`Key`] the state store, the planner and the
//! absent check use, and the [`KeyKind`] a run identifies customers by (`--key`).
//!
//! By default a customer is `(website_id, email)`, as Magento itself tells customers apart.
//! A legacy system that changes e-mails keeps its own customer number; `--key custom:<code>`
//! makes `(website_id, the value of custom attribute <code>)` the identity instead, so that a
//! changed e-mail is an update of the same customer. One state store holds keys of one kind
//! only (it records which, see `state/keyed.rs`): the byte form does not say.

use std::fmt;

use serde_json::Value;
use xxhash_rust::xxh3::Xxh3;

use super::Text;

/// What identifies a customer within its website.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum KeyKind {
    /// The e-mail, compared as Magento does (trimmed, without regard to case).
    #[default]
    Email,
    /// The value of this custom customer attribute (its code), trimmed and otherwise exactly
    /// as given.
    Custom(Text),
}

impl KeyKind {
    /// Reads a `--key` value: `email` or `custom:<attribute_code>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("email") {
            return Ok(KeyKind::Email);
        }
        let code = text
            .strip_prefix("custom:")
            .map(|c| c.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("{text:?}: give email, or custom:<attribute_code>"))?;
        // Magento's attribute codes: a letter, then letters, digits and underscores (column
        // names are read without regard to case, so the code is lower-cased as they are).
        let valid = code.starts_with(|c: char| c.is_ascii_alphabetic())
            && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && code.len() <= 60;
        if !valid {
            return Err(format!(
                "{code:?} is not an attribute code (a letter, then letters, digits or _, at most 60)"
            ));
        }
        Ok(KeyKind::Custom(Text::from(code.as_str())))
    }

    /// The custom attribute's code, for a custom key.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            KeyKind::Email => None,
            KeyKind::Custom(code) => Some(code),
        }
    }

    /// The column that holds the key's value in exports and lists: `email`, or the
    /// attribute's code (`legacy_id`).
    pub fn column(&self) -> &str {
        self.attribute().unwrap_or("email")
    }

    /// The kind whose [`KeyKind::column`] is `column` (the reverse, for imports).
    pub fn of_column(column: &str) -> Result<Self, String> {
        match column.trim() {
            c if c.eq_ignore_ascii_case("email") => Ok(KeyKind::Email),
            c => KeyKind::parse(&format!("custom:{c}")),
        }
    }

    /// The key of `value` in `website_id`, normalised as this kind needs.
    pub fn key(&self, website_id: u32, value: &str) -> Key {
        match self {
            KeyKind::Email => Key::new(website_id, value),
            KeyKind::Custom(_) => Key::custom(website_id, value),
        }
    }
}

/// As `--key` takes it: `email` or `custom:<code>`.
impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Email => f.write_str("email"),
            KeyKind::Custom(code) => write!(f, "custom:{code}"),
        }
    }
}

/// `(website_id, value)`: the identity of a customer for custsync, its value normalised as its
/// [`KeyKind`] says.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub website_id: u32,
    /// The lower-cased trimmed e-mail, or the trimmed value of the key's custom attribute.
    pub value: String,
}

impl Key {
    /// An e-mail key, normalising the email the way Magento's `_ci` collation compares it.
    pub fn new(website_id: u32, email: &str) -> Self {
        Key {
            website_id,
            value: email.trim().to_lowercase(),
        }
    }

    /// A custom attribute's key: the value trimmed (as every cell is), otherwise exactly as
    /// given. Magento stores a text attribute's value as it is sent, and a search compares it
    /// under the table's `_ci` collation: were `ab-1` and `AB-1` one key here, a legacy system
    /// whose ids differ in case would see two of its customers merged into one. So they stay
    /// two keys, and a customer found by the attribute is adopted only when its value is
    /// exactly ours (`exec.rs`).
    pub fn custom(website_id: u32, value: &str) -> Self {
        Key {
            website_id,
            value: value.trim().to_owned(),
        }
    }

    /// The state store's byte form: website id big-endian (so exports sort by website), then
    /// the value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(4 + self.value.len());
        b.extend_from_slice(&self.website_id.to_be_bytes());
        b.extend_from_slice(self.value.as_bytes());
        b
    }

    /// The reverse of [`Key::to_bytes`]; `None` for bytes this version did not write.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let (id, value) = b.split_at_checked(4)?;
        Some(Key {
            website_id: u32::from_be_bytes(id.try_into().ok()?),
            value: std::str::from_utf8(value).ok()?.to_owned(),
        })
    }

    /// A 64-bit digest, to tell the keys of a file apart without holding their text: for a
    /// million keys the chance of any two colliding is about 3 in 100 million.
    pub fn digest(&self) -> u64 {
        let mut h = Xxh3::new();
        h.update(&self.website_id.to_be_bytes());
        h.update(self.value.as_bytes());
        h.digest()
    }

    /// [`Key::digest`] of a key given as [`Key::to_bytes`], without decoding it.
    pub fn digest_of_bytes(bytes: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64(bytes)
    }
}

/// The value of custom attribute `code` of a customer as the API returns it (a number as its
/// digits), if it has one.
pub fn custom_attribute(remote: &Value, code: &str) -> Option<String> {
    let list = remote.get("custom_attributes")?.as_array()?;
    let attribute = list
        .iter()
        .find(|a| a.get("attribute_code").and_then(Value::as_str) == Some(code))?;
    match attribute.get("value")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::tests::ann;

    #[test]
    fn key_is_case_insensitive_and_round_trips() {
        let k = ann().key();
        assert_eq!(k, Key::new(1, " ann@example.COM "));
        assert_eq!(Key::from_bytes(&k.to_bytes()), Some(k.clone()));
        assert_ne!(k.digest(), Key::new(2, "ann@example.com").digest());
        assert_eq!(Key::digest_of_bytes(&k.to_bytes()), k.digest());
    }

    #[test]
    fn a_custom_key_is_trimmed_and_keeps_its_case() {
        assert_eq!(Key::custom(1, " AB-1 ").value, "AB-1");
        assert_ne!(Key::custom(1, "AB-1"), Key::custom(1, "ab-1"));
        let mut c = ann();
        c.key_attribute = Some("legacy_id".into());
        c.custom_attributes = vec![("legacy_id".into(), "L-7".into())];
        assert_eq!(c.key(), Key::custom(1, "L-7"));
    }

    #[test]
    fn kinds_parse_and_name_their_column() {
        let table: &[(&str, Result<KeyKind, ()>, &str)] = &[
            ("email", Ok(KeyKind::Email), "email"),
            (" EMAIL ", Ok(KeyKind::Email), "email"),
            (
                "custom:legacy_id",
                Ok(KeyKind::Custom("legacy_id".into())),
                "custom:legacy_id",
            ),
            (
                "custom: ERP_no ",
                Ok(KeyKind::Custom("erp_no".into())),
                "custom:erp_no",
            ),
            ("custom:", Err(()), ""),
            ("custom:1abc", Err(()), ""),
            ("custom:a-b", Err(()), ""),
            ("legacy_id", Err(()), ""),
        ];
        for (text, want, shown) in table {
            let got = KeyKind::parse(text);
            assert_eq!(got.clone().map_err(drop), *want, "{text}");
            if let Ok(kind) = got {
                assert_eq!(kind.to_string(), *shown);
                assert_eq!(KeyKind::of_column(kind.column()), Ok(kind.clone()));
            }
        }
    }
}
