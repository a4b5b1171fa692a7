//! What became of one input row: a line of the report (which row, its action and status, the
//! customer id, the HTTP status, a message) and the change it implies for the state store.
//!
//! Every [`Outcome`] is built here, by one constructor per way a row can end, so the report's
//! vocabulary lives in one file. The planner, the executor and the pipeline make outcomes; the
//! report and the state writer read them; neither side imports the other. A new status is a
//! variant of [`Status`] and a change to the constructors here.

use crate::api::ApiError;
use crate::customer::{Change, Customer, Fields, Key, joined};
use crate::state::Entry;

/// What a row amounts to; the report's `action` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Invalid,
}

impl Action {
    /// The report's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Invalid => "invalid",
        }
    }
}

/// The report's `status` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// A dry run's row: what would be done.
    Planned,
    Ok,
    /// Rejected before sending (action `invalid`).
    Invalid,
    /// Refused by the API, or out of retries.
    Failed,
    /// Without a confirmed outcome: never sent because the run stopped (interrupt,
    /// `--max-errors`, `--max-absent`, an outage, a fatal error), or sent without an answer
    /// before it did (in doubt; the next run resolves it).
    NotSent,
}

impl Status {
    /// The report's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Ok => "ok",
            Status::Invalid => "invalid",
            Status::Failed => "failed",
            Status::NotSent => "not_sent",
        }
    }
}

/// Which input row an outcome is about: the report's first three columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowRef {
    /// The line in the file (the header is line 1).
    pub line: u64,
    /// As normalised, or as read when the row is invalid.
    pub email: String,
    /// `None` when an invalid row has no readable website.
    pub website_id: Option<u32>,
}

/// A change the state store must record for a row.
#[derive(Debug)]
pub enum StateChange {
    /// The API confirmed this mapping (or an unchanged row's hash is refreshed); the fields,
    /// when given, are the values sent.
    Confirmed(Key, Entry, Option<Fields>),
    /// The API refused the row or retries ran out: remembered for `--only-failed`.
    Failed(Key),
}

/// Why a row was not sent at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The user interrupted the run.
    Interrupted,
    /// `--max-errors` was reached.
    TooManyErrors,
    /// A fatal error (authentication, a wrong base path) stopped the run.
    Stopped,
    /// The shop stopped answering (`--outage-after`).
    Outage,
    /// More customers are absent from the file than `--max-absent` allows.
    TooManyAbsent,
    /// `--delete-absent` would delete more customers than `--max-deletes`.
    TooManyDeletes,
    /// Bulks an earlier run submitted are still open in the shop's queue.
    BulksOpen,
}

impl Skip {
    /// The report's message for a row not sent for this reason.
    fn message(self) -> &'static str {
        match self {
            Skip::Interrupted => "not sent: the run was interrupted",
            Skip::TooManyErrors => "not sent: stopped after --max-errors failed rows",
            Skip::Stopped => "not sent: the run stopped on a fatal error",
            Skip::Outage => "not sent: the shop stopped answering (--outage-after)",
            Skip::TooManyAbsent => {
                "not sent: more customers are absent from the file than --max-absent allows"
            }
            Skip::TooManyDeletes => {
                "not sent: more customers are absent from the file than --max-deletes allows to delete"
            }
            Skip::BulksOpen => {
                "not sent: bulks an earlier run submitted are still open in the shop's queue"
            }
        }
    }
}

/// What the API confirmed for a row, as the executor hands it over.
#[derive(Debug)]
pub struct Saved {
    pub key: Key,
    pub entry: Entry,
    /// The values sent, for the state store.
    pub fields: Option<Fields>,
    /// What the report says beyond the changes (an adoption, a re-creation); may be empty.
    pub note: String,
    /// The fields the write changed, when known.
    pub changes: Vec<Change>,
}

/// What became of one input row; see the module doc. Built only by the constructors below.
#[derive(Debug)]
pub struct Outcome {
    row: RowRef,
    action: Action,
    status: Status,
    customer_id: Option<u64>,
    http_status: Option<u16>,
    message: String,
    /// An update's changed fields, as data; `message` has them joined.
    changes: Vec<Change>,
    /// A create's customer, for reports that show a new customer's values.
    created: Option<Box<Customer>>,
    state: Option<StateChange>,
}

