//! The diff: what each input record needs, given what the state store remembers.
//!
//! [`decide`] is the decision for one row, a function of the row, what the store knows of its
//! key (read through [`Lookup`]) and the [`Options`]: unknown key -> create, known key with
//! another payload hash -> update, same hash -> unchanged; when the hash differs, the values
//! last sent decide. A known key whose last update or delete is in doubt (its answer was lost)
//! is an update whatever its hash: the shop may not hold what the store says it confirmed.
//! [`Planner`] adds what only the whole file knows: several rows of one key
//! send one of them (the first, or the last that a first pass over the file found, as
//! [`OnDuplicate`] says) or none, the others invalid, each naming the line that was used; and
//! it gathers the keys the file names, for the absent check ([`crate::absent`]).
//!
//! The planner reads the store only through [`Lookup`], generically: the sync plans a million
//! rows against the index in a second or two, the tests plan against a map.

use std::collections::hash_map;

use secrecy::SecretString;

use crate::customer::{Change, Customer, Key};
use crate::input::{Record, Row, Same};
use crate::outcome::{Action, RowRef};
use crate::state::{Doubt, Entry, Lookup, StateError};

mod keys;

pub use keys::{Duplicates, FileKeys};
use keys::{HashMap, HashSet, Named, email_digest};

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
        /// An earlier create of the key is in doubt ([`Doubt::Create`]): look for the
        /// customer by its key before creating one.
        recheck: bool,
    },
    /// PUT the full desired record to the known id.
    Update {
        customer: Box<Customer>,
        entry: Entry,
        hash: u128,
        /// The fields that change, for the report; empty when the old values are not known.
        changes: Vec<Change>,
        /// The address changed (or is not known to be the same), so the PUT must carry it.
        send_address: bool,
        /// The key's last write is in doubt: why the row is sent whatever its hash.
        doubt: Option<Doubt>,
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

    /// Whether the step needs a request: a create or an update.
    pub fn sends(&self) -> bool {
        matches!(self, Step::Create { .. } | Step::Update { .. })
    }

    /// The key an update writes: what must be marked in doubt before it is sent.
    pub fn updated_key(&self) -> Option<Key> {
        match self {
            Step::Update { customer, .. } => Some(customer.key()),
            _ => None,
        }
    }

    /// The key of a create under `--key custom:<code>`, to mark in doubt before it leaves.
    pub fn custom_created_key(&self) -> Option<Key> {
        match self {
            Step::Create { customer, .. } if customer.key_attribute.is_some() => {
                Some(customer.key())
            }
            _ => None,
        }
    }

    /// A create under a custom key that first looks for its customer by the key: one request
    /// at a time, since a bulk cannot look first.
    pub fn looks_first(&self) -> bool {
        matches!(self, Step::Create { customer, recheck: true, .. } if customer.key_attribute.is_some())
    }
}

/// Options that change decisions.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Send every valid row, even when unchanged.
    pub force: bool,
    /// Send only keys that failed in an earlier run.
    pub only_failed: bool,
    /// Which of several rows of one key is sent.
    pub on_duplicate: OnDuplicate,
}

/// Which of several valid rows of one key is sent (`--on-duplicate`); the others are invalid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnDuplicate {
    /// The first, as the file is read.
    #[default]
    First,
    /// The last: a first pass over the file finds it ([`Duplicates::scan`]).
    Last,
    /// None of them.
    Error,
}

/// Plans records one by one, remembering the keys already seen in this file.
pub struct Planner<'a, S> {
    state: &'a S,
    options: Options,
    /// The keys of the store seen, by their place in its index (see [`Named`]).
    named: Named,
    /// Other keys: key digest -> first line.
    seen: HashMap<u64, u64>,
    /// Keys of invalid rows whose email and website could still be read.
    mentioned: HashSet<u64>,
    /// Invalid rows whose key cannot be known.
    unkeyed: u64,
    /// The e-mails the file names, under a custom key (see [`FileKeys::names_email`]).
    emails: HashSet<u64>,
    /// Under `--on-duplicate last|error`: the keys several rows name.
    duplicates: Duplicates,
    /// The row hashes the index should learn.
    rows: RowHashes,
}

/// What a run learns of its rows' hashes, for the index (see `state/index.rs`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RowHashes {
    /// Key digest -> the row hash to remember (0: forget it): rows found unchanged by their
    /// values, and keys the run updates (until their write is confirmed).
    pub found: Vec<(u64, u64)>,
    /// Key digest, row hash and payload hash of each row sent. Its row hash is remembered
    /// only if the store then holds that payload hash (the write was confirmed): a first
    /// re-run after a migration then takes the fast path, not a failed write's row.
    pub sent: Vec<(u64, u64, u128)>,
}

impl RowHashes {
    /// Nothing to learn.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty() && self.sent.is_empty()
    }
}

impl<'a, S: Lookup> Planner<'a, S> {
    /// A planner over what the state store knows.
    pub fn new(state: &'a S, options: Options) -> Self {
        Planner {
            state,
            options,
            named: Named::new(state.index()),
            seen: HashMap::default(),
            mentioned: HashSet::default(),
            unkeyed: 0,
            emails: HashSet::default(),
            duplicates: Duplicates::default(),
            rows: RowHashes::default(),
        }
    }

    /// The planner with the duplicated keys of a first pass (see [`OnDuplicate`]).
    pub fn with_duplicates(self, duplicates: Duplicates) -> Self {
        Planner { duplicates, ..self }
    }

