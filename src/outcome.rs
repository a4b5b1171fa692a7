//! What became of one input row: a line of the report (which row, its action and status, the
//! customer id, the HTTP status, a message) and the change it implies for the state store.
//!
//! Every [`Outcome`] is built here, by one constructor per way a row can end, so the report's
//! vocabulary lives in one file. The planner, the executor and the pipeline make outcomes; the
//! report and the state writer read them; neither side imports the other. A new status (such
//! as a separate `not_sent`) is a variant of [`Status`] and a change to one constructor here.

use crate::api::ApiError;
use crate::customer::{Fields, Key};
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
    /// Invalid, refused by the API, out of retries, or not sent because the run stopped.
    Failed,
}

impl Status {
    /// The report's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Ok => "ok",
            Status::Failed => "failed",
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
    /// A fatal error (authentication) stopped the run.
    Stopped,
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
    state: Option<StateChange>,
}

impl Outcome {
    /// A row refused before sending: a bad value, or a key the file already named.
    pub fn invalid(row: RowRef, message: String) -> Self {
        Outcome {
            row,
            action: Action::Invalid,
            status: Status::Failed,
            customer_id: None,
            http_status: None,
            message,
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
            state: refresh
                .filter(|_| !dry_run)
                .map(|(key, entry)| StateChange::Confirmed(key, entry, None)),
        }
    }

    /// A dry run's create.
    pub fn would_create(row: RowRef) -> Self {
        Outcome {
            row,
            action: Action::Create,
            status: Status::Planned,
            customer_id: None,
            http_status: None,
            message: String::new(),
            state: None,
        }
    }

    /// A dry run's update of `customer_id`; `changes` are `field: old -> new`, empty when the
    /// values sent last are not known.
    pub fn would_update(row: RowRef, customer_id: u64, changes: &[String]) -> Self {
        let message = if changes.is_empty() {
            "changed since the last sync (the values sent then are not known)".to_owned()
        } else {
            changes.join("; ")
        };
        Outcome {
            row,
            action: Action::Update,
            status: Status::Planned,
            customer_id: Some(customer_id),
            http_status: None,
            message,
            state: None,
        }
    }

    /// The API saved the row's customer: the mapping to record, the values sent, and a note
    /// for the report (adoption, re-creation, the changes).
    pub fn saved(
        row: RowRef,
        action: Action,
        key: Key,
        entry: Entry,
        fields: Option<Fields>,
        note: String,
    ) -> Self {
        Outcome {
            row,
            action,
            status: Status::Ok,
            customer_id: Some(entry.customer_id),
            http_status: Some(200),
            message: note,
            state: Some(StateChange::Confirmed(key, entry, fields)),
        }
    }

    /// The API refused the row, or its retries ran out; the report carries the API's own
    /// message.
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
        Outcome {
            row,
            action,
            status: Status::Failed,
            customer_id,
            http_status: error.status(),
            message,
            state: Some(StateChange::Failed(key)),
        }
    }

    /// A row to send that was not sent, because the run is stopping.
    pub fn skipped(row: RowRef, action: Action, why: Skip) -> Self {
        let message = match why {
            Skip::Interrupted => "not sent: the run was interrupted",
            Skip::TooManyErrors => "not sent: stopped after --max-errors failed rows",
            Skip::Stopped => "not sent: the run stopped on a fatal error",
        };
        Outcome {
            row,
            action,
            status: Status::Failed,
            customer_id: None,
            http_status: None,
            message: message.to_owned(),
            state: None,
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

    /// The state change, for the state writer (once the report has the row).
    pub fn into_state(self) -> Option<StateChange> {
        self.state
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

    #[test]
    fn each_way_a_row_ends_has_its_columns() {
        let key = Key::new(1, "a@x.io");
        let refused = ApiError::Status {
            status: 400,
            message: "Invalid value of \"x\" provided for the dob field.".into(),
            retry_after: None,
        };
        // (outcome, action, status, customer_id, http_status, message, has a state change)
        let cases = [
            (
                Outcome::invalid(row(), "line 2: email: missing".into()),
                Action::Invalid,
                Status::Failed,
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
                Outcome::would_create(row()),
                Action::Create,
                Status::Planned,
                None,
                None,
                "",
                false,
            ),
            (
                Outcome::would_update(row(), 7, &[]),
                Action::Update,
                Status::Planned,
                Some(7),
                None,
                "changed since the last sync (the values sent then are not known)",
                false,
            ),
            (
                Outcome::would_update(row(), 7, &["a: 1 -> 2".into(), "b: 3 -> 4".into()]),
                Action::Update,
                Status::Planned,
                Some(7),
                None,
                "a: 1 -> 2; b: 3 -> 4",
                false,
            ),
            (
                Outcome::saved(
                    row(),
                    Action::Create,
                    key.clone(),
                    entry(),
                    None,
                    "n".into(),
                ),
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
                Outcome::skipped(row(), Action::Create, Skip::TooManyErrors),
                Action::Create,
                Status::Failed,
                None,
                None,
                "not sent: stopped after --max-errors failed rows",
                false,
            ),
        ];
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
}