impl Outcome {
    /// A row refused before sending: a bad value, or a key the file already named.
    pub fn invalid(row: RowRef, message: String) -> Self {
        Outcome {
            row,
            action: Action::Invalid,
            status: Status::Invalid,
            customer_id: None,
            http_status: None,
            message,
            changes: Vec::new(),
            created: None,
            state: None,
        }
    }

    /// A row that needs nothing sent. `note` says why when it is not the same payload;
    /// `refresh` is a new hash to record for it (not in a dry run, which changes no state).
    pub fn unchanged(
        row: RowRef,
        customer_id: Option<u64>,
        note: Option<&'static str>,
        refresh: Option<(Key, Entry)>,
        dry_run: bool,
    ) -> Self {
        Outcome {
            row,
            action: Action::Unchanged,
            status: if dry_run { Status::Planned } else { Status::Ok },
            customer_id,
            http_status: None,
            message: note.unwrap_or_default().to_owned(),
            changes: Vec::new(),
            created: None,
            state: refresh
                .filter(|_| !dry_run)
                .map(|(key, entry)| StateChange::Confirmed(key, entry, None)),
        }
    }

    /// A dry run's create of `customer`.
    pub fn would_create(row: RowRef, customer: Box<Customer>) -> Self {
        Outcome {
            row,
            action: Action::Create,
            status: Status::Planned,
            customer_id: None,
            http_status: None,
            message: String::new(),
            changes: Vec::new(),
            created: Some(customer),
            state: None,
        }
    }

    /// A dry run's update of `customer_id`; `changes` is empty when the values sent last are
    /// not known. `note` says why it is sent when that is not only its changes.
    pub fn would_update(
        row: RowRef,
        customer_id: u64,
        changes: Vec<Change>,
        note: Option<&str>,
    ) -> Self {
        let message = match note {
            None if changes.is_empty() => {
                "changed since the last sync (the values sent then are not known)".to_owned()
            }
            note => with_changes(note.unwrap_or_default(), &changes),
        };
        Outcome {
            row,
            action: Action::Update,
            status: Status::Planned,
            customer_id: Some(customer_id),
            http_status: None,
            message,
            changes,
            created: None,
            state: None,
        }
    }

    /// The API saved the row's customer: the mapping to record, the values sent, the note and
    /// changes for the report. `created` is the customer of a create.
    pub fn saved(
        row: RowRef,
        action: Action,
        saved: Saved,
        created: Option<Box<Customer>>,
    ) -> Self {
        let Saved {
            key,
            entry,
            fields,
            note,
            changes,
        } = saved;
        let message = with_changes(&note, &changes);
        Outcome {
            row,
            action,
            status: Status::Ok,
            customer_id: Some(entry.customer_id),
            http_status: Some(200),
            message,
            changes,
            created,
            state: Some(StateChange::Confirmed(key, entry, fields)),
        }
    }

    /// The API refused the row, or its retries ran out; the report carries the API's own
    /// message. A row whose request was cut short by the run stopping has no confirmed outcome:
    /// it is `not_sent` (its key stays marked, so that `--only-failed` sends it again).
    pub fn failed(
        row: RowRef,
        action: Action,
        key: Key,
        customer_id: Option<u64>,
        error: &ApiError,
    ) -> Self {
        let message = match error {
            ApiError::Status { message, .. } => message.clone(),
            other => other.to_string(),
        };
        let status = match error {
            ApiError::Interrupted { .. } => Status::NotSent,
            _ => Status::Failed,
        };
        Outcome {
            row,
            action,
            status,
            customer_id,
            http_status: error.status(),
            message,
            changes: Vec::new(),
            created: None,
            state: Some(StateChange::Failed(key)),
        }
    }

    /// The same, without marking its key failed: nothing of it reached the shop.
    pub fn unmarked(self) -> Self {
        Outcome {
            state: None,
            ..self
        }
    }

