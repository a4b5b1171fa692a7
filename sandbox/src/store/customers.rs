//! The sandbox shop's customers in memory: by id, by Magento's unique key (website and
//! case-insensitive email), and the id counters. Bookkeeping only: the rules that decide
//! what may be stored are in `rules`, and durability is the journal's.

use std::collections::{BTreeMap, HashMap, btree_map};

use serde_json::{Map, Value};

use crate::stored::{Stored, addresses_of, email_key, int_of};

/// The customers, indexed.
#[derive(Debug)]
pub(super) struct Customers {
    by_id: BTreeMap<i64, Stored>,
    /// (website_id, lower-cased email) -> id: Magento's per-website, case-insensitive unique key.
    emails: HashMap<(i64, String), i64>,
    next_id: i64,
    next_address_id: i64,
}

impl Customers {
    /// No customers; the first ids are 1.
    pub(super) fn new() -> Self {
        Self {
            by_id: BTreeMap::new(),
            emails: HashMap::new(),
            next_id: 1,
            next_address_id: 1,
        }
    }

    /// How many customers there are.
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The customer with this id.
    pub(super) fn get(&self, id: i64) -> Option<&Stored> {
        self.by_id.get(&id)
    }

    /// Every customer, by id.
    pub(super) fn values(&self) -> btree_map::Values<'_, i64, Stored> {
        self.by_id.values()
    }

    /// The id of the customer holding a (website_id, lower-cased email) key.
    pub(super) fn holder(&self, key: &(i64, String)) -> Option<i64> {
        self.emails.get(key).copied()
    }

    /// The id the next new customer gets.
    pub(super) fn next_id(&self) -> i64 {
        self.next_id
    }

    /// The id the next new address gets.
    pub(super) fn next_address_id(&self) -> i64 {
        self.next_address_id
    }

    /// Moves the id counters forward to at least these values; never back, so that ids of
    /// deleted customers are never handed out again (as MySQL's auto-increment does).
    pub(super) fn advance_counters(&mut self, next_id: i64, next_address_id: i64) {
        self.next_id = self.next_id.max(next_id);
        self.next_address_id = self.next_address_id.max(next_address_id);
    }

    /// Stores a record under its id, replacing the customer there.
    pub(super) fn insert(&mut self, rec: Map<String, Value>) {
        let Some(id) = int_of(&rec, "id") else { return };
        let addresses = addresses_of(&rec).filter_map(|a| int_of(a, "id")).max();
        self.insert_stored(id, email_key(&rec), addresses, Stored::new(&rec));
    }

    /// Stores a customer under `id` with its email key and highest address id.
    pub(super) fn insert_stored(
        &mut self,
        id: i64,
        email: Option<(i64, String)>,
        max_address_id: Option<i64>,
        stored: Stored,
    ) {
        self.remove(id);
        if let Some(key) = email {
            self.emails.insert(key, id);
        }
        self.next_id = self.next_id.max(id + 1);
        if let Some(max) = max_address_id {
            self.next_address_id = self.next_address_id.max(max + 1);
        }
        self.by_id.insert(id, stored);
    }

    /// Removes the customer with this id, if there is one, and frees its email.
    pub(super) fn remove(&mut self, id: i64) {
        if let Some(old) = self.by_id.remove(&id)
            && let Some(key) = email_key(&old.record())
            && self.emails.get(&key) == Some(&id)
        {
            self.emails.remove(&key);
        }
    }
}
