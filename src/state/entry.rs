//! The byte form of what the store keeps for a key in its `customers` tree: the [`Entry`], and
//! since schema 3 the last-sent values after it, so that the key is stored once.
//!
//! Schemas 1 and 2 wrote a fixed-width entry (layout byte 1: every id and the timestamp in 8
//! bytes, 0 for no address id) and kept the values apart, in the `fields` tree. Schema 3
//! writes layout byte 3, the customer id, the 16 bytes of the payload hash, the timestamp, the
//! address ids (0: none; preceded by how many further ones) as LEB128 varints, then the values
//! in their compact form (`values.rs`), or nothing when none are known. Both layouts are read:
//! a store of schema 2 keeps working without a rewrite, and each key moves to the new form
//! when a sync next confirms it.
//!
//! The customer id and the payload hash come first, so that the scan that rebuilds the index
//! reads only them (see [`known_of`]).

use super::values::{put_varint, varint};

/// The first byte of a fixed-width entry (schemas 1 and 2).
const FIXED: u8 = 1;
/// The first byte of a compact entry, maybe followed by values (schema 3).
const COMPACT: u8 = 3;

/// What the store remembers about one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The id Commerce gave the customer.
    pub customer_id: u64,
    /// [`crate::customer::Customer::payload_hash`] of the last payload the API accepted.
    pub payload_hash: u128,
    /// Unix seconds of that confirmation.
    pub synced_at: i64,
    /// Id of the default address custsync created, sent back on updates so it is not duplicated.
    pub address_id: Option<u64>,
    /// Ids of the further addresses custsync created: index `i` is `address{i+2}_*`'s, `None`
    /// where it has none. Empty for most customers.
    pub further_address_ids: Vec<Option<u64>>,
}

impl Entry {
    /// The bytes of a fixed-width entry without further addresses; each further address id
    /// adds 8 (0 for none).
    const FIXED_LEN: usize = 1 + 8 + 16 + 8 + 8;

    /// The stored value: this entry in the compact layout, then `values` (the compact form of
    /// the last-sent values, see `values.rs`) when they are known.
    pub(super) fn to_value(&self, values: Option<&[u8]>) -> Vec<u8> {
        let extra = 3 * self.further_address_ids.len() + values.map_or(0, <[u8]>::len);
        let mut b = Vec::with_capacity(1 + 5 + 16 + 5 + 4 + 1 + extra);
        b.push(COMPACT);
        put_varint(&mut b, self.customer_id);
        b.extend_from_slice(&self.payload_hash.to_le_bytes());
        put_varint(&mut b, zigzag(self.synced_at));
        put_varint(&mut b, self.address_id.unwrap_or(0));
        put_varint(&mut b, self.further_address_ids.len() as u64);
        for id in &self.further_address_ids {
            put_varint(&mut b, id.unwrap_or(0));
        }
        b.extend_from_slice(values.unwrap_or_default());
        b
    }

    /// The entry of a stored value of either layout, and the compact values after it (empty:
    /// none here; a value of schema 2 never has them). `None` for bytes of neither layout.
    pub(super) fn from_value(b: &[u8]) -> Option<(Entry, &[u8])> {
        match b.first() {
            Some(&FIXED) => Entry::from_fixed(b).map(|e| (e, &b[b.len()..])),
            Some(&COMPACT) => Entry::from_compact(&b[1..]),
            _ => None,
        }
    }

    fn from_compact(mut rest: &[u8]) -> Option<(Entry, &[u8])> {
        let customer_id = varint(&mut rest)?;
        let (hash, after) = rest.split_first_chunk::<16>()?;
        rest = after;
        let synced_at = unzigzag(varint(&mut rest)?);
        let id = |rest: &mut &[u8]| varint(rest).map(|id| (id != 0).then_some(id));
        let address_id = id(&mut rest)?;
        let further = usize::try_from(varint(&mut rest)?).ok()?;
        // Each id takes a byte at least: a count past the end is damage, not an allocation.
        if further > rest.len() {
            return None;
        }
        let further_address_ids = (0..further).map(|_| id(&mut rest)).collect::<Option<_>>()?;
        let entry = Entry {
            customer_id,
            payload_hash: u128::from_le_bytes(*hash),
            synced_at,
            address_id,
            further_address_ids,
        };
        Some((entry, rest))
    }

