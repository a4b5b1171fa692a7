//! What a run tells its user: the per-row report file, the counts and summary JSON, and the
//! final line. (The live progress display is [`crate::progress`].)

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::outcome::{Action, Outcome, Status};

/// Report, summary or export file problems.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Creates (truncating) a file only its owner can read: reports hold personal data.
pub fn create_private(path: &Path) -> Result<File, WriteError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| WriteError {
            path: path.to_owned(),
            source,
        })?;
    // `mode` applies only to new files; an existing report keeps no wider permissions either.
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|source| WriteError {
            path: path.to_owned(),
            source,
        })?;
    Ok(file)
}

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
    email: &'a str,
    website_id: Option<u32>,
    action: &'static str,
    status: &'static str,
    customer_id: Option<u64>,
    http_status: Option<u16>,
    message: &'a str,
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
    /// Creates the report file and writes the CSV header.
    pub fn create(path: &Path) -> Result<Self, WriteError> {
        let file = create_private(path)?;
        let err = |source| WriteError {
            path: path.to_owned(),
            source,
        };
        let sink = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"))
        {
            Sink::Jsonl(BufWriter::new(file))
        } else {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(file);
            w.write_record(COLUMNS).map_err(|e| err(e.into()))?;
            Sink::Csv(Box::new(w))
        };
        Ok(Report {
            sink,
            path: path.to_owned(),
        })
    }

    /// Writes one line.
    pub fn write(&mut self, o: &Outcome) -> Result<(), WriteError> {
        let row = o.row();
        let line = ReportLine {
            line: row.line,
            email: &row.email,
            website_id: row.website_id,
            action: o.action().as_str(),
            status: o.status().as_str(),
            customer_id: o.customer_id(),
            http_status: o.http_status(),
            message: o.message(),
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
    pub not_sent: u64,
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
            (Status::Invalid, _) | (_, Action::Invalid) => s.invalid += 1,
            (Status::Failed, _) => s.failed += 1,
            (Status::NotSent, _) => s.not_sent += 1,
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

/// Writes the summary JSON (mode 0600).
pub fn write_summary(path: &Path, summary: &Summary) -> Result<(), WriteError> {
    let mut file = create_private(path)?;
    let err = |source| WriteError {
        path: path.to_owned(),
        source,
    };
    serde_json::to_writer_pretty(&mut file, summary).map_err(|e| err(e.into()))?;
    file.write_all(b"\n").map_err(err)
}

/// The human summary line printed at the end: the counts, the rows not sent and the customers
/// absent from the file when there are any.
pub fn human(s: &Summary) -> String {
    let mut line = if s.dry_run {
        format!(
            "dry run: {} rows: would create {}, would update {}, {} unchanged, {} invalid; nothing was sent",
            s.rows, s.created, s.updated, s.unchanged, s.invalid
        )
    } else {
        let not_sent = match s.not_sent {
            0 => String::new(),
            n => format!(", {n} not sent"),
        };
        format!(
            "{} rows: {} created, {} updated, {} unchanged, {} invalid, {} failed{not_sent} ({} requests, {} retries) in {:.1} s",
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
    };
    if s.absent > 0 {
        line.push_str(&format!(
            "; {} customers of the state store are absent from the file",
            s.absent
        ));
    }
    line
}
