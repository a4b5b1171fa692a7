//! Writes in doubt: updates, deletes (and creates under a custom key) that may have reached
//! the shop without their answer reaching custsync (a kill, an interrupt past the drain, a
//! timeout, a 500 after the write).
//!
//! The store keeps the last payload the shop *confirmed*; after an update whose answer was
//! lost, the shop may hold the newer one. Were nothing else kept, going back to the confirmed
//! values would look unchanged, and the shop would keep the lost update's values for good. So
//! every key is marked in doubt, durably, before its update or delete leaves (the planning
//! thread marks a batch of rows at once and flushes once); a confirmation, or a refusal that
//! proves nothing was applied, clears the mark; and the next run sends a key still in doubt
//! again whatever its hash says ([`crate::plan::decide`]).

use std::collections::HashMap;

use super::{StateError, Store};
use crate::customer::Key;

/// The kind of write whose answer a key is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doubt {
    /// A PUT of the customer.
    Update,
    /// A DELETE of the customer.
    Delete,
    /// A POST under `--key custom:<code>`: a create the shop may have made. Under the e-mail
    /// key a second create meets "already exists"; under a custom key with a changed e-mail it
    /// would make a second customer, so the next create looks for the key first.
    Create,
}

impl Doubt {
    fn to_byte(self) -> u8 {
        match self {
            Doubt::Update => 1,
            Doubt::Delete => 2,
            Doubt::Create => 3,
        }
    }

    /// Any other byte is an update: re-sending the record is right for every kind.
    fn from_bytes(b: &[u8]) -> Self {
        match b {
            [2] => Doubt::Delete,
            [3] => Doubt::Create,
            _ => Doubt::Update,
        }
    }

    /// Why the row is sent again, for the report.
    pub fn message(self) -> &'static str {
        match self {
            Doubt::Update => {
                "the answer to the last update was lost, so the shop may hold other values: \
                 the whole record is sent again"
            }
            Doubt::Delete => {
                "the answer to the last delete was lost, so the customer may be gone: the whole \
                 record is sent again (and the customer created again if it is gone)"
            }
            Doubt::Create => {
                "the answer to the last create was lost, so the shop may have made the customer: \
                 it is looked for by its key first"
            }
        }
    }
}

/// The keys in doubt when a run began, by [`Key::digest`], for the planner.
#[derive(Debug, Default)]
pub struct Doubts(HashMap<u64, Doubt>);

impl Doubts {
    /// Whether the key with `digest` is in doubt, and why. Costs nothing when none is.
    pub fn get(&self, digest: u64) -> Option<Doubt> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(&digest).copied()
    }
}

impl Store {
    /// Marks each key in doubt for its write, and flushes once: call before their requests
    /// can leave.
    pub fn doubt(&self, marks: &[(Key, Doubt)]) -> Result<(), StateError> {
        if marks.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (key, why) in marks {
            batch.insert(key.to_bytes(), &[why.to_byte()]);
        }
        self.doubt.apply_batch(batch).map_err(|e| self.err(e))?;
        self.flush()
    }

    /// Clears the doubt about `key`: its request surely did not change the shop.
    pub fn settle(&self, key: &Key) -> Result<(), StateError> {
        self.doubt.remove(key.to_bytes()).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every key in doubt now.
    pub fn doubts(&self) -> Result<Doubts, StateError> {
        let mut map = HashMap::new();
        for kv in self.doubt.iter() {
            let (key, why) = kv.map_err(|e| self.err(e))?;
            map.insert(Key::digest_of_bytes(&key), Doubt::from_bytes(&why));
        }
        Ok(Doubts(map))
    }

    /// How many keys are in doubt.
    pub fn doubt_len(&self) -> usize {
        self.doubt.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Entry, Op};

    #[test]
    fn marks_survive_a_reopen_until_a_confirmation_or_a_settlement_clears_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (
            Key::new(1, "a@x.io"),
            Key::new(1, "b@x.io"),
            Key::new(1, "c@x.io"),
        );
        {
            let store = Store::open(&dir.path().join("s")).expect("open");
            assert_eq!(store.doubt_len(), 0);
            let marks = [
                (a.clone(), Doubt::Update),
                (b.clone(), Doubt::Update),
                (c.clone(), Doubt::Delete),
            ];
            store.doubt(&marks).expect("doubt");
            // No flush of our own: `doubt` flushed.
        }
        let store = Store::open(&dir.path().join("s")).expect("reopen");
        let doubts = store.doubts().expect("doubts");
        assert_eq!(store.doubt_len(), 3);
        assert_eq!(doubts.get(a.digest()), Some(Doubt::Update));
        assert_eq!(doubts.get(c.digest()), Some(Doubt::Delete));
        assert_eq!(doubts.get(Key::new(2, "a@x.io").digest()), None);

        let w = store.writer().expect("writer");
        let entry = Entry {
            customer_id: 1,
            payload_hash: 1,
            synced_at: 0,
            address_id: None,
            further_address_ids: Vec::new(),
        };
        w.send(Op::Put(a.clone(), entry, None));
        w.send(Op::Failed(b.clone()));
        w.finish().expect("finish");
        let in_doubt = |k: &Key| store.doubts().expect("doubts").get(k.digest());
        assert_eq!(in_doubt(&a), None, "confirmed");
        assert_eq!(
            in_doubt(&b),
            Some(Doubt::Update),
            "a failure alone proves nothing"
        );
        let w = store.writer().expect("writer");
        w.send(Op::Settle(b.clone()));
        w.finish().expect("finish");
        assert_eq!(in_doubt(&b), None, "settled");
        assert_eq!(store.doubt_len(), 1);
        store.settle(&c).expect("settle");
        assert_eq!(store.doubt_len(), 0);
    }
}