    /// Every key the file named, once it has all been planned.
    pub fn into_keys(self) -> FileKeys {
        FileKeys {
            named: self.named,
            valid: self.seen,
            invalid: self.mentioned,
            unkeyed: self.unkeyed,
            emails: self.emails,
        }
    }

    /// Decides what a record needs.
    pub fn plan(&mut self, record: Record) -> Result<Planned, StateError> {
        self.plan_hashed(record, 0)
    }

    /// Decides what a record with row hash `row_hash` (0: none) needs, and notes what the
    /// index should remember of the row: its hash when it is unchanged, none when it is sent.
    pub fn plan_hashed(&mut self, record: Record, row_hash: u64) -> Result<Planned, StateError> {
        let row = match record {
            Record::Invalid(i) => {
                // An invalid row whose key can still be read keeps its customer from
                // counting as absent.
                match &i.key {
                    Some(key) => {
                        self.mentioned.insert(key.digest());
                    }
                    None => self.unkeyed += 1,
                }
                if let Some(website_id) = i.website_id {
                    self.emails.insert(email_digest(website_id, &i.email));
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
            Record::Same(same) => return Ok(self.same(same, row_hash)),
            Record::Valid(row) => *row,
        };
        let key = row.customer.key();
        let digest = key.digest();
        let attribute = row.customer.key_attribute.as_deref();
        if attribute.is_some() {
            self.emails
                .insert(email_digest(key.website_id, &row.customer.email));
        }
        let at = self.named.at(digest);
        if let Some(message) = self.duplicate(row.line, (digest, at), key.website_id, attribute) {
            return Ok(Planned {
                row: RowRef {
                    line: row.line,
                    email: row.customer.email,
                    website_id: Some(key.website_id),
                },
                step: Step::Invalid(message),
            });
        }
        let planned = decide(row, key, self.state, self.options)?;
        match &planned.step {
            Step::Unchanged { note: None, .. } if row_hash != 0 => {
                self.rows.found.push((digest, row_hash));
            }
            Step::Update { hash, .. } => {
                self.rows.found.push((digest, 0));
                if row_hash != 0 {
                    self.rows.sent.push((digest, row_hash, *hash));
                }
            }
            Step::Create { hash, .. } if row_hash != 0 => {
                self.rows.sent.push((digest, row_hash, *hash));
            }
            _ => {}
        }
        Ok(planned)
    }

    /// A row the reader found unchanged by its row hash (or by its values hash, and then
    /// `row_hash` is its row hash, for the index to learn): unchanged, as by its payload
    /// hash, unless it is a duplicate.
    fn same(&mut self, same: Same, row_hash: u64) -> Planned {
        let Same {
            line,
            email,
            website_id,
            digest,
            customer_id,
            at,
            key_attribute,
        } = same;
        // Where the reader found the key: in this same index (see `sync/read.rs`).
        let at = self.named.index.as_ref().and(Some(at));
        let attribute = key_attribute.as_deref();
        if attribute.is_some() {
            self.emails.insert(email_digest(website_id, &email));
        }
        let duplicate = self.duplicate(line, (digest, at), website_id, attribute);
        if duplicate.is_none() && row_hash != 0 {
            self.rows.found.push((digest, row_hash));
        }
        Planned {
            row: RowRef {
                line,
                email,
                website_id: Some(website_id),
            },
            step: match duplicate {
                Some(message) => Step::Invalid(message),
                None => Step::Unchanged {
                    customer_id: Some(customer_id),
                    note: None,
                    refresh: None,
                },
            },
        }
    }

    /// Why the row on `line` with key `digest` (at `at` in the index) is a duplicate of
    /// another, if it is; else the key is now taken by this row. `attribute` is the custom
    /// key's, if any.
    fn duplicate(
        &mut self,
        line: u64,
        (digest, at): (u64, Option<usize>),
        website_id: u32,
        attribute: Option<&str>,
    ) -> Option<String> {
        // The line this row is a duplicate of, and what is said of it.
        let used = match (
            self.options.on_duplicate,
            self.duplicates.lines.get(&digest),
        ) {
            (OnDuplicate::Last, Some(&(_, last))) if line < last => Some((last, "")),
            (OnDuplicate::Error, Some(&(first, last))) => {
                let other = if line == first { last } else { first };
                Some((other, "; --on-duplicate error sends none of them"))
            }
            _ => None,
        };
        let (other, note) = match used {
            Some(used) => {
                // The used line (or none) names the key; this row still keeps it from absence.
                self.mentioned.insert(digest);
                used
            }
            None => {
                let first = match at.filter(|&at| at < self.named.lines.len()) {
                    Some(at) => self.named.take(at, line),
                    None => match self.seen.entry(digest) {
                        hash_map::Entry::Occupied(first) => Some(*first.get()),
                        hash_map::Entry::Vacant(v) => {
                            v.insert(line);
                            None
                        }
                    },
                };
                (first?, "")
            }
        };
        let column = match attribute {
            Some(code) => format!("custom:{code}"),
            None => "email".to_owned(),
        };
        Some(format!(
            "line {line}: {column}: duplicate of line {other} (same website_id {website_id} and {}{note})",
            attribute.unwrap_or("email")
        ))
    }

    /// What the index should remember of the rows planned so far (see [`Index::set_rows`]),
    /// taken.
    ///
    /// [`Index::set_rows`]: crate::state::Index::set_rows
    pub fn take_row_hashes(&mut self) -> RowHashes {
        std::mem::take(&mut self.rows)
    }
}

/// The note of a row `--only-failed` passes over.
const PASSED_OVER: &str = "not sent: --only-failed and this row did not fail before";
/// The same, for a row whose key the store lacks.
const PASSED_OVER_NEW: &str = "not sent: --only-failed and this row did not fail before, \
     though its customer was never created (a run without --only-failed creates it)";

/// The decision for a valid row whose key `key` (its customer's) is the first of its kind in
/// the file: a function of the row, what `state` knows of the key, and the options. It reads
/// no more of the store than it must: nothing beyond [`Lookup::known`] and
/// [`Lookup::in_doubt`] for an unchanged row.
pub fn decide<S: Lookup>(
    row: Row,
    key: Key,
    state: &S,
    options: Options,
) -> Result<Planned, StateError> {
    let Row {
        line,
        customer,
        password,
    } = row;
    let website_id = Some(customer.website_id);
    let hash = customer.payload_hash();
    let digest = key.digest();
    let known = state.known(digest);
    let doubt = state.in_doubt(digest);
    // What may pass as unchanged: not forced, and not in doubt.
    let settled = !options.force && doubt.is_none();
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
    if let Some(k) = known
        && k.matches(hash)
        && settled
        && !options.only_failed
    {
        return Ok(unchanged(customer, Some(k.customer_id), None, None));
    }
    // Every key of the store is known, and no row before this one wrote this key (a second
    // row of a key is a duplicate): a key not known is not in the store either.
    let entry = match known {
        Some(_) => state.entry(&key)?,
        None => None,
    };
    // A write in doubt is as good as a failure: `--only-failed` sends it too.
    if options.only_failed && doubt.is_none() && !state.is_failed(&key)? {
        // A key the store lacks is not in the shop as far as anyone knows (rows an outage
        // left unsent are not failed): say so, rather than let it pass for up to date.
        let note = match entry {
            Some(_) => PASSED_OVER,
            None => PASSED_OVER_NEW,
        };
        return Ok(unchanged(
            customer,
            entry.map(|e| e.customer_id),
            Some(note),
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
                    recheck: doubt == Some(Doubt::Create),
                },
            });
        }
        Some(e) if e.payload_hash == hash && settled => {
            return Ok(unchanged(customer, Some(e.customer_id), None, None));
        }
        Some(e) => e,
    };
    // The hash is the fast path; the values last sent decide.
    let sent = state.fields(&key)?;
    let changes = sent
        .as_ref()
        .map(|k| customer.changes(k))
        .unwrap_or_default();
    if sent.is_some() && changes.is_empty() && settled {
        let refresh = Some((
            key,
            Entry {
                payload_hash: hash,
                ..e
            },
        ));
        return Ok(unchanged(customer, Some(e.customer_id), None, refresh));
    }
    let send_address = customer.has_addresses()
        && (!settled || sent.as_ref().is_none_or(|k| customer.address_changes(k)));
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
            doubt,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::customer::{Address, Fields};
    use crate::input::InvalidRow;
    use crate::state::Known;
    use crate::state::lookup::memory::Memory;