    /// A row to send that was not sent, because the run is stopping.
    pub fn skipped(row: RowRef, action: Action, why: Skip) -> Self {
        Outcome {
            row,
            action,
            status: Status::NotSent,
            customer_id: None,
            http_status: None,
            message: why.message().to_owned(),
            changes: Vec::new(),
            created: None,
            state: None,
        }
    }

    /// The same row, its failure put down to the run stopping (`why`) instead: `not_sent`,
    /// with what happened to its request in the message, and not remembered as failed (no
    /// row fails because of an outage; the next run sends it as it would any unsent row).
    pub fn unconfirmed(self, why: Skip) -> Self {
        Outcome {
            status: Status::NotSent,
            message: format!("{}; {}", why.message(), self.message),
            state: self.state.filter(|s| !matches!(s, StateChange::Failed(_))),
            ..self
        }
    }

    /// Which row this is.
    pub fn row(&self) -> &RowRef {
        &self.row
    }

    /// The report's `action`.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The report's `status`.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The customer's id in the shop, when known.
    pub fn customer_id(&self) -> Option<u64> {
        self.customer_id
    }

    /// The HTTP status of the answer that decided the row, if one did.
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// The report's `message`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The fields an update changes (or changed), as data; empty for other rows.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The customer a create sends (or sent); `None` for other rows.
    pub fn created(&self) -> Option<&Customer> {
        self.created.as_deref()
    }

    /// The state change, for the state writer (once the report has the row).
    pub fn into_state(self) -> Option<StateChange> {
        self.state
    }
}

