//! How a sync ends: [`Finished`] with an [`Ending`] when it wrote its report and state and
//! has nothing to object to, or a [`SyncError`] (exit code 1). The mapping to exit codes is
//! [`crate::exit`].

use crate::absent::{AbsentError, Refused};
use crate::api::ApiError;
use crate::connect::ConnectError;
use crate::input::InputError;
use crate::outputs::OutputError;
use crate::report::Summary;
use crate::report::WriteError;
use crate::runs::RunsError;
use crate::shop::ShopError;
use crate::state::StateError;

/// A run that ended without a [`SyncError`].
#[derive(Debug)]
pub struct Finished {
    pub summary: Summary,
    pub ending: Ending,
}

/// How a [`Finished`] run ended. The summary's counts say whether rows were invalid or failed.
/// (A run stopped short, such as by `--max-errors`, would be a variant of its own.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// The whole file was read and every row has its outcome.
    Complete,
    /// SIGINT or SIGTERM stopped the reading; the rows read were drained.
    Interrupted,
}

/// How a run's ending maps to its exit code, for the summary and the run history. The mapping
/// is [`crate::exit`]'s; the caller hands it in, since that module depends on this one.
pub type ExitOf = fn(Result<&Finished, &SyncError>) -> u8;

/// A failure that stops the run. Those that arise once rows are being sent ([`SyncError::Api`],
/// [`SyncError::Refused`]) are returned after the report, the state and the summary are
/// written; the others as they happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The run history could not be written.
    #[error(transparent)]
    Runs(#[from] RunsError),
    /// An output path was refused before anything was sent.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// A fatal answer (the credentials stopped working) stopped the sending part-way.
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The shop's model, which the rows to send are checked against, could not be read.
    #[error(transparent)]
    Shop(#[from] ShopError),
    #[error(transparent)]
    Absent(#[from] AbsentError),
    /// `--delete-absent` did not delete every absent customer.
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("internal error: the reader thread stopped unexpectedly")]
    ReaderPanicked,
}