    fn from_fixed(b: &[u8]) -> Option<Entry> {
        if b.len() < Self::FIXED_LEN || !(b.len() - Self::FIXED_LEN).is_multiple_of(8) {
            return None;
        }
        let u64_at = |i: usize| b[i..i + 8].try_into().ok().map(u64::from_le_bytes);
        let id_at = |i: usize| u64_at(i).map(|id| (id != 0).then_some(id));
        Some(Entry {
            customer_id: u64_at(1)?,
            payload_hash: u128::from_le_bytes(b[9..25].try_into().ok()?),
            synced_at: i64::from_le_bytes(b[25..33].try_into().ok()?),
            address_id: id_at(33)?,
            further_address_ids: (Self::FIXED_LEN..b.len())
                .step_by(8)
                .map(id_at)
                .collect::<Option<_>>()?,
        })
    }
}

/// The payload hash and customer id of a stored value of either layout, read without the
/// rest: all the index needs of a key.
pub(super) fn known_of(b: &[u8]) -> Option<(u128, u64)> {
    match b.split_first()? {
        (&FIXED, _) => Entry::from_fixed(b).map(|e| (e.payload_hash, e.customer_id)),
        (&COMPACT, mut rest) => {
            let customer_id = varint(&mut rest)?;
            let hash = rest.first_chunk::<16>()?;
            Some((u128::from_le_bytes(*hash), customer_id))
        }
        _ => None,
    }
}

/// `n` with its sign in the lowest bit, so that a small negative time stays short.
fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The fixed-width bytes schemas 1 and 2 wrote for `e`.
    pub(in crate::state) fn fixed_bytes(e: &Entry) -> Vec<u8> {
        let mut b = vec![FIXED];
        b.extend_from_slice(&e.customer_id.to_le_bytes());
        b.extend_from_slice(&e.payload_hash.to_le_bytes());
        b.extend_from_slice(&e.synced_at.to_le_bytes());
        for id in std::iter::once(&e.address_id).chain(&e.further_address_ids) {
            b.extend_from_slice(&id.unwrap_or(0).to_le_bytes());
        }
        b
    }

    fn entry(further: Vec<Option<u64>>) -> Entry {
        Entry {
            customer_id: 123_456,
            payload_hash: u128::MAX - 7,
            synced_at: 1_700_000_000,
            address_id: Some(99),
            further_address_ids: further,
        }
    }

    #[test]
    fn compact_entries_round_trip_with_and_without_values() {
        let cases = [
            entry(Vec::new()),
            entry(vec![Some(21), None, Some(u64::MAX)]),
            Entry {
                customer_id: 0,
                payload_hash: 0,
                synced_at: -5,
                address_id: None,
                further_address_ids: Vec::new(),
            },
            Entry {
                synced_at: i64::MIN,
                ..entry(Vec::new())
            },
            Entry {
                synced_at: i64::MAX,
                customer_id: u64::MAX,
                ..entry(Vec::new())
            },
        ];
        for e in cases {
            let bare = e.to_value(None);
            assert_eq!(Entry::from_value(&bare), Some((e.clone(), &[][..])));
            assert_eq!(known_of(&bare), Some((e.payload_hash, e.customer_id)));
            let with = e.to_value(Some(&[2, 15, 4, b'L', b'u', b'n', b'd']));
            assert_eq!(
                Entry::from_value(&with),
                Some((e.clone(), &[2, 15, 4, b'L', b'u', b'n', b'd'][..]))
            );
            assert_eq!(known_of(&with), Some((e.payload_hash, e.customer_id)));
        }
    }

    #[test]
    fn a_compact_entry_is_much_smaller_than_a_fixed_one() {
        let e = entry(Vec::new());
        assert_eq!(e.to_value(None).len(), 1 + 3 + 16 + 5 + 1 + 1);
        assert_eq!(fixed_bytes(&e).len(), Entry::FIXED_LEN);
    }

    #[test]
    fn fixed_entries_of_schema_2_still_read() {
        for e in [entry(Vec::new()), entry(vec![Some(21), None])] {
            let bytes = fixed_bytes(&e);
            assert_eq!(Entry::from_value(&bytes), Some((e.clone(), &[][..])));
            assert_eq!(known_of(&bytes), Some((e.payload_hash, e.customer_id)));
            assert_eq!(Entry::from_value(&bytes[..bytes.len() - 4]), None);
        }
    }

    #[test]
    fn damaged_values_read_as_nothing() {
        let good = entry(vec![Some(21)]).to_value(None);
        for cut in 0..good.len() {
            assert_eq!(Entry::from_value(&good[..cut]), None, "{cut}");
        }
        assert_eq!(Entry::from_value(&[9, 1, 2]), None, "an unknown layout");
        assert_eq!(known_of(&[COMPACT, 1, 2]), None, "a hash cut short");
        // A count of further ids far past the end.
        let mut b = vec![COMPACT, 1];
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&[0, 0, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(Entry::from_value(&b), None);
    }
}
