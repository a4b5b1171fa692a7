//! Bulks submitted and not yet resolved: what the next run must settle before it plans.
//!
//! A bulk request hands rows to the shop's queue; its answer (the bulk's uuid) can be lost
//! after the shop queued it, and a run can be killed between the answer and the last poll. So
//! a bulk's rows are written here, flushed, before its request leaves, and its uuid as soon
//! as the answer names it; the record goes once every row of the bulk is resolved. A record
//! left behind (a kill, an interrupt, a lost answer, an operation the queue kept open) is
//! resolved by the next run first ([`crate::bulk`]), so that no row is created twice nor its
//! id lost. Kept apart from the mappings, like the doubt marks: it is empty nearly always.

use serde::{Deserialize, Serialize};

use super::{StateError, Store};
use crate::customer::Key;

/// One row of a recorded bulk: enough to find its customer and record its mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkRow {
    pub website_id: u32,
    /// The e-mail sent, lower-cased.
    pub email: String,
    /// Under `--key custom:<code>`: the attribute's code and the row's value, the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key: Option<(String, String)>,
    /// The input line, for messages.
    pub line: u64,
    /// The hash of the payload sent, recorded with the mapping once the shop confirms it.
    pub hash: u128,
    /// The customer an update went to; `None` for a create.
    pub customer_id: Option<u64>,
    /// The row sends a default address: its id is taken from the shop's answer.
    pub address: bool,
}

impl BulkRow {
    pub fn key(&self) -> Key {
        match &self.custom_key {
            None => Key::new(self.website_id, &self.email),
            Some((_, value)) => Key::custom(self.website_id, value),
        }
    }
}

/// A bulk as recorded: its rows (in the order of its items), and its uuid once answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkRecord {
    /// The items are creates (else complete records for updates).
    pub create: bool,
    pub uuid: Option<String>,
    pub rows: Vec<BulkRow>,
}

impl Store {
    /// Records a bulk about to be submitted, flushed; returns its number in the store.
    pub fn record_bulk(&self, bulk: &BulkRecord) -> Result<u64, StateError> {
        let id = self.db.generate_id().map_err(|e| self.err(e))?;
        self.put_bulk(id, bulk)?;
        Ok(id)
    }

    /// Records the uuid the shop answered for bulk `id`, flushed.
    pub fn bulk_accepted(&self, id: u64, uuid: &str) -> Result<(), StateError> {
        let Some(mut bulk) = self.bulk(id)? else {
            return Ok(());
        };
        bulk.uuid = Some(uuid.to_owned());
        self.put_bulk(id, &bulk)
    }

    /// Forgets bulk `id`: every row of it is resolved.
    pub fn bulk_resolved(&self, id: u64) -> Result<(), StateError> {
        self.bulks
            .remove(id.to_be_bytes())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every bulk recorded and not resolved, oldest first. A record this version cannot read
    /// is an error rather than skipped: skipping it could create its rows twice.
    pub fn bulks(&self) -> Result<Vec<(u64, BulkRecord)>, StateError> {
        let mut out = Vec::new();
        for kv in self.bulks.iter() {
            let (k, v) = kv.map_err(|e| self.err(e))?;
            let id = k
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| self.unreadable_bulk())?;
            let bulk = serde_json::from_slice(&v).map_err(|_| self.unreadable_bulk())?;
            out.push((id, bulk));
        }
        Ok(out)
    }

    /// How many bulks are recorded and not resolved.
    pub fn bulks_len(&self) -> usize {
        self.bulks.len()
    }

    fn bulk(&self, id: u64) -> Result<Option<BulkRecord>, StateError> {
        let Some(v) = self.bulks.get(id.to_be_bytes()).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        serde_json::from_slice(&v)
            .map(Some)
            .map_err(|_| self.unreadable_bulk())
    }

    fn put_bulk(&self, id: u64, bulk: &BulkRecord) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(bulk).map_err(|e| StateError::Io {
            path: self.dir.join("db"),
            source: std::io::Error::other(e),
        })?;
        self.bulks
            .insert(id.to_be_bytes(), bytes)
            .map_err(|e| self.err(e))?;
        self.flush()
    }

    fn unreadable_bulk(&self) -> StateError {
        StateError::Io {
            path: self.dir.join("db"),
            source: std::io::Error::other(
                "a recorded bulk cannot be read (written by another version of custsync?)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_custom_key_is_the_rows_key_and_old_records_read_without_one() {
        let mut custom = row("a@x.io", None);
        custom.custom_key = Some(("legacy_id".into(), "AB-1".into()));
        assert_eq!(custom.key(), Key::custom(1, "AB-1"));
        let json = serde_json::to_string(&row("a@x.io", None)).unwrap();
        assert!(!json.contains("custom_key"), "{json}");
        let old: BulkRow = serde_json::from_str(&json).unwrap();
        assert_eq!(old.key(), Key::new(1, "a@x.io"));
    }

    fn row(email: &str, id: Option<u64>) -> BulkRow {
        BulkRow {
            website_id: 1,
            email: email.into(),
            custom_key: None,
            line: 2,
            hash: u128::MAX - 1,
            customer_id: id,
            address: true,
        }
    }

    #[test]
    fn a_bulk_is_kept_with_its_uuid_until_resolved_across_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let (a, b) = {
            let store = Store::open(&path).expect("open");
            let a = BulkRecord {
                create: true,
                uuid: None,
                rows: vec![row("a@x.io", None), row("b@x.io", None)],
            };
            let b = BulkRecord {
                create: false,
                uuid: None,
                rows: vec![row("c@x.io", Some(7))],
            };
            let ia = store.record_bulk(&a).expect("record");
            let ib = store.record_bulk(&b).expect("record");
            store.bulk_accepted(ib, "u-1").expect("accepted");
            ((ia, a), (ib, b))
        };
        let store = Store::open(&path).expect("reopen");
        let bulks = store.bulks().expect("bulks");
        assert_eq!(bulks.len(), 2);
        assert_eq!(bulks[0], a);
        assert_eq!(bulks[1].1.uuid.as_deref(), Some("u-1"));
        assert_eq!(bulks[1].1.rows, b.1.rows);
        assert_eq!(bulks[0].1.rows[0].key(), Key::new(1, "a@x.io"));
        store.bulk_resolved(a.0).expect("resolved");
        store.bulk_resolved(b.0).expect("resolved");
        assert_eq!(store.bulks_len(), 0);
    }
}
