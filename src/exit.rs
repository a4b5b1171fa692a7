//! The contract's exit codes, and how a command's ending maps to one. Every error a command
//! returns is [`Exit::Fatal`] (`main` prints it); the endings of a run that wrote its report
//! and state are mapped here, by [`Exit::of_run`], a function of how the run ended and whether
//! some rows were not ok.
//!
//! This module imports no command: the sync's last step needs the code (for the final line,
//! which `--quiet` prints only when the run did not exit 0), so the arrow points from the
//! commands to here.

use std::process::ExitCode;

/// The contract's exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every row is ok.
    Ok = 0,
    /// Configuration, authentication, unreadable input or state.
    Fatal = 1,
    /// Finished, but some rows are invalid or failed (or, their bulk stalled, not sent).
    RowsFailed = 3,
    /// Stopped before the end: the shop was unreachable, or `--max-errors` was reached.
    Stopped = 4,
    /// Interrupted by SIGINT or SIGTERM.
    Interrupted = 130,
}

/// How a run that wrote its report and state ended. The counts say whether rows were invalid
/// or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// The whole file was read and every row has its outcome.
    Complete,
    /// Sending stopped before the end; the rows it did not send are `not_sent`.
    Stopped(Stop),
    /// SIGINT or SIGTERM stopped the reading; the rows read were drained.
    Interrupted,
}

/// Why sending stopped before the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `--max-errors` rows failed.
    TooManyErrors,
    /// The shop answered nothing for `--outage-after` while requests failed.
    Outage,
}

impl Exit {
    /// The code of a run that ended so; `rows_not_ok` when some rows are invalid or failed.
    pub fn of_run(ending: Ending, rows_not_ok: bool) -> Exit {
        match ending {
            Ending::Interrupted => Exit::Interrupted,
            Ending::Stopped(_) => Exit::Stopped,
            Ending::Complete if rows_not_ok => Exit::RowsFailed,
            Ending::Complete => Exit::Ok,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_endings() {
        // (ending, some rows invalid or failed) -> exit
        let cases = [
            (Ending::Complete, false, Exit::Ok),
            (Ending::Complete, true, Exit::RowsFailed),
            (Ending::Stopped(Stop::TooManyErrors), true, Exit::Stopped),
            (Ending::Stopped(Stop::Outage), false, Exit::Stopped),
            (Ending::Interrupted, false, Exit::Interrupted),
            (Ending::Interrupted, true, Exit::Interrupted),
        ];
        for (ending, not_ok, want) in cases {
            assert_eq!(Exit::of_run(ending, not_ok), want, "{ending:?} {not_ok}");
        }
        assert_eq!(Exit::Stopped as u8, 4);
    }
}
