//! The per-row report file (`--report`): CSV, JSON Lines for `.jsonl`, a workbook for `.xlsx`,
//! limited to some rows by `--report-only`. Rows are written as they come, never held.
//!
//! A spreadsheet opens CSV: no text cell of a CSV may read as a formula, so [`CsvRows`] puts
//! its text cells through [`escape_cell`] (JSON Lines carries the text as it is).

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::WriteError;
use super::xlsx::XlsxReport;
use crate::customer::Change;
use crate::outcome::Outcome;
use crate::outputs::{Output, escape_cell};

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

/// One report line, in the order of [`COLUMNS`].
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

impl<'a> ReportLine<'a> {
    /// The line of `o`, its text cells through `text`.
    fn of(o: &'a Outcome, text: fn(&str) -> Cow<'_, str>) -> Self {
        let row = o.row();
        ReportLine {
            line: row.line,
            email: text(&row.email),
            website_id: row.website_id,
            action: o.action().as_str(),
            status: o.status().as_str(),
            customer_id: o.customer_id(),
            http_status: o.http_status(),
            message: text(o.message()),
        }
    }
}

/// A JSON Lines report line: the columns, then the changes as data.
#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(flatten)]
    line: ReportLine<'a>,
    changes: &'a [Change],
}

/// How often buffered lines reach the file: a run killed (`kill -9`) loses at most the last
/// second of its report and history, where a full buffer held thousands of rows.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// When a buffered writer is next due to flush.
struct Pace {
    flushed: Instant,
}

impl Pace {
    fn new() -> Self {
        Pace {
            flushed: Instant::now(),
        }
    }

    /// Whether a line just written makes a flush due (and, if so, counts it as done). The
    /// clock read costs about 20 ns a line, next to nothing beside writing it.
    fn due(&mut self) -> bool {
        if self.flushed.elapsed() < FLUSH_EVERY {
            return false;
        }
        self.flushed = Instant::now();
        true
    }
}

/// Report lines as CSV, header first: the report file's format, and the run history's.
pub struct CsvRows<W: Write> {
    w: BufWriter<W>,
    /// The line being written, kept for its allocation.
    line: Vec<u8>,
    pace: Pace,
}

impl<W: Write> CsvRows<W> {
    /// Writes the header to `w`.
    pub fn new(w: W) -> io::Result<Self> {
        let mut rows = CsvRows {
            w: BufWriter::with_capacity(256 * 1024, w),
            line: Vec::with_capacity(256),
            pace: Pace::new(),
        };
        for (i, column) in COLUMNS.iter().enumerate() {
            rows.text(i, column);
        }
        rows.end()?;
        Ok(rows)
    }

    /// Writes one line: the cells of [`ReportLine`], by hand rather than through the csv
    /// crate, because every row of every run goes through here (the run history): serde's
    /// per-field dispatch was a tenth of a re-run's time, and the csv writer's per-field
    /// calls still a seventh of the thread that writes the history.
    pub fn write(&mut self, o: &Outcome) -> io::Result<()> {
        let row = o.row();
        self.number(0, Some(row.line));
        self.text(1, &escape_cell(&row.email));
        self.number(2, row.website_id.map(u64::from));
        self.text(3, o.action().as_str());
        self.text(4, o.status().as_str());
        self.number(5, o.customer_id());
        self.number(6, o.http_status().map(u64::from));
        self.text(7, &escape_cell(o.message()));
        self.end()?;
        if self.pace.due() {
            self.w.flush()?;
        }
        Ok(())
    }

    /// Flushes what is buffered to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    fn number(&mut self, at: usize, n: Option<u64>) {
        self.separate(at);
        if let Some(n) = n {
            self.line
                .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        }
    }

    /// A cell quoted as the csv crate's writer quotes (`QuoteStyle::Necessary`, RFC 4180):
    /// only when it holds the delimiter, a quote or a line break, with its quotes doubled.
    fn text(&mut self, at: usize, cell: &str) {
        self.separate(at);
        let bytes = cell.as_bytes();
        if !bytes
            .iter()
            .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
        {
            self.line.extend_from_slice(bytes);
            return;
        }
        self.line.push(b'"');
        for &b in bytes {
            if b == b'"' {
                self.line.push(b'"');
            }
            self.line.push(b);
        }
        self.line.push(b'"');
    }

    fn separate(&mut self, at: usize) {
        if at > 0 {
            self.line.push(b',');
        }
    }

    fn end(&mut self) -> io::Result<()> {
        self.line.push(b'\n');
        let written = self.w.write_all(&self.line);
        self.line.clear();
        written
    }
}

/// `--report-only`: the actions and statuses whose rows the report keeps (a row is kept when
/// its action or its status is listed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Only(Vec<String>);

impl Only {
    /// From the kinds given (the command line checks the spelling).
    pub fn new(kinds: Vec<String>) -> Self {
        Only(kinds)
    }

    /// Whether the report has a line for `o`.
    pub fn keeps(&self, o: &Outcome) -> bool {
        self.0
            .iter()
            .any(|k| k == o.action().as_str() || k == o.status().as_str())
    }
}

enum Sink {
    Csv(Box<CsvRows<File>>),
    Jsonl(BufWriter<File>, Pace),
    Xlsx(Box<XlsxReport>),
}

/// The per-row report file; see the module doc.
pub struct Report {
    sink: Sink,
    only: Option<Only>,
    path: PathBuf,
}

