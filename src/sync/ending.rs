//! How a sync ends: [`Finished`] with an [`Ending`] when it wrote its report and state and
//! has nothing to object to, or a [`SyncError`] (exit code 1). The mapping to exit codes is
//! [`crate::exit`].

use crate::absent::{AbsentError, Refused};
use crate::api::ApiError;
use crate::connect::ConnectError;
use crate::exit::Exit;
pub use crate::exit::{Ending, Stop};
use crate::input::InputError;
use crate::outage::WrongBase;
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

impl Finished {
    /// The run's exit code. A row `not_sent` in a run that otherwise completed (its bulk
    /// stalled in the shop's queue) is not ok either: exit 0 says every row is.
    pub fn exit(&self) -> Exit {
        let s = &self.summary;
        Exit::of_run(self.ending, s.invalid + s.failed + s.not_sent > 0)
    }
}

impl From<&Finished> for Exit {
    fn from(f: &Finished) -> Self {
        f.exit()
    }
}

/// The exit code of a run that ended so (any error is fatal), for the summary and the history.
pub fn exit_of(end: Result<&Finished, &SyncError>) -> Exit {
    end.map_or(Exit::Fatal, Finished::exit)
}

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
    /// `--max-absent` stopped the run, or `--delete-absent` did not delete every absent
    /// customer.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The endpoint's base path is not the REST API's.
    #[error(transparent)]
    WrongBase(#[from] WrongBase),
    /// Bulks an earlier run submitted are still open in the shop's queue: planning their rows
    /// again could create a customer twice, or let the queue's older update win.
    #[error(
        "{left} bulks an earlier run submitted are still open in the shop's queue, or their \
         status cannot be read (waited {waited_s} s): nothing was sent; run again once the \
         queue has worked them"
    )]
    BulksOpen { left: usize, waited_s: u64 },
    #[error("internal error: the reader thread stopped unexpectedly")]
    ReaderPanicked,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_run_exits_0_only_when_every_row_is_ok() {
        let run = |invalid, failed, not_sent| Finished {
            summary: Summary {
                invalid,
                failed,
                not_sent,
                ..Summary::default()
            },
            ending: Ending::Complete,
        };
        // (invalid, failed, not_sent) -> exit
        let cases = [
            (0, 0, 0, Exit::Ok),
            (1, 0, 0, Exit::RowsFailed),
            (0, 1, 0, Exit::RowsFailed),
            (0, 0, 1, Exit::RowsFailed),
        ];
        for (invalid, failed, not_sent, want) in cases {
            assert_eq!(
                run(invalid, failed, not_sent).exit(),
                want,
                "{invalid} {failed} {not_sent}"
            );
        }
    }
}
