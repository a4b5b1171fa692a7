//! The contract's exit codes, and the one place a command's ending becomes one. Every error a
//! command returns is [`Exit::Fatal`] (`main` prints it); the endings of a run that wrote its
//! report and state are mapped here.

use std::process::ExitCode;

use crate::pull::Pulled;
use crate::sync::{Ending, Finished};

/// The contract's exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every row is ok.
    Ok = 0,
    /// Configuration, authentication, unreadable input or state.
    Fatal = 1,
    /// Finished, but some rows are invalid or failed.
    RowsFailed = 3,
    /// Interrupted by SIGINT or SIGTERM.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

impl From<&Finished> for Exit {
    /// A sync's: an interrupt first, then whether every row is ok.
    fn from(f: &Finished) -> Self {
        let s = &f.summary;
        match f.ending {
            Ending::Interrupted => Exit::Interrupted,
            Ending::Complete if s.invalid + s.failed > 0 => Exit::RowsFailed,
            Ending::Complete => Exit::Ok,
        }
    }
}

impl From<&Pulled> for Exit {
    /// A pull's: what it read is recorded either way.
    fn from(p: &Pulled) -> Self {
        if p.interrupted {
            Exit::Interrupted
        } else {
            Exit::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Summary;

    #[test]
    fn sync_endings() {
        let summary = |invalid, failed| Summary {
            rows: 10,
            invalid,
            failed,
            ..Summary::default()
        };
        // (ending, invalid, failed) -> exit
        let cases = [
            (Ending::Complete, 0, 0, Exit::Ok),
            (Ending::Complete, 1, 0, Exit::RowsFailed),
            (Ending::Complete, 0, 2, Exit::RowsFailed),
            (Ending::Interrupted, 0, 0, Exit::Interrupted),
            (Ending::Interrupted, 1, 1, Exit::Interrupted),
        ];
        for (ending, invalid, failed, want) in cases {
            let f = Finished {
                summary: summary(invalid, failed),
                ending,
            };
            assert_eq!(Exit::from(&f), want, "{ending:?} {invalid} {failed}");
        }
        let pulled = Pulled {
            interrupted: true,
            ..Pulled::default()
        };
        assert_eq!(Exit::from(&pulled), Exit::Interrupted);
        assert_eq!(Exit::from(&Pulled::default()), Exit::Ok);
    }
}