impl Report {
    /// Starts the report in its claimed file; the name's extension picks the format.
    pub fn create(output: Output, only: Option<Only>) -> Result<Self, WriteError> {
        let path = output.path().to_owned();
        let path = path.as_path();
        let file = output.into_file()?;
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        let sink = match extension.as_deref() {
            Some("jsonl") => Sink::Jsonl(BufWriter::new(file), Pace::new()),
            Some("xlsx") => Sink::Xlsx(Box::new(
                XlsxReport::new(file).map_err(|source| write_error(path, source))?,
            )),
            _ => Sink::Csv(Box::new(
                CsvRows::new(file).map_err(|source| write_error(path, source))?,
            )),
        };
        Ok(Report {
            sink,
            only,
            path: path.to_owned(),
        })
    }

    /// Writes one line, unless `--report-only` leaves the row out.
    pub fn write(&mut self, o: &Outcome) -> Result<(), WriteError> {
        if self.only.as_ref().is_some_and(|only| !only.keeps(o)) {
            return Ok(());
        }
        let result = match &mut self.sink {
            Sink::Csv(w) => w.write(o),
            Sink::Jsonl(w, pace) => {
                let line = JsonLine {
                    line: ReportLine::of(o, |s| Cow::Borrowed(s)),
                    changes: o.changes(),
                };
                serde_json::to_writer(&mut *w, &line)
                    .map_err(io::Error::from)
                    .and_then(|()| w.write_all(b"\n"))
                    .and_then(|()| if pace.due() { w.flush() } else { Ok(()) })
            }
            Sink::Xlsx(x) => x.write(o),
        };
        result.map_err(|source| write_error(&self.path, source))
    }

    /// Finishes the file: flushed, or the workbook written out.
    pub fn finish(self) -> Result<(), WriteError> {
        let result = match self.sink {
            Sink::Csv(mut w) => w.flush(),
            Sink::Jsonl(mut w, _) => w.flush(),
            Sink::Xlsx(x) => x.finish(),
        };
        result.map_err(|source| write_error(&self.path, source))
    }
}

fn write_error(path: &Path, source: io::Error) -> WriteError {
    WriteError {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::RowRef;

    fn row(line: u64) -> RowRef {
        RowRef {
            line,
            email: format!("r{line}@x.io"),
            website_id: Some(1),
        }
    }

    fn outcomes() -> Vec<Outcome> {
        let change = Change {
            field: "city".into(),
            old: None,
            new: "Malmö".into(),
        };
        vec![
            Outcome::invalid(row(2), "line 2: dob: not a date".into()),
            Outcome::unchanged(row(3), Some(1), None, None, true),
            Outcome::would_update(row(4), 9, vec![change], None),
            Outcome::invalid(row(5), "=1+1".into()),
        ]
    }

    #[test]
    fn report_only_keeps_rows_by_action_or_status() {
        let os = outcomes();
        // (kinds) -> lines kept
        let cases: [(&[&str], &[u64]); 4] = [
            (&["invalid"], &[2, 5]),
            (&["update", "invalid"], &[2, 4, 5]),
            (&["planned"], &[3, 4]),
            // Invalid rows have a status of their own.
            (&["failed"], &[]),
        ];
        for (kinds, want) in cases {
            let only = Only::new(kinds.iter().map(|k| (*k).to_owned()).collect());
            let kept: Vec<u64> = os
                .iter()
                .filter(|o| only.keeps(o))
                .map(|o| o.row().line)
                .collect();
            assert_eq!(kept, want, "{kinds:?}");
        }
    }

    #[test]
    fn jsonl_lines_carry_changes_as_data_and_csv_keeps_the_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jsonl = dir.path().join("r.jsonl");
        let csv = dir.path().join("r.csv");
        for path in [&jsonl, &csv] {
            let [output] = crate::outputs::claim(&[], None, [("--report", Some(path.as_path()))])
                .expect("claim");
            let mut r = Report::create(output.expect("claimed"), None).expect("create");
            for o in &outcomes() {
                r.write(o).expect("write");
            }
            r.finish().expect("finish");
        }
        let text = std::fs::read_to_string(&jsonl).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines[0]["changes"], serde_json::json!([]));
        assert_eq!(
            lines[2]["changes"],
            serde_json::json!([{"field": "city", "old": null, "new": "Malmö"}])
        );
        assert_eq!(lines[2]["message"], "city: (none) -> Malmö");
        assert_eq!(lines[3]["message"], "=1+1", "JSON Lines is no spreadsheet");
        let text = std::fs::read_to_string(&csv).expect("read");
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                COLUMNS.join(",").as_str(),
                "2,r2@x.io,1,invalid,invalid,,,line 2: dob: not a date",
                "3,r3@x.io,1,unchanged,planned,1,,",
                "4,r4@x.io,1,update,planned,9,,city: (none) -> Malmö",
                "5,r5@x.io,1,invalid,invalid,,,'=1+1",
            ]
        );
    }

    #[test]
    fn lines_are_what_the_csv_crate_writes_and_read_back_as_given() {
        let messages = [
            "plain",
            "",
            "a, b",
            "she said \"no\"",
            "\"",
            "two\nlines",
            "cr\r",
            "=SUM(A1)",
            "Malmö; tab\there",
        ];
        for message in messages {
            let o = Outcome::invalid(
                RowRef {
                    line: 7,
                    email: format!("{message}@x.io"),
                    website_id: Some(2),
                },
                message.into(),
            );
            let mut ours = CsvRows::new(Vec::new()).expect("header");
            ours.write(&o).expect("write");
            let ours = ours.w.into_inner().expect("flush");
            let mut theirs = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            theirs.write_record(COLUMNS).expect("header");
            theirs
                .serialize(ReportLine::of(&o, escape_cell))
                .expect("line");
            let theirs = theirs.into_inner().expect("flush");
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{message:?}"
            );
            let mut back = csv::Reader::from_reader(&ours[..]);
            let record = back.records().next().expect("a line").expect("csv");
            assert_eq!(crate::outputs::unescape_cell(&record[7]), message);
        }
    }
}
