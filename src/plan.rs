//! The diff: what each input record needs, given what the state store remembers.
//!
//! Pure decisions over a [`Store`] read: unknown key -> create, known key with another payload
//! hash -> update, same hash -> unchanged. A key seen earlier in the same file makes the later
//! row invalid, naming the first line.

use std::collections::{HashMap, HashSet};

use secrecy::SecretString;

use crate::customer::{Customer, Key};
use crate::input::{Record, Row, check_email};
use crate::outcome::{Action, RowRef};
use crate::state::{Entry, Index, StateError, Store};

/// One record with its decision.
#[derive(Debug)]
pub struct Planned {
    pub row: RowRef,
    pub step: Step,
}

/// The decision itself, carrying what the executor needs.
#[derive(Debug)]
pub enum Step {
    /// Rejected locally; the message names line, column and reason.
    Invalid(String),
    /// Nothing to send. `note` says why when it is not simply "same payload".
    Unchanged {
        customer_id: Option<u64>,
        note: Option<&'static str>,
        /// The values were equal though the hash was not (a mapping from `pull`, or a column
        /// left out): the new hash to record so that the next run takes the fast path.
        refresh: Option<(Key, Entry)>,
    },
    /// POST a new customer.
    Create {
        customer: Box<Customer>,
        password: Option<SecretString>,
        hash: u128,
    },
    /// PUT the full desired record to the known id.
    Update {
        customer: Box<Customer>,
        entry: Entry,
        hash: u128,
        /// `field: old -> new` for the report; empty when the old values are not known.
        changes: Vec<String>,
        /// The address changed (or is not known to be the same), so the PUT must carry it.
        send_address: bool,
    },
}

impl Step {
    /// The report action this step stands for.
    pub fn action(&self) -> Action {
        match self {
            Step::Invalid(_) => Action::Invalid,
            Step::Unchanged { .. } => Action::Unchanged,
            Step::Create { .. } => Action::Create,
            Step::Update { .. } => Action::Update,
        }
    }
}

/// Options that change decisions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Send every valid row, even when unchanged.
    pub force: bool,
    /// Send only keys that failed in an earlier run.
    pub only_failed: bool,
}

/// Plans records one by one, remembering the keys already seen in this file.
pub struct Planner<'a> {
    store: &'a Store,
    /// The store's keys as they were when the run began: an unchanged row costs no sled read.
    index: &'a Index,
    options: Options,
    /// Key digest -> first line; digests keep a million keys in a few dozen MB.
    seen: HashMap<u64, u64>,
    /// Keys of invalid rows whose email and website could still be read.
    mentioned: HashSet<u64>,
    /// Invalid rows whose key cannot be known.
    unkeyed: u64,
}

/// The keys a file names, for telling which customers it no longer has.
#[derive(Debug, Default)]
pub struct FileKeys {
    valid: HashMap<u64, u64>,
    invalid: HashSet<u64>,
    /// Invalid rows without a usable email: their customers cannot be told from absent ones.
    pub unkeyed: u64,
}

impl FileKeys {
    /// Whether the file names `key` (in a valid or an invalid row).
    pub fn contains(&self, key: &Key) -> bool {
        self.contains_digest(key.digest())
    }

    /// The same, by [`Key::digest`].
    pub fn contains_digest(&self, digest: u64) -> bool {
        self.valid.contains_key(&digest) || self.invalid.contains(&digest)
    }
}

impl<'a> Planner<'a> {
    /// A planner over `store` and the index of its keys.
    pub fn new(store: &'a Store, index: &'a Index, options: Options) -> Self {
        Planner {
            store,
            index,
            options,
            // A file usually names about the keys the store has. Sized for them up front, the
            // map never holds its old and new tables at once while it grows (a third of a
            // re-run's peak memory); pages a smaller file leaves untouched cost nothing.
            seen: HashMap::with_capacity(index.len()),
            mentioned: HashSet::new(),
            unkeyed: 0,
        }
    }

    /// Every key the file named, once it has all been planned.
    pub fn into_keys(self) -> FileKeys {
        FileKeys {
            valid: self.seen,
            invalid: self.mentioned,
            unkeyed: self.unkeyed,
        }
    }

