//! What a run tells its user: the per-row report file, the review page, the counts and summary
//! JSON, and the progress display on stderr. Every file here is written into the output that
//! [`crate::outputs`] claimed for it.
//!
//! | file | owns |
//! | --- | --- |
//! | `file.rs` | the report file: CSV, JSON Lines or xlsx, `--report-only` |
//! | `xlsx.rs` | the report as a workbook, with its `changes` sheet |
//! | `review.rs` | the self-contained HTML review page (`--review`) |
//! | `summary.rs` | counts by status and website, the summary JSON, the final line |
//! | here | the progress display |

mod file;
pub mod review;
mod summary;
mod xlsx;

use std::io::{self, IsTerminal};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Report, summary or export file problems (kept here under its old name).
pub use crate::outputs::WriteError;
pub use file::{COLUMNS, CsvRows, Only, Report};
pub use review::{Absentee, Review};
pub use summary::{
    Counts, RunInfo, Summary, Tally, Website, human, table, timestamp, write_summary,
};
pub use xlsx::CHANGE_COLUMNS;

/// Live counters shared between the pipeline and the progress display.
#[derive(Default)]
pub struct Counters {
    pub bytes_read: AtomicU64,
    /// Records read from the file.
    pub read: AtomicU64,
    /// Rows whose outcome is known.
    pub done: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// Progress on stderr: a bar on a terminal, a plain line every 10 s otherwise (cron mail),
/// nothing under `--quiet`.
pub struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts the display for a file of `total_bytes`. `requests` reads the requests sent;
    /// `waiting` says what the run waits for, while it waits for a server.
    pub fn start(
        counters: Arc<Counters>,
        total_bytes: u64,
        quiet: bool,
        requests: impl Fn() -> u64 + Send + Sync + 'static,
        waiting: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        if quiet {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let started = Instant::now();
        let line = move |c: &Counters| {
            let elapsed = started.elapsed().as_secs_f64().max(0.001);
            let sent = requests();
            let mut line = format!(
                "{} rows read, {} done, {} requests sent, {} ok, {} failed, {:.1} req/s",
                c.read.load(Ordering::Relaxed),
                c.done.load(Ordering::Relaxed),
                sent,
                c.ok.load(Ordering::Relaxed),
                c.failed.load(Ordering::Relaxed),
                sent as f64 / elapsed
            );
            if let Some(wait) = waiting() {
                line.push_str("; ");
                line.push_str(&wait);
            }
            line
        };
        if io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {percent:>3}% {msg} [{elapsed_precise}]")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let ticker_bar = bar.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    ticker_bar.set_position(counters.bytes_read.load(Ordering::Relaxed));
                    ticker_bar.set_message(line(&counters));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            Progress {
                bar: Some(bar),
                ticker: Some(ticker),
            }
        } else {
            let ticker = tokio::spawn(async move {
                let mut interval = tokio::time::interval(Duration::from_secs(10));
                interval.tick().await;
                loop {
                    interval.tick().await;
                    let pct =
                        counters.bytes_read.load(Ordering::Relaxed) * 100 / total_bytes.max(1);
                    eprintln!("progress: {pct}% of the file, {}", line(&counters));
                }
            });
            Progress {
                bar: None,
                ticker: Some(ticker),
            }
        }
    }

    /// Stops the display and clears the bar.
    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
