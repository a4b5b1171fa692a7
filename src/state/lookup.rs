//! What the planner reads of the state store, as a trait: [`Lookup`]. The sync implements it
//! with [`Indexed`] (the index for every key, sled for the few rows that need more); the
//! planner's tests with `memory::Memory`, a map, so that they need no disk.
//!
//! The planner is generic over it: each row costs the same direct calls as before the trait,
//! no dynamic dispatch.

use std::sync::Arc;

use super::{Doubt, Doubts, Entry, Index, Known, StateError, Store};
use crate::customer::{Fields, Key};

/// The state store, as the planner reads it.
///
/// [`Lookup::known`] must know every key the store holds: a key it does not know is taken to
/// be new without a further read.
pub trait Lookup {
    /// How many keys the store holds.
    fn key_count(&self) -> usize;
    /// What is known of a key, by [`Key::digest`]: the fast path, read for every row.
    fn known(&self, digest: u64) -> Option<Known>;
    /// Whether a write of the key is in doubt, and which, by [`Key::digest`]: read for every
    /// row, so it must cost nothing when no key is.
    fn in_doubt(&self, digest: u64) -> Option<Doubt>;
    /// The full entry of a key; read only when the fast path cannot decide.
    fn entry(&self, key: &Key) -> Result<Option<Entry>, StateError>;
    /// The field values last sent for a key (or read from the shop by `pull`).
    fn fields(&self, key: &Key) -> Result<Option<Fields>, StateError>;
    /// Whether the key failed in an earlier run and has not succeeded since.
    fn is_failed(&self, key: &Key) -> Result<bool, StateError>;
    /// The index [`Lookup::known`] reads, when there is one: the planner keeps the file's
    /// keys by their place in it.
    fn index(&self) -> Option<Arc<Index>> {
        None
    }
}

/// The store with the index of its keys and the keys in doubt as they were when the run began.
#[derive(Clone, Copy)]
pub struct Indexed<'a> {
    pub store: &'a Store,
    pub index: &'a Arc<Index>,
    pub doubts: &'a Doubts,
}

impl Lookup for Indexed<'_> {
    fn key_count(&self) -> usize {
        self.index.len()
    }

    fn known(&self, digest: u64) -> Option<Known> {
        self.index.get(digest)
    }

    fn in_doubt(&self, digest: u64) -> Option<Doubt> {
        self.doubts.get(digest)
    }

    fn entry(&self, key: &Key) -> Result<Option<Entry>, StateError> {
        self.store.get(key)
    }

    fn fields(&self, key: &Key) -> Result<Option<Fields>, StateError> {
        self.store.fields(key)
    }

    fn is_failed(&self, key: &Key) -> Result<bool, StateError> {
        self.store.is_failed(key)
    }

    fn index(&self) -> Option<Arc<Index>> {
        Some(Arc::clone(self.index))
    }
}

/// An in-memory [`Lookup`] for tests.
#[cfg(test)]
pub mod memory {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// Keys, entries, field values, failed and doubt marks in maps.
    #[derive(Debug, Default)]
    pub struct Memory {
        entries: HashMap<Key, Entry>,
        fields: HashMap<Key, Fields>,
        failed: HashSet<Key>,
        doubts: HashMap<Key, Doubt>,
    }

    impl Memory {
        /// Records a mapping, with the values sent when known.
        pub fn put(&mut self, key: Key, entry: Entry, fields: Option<Fields>) -> &mut Self {
            if let Some(f) = fields {
                self.fields.insert(key.clone(), f);
            }
            self.entries.insert(key, entry);
            self
        }

        /// Marks a key as failed.
        pub fn fail(&mut self, key: Key) -> &mut Self {
            self.failed.insert(key);
            self
        }

        /// Marks a key's write as in doubt.
        pub fn doubt(&mut self, key: Key, why: Doubt) -> &mut Self {
            self.doubts.insert(key, why);
            self
        }
    }

    impl Lookup for Memory {
        fn key_count(&self) -> usize {
            self.entries.len()
        }

        fn known(&self, digest: u64) -> Option<Known> {
            self.entries
                .iter()
                .find(|(k, _)| k.digest() == digest)
                .map(|(_, e)| Known::new(e.payload_hash, e.customer_id))
        }

        fn in_doubt(&self, digest: u64) -> Option<Doubt> {
            self.doubts
                .iter()
                .find(|(k, _)| k.digest() == digest)
                .map(|(_, d)| *d)
        }

        fn entry(&self, key: &Key) -> Result<Option<Entry>, StateError> {
            Ok(self.entries.get(key).cloned())
        }

        fn fields(&self, key: &Key) -> Result<Option<Fields>, StateError> {
            Ok(self.fields.get(key).cloned())
        }

        fn is_failed(&self, key: &Key) -> Result<bool, StateError> {
            Ok(self.failed.contains(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::Memory;
    use super::*;
    use crate::state::Op;

    fn entry(id: u64, hash: u128) -> Entry {
        Entry {
            customer_id: id,
            payload_hash: hash,
            synced_at: 0,
            address_id: None,
            further_address_ids: Vec::new(),
        }
    }

    /// The sled view and the in-memory fake answer alike, so the planner's tests on the fake
    /// hold for the sync.
    #[test]
    fn the_store_and_the_fake_answer_alike() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
        let (a, b, c) = (
            Key::new(1, "a@x.io"),
            Key::new(1, "b@x.io"),
            Key::new(2, "a@x.io"),
        );
        let fields = Fields::from([("lastname".to_owned(), "Lee".to_owned())]);
        let w = store.writer().expect("writer");
        w.send(Op::Put(a.clone(), entry(1, 10), Some(fields.clone())));
        w.send(Op::Put(b.clone(), entry(2, 20), None));
        w.send(Op::Failed(c.clone()));
        w.finish().expect("finish");
        store.doubt(&[(b.clone(), Doubt::Delete)]).expect("doubt");
        let index = Arc::new(store.build_index().expect("index"));
        let doubts = store.doubts().expect("doubts");
        let sled = Indexed {
            store: &store,
            index: &index,
            doubts: &doubts,
        };
        let mut fake = Memory::default();
        fake.put(a.clone(), entry(1, 10), Some(fields))
            .put(b.clone(), entry(2, 20), None)
            .fail(c.clone())
            .doubt(b.clone(), Doubt::Delete);
        type Answers = (
            Option<Known>,
            Option<Doubt>,
            Option<Entry>,
            Option<Fields>,
            bool,
        );
        fn answers(l: &impl Lookup, k: &Key) -> Answers {
            (
                l.known(k.digest()),
                l.in_doubt(k.digest()),
                l.entry(k).expect("entry"),
                l.fields(k).expect("fields"),
                l.is_failed(k).expect("failed"),
            )
        }
        assert_eq!((sled.key_count(), fake.key_count()), (2, 2));
        for k in [&a, &b, &c] {
            assert_eq!(answers(&sled, k), answers(&fake, k), "{k:?}");
        }
        assert_eq!(sled.known(a.digest()), Some(Known::new(10, 1)));
    }
}
