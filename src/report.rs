//! What a run tells its user: the per-row report file, the review page, the counts and summary
//! JSON, and the final line (the live progress display is [`crate::progress`]). Every file
//! here is written into the output that [`crate::outputs`] claimed for it.
//!
//! | file | owns |
//! | --- | --- |
//! | `file.rs` | the report file: CSV, JSON Lines or xlsx, `--report-only` |
//! | `xlsx.rs` | the report as a workbook, with its `changes` sheet |
//! | `review.rs` | the self-contained HTML review page (`--review`) |
//! | `summary.rs` | counts by status and website, the summary JSON, the final line |

mod file;
pub mod review;
mod summary;
mod xlsx;

/// Report, summary or export file problems (kept here under its old name).
pub use crate::outputs::WriteError;
pub use file::{COLUMNS, CsvRows, Only, Report};
pub use review::{Absentee, Review};
pub use summary::{
    Counts, RunInfo, Summary, Tally, Website, human, table, timestamp, write_summary,
};
pub use xlsx::CHANGE_COLUMNS;