    const ID: u64 = 7;

    fn ann(lastname: &str) -> Customer {
        Customer {
            email: "ann@x.io".into(),
            firstname: "Ann".into(),
            lastname: lastname.into(),
            website_id: 1,
            ..Customer::default()
        }
    }

    fn living_in(mut c: Customer, city: &str) -> Customer {
        c.address = Some(Address {
            street: vec!["1 Main St".into()],
            city: city.into(),
            postcode: "10115".into(),
            country_id: "DE".into(),
            region: None,
            telephone: "123".into(),
            company: None,
            shop_region: None,
        });
        c
    }

    fn valid(line: u64, customer: Customer) -> Record {
        Record::Valid(Box::new(Row {
            line,
            customer,
            password: None,
        }))
    }

    fn invalid(line: u64, email: &str, website_id: Option<u32>) -> Record {
        Record::Invalid(InvalidRow {
            line,
            email: email.into(),
            website_id,
            message: format!("line {line}: bad"),
            key: website_id
                .filter(|_| crate::input::check_email(email).is_ok())
                .map(|w| Key::new(w, email)),
        })
    }

    fn entry(payload_hash: u128) -> Entry {
        Entry {
            customer_id: ID,
            payload_hash,
            synced_at: 0,
            address_id: None,
            further_address_ids: Vec::new(),
        }
    }

    /// The store remembers `c` as synced: its hash and values.
    fn synced(m: &mut Memory, c: &Customer) {
        m.put(c.key(), entry(c.payload_hash()), Some(c.fields()));
    }

    /// The store has a mapping for `c` whose values were never known (an `import`).
    fn mapped(m: &mut Memory, c: &Customer) {
        m.put(c.key(), entry(c.payload_hash() ^ 1), None);
    }

    /// The store has `c`'s values from the shop, but no hash (a `pull`).
    fn pulled(m: &mut Memory, c: &Customer) {
        m.put(c.key(), entry(0), Some(c.fields()));
    }

    /// The store has Ann Lee synced: most cases start from her.
    fn lee_synced(m: &mut Memory) {
        synced(m, &ann("Lee"));
    }

    /// Ann Lee synced, and her last sync failed.
    fn lee_failed(m: &mut Memory) {
        lee_synced(m);
        m.fail(ann("Lee").key());
    }