    /// Decides what a record needs.
    pub fn plan(&mut self, record: Record) -> Result<Planned, StateError> {
        let row = match record {
            Record::Invalid(i) => {
                // An invalid row whose email and website can still be read keeps its
                // customer from counting as absent.
                match i.website_id {
                    Some(w) if check_email(&i.email).is_ok() => {
                        self.mentioned.insert(Key::new(w, &i.email).digest());
                    }
                    _ => self.unkeyed += 1,
                }
                return Ok(Planned {
                    row: RowRef {
                        line: i.line,
                        email: i.email,
                        website_id: i.website_id,
                    },
                    step: Step::Invalid(i.message),
                });
            }
            Record::Valid(row) => row,
        };
        let Row {
            line,
            customer,
            password,
        } = *row;
        let website_id = Some(customer.website_id);
        let key = customer.key();
        let digest = key.digest();
        let hash = customer.payload_hash();
        if let Some(first) = self.seen.get(&digest) {
            let message = format!(
                "line {line}: email: duplicate of line {first} (same website_id {} and email)",
                key.website_id
            );
            return Ok(Planned {
                row: RowRef {
                    line,
                    email: customer.email,
                    website_id,
                },
                step: Step::Invalid(message),
            });
        }
        self.seen.insert(digest, line);
        let known = self.index.get(digest);
        if let Some(k) = known
            && k.matches(hash)
            && !self.options.force
            && !self.options.only_failed
        {
            return Ok(Planned {
                row: RowRef {
                    line,
                    email: customer.email,
                    website_id,
                },
                step: Step::Unchanged {
                    customer_id: Some(k.customer_id),
                    note: None,
                    refresh: None,
                },
            });
        }
        // The index holds every key of the store, and no row before this one wrote this key (a
        // second row of a key is a duplicate): a key it does not know is not in sled either.
        let entry = match known {
            Some(_) => self.store.get(&key)?,
            None => None,
        };
        let unchanged = |customer: Customer, customer_id, note, refresh| Planned {
            row: RowRef {
                line,
                email: customer.email,
                website_id,
            },
            step: Step::Unchanged {
                customer_id,
                note,
                refresh,
            },
        };
        if self.options.only_failed && !self.store.is_failed(&key)? {
            let note = Some("not sent: --only-failed and this row did not fail before");
            return Ok(unchanged(
                customer,
                entry.map(|e| e.customer_id),
                note,
                None,
            ));
        }
        let e = match entry {
            None => {
                return Ok(Planned {
                    row: RowRef {
                        line,
                        email: customer.email.clone(),
                        website_id,
                    },
                    step: Step::Create {
                        customer: Box::new(customer),
                        password,
                        hash,
                    },
                });
            }
            Some(e) if e.payload_hash == hash && !self.options.force => {
                return Ok(unchanged(customer, Some(e.customer_id), None, None));
            }
            Some(e) => e,
        };
        // The hash is the fast path; the values last sent decide.
        let known = self.store.fields(&key)?;
        let changes = known
            .as_ref()
            .map(|k| customer.changes(k))
            .unwrap_or_default();
        if known.is_some() && changes.is_empty() && !self.options.force {
            let refresh = Some((
                key,
                Entry {
                    payload_hash: hash,
                    ..e
                },
            ));
            return Ok(unchanged(customer, Some(e.customer_id), None, refresh));
        }
        let send_address = customer.address.is_some()
            && (self.options.force || known.as_ref().is_none_or(|k| customer.address_changes(k)));
        Ok(Planned {
            row: RowRef {
                line,
                email: customer.email.clone(),
                website_id,
            },
            step: Step::Update {
                customer: Box::new(customer),
                entry: e,
                hash,
                changes,
                send_address,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::InvalidRow;
    use crate::state::Op;

    fn row(line: u64, email: &str, lastname: &str) -> Record {
        Record::Valid(Box::new(Row {
            line,
            customer: Customer {
                email: email.into(),
                firstname: "Ann".into(),
                lastname: lastname.into(),
                middlename: None,
                prefix: None,
                suffix: None,
                dob: None,
                gender: None,
                taxvat: None,
                group_id: None,
                website_id: 1,
                store_id: None,
                is_subscribed: None,
                custom_attributes: vec![],
                address: None,
            },
            password: None,
        }))
    }

    fn actions(planner: &mut Planner, records: Vec<Record>) -> Vec<Action> {
        records
            .into_iter()
            .map(|r| planner.plan(r).expect("plan").step.action())
            .collect()
    }

    #[test]
    fn unknown_creates_changed_updates_same_is_unchanged_duplicates_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let Record::Valid(known) = row(0, "b@x.io", "Lee") else {
            unreachable!()
        };
        let Record::Valid(changed) = row(0, "c@x.io", "Lee") else {
            unreachable!()
        };
        let w = store.writer().expect("writer");
        for (r, id) in [(&known, 1), (&changed, 2)] {
            w.send(Op::Put(
                r.customer.key(),
                Entry {
                    customer_id: id,
                    payload_hash: r.customer.payload_hash(),
                    synced_at: 0,
                    address_id: None,
                },
                Some(r.customer.fields()),
            ));
        }
        w.finish().expect("finish");
        let index = store.build_index().expect("index");
        let mut planner = Planner::new(&store, &index, Options::default());
        let got = actions(
            &mut planner,
            vec![
                row(2, "a@x.io", "Lee"),
                row(3, "b@x.io", "Lee"),
                row(4, "c@x.io", "Lee-Updated"),
                row(5, " A@x.io ", "Other"),
                Record::Invalid(InvalidRow {
                    line: 6,
                    email: String::new(),
                    website_id: None,
                    message: "bad".into(),
                }),
            ],
        );
        assert_eq!(
            got,
            vec![
                Action::Create,
                Action::Unchanged,
                Action::Update,
                Action::Invalid,
                Action::Invalid
            ]
        );
        let mut forced = Planner::new(
            &store,
            &index,
            Options {
                force: true,
                only_failed: false,
            },
        );
        assert_eq!(
            actions(&mut forced, vec![row(2, "b@x.io", "Lee")]),
            vec![Action::Update]
        );
    }

    #[test]
    fn duplicate_names_the_first_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let index = store.build_index().expect("index");
        let mut planner = Planner::new(&store, &index, Options::default());
        planner.plan(row(2, "a@x.io", "Lee")).expect("plan");
        let p = planner.plan(row(9, "A@X.IO", "Lee")).expect("plan");
        let Step::Invalid(msg) = p.step else {
            panic!("expected invalid")
        };
        assert!(msg.contains("duplicate of line 2"), "{msg}");
    }

    #[test]
    fn only_failed_sends_just_the_failed_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let w = store.writer().expect("writer");
        w.send(Op::Failed(Key::new(1, "b@x.io")));
        w.finish().expect("finish");
        let index = store.build_index().expect("index");
        let mut planner = Planner::new(
            &store,
            &index,
            Options {
                force: false,
                only_failed: true,
            },
        );
        let got = actions(
            &mut planner,
            vec![row(2, "a@x.io", "Lee"), row(3, "b@x.io", "Lee")],
        );
        assert_eq!(got, vec![Action::Unchanged, Action::Create]);
    }
}