/// A write's message: its note, then its changes (`note: field: old -> new; ...`).
fn with_changes(note: &str, changes: &[Change]) -> String {
    match (note.is_empty(), changes.is_empty()) {
        (_, true) => note.to_owned(),
        (true, false) => joined(changes),
        (false, false) => format!("{note}: {}", joined(changes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> RowRef {
        RowRef {
            line: 2,
            email: "a@x.io".into(),
            website_id: Some(1),
        }
    }

    fn entry() -> Entry {
        Entry {
            customer_id: 7,
            payload_hash: 1,
            synced_at: 0,
            address_id: None,
            further_address_ids: Vec::new(),
        }
    }

    fn change(field: &str, old: Option<&str>, new: &str) -> Change {
        Change {
            field: field.into(),
            old: old.map(Into::into),
            new: new.into(),
        }
    }

    fn saved(note: &str, changes: Vec<Change>) -> Saved {
        Saved {
            key: Key::new(1, "a@x.io"),
            entry: entry(),
            fields: None,
            note: note.into(),
            changes,
        }
    }

    fn customer() -> Box<Customer> {
        Box::new(Customer {
            email: "a@x.io".into(),
            firstname: "A".into(),
            lastname: "Å".into(),
            website_id: 1,
            ..Customer::default()
        })
    }

    #[test]
    fn each_way_a_row_ends_has_its_columns() {
        let key = Key::new(1, "a@x.io");
        let refused = ApiError::Status {
            status: 400,
            message: "Invalid value of \"x\" provided for the dob field.".into(),
            retry_after: None,
        };
        let interrupted = ApiError::Interrupted {
            detail: "the answer did not come before the run stopped".into(),
        };
        // (outcome, action, status, customer_id, http_status, message, has a state change)
        let cases = [
            (
                Outcome::invalid(row(), "line 2: email: missing".into()),
                Action::Invalid,
                Status::Invalid,
                None,
                None,
                "line 2: email: missing",
                false,
            ),
            (
                Outcome::unchanged(row(), Some(7), None, None, false),
                Action::Unchanged,
                Status::Ok,
                Some(7),
                None,
                "",
                false,
            ),
            (
                Outcome::unchanged(row(), Some(7), None, Some((key.clone(), entry())), false),
                Action::Unchanged,
                Status::Ok,
                Some(7),
                None,
                "",
                true,
            ),
            (
                Outcome::unchanged(
                    row(),
                    Some(7),
                    Some("n"),
                    Some((key.clone(), entry())),
                    true,
                ),
                Action::Unchanged,
                Status::Planned,
                Some(7),
                None,
                "n",
                false,
            ),
            (
                Outcome::would_create(row(), customer()),
                Action::Create,
                Status::Planned,
                None,
                None,
                "",
                false,
            ),
            (
                Outcome::would_update(row(), 7, Vec::new(), None),
                Action::Update,
                Status::Planned,
                Some(7),
                None,
                "changed since the last sync (the values sent then are not known)",
                false,
            ),
            (
                Outcome::would_update(
                    row(),
                    7,
                    vec![change("a", Some("1"), "2"), change("b", None, "4")],
                    Some("sent again"),
                ),
                Action::Update,
                Status::Planned,
                Some(7),
                None,
                "sent again: a: 1 -> 2; b: (none) -> 4",
                false,
            ),
            (
                Outcome::saved(row(), Action::Create, saved("n", vec![]), Some(customer())),
                Action::Create,
                Status::Ok,
                Some(7),
                Some(200),
                "n",
                true,
            ),
            (
                Outcome::failed(row(), Action::Update, key.clone(), Some(7), &refused),
                Action::Update,
                Status::Failed,
                Some(7),
                Some(400),
                "Invalid value of \"x\" provided for the dob field.",
                true,
            ),
            (
                Outcome::failed(row(), Action::Update, key.clone(), Some(7), &interrupted),
                Action::Update,
                Status::NotSent,
                Some(7),
                None,
                "the answer did not come before the run stopped",
                true,
            ),
            (
                Outcome::failed(row(), Action::Create, key.clone(), None, &interrupted).unmarked(),
                Action::Create,
                Status::NotSent,
                None,
                None,
                "the answer did not come before the run stopped",
                false,
            ),
            (
                Outcome::skipped(row(), Action::Create, Skip::TooManyErrors),
                Action::Create,
                Status::NotSent,
                None,
                None,
                "not sent: stopped after --max-errors failed rows",
                false,
            ),
            (
                Outcome::skipped(row(), Action::Update, Skip::Outage),
                Action::Update,
                Status::NotSent,
                None,
                None,
                "not sent: the shop stopped answering (--outage-after)",
                false,
            ),
        ];
        let lost = Outcome::failed(row(), Action::Create, key.clone(), None, &refused)
            .unconfirmed(Skip::Outage);
        assert_eq!(lost.status(), Status::NotSent);
        assert_eq!(
            lost.message(),
            "not sent: the shop stopped answering (--outage-after); \
             Invalid value of \"x\" provided for the dob field."
        );
        assert!(lost.into_state().is_none(), "not remembered as failed");
        for (o, action, status, customer_id, http_status, message, state) in cases {
            let what = format!("{o:?}");
            assert_eq!(o.row(), &row(), "{what}");
            assert_eq!(
                (
                    o.action(),
                    o.status(),
                    o.customer_id(),
                    o.http_status(),
                    o.message()
                ),
                (action, status, customer_id, http_status, message),
                "{what}"
            );
            assert_eq!(o.into_state().is_some(), state, "{what}");
        }
    }

    #[test]
    fn a_saved_rows_message_joins_its_note_and_changes() {
        let two = || {
            vec![
                change("city", Some("Lund"), "Malmö"),
                change("dob", None, "1990-01-02"),
            ]
        };
        // (note, changes) -> message
        let cases = [
            ("", vec![], ""),
            ("created again as 9", vec![], "created again as 9"),
            ("", two(), "city: Lund -> Malmö; dob: (none) -> 1990-01-02"),
            (
                "adopted existing customer 7 and updated it",
                two(),
                "adopted existing customer 7 and updated it: city: Lund -> Malmö; dob: (none) -> 1990-01-02",
            ),
        ];
        for (note, changes, want) in cases {
            let o = Outcome::saved(row(), Action::Update, saved(note, changes.clone()), None);
            assert_eq!(
                (o.message(), o.changes()),
                (want, changes.as_slice()),
                "{note:?}"
            );
            assert!(o.created().is_none());
        }
        let created = Outcome::would_create(row(), customer());
        assert_eq!(created.created().map(|c| c.lastname.as_str()), Some("Å"));
    }
}