    /// Ann Lee synced, and her last update in doubt.
    fn lee_in_doubt(m: &mut Memory) {
        lee_synced(m);
        m.doubt(ann("Lee").key(), Doubt::Update);
    }

    /// A step, summed up for comparison.
    #[derive(Debug, Clone, PartialEq)]
    enum Want {
        Create,
        Update {
            changes: Vec<String>,
            send_address: bool,
            doubt: Option<Doubt>,
        },
        Unchanged {
            customer_id: Option<u64>,
            note: Option<&'static str>,
            refresh: bool,
        },
        Invalid(String),
    }

    const SAME: Want = Want::Unchanged {
        customer_id: Some(ID),
        note: None,
        refresh: false,
    };
    const NOT_FAILED: Option<&str> = Some(PASSED_OVER);

    fn update(changes: &[&'static str], send_address: bool) -> Want {
        Want::Update {
            changes: changes.iter().map(|c| (*c).to_owned()).collect(),
            send_address,
            doubt: None,
        }
    }

    /// An update sent again because the key's last `doubt` write is in doubt.
    fn resend(doubt: Doubt, changes: &[&'static str], send_address: bool) -> Want {
        Want::Update {
            changes: changes.iter().map(|c| (*c).to_owned()).collect(),
            send_address,
            doubt: Some(doubt),
        }
    }

    /// Plans `records` in order, each step summed up.
    fn plan_all<S: Lookup>(
        planner: &mut Planner<'_, S>,
        records: impl IntoIterator<Item = Record>,
    ) -> Vec<Want> {
        records
            .into_iter()
            .map(|r| sum_up(&planner.plan(r).expect("the fake does not fail")))
            .collect()
    }

    fn sum_up(p: &Planned) -> Want {
        match &p.step {
            Step::Invalid(m) => Want::Invalid(m.clone()),
            Step::Create { .. } => Want::Create,
            Step::Update {
                changes,
                send_address,
                entry,
                doubt,
                ..
            } => {
                assert_eq!(entry.customer_id, ID);
                Want::Update {
                    changes: changes.iter().map(ToString::to_string).collect(),
                    send_address: *send_address,
                    doubt: *doubt,
                }
            }
            Step::Unchanged {
                customer_id,
                note,
                refresh,
            } => Want::Unchanged {
                customer_id: *customer_id,
                note: *note,
                refresh: refresh.is_some(),
            },
        }
    }

    const FORCE: Options = Options {
        force: true,
        only_failed: false,
        on_duplicate: OnDuplicate::First,
    };
    const ONLY_FAILED: Options = Options {
        force: false,
        only_failed: true,
        on_duplicate: OnDuplicate::First,
    };
    const NONE: Options = Options {
        force: false,
        only_failed: false,
        on_duplicate: OnDuplicate::First,
    };

    /// A case: the store before, the options, the file, and what each row needs.
    type Case = (
        &'static str,
        fn(&mut Memory),
        Options,
        Vec<Record>,
        Vec<Want>,
    );

    #[test]
    fn decisions() {
        let cases: Vec<Case> = vec![
            (
                "a new key is created",
                |_| {},
                NONE,
                vec![valid(2, ann("Lee"))],
                vec![Want::Create],
            ),
            (
                "a known key with the same hash is unchanged",
                lee_synced,
                NONE,
                vec![valid(2, ann("Lee"))],
                vec![SAME],
            ),
            (
                "a changed hash is an update naming the changes",
                lee_synced,
                NONE,
                vec![valid(2, ann("Park"))],
                vec![update(&["lastname: Lee -> Park"], false)],
            ),
            (
                "a changed hash with the values sent unknown is an update of everything",
                |m| mapped(m, &ann("Lee")),
                NONE,
                vec![valid(2, ann("Park"))],
                vec![update(&[], false)],
            ),
            (
                "with the values unknown, the address goes too",
                |m| mapped(m, &living_in(ann("Lee"), "Berlin")),
                NONE,
                vec![valid(2, living_in(ann("Lee"), "Bonn"))],
                vec![update(&[], true)],
            ),
            (
                "a changed address goes",
                |m| synced(m, &living_in(ann("Lee"), "Berlin")),
                NONE,
                vec![valid(2, living_in(ann("Lee"), "Bonn"))],
                vec![update(&["city: Berlin -> Bonn"], true)],
            ),
            (
                "an address that did not change stays home",
                |m| synced(m, &living_in(ann("Lee"), "Berlin")),
                NONE,
                vec![valid(
                    2,
                    Customer {
                        taxvat: Some("SE1".into()),
                        ..living_in(ann("Lee"), "Berlin")
                    },
                )],
                vec![update(&["taxvat: (none) -> SE1"], false)],
            ),
            (
                "a new name goes to the address, which carries it",
                |m| synced(m, &living_in(ann("Lee"), "Berlin")),
                NONE,
                vec![valid(2, living_in(ann("Park"), "Berlin"))],
                vec![update(&["lastname: Lee -> Park"], true)],
            ),
            (
                "a pulled mapping with the same values is unchanged, and its hash refreshed",
                |m| pulled(m, &ann("Lee")),
                NONE,
                vec![valid(2, ann("Lee"))],
                vec![Want::Unchanged {
                    customer_id: Some(ID),
                    note: None,
                    refresh: true,
                }],
            ),
            (
                "a pulled mapping with other values is an update naming them",
                |m| pulled(m, &ann("Lee")),
                NONE,
                vec![valid(2, ann("Park"))],
                vec![update(&["lastname: Lee -> Park"], false)],
            ),
            (
                "a row with a field the shop's values lack is an update",
                |m| pulled(m, &ann("Lee")),
                NONE,
                vec![valid(2, living_in(ann("Lee"), "Berlin"))],
                vec![update(
                    &[
                        "city: (none) -> Berlin",
                        "country_id: (none) -> DE",
                        "postcode: (none) -> 10115",
                        "street: (none) -> 1 Main St",
                        "telephone: (none) -> 123",
                    ],
                    true,
                )],
            ),
            (
                "--force sends an unchanged row",
                lee_synced,
                FORCE,
                vec![valid(2, ann("Lee"))],
                vec![update(&[], false)],
            ),
            (
                "--force sends an unchanged address too",
                |m| synced(m, &living_in(ann("Lee"), "Berlin")),
                FORCE,
                vec![valid(2, living_in(ann("Lee"), "Berlin"))],
                vec![update(&[], true)],
            ),
            (
                "--force sends a pulled mapping with the same values",
                |m| pulled(m, &ann("Lee")),
                FORCE,
                vec![valid(2, ann("Lee"))],
                vec![update(&[], false)],
            ),
            (
                "--force creates a new key",
                |_| {},
                FORCE,
                vec![valid(2, ann("Lee"))],
                vec![Want::Create],
            ),
            (
                "--only-failed passes over a key that did not fail",
                lee_synced,
                ONLY_FAILED,
                vec![valid(2, ann("Park"))],
                vec![Want::Unchanged {
                    customer_id: Some(ID),
                    note: NOT_FAILED,
                    refresh: false,
                }],
            ),
            (
                "--only-failed passes over a new key that did not fail, saying so",
                |_| {},
                ONLY_FAILED,
                vec![valid(2, ann("Lee"))],
                vec![Want::Unchanged {
                    customer_id: None,
                    note: Some(PASSED_OVER_NEW),
                    refresh: false,
                }],
            ),
            (
                "--only-failed creates a new key that failed",
                |m| {
                    m.fail(ann("Lee").key());
                },
                ONLY_FAILED,
                vec![valid(2, ann("Lee"))],
                vec![Want::Create],
            ),
            (
                "--only-failed updates a known key that failed",
                lee_failed,
                ONLY_FAILED,
                vec![valid(2, ann("Park"))],
                vec![update(&["lastname: Lee -> Park"], false)],
            ),
            (
                "--only-failed leaves a failed key whose row is what was last saved",
                lee_failed,
                ONLY_FAILED,
                vec![valid(2, ann("Lee"))],
                vec![SAME],
            ),
            (
                "a key whose last update is in doubt is sent again, though unchanged",
                lee_in_doubt,
                NONE,
                vec![valid(2, ann("Lee"))],
                vec![resend(Doubt::Update, &[], false)],
            ),
            (
                "with its address, whose update may be lost too",
                |m| {
                    synced(m, &living_in(ann("Lee"), "Berlin"));
                    m.doubt(ann("Lee").key(), Doubt::Update);
                },
                NONE,
                vec![valid(2, living_in(ann("Lee"), "Berlin"))],
                vec![resend(Doubt::Update, &[], true)],
            ),
            (
                "a key in doubt with changes names them",
                lee_in_doubt,
                NONE,
                vec![valid(2, ann("Park"))],
                vec![resend(Doubt::Update, &["lastname: Lee -> Park"], false)],
            ),
            (
                "a pulled mapping in doubt is sent, not refreshed",
                |m| {
                    pulled(m, &ann("Lee"));
                    m.doubt(ann("Lee").key(), Doubt::Update);
                },
                NONE,
                vec![valid(2, ann("Lee"))],
                vec![resend(Doubt::Update, &[], false)],
            ),
            (
                "a key whose delete is in doubt is sent again",
                |m| {
                    synced(m, &ann("Lee"));
                    m.doubt(ann("Lee").key(), Doubt::Delete);
                },
                NONE,
                vec![valid(2, ann("Lee"))],
                vec![resend(Doubt::Delete, &[], false)],
            ),
            (
                "--only-failed sends a key in doubt that did not fail",
                lee_in_doubt,
                ONLY_FAILED,
                vec![valid(2, ann("Lee"))],
                vec![resend(Doubt::Update, &[], false)],
            ),
            (
                "--force says the key is in doubt",
                lee_in_doubt,
                FORCE,
                vec![valid(2, ann("Lee"))],
                vec![resend(Doubt::Update, &[], false)],
            ),
            (
                "a doubt about a key no longer mapped is nothing: the key is new",
                |m| {
                    m.doubt(ann("Lee").key(), Doubt::Delete);
                },
                NONE,
                vec![valid(2, ann("Lee"))],
                vec![Want::Create],
            ),
            (
                "an invalid row keeps its message",
                lee_synced,
                FORCE,
                vec![invalid(4, "ann@x.io", Some(1))],
                vec![Want::Invalid("line 4: bad".into())],
            ),
            (
                "a key seen before in the file is invalid, naming the first line",
                |_| {},
                NONE,
                vec![
                    valid(2, ann("Lee")),
                    valid(
                        5,
                        Customer {
                            email: " ANN@x.IO ".into(),
                            ..ann("Park")
                        },
                    ),
                ],
                vec![
                    Want::Create,
                    Want::Invalid(
                        "line 5: email: duplicate of line 2 (same website_id 1 and email)".into(),
                    ),
                ],
            ),
            (
                "a duplicate of an unchanged row is still a duplicate",
                lee_synced,
                NONE,
                vec![valid(2, ann("Lee")), valid(3, ann("Lee"))],
                vec![
                    SAME,
                    Want::Invalid(
                        "line 3: email: duplicate of line 2 (same website_id 1 and email)".into(),
                    ),
                ],
            ),
            (
                "the same email in another website is another customer",
                |_| {},
                NONE,
                vec![
                    valid(2, ann("Lee")),
                    valid(
                        3,
                        Customer {
                            website_id: 2,
                            ..ann("Lee")
                        },
                    ),
                ],
                vec![Want::Create, Want::Create],
            ),
            (
                "an invalid row does not make a later valid one a duplicate",
                |_| {},
                NONE,
                vec![invalid(2, "ann@x.io", Some(1)), valid(3, ann("Lee"))],
                vec![Want::Invalid("line 2: bad".into()), Want::Create],
            ),
        ];
        for (name, setup, options, records, want) in cases {
            let mut state = Memory::default();
            setup(&mut state);
            let mut planner = Planner::new(&state, options);
            let got = plan_all(&mut planner, records);
            assert_eq!(got, want, "{name}");
        }
    }

    /// Plans `file` under `mode`, after the first pass that finds its duplicated keys.
    fn plan_file(mode: OnDuplicate, file: impl Fn() -> Vec<Record>) -> (Vec<Want>, FileKeys) {
        let state = Memory::default();
        let duplicates = Duplicates::scan(file().into_iter().map(Ok)).expect("scan");
        let options = Options {
            on_duplicate: mode,
            ..NONE
        };
        let mut planner = Planner::new(&state, options).with_duplicates(duplicates);
        let got = plan_all(&mut planner, file());
        (got, planner.into_keys())
    }

    #[test]
    fn on_duplicate_sends_the_first_the_last_or_none() {
        let park = |line| {
            valid(
                line,
                Customer {
                    email: " ANN@x.IO ".into(),
                    ..ann("Park")
                },
            )
        };
        let file = || {
            vec![
                valid(2, ann("Lee")),
                invalid(3, "ann@x.io", Some(1)),
                park(4),
                valid(5, ann("Kim")),
                valid(
                    6,
                    Customer {
                        website_id: 2,
                        ..ann("Lee")
                    },
                ),
            ]
        };
        let dup = |line: u64, of: u64, note: &str| {
            Want::Invalid(format!(
                "line {line}: email: duplicate of line {of} (same website_id 1 and email{note})"
            ))
        };
        let none = "; --on-duplicate error sends none of them";
        let bad = Want::Invalid("line 3: bad".into());
        for (mode, want) in [
            (
                OnDuplicate::First,
                vec![
                    Want::Create,
                    bad.clone(),
                    dup(4, 2, ""),
                    dup(5, 2, ""),
                    Want::Create,
                ],
            ),
            (
                OnDuplicate::Last,
                vec![
                    dup(2, 5, ""),
                    bad.clone(),
                    dup(4, 5, ""),
                    Want::Create,
                    Want::Create,
                ],
            ),
            (
                OnDuplicate::Error,
                vec![
                    dup(2, 5, none),
                    bad.clone(),
                    dup(4, 2, none),
                    dup(5, 2, none),
                    Want::Create,
                ],
            ),
        ] {
            let (got, keys) = plan_file(mode, file);
            assert_eq!(got, want, "{mode:?}");
            assert!(keys.contains(&Key::new(1, "ann@x.io")), "{mode:?}");
        }
    }

    #[test]
    fn a_broken_copy_counts_as_a_copy_under_last_and_error() {
        // Line 2 is Ann, line 3 a copy with a bad value (its key can still be read).
        let file = || vec![valid(2, ann("Lee")), invalid(3, "ann@x.io", Some(1))];
        let none = "; --on-duplicate error sends none of them";
        let dup = |note: &str| {
            Want::Invalid(format!(
                "line 2: email: duplicate of line 3 (same website_id 1 and email{note})"
            ))
        };
        let bad = Want::Invalid("line 3: bad".into());
        for (mode, want) in [
            (OnDuplicate::First, vec![Want::Create, bad.clone()]),
            (OnDuplicate::Last, vec![dup(""), bad.clone()]),
            (OnDuplicate::Error, vec![dup(none), bad.clone()]),
        ] {
            assert_eq!(plan_file(mode, file).0, want, "{mode:?}");
        }
    }

    /// Ann under `--key custom:legacy_id` with this legacy id and e-mail.
    fn legacy(id: &str, email: &str) -> Customer {
        Customer {
            email: email.into(),
            custom_attributes: vec![("legacy_id".into(), id.into())],
            key_attribute: Some("legacy_id".into()),
            ..ann("Lee")
        }
    }

    #[test]
    fn a_custom_key_follows_the_legacy_id_not_the_email() {
        let mut state = Memory::default();
        synced(&mut state, &legacy("L-1", "ann@x.io"));
        let mut planner = Planner::new(&state, NONE);
        let file = [
            // The e-mail changed: the same customer, updated.
            valid(2, legacy("L-1", "ann.new@x.io")),
            // The old e-mail under another legacy id: another customer.
            valid(3, legacy("L-2", "ann@x.io")),
            // The legacy id again: a duplicate, whatever its e-mail.
            valid(4, legacy("L-1", "other@x.io")),
            // The id differs in case only: another key (Magento keeps the case too).
            valid(5, legacy("l-1", "l1@x.io")),
        ];
        let got = plan_all(&mut planner, file);
        let want = [
            update(&["email: ann@x.io -> ann.new@x.io"], false),
            Want::Create,
            Want::Invalid(
                "line 4: custom:legacy_id: duplicate of line 2 (same website_id 1 and legacy_id)"
                    .into(),
            ),
            Want::Create,
        ];
        assert_eq!(got, want);
        let keys = planner.into_keys();
        assert!(keys.contains(&Key::custom(1, "L-1")));
        assert!(!keys.contains(&Key::new(1, "ann@x.io")));
    }

    #[test]
    fn outcomes_name_the_row() {
        let state = Memory::default();
        let mut planner = Planner::new(&state, NONE);
        let p = planner
            .plan(valid(
                2,
                Customer {
                    email: "Ann@X.io".into(),
                    ..ann("Lee")
                },
            ))
            .expect("plan");
        assert_eq!(
            p.row,
            RowRef {
                line: 2,
                email: "Ann@X.io".into(),
                website_id: Some(1)
            }
        );
        let p = planner
            .plan(invalid(3, "not an email", None))
            .expect("plan");
        assert_eq!((p.row.line, p.row.website_id), (3, None));
        assert_eq!(p.row.email, "not an email");
    }

    #[test]
    fn the_file_keys_hold_valid_and_readable_invalid_rows() {
        let state = Memory::default();
        let mut planner = Planner::new(&state, NONE);
        let records = [
            valid(2, ann("Lee")),
            invalid(3, "bob@x.io", Some(1)),
            invalid(4, "carl@x.io", None),
            invalid(5, "not an email", Some(1)),
        ];
        for r in records {
            planner.plan(r).expect("plan");
        }
        let keys = planner.into_keys();
        assert!(keys.contains(&Key::new(1, "ann@x.io")));
        assert!(keys.contains(&Key::new(1, "BOB@x.io")));
        assert!(!keys.contains(&Key::new(1, "carl@x.io")));
        assert!(!keys.contains(&Key::new(2, "ann@x.io")));
        assert_eq!(keys.unkeyed, 2);
    }

    /// The step of a row on `line` whose e-mail key line `of` named first.
    fn duplicate_of(line: u64, of: u64) -> Want {
        Want::Invalid(format!(
            "line {line}: email: duplicate of line {of} (same website_id 1 and email)"
        ))
    }

    /// Ann's row as the reader gives it when the index knows it as it is.
    fn same(line: u64, customer: &Customer) -> Record {
        Record::Same(Same {
            line,
            email: customer.email.clone(),
            website_id: customer.website_id,
            digest: customer.key().digest(),
            customer_id: ID,
            at: 0,
            key_attribute: customer.key_attribute.clone(),
        })
    }

    #[test]
    fn keys_of_the_index_are_kept_by_their_place_in_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::state::Store::open(&dir.path().join("s")).expect("open");
        let c = |email: &str| Customer {
            email: email.into(),
            ..ann("Lee")
        };
        for email in ["a@x.io", "b@x.io", "c@x.io", "d@x.io"] {
            store
                .put(&c(email).key(), entry(c(email).payload_hash()), None)
                .expect("put");
        }
        let index = Arc::new(store.build_index().expect("index"));
        let doubts = store.doubts().expect("doubts");
        let state = crate::state::Indexed {
            store: &store,
            index: &index,
            doubts: &doubts,
        };
        let same_at = |line, email: &str| {
            let Record::Same(mut s) = same(line, &c(email)) else {
                unreachable!()
            };
            s.at = index.find(s.digest).expect("indexed").0;
            Record::Same(s)
        };
        let mut planner = Planner::new(&state, NONE);
        let file = [
            same_at(2, "a@x.io"),
            valid(3, c("A@x.io")),
            valid(4, c("b@x.io")),
            same_at(5, "b@x.io"),
            valid(6, c("new@x.io")),
            valid(7, c("new@x.io")),
            invalid(8, "c@x.io", Some(1)),
        ];
        let got = plan_all(&mut planner, file);
        let dup = duplicate_of;
        let bad = Want::Invalid("line 8: bad".into());
        assert_eq!(
            got,
            vec![
                SAME,
                dup(3, 2),
                SAME,
                dup(5, 4),
                Want::Create,
                dup(7, 6),
                bad
            ]
        );
        let keys = planner.into_keys();
        for (email, named) in [
            ("a@x.io", true),
            ("b@x.io", true),
            ("c@x.io", true),
            ("d@x.io", false),
            ("new@x.io", true),
            ("other@x.io", false),
        ] {
            assert_eq!(keys.contains(&c(email).key()), named, "{email}");
        }
        assert_eq!(keys.absent_from(&index), 1, "d");
        let copy = store.build_index().expect("index");
        assert_eq!(keys.absent_from(&copy), 1, "another index of the same keys");
    }

    #[test]
    fn a_row_known_by_its_hash_is_unchanged_unless_a_duplicate() {
        let mut m = Memory::default();
        synced(&mut m, &ann("Lee"));
        // Nothing of the store is read for it.
        let state = IndexOnly(m);
        let mut planner = Planner::new(&state, NONE);
        let dup = duplicate_of;
        let file = [
            same(2, &ann("Lee")),
            same(3, &ann("Lee")),
            valid(4, ann("Park")),
        ];
        let got = plan_all(&mut planner, file);
        assert_eq!(got, vec![SAME, dup(3, 2), dup(4, 2)]);
        let p = planner.plan(same(5, &ann("Kim"))).expect("plan");
        assert_eq!(p.row.email, "ann@x.io");
        assert_eq!(p.row.website_id, Some(1));
        assert!(planner.into_keys().contains(&ann("Lee").key()));

        // A valid row first: the hashed one after it is the duplicate.
        let mut planner = Planner::new(&state, NONE);
        planner.plan(valid(2, ann("Lee"))).expect("plan");
        assert_eq!(
            sum_up(&planner.plan(same(3, &ann("Lee"))).expect("plan")),
            dup(3, 2)
        );

        // Under --on-duplicate last, only the last row of a key is used.
        let file = || vec![same(2, &ann("Lee")), valid(3, ann("Lee"))];
        let duplicates = Duplicates::scan(
            [valid(2, ann("Lee")), valid(3, ann("Lee"))]
                .into_iter()
                .map(Ok),
        )
        .expect("scan");
        let options = Options {
            on_duplicate: OnDuplicate::Last,
            ..NONE
        };
        let mut planner = Planner::new(&state, options).with_duplicates(duplicates);
        let got = plan_all(&mut planner, file());
        assert_eq!(got, vec![dup(2, 3), SAME]);
    }

    #[test]
    fn the_index_remembers_unchanged_rows_and_forgets_sent_ones() {
        let mut m = Memory::default();
        for name in ["lee@x.io", "park@x.io", "doubt@x.io", "pulled@x.io"] {
            synced(
                &mut m,
                &Customer {
                    email: name.into(),
                    ..ann("Lee")
                },
            );
        }
        let c = |email: &str, lastname| Customer {
            email: email.into(),
            ..ann(lastname)
        };
        m.doubt(c("doubt@x.io", "Lee").key(), Doubt::Update);
        pulled(&mut m, &c("pulled@x.io", "Lee"));
        let mut planner = Planner::new(&m, NONE);
        let rows = [
            (valid(2, c("lee@x.io", "Lee")), 12),
            (valid(3, c("park@x.io", "Park")), 13),
            (valid(4, c("doubt@x.io", "Lee")), 14),
            (valid(5, c("pulled@x.io", "Lee")), 15),
            (valid(6, c("new@x.io", "Lee")), 16),
            (valid(7, c("lee@x.io", "Lee")), 17),
            (invalid(8, "bad@x.io", Some(1)), 0),
            (same(9, &c("same@x.io", "Lee")), 0),
        ];
        for (record, row_hash) in rows {
            planner.plan_hashed(record, row_hash).expect("plan");
        }
        let digest = |e: &str| Key::new(1, e).digest();
        let hash = |e: &str, lastname| c(e, lastname).payload_hash();
        let learnt = planner.take_row_hashes();
        assert_eq!(
            learnt.found,
            vec![
                (digest("lee@x.io"), 12),
                (digest("park@x.io"), 0),
                (digest("doubt@x.io"), 0),
                (digest("pulled@x.io"), 15),
            ]
        );
        assert_eq!(
            learnt.sent,
            vec![
                (digest("park@x.io"), 13, hash("park@x.io", "Park")),
                (digest("doubt@x.io"), 14, hash("doubt@x.io", "Lee")),
                (digest("new@x.io"), 16, hash("new@x.io", "Lee")),
            ],
            "sent rows, remembered once their write is confirmed"
        );
        // A forced run sends every row: none is remembered unless confirmed.
        let mut planner = Planner::new(&m, FORCE);
        planner
            .plan_hashed(valid(2, c("lee@x.io", "Lee")), 12)
            .expect("plan");
        let learnt = planner.take_row_hashes();
        assert_eq!(learnt.found, vec![(digest("lee@x.io"), 0)]);
        assert_eq!(
            learnt.sent,
            vec![(digest("lee@x.io"), 12, hash("lee@x.io", "Lee"))]
        );
    }

    /// Reads nothing but the index: the store behind it is not there.
    struct IndexOnly(Memory);

    impl Lookup for IndexOnly {
        fn key_count(&self) -> usize {
            self.0.key_count()
        }
        fn known(&self, digest: u64) -> Option<Known> {
            self.0.known(digest)
        }
        fn in_doubt(&self, digest: u64) -> Option<Doubt> {
            self.0.in_doubt(digest)
        }
        fn entry(&self, _: &Key) -> Result<Option<Entry>, StateError> {
            panic!("an entry was read")
        }
        fn fields(&self, _: &Key) -> Result<Option<Fields>, StateError> {
            panic!("field values were read")
        }
        fn is_failed(&self, _: &Key) -> Result<bool, StateError> {
            panic!("a failed mark was read")
        }
    }

    #[test]
    fn unchanged_and_new_rows_cost_no_read_beyond_the_index() {
        let mut m = Memory::default();
        synced(&mut m, &ann("Lee"));
        let state = IndexOnly(m);
        let mut planner = Planner::new(&state, NONE);
        let other_website = Customer {
            website_id: 2,
            ..ann("Lee")
        };
        let got = plan_all(
            &mut planner,
            [valid(2, ann("Lee")), valid(3, other_website)],
        );
        assert_eq!(got, vec![SAME, Want::Create]);
    }
}
