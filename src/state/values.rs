//! The byte form of the last-sent values: compact, because they are most of what the store
//! holds for a customer. Schema 3 keeps them after the key's entry (`entry.rs`); schemas 1 and
//! 2 kept them apart, in the `fields` tree, which is still read.
//!
//! Schema 1 kept them as JSON (`{"city":"Lund",...}`: every field name spelt out, quoted and
//! escaped, about 600 bytes a customer with sled's own overhead). Schema 2 writes a tag byte,
//! then each field as a one-byte code for the names every row may carry (or `0`, the name's
//! length and the name, for custom attributes and further addresses), the value's length and
//! the value; lengths are LEB128 varints. A JSON value always starts with `{`, never with the
//! tag, so both are read: a store written by schema 1 keeps working without a rewrite, and
//! each key's values move to the compact form when a sync next confirms them.

use crate::customer::Fields;

/// The first byte of a compact value (JSON starts with `{`).
const TAG: u8 = 0x02;

/// The names with a code of their own: code `i + 1` is `NAMES[i]`. Append only: the codes are
/// on disk.
const NAMES: [&str; 20] = [
    "email",
    "firstname",
    "lastname",
    "middlename",
    "prefix",
    "suffix",
    "dob",
    "taxvat",
    "gender",
    "group_id",
    "website_id",
    "store_id",
    "is_subscribed",
    "street",
    "city",
    "postcode",
    "country_id",
    "region",
    "telephone",
    "company",
];

/// `fields` in the compact form.
pub(super) fn encode(fields: &Fields) -> Vec<u8> {
    let size: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut b = Vec::with_capacity(1 + size);
    b.push(TAG);
    for (name, value) in fields {
        match NAMES.iter().position(|n| n == name) {
            Some(i) => b.push(i as u8 + 1),
            None => {
                b.push(0);
                put_bytes(&mut b, name.as_bytes());
            }
        }
        put_bytes(&mut b, value.as_bytes());
    }
    b
}

/// The values of either form; `None` for bytes that are neither (read as "not known", as a
/// damaged value always was: the row is then compared as if never sent).
pub(super) fn decode(b: &[u8]) -> Option<Fields> {
    let Some((&TAG, mut rest)) = b.split_first() else {
        return serde_json::from_slice(b).ok();
    };
    let mut fields = Fields::new();
    while let Some((&code, after)) = rest.split_first() {
        rest = after;
        let name = match code {
            0 => text(&mut rest)?,
            c => (*NAMES.get(usize::from(c) - 1)?).to_owned(),
        };
        let value = text(&mut rest)?;
        fields.insert(name, value);
    }
    Some(fields)
}

fn put_bytes(b: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(b, bytes.len() as u64);
    b.extend_from_slice(bytes);
}

/// Appends `n` as a LEB128 varint: seven bits a byte, low first, the top bit set on all but
/// the last.
pub(super) fn put_varint(b: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        b.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    b.push(n as u8);
}

/// A LEB128 varint off the front of `rest`; `None` when it is cut short or too long.
pub(super) fn varint(rest: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    let mut shift = 0;
    loop {
        let (&byte, after) = rest.split_first()?;
        *rest = after;
        n |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            return Some(n);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

/// A length-prefixed UTF-8 string off the front of `rest`.
fn text(rest: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(varint(rest)?).ok()?;
    let (bytes, after) = rest.split_at_checked(len)?;
    *rest = after;
    String::from_utf8(bytes.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Fields {
        Fields::from([
            ("email".to_owned(), "Ann@x.io".to_owned()),
            ("lastname".to_owned(), "Söderström".to_owned()),
            ("street".to_owned(), "Storgatan 1|Lgh 2".to_owned()),
            ("custom:loyalty_no".to_owned(), "123".to_owned()),
            ("address2_city".to_owned(), "Lund".to_owned()),
            ("taxvat".to_owned(), String::new()),
            ("custom:note".to_owned(), "x".repeat(300)),
        ])
    }

    #[test]
    fn compact_values_round_trip_and_are_smaller_than_json() {
        for fields in [Fields::new(), sample()] {
            let bytes = encode(&fields);
            assert_eq!(decode(&bytes), Some(fields.clone()));
            let json = serde_json::to_vec(&fields).expect("json");
            assert!(
                bytes.len() < json.len(),
                "{} vs {}",
                bytes.len(),
                json.len()
            );
        }
    }

    #[test]
    fn values_written_by_schema_1_still_read() {
        let json = serde_json::to_vec(&sample()).expect("json");
        assert_eq!(decode(&json), Some(sample()));
    }

    #[test]
    fn damaged_values_read_as_unknown() {
        let good = encode(&sample());
        for cut in 2..good.len() {
            // Cut anywhere inside a field: never a panic, never values that were not written.
            if let Some(f) = decode(&good[..cut]) {
                assert!(f.len() < sample().len(), "{cut}");
            }
        }
        assert_eq!(decode(&[TAG, 99, 0]), None, "an unknown code");
        assert_eq!(decode(&[TAG, 1, 5, b'a']), None, "a length past the end");
        assert_eq!(decode(b"{not json"), None);
    }
}
