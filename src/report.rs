//! What a run tells its user: the per-row report file, the counts and summary JSON, and the
//! progress display on stderr.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::outcome::{Action, Outcome, Status};
use crate::outputs::{Output, escape_cell};

/// Report, summary or export file problems (kept here under its old name).
pub use crate::outputs::WriteError;

/// The report's columns, in the contract's order.
pub const COLUMNS: [&str; 8] = [
    "line",
    "email",
    "website_id",
    "action",
    "status",
    "customer_id",
    "http_status",
    "message",
];

#[derive(Serialize)]
struct ReportLine<'a> {
    line: u64,
    email: Cow<'a, str>,
    website_id: Option<u32>,
    action: &'static str,
    status: &'static str,
    customer_id: Option<u64>,
    http_status: Option<u16>,
    message: Cow<'a, str>,
}

enum Sink {
    Csv(Box<csv::Writer<File>>),
    Jsonl(BufWriter<File>),
}

/// The per-row report: CSV, or JSON Lines when the name ends in `.jsonl`.
pub struct Report {
    sink: Sink,
    path: PathBuf,
}

impl Report {
    /// Starts the report in its claimed file and writes the CSV header.
    pub fn create(output: Output) -> Result<Self, WriteError> {
        let path = output.path().to_owned();
        let jsonl = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
        let file = output.into_file()?;
        let sink = if jsonl {
            Sink::Jsonl(BufWriter::new(file))
        } else {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(file);
            w.write_record(COLUMNS).map_err(|e| WriteError {
                path: path.clone(),
                source: e.into(),
            })?;
            Sink::Csv(Box::new(w))
        };
        Ok(Report { sink, path })
    }

    /// Writes one line.
    pub fn write(&mut self, o: &Outcome) -> Result<(), WriteError> {
        let row = o.row();
        // A spreadsheet opens CSV: no text cell of it may read as a formula.
        let csv = matches!(self.sink, Sink::Csv(_));
        let text = |s| {
            if csv {
                escape_cell(s)
            } else {
                Cow::Borrowed(s)
            }
        };
        let line = ReportLine {
            line: row.line,
            email: text(&row.email),
            website_id: row.website_id,
            action: o.action().as_str(),
            status: o.status().as_str(),
            customer_id: o.customer_id(),
            http_status: o.http_status(),
            message: text(o.message()),
        };
        let result = match &mut self.sink {
            Sink::Csv(w) => w.serialize(&line).map_err(io::Error::from),
            Sink::Jsonl(w) => serde_json::to_writer(&mut *w, &line)
                .map_err(io::Error::from)
                .and_then(|()| w.write_all(b"\n")),
        };
        result.map_err(|source| WriteError {
            path: self.path.clone(),
            source,
        })
    }

    /// Flushes the file to disk.
    pub fn finish(self) -> Result<(), WriteError> {
        let result = match self.sink {
            Sink::Csv(mut w) => w.flush(),
            Sink::Jsonl(mut w) => w.flush(),
        };
        result.map_err(|source| WriteError {
            path: self.path,
            source,
        })
    }
}

/// The contract's summary JSON.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Summary {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub invalid: u64,
    pub failed: u64,
    pub absent: u64,
    pub requests: u64,
    pub retries: u64,
    pub dry_run: bool,
    pub elapsed_s: f64,
}

/// Running counts, by action and website, as outcomes arrive.
#[derive(Default)]
pub struct Tally {
    summary: Summary,
    /// (website, action) -> rows, for the dry-run table.
    by_website: BTreeMap<(Option<u32>, Action), u64>,
}

impl Tally {
    /// Counts one outcome.
    pub fn add(&mut self, o: &Outcome) {
        let s = &mut self.summary;
        s.rows += 1;
        match (o.status(), o.action()) {
            (_, Action::Invalid) => s.invalid += 1,
            (Status::Failed, _) => s.failed += 1,
            (_, Action::Create) => s.created += 1,
            (_, Action::Update) => s.updated += 1,
            (_, Action::Unchanged) => s.unchanged += 1,
        }
        *self
            .by_website
            .entry((o.row().website_id, o.action()))
            .or_default() += 1;
    }

    /// Failed rows so far.
    pub fn failed(&self) -> u64 {
        self.summary.failed
    }

    /// The summary with the run-wide numbers filled in.
    pub fn summary(
        &self,
        absent: u64,
        requests: u64,
        retries: u64,
        dry_run: bool,
        elapsed: Duration,
    ) -> Summary {
        Summary {
            absent,
            requests,
            retries,
            dry_run,
            elapsed_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            ..self.summary.clone()
        }
    }

    /// A table of rows per action and website, for the reviewer of a dry run.
    pub fn table(&self, absent: u64) -> String {
        let actions = [
            Action::Create,
            Action::Update,
            Action::Unchanged,
            Action::Invalid,
        ];
        let mut websites: Vec<Option<u32>> = self.by_website.keys().map(|(w, _)| *w).collect();
        websites.dedup();
        let mut out = format!("{:<12}", "website");
        for a in actions {
            out.push_str(&format!("{:>10}", a.as_str()));
        }
        out.push('\n');
        let count = |w: Option<u32>, a| self.by_website.get(&(w, a)).copied().unwrap_or(0);
        for w in &websites {
            let name = w.map_or_else(|| "(unknown)".to_owned(), |w| w.to_string());
            out.push_str(&format!("{name:<12}"));
            for a in actions {
                out.push_str(&format!("{:>10}", count(*w, a)));
            }
            out.push('\n');
        }
        out.push_str(&format!("{:<12}", "total"));
        for a in actions {
            let total: u64 = websites.iter().map(|w| count(*w, a)).sum();
            out.push_str(&format!("{total:>10}"));
        }
        out.push_str(&format!(
            "\nabsent from the file but in the state store: {absent}\n"
        ));
        out
    }
}

/// Writes the summary JSON (mode 0600) into its claimed file.
pub fn write_summary(output: Output, summary: &Summary) -> Result<(), WriteError> {
    let path = output.path().to_owned();
    let mut file = output.into_file()?;
    let err = |source| WriteError { path, source };
    serde_json::to_writer_pretty(&mut file, summary)
        .map_err(io::Error::from)
        .and_then(|()| file.write_all(b"\n"))
        .map_err(err)
}

/// The human summary line printed at the end.
pub fn human(s: &Summary) -> String {
    if s.dry_run {
        format!(
            "dry run: {} rows: would create {}, would update {}, {} unchanged, {} invalid; nothing was sent",
            s.rows, s.created, s.updated, s.unchanged, s.invalid
        )
    } else {
        format!(
            "{} rows: {} created, {} updated, {} unchanged, {} invalid, {} failed ({} requests, {} retries) in {:.1} s",
            s.rows,
            s.created,
            s.updated,
            s.unchanged,
            s.invalid,
            s.failed,
            s.requests,
            s.retries,
            s.elapsed_s
        )
    }
}

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
