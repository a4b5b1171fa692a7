//! The reader: streams a CSV file into [`Record`]s, one physical line accounted for at a time.
//!
//! It owns what is about the file rather than a row: the header (a BOM, case, renames, required
//! and duplicate columns), the physical line each record starts on (which the csv crate gets
//! wrong after CRLF and blank lines), and records that are not rows at all: a wrong number of
//! fields, or a quote left open that swallows the lines after it. Rows with the right shape go
//! to the [`Validator`]. Only a problem with the file as a whole (unreadable, no header, a
//! required column missing or doubled) is an [`InputError`].

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::fields::{self, Field};
use super::mapping::Mapping;
use super::validate::{Row, Validator, shown};

/// A failure that stops the whole run before any row is processed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The file has no header line at all.
    #[error("{path} is empty: expected a header line with at least email, firstname, lastname")]
    Empty { path: PathBuf },
    /// A required column is missing from the header.
    #[error("{path}: the header has no `{column}` column (required: email, firstname, lastname)")]
    MissingColumn { path: PathBuf, column: &'static str },
    /// Two header cells name the same field.
    #[error("{path}: column `{column}` appears twice in the header (columns {first} and {second})")]
    DuplicateColumn {
        path: PathBuf,
        column: String,
        first: usize,
        second: usize,
    },
}

/// One data line (or a run of lines swallowed by a broken quote) of the input.
#[derive(Debug)]
pub enum Record {
    Valid(Box<Row>),
    Invalid(InvalidRow),
}

/// A row rejected locally, with the reason for the report.
#[derive(Debug, Clone)]
pub struct InvalidRow {
    pub line: u64,
    /// The email cell as written, when there is one, so that the report can be searched.
    pub email: String,
    pub website_id: Option<u32>,
    pub message: String,
}

/// Streams [`Record`]s out of a CSV file.
pub struct Reader {
    csv: csv::Reader<LineIndex<BufReader<File>>>,
    newlines: Newlines,
    header: Vec<String>,
    validator: Validator,
    /// The `email` column, to name an invalid row in the report as it is written.
    email_at: Option<usize>,
    record: csv::ByteRecord,
    pending: VecDeque<Record>,
    path: PathBuf,
}

impl Reader {
    /// Opens `path` and resolves its header. `default_website` fills rows without a
    /// `website_id`.
    pub fn open(path: &Path, default_website: u32, mapping: Mapping) -> Result<Self, InputError> {
        let io_err = |source| InputError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let newlines = Newlines::default();
        let mut csv = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .from_reader(LineIndex {
                inner: BufReader::with_capacity(256 * 1024, file),
                offset: 0,
                newlines: newlines.clone(),
            });
        let mut header = csv::ByteRecord::new();
        let has_header = csv
            .read_byte_record(&mut header)
            .map_err(|e| io_err(e.into()))?;
        if !has_header {
            return Err(InputError::Empty {
                path: path.to_owned(),
            });
        }
        // The csv crate keeps a UTF-8 BOM on the first cell; it is not part of the name.
        let header: Vec<String> = header
            .iter()
            .map(|c| {
                String::from_utf8_lossy(c)
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .to_owned()
            })
            .collect();
        let columns = resolve_header(path, &header, &mapping)?;
        let validator = Validator::new(columns, default_website, mapping);
        Ok(Reader {
            csv,
            newlines,
            header,
            email_at: validator.position(&Field::Email),
            validator,
            record: csv::ByteRecord::new(),
            pending: VecDeque::new(),
            path: path.to_owned(),
        })
    }

    /// Header cells that map to no field, for the one-time "ignored" notice.
    pub fn ignored_columns(&self) -> Vec<String> {
        self.header
            .iter()
            .zip(self.validator.fields())
            .filter(|(_, f)| f.is_none())
            .map(|(h, _)| h.clone())
            .collect()
    }

    /// Bytes of the file consumed so far, for progress.
    pub fn bytes_read(&self) -> u64 {
        self.csv.position().byte()
    }

    fn read_next(&mut self) -> Result<bool, InputError> {
        self.csv
            .read_byte_record(&mut self.record)
            .map_err(|e| InputError::Io {
                path: self.path.clone(),
                source: e.into(),
            })
    }

    /// Turns the record just read into the [`Record`]s of the lines it covers.
    fn classify(&mut self) {
        let expected = self.header.len();
        let got = self.record.len();
        let embedded: u64 = self
            .record
            .iter()
            .map(|f| memchr::memchr_iter(b'\n', f).count() as u64)
            .sum();
        // A quote left open runs to the end of the file, taking the last newline into its field.
        let open_at_eof = got != expected
            && embedded > 0
            && self
                .record
                .iter()
                .next_back()
                .is_some_and(|f| f.ends_with(b"\n"));
        let embedded = embedded - u64::from(open_at_eof);
        // Count back from the record's end: where a record starts, the csv crate may count
        // skipped blank lines or the `\n` of a CRLF, but its end is exact.
        let end = self.csv.position().byte();
        let line = self.newlines.line_at(end.saturating_sub(1)) - embedded;
        if got != expected {
            self.malformed(line, embedded, got, expected);
            return;
        }
        if let Some(why) = self.validator.oversized(self.record.iter()) {
            self.pending.push_back(Record::Invalid(InvalidRow {
                line,
                email: self.shown_email(),
                website_id: None,
                message: format!("line {line}: {why}"),
            }));
            return;
        }
        let record = match self.validator.check(line, self.record.iter()) {
            Ok(row) => Record::Valid(Box::new(row)),
            Err(rejected) => {
                let reasons: Vec<String> =
                    rejected.problems.iter().map(ToString::to_string).collect();
                Record::Invalid(InvalidRow {
                    line,
                    email: self.shown_email(),
                    website_id: Some(rejected.website_id),
                    message: format!("line {line}: {}", reasons.join("; ")),
                })
            }
        };
        self.pending.push_back(record);
    }

    /// A record with the wrong number of fields: one invalid row for its first line, and one
    /// for each line an unclosed quote swallowed.
    fn malformed(&mut self, line: u64, embedded: u64, got: usize, expected: usize) {
        let email = self.shown_email();
        let message = if embedded > 0 {
            format!(
                "line {line}: malformed CSV: a quoted field is not closed where the line ends \
                 (the record runs to line {}, {got} fields, header has {expected})",
                line + embedded
            )
        } else {
            format!("line {line}: malformed CSV: {got} fields, the header has {expected}")
        };
        self.pending.push_back(Record::Invalid(InvalidRow {
            line,
            email,
            website_id: None,
            message,
        }));
        for l in line + 1..=line + embedded {
            self.pending.push_back(Record::Invalid(InvalidRow {
                line: l,
                email: String::new(),
                website_id: None,
                message: format!(
                    "line {l}: malformed CSV: inside the unclosed quoted field that starts on line {line}"
                ),
            }));
        }
    }

    /// The email cell of the record just read, as an invalid row's report line shows it:
    /// trimmed, and clipped (see [`shown`]).
    fn shown_email(&self) -> String {
        shown(self.cell(self.email_at).unwrap_or_default().trim()).into_owned()
    }

    /// The cell of column `at` in the record just read, if it is there and UTF-8.
    fn cell(&self, at: Option<usize>) -> Option<&str> {
        std::str::from_utf8(self.record.get(at?)?).ok()
    }
}

impl Iterator for Reader {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Some(Ok(r));
            }
            match self.read_next() {
                Ok(true) => self.classify(),
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Newline offsets of the bytes read ahead, so that a record's byte offset gives its physical
/// line. (The csv crate's own line count is one short after CRLF line ends.)
#[derive(Clone, Default)]
struct Newlines(Arc<Mutex<NewlineState>>);

#[derive(Default)]
struct NewlineState {
    pending: VecDeque<u64>,
    passed: u64,
}

impl Newlines {
    /// The 1-based line that byte `at` is on.
    fn line_at(&self, at: u64) -> u64 {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while s.pending.front().is_some_and(|&o| o < at) {
            s.pending.pop_front();
            s.passed += 1;
        }
        s.passed + 1
    }
}

/// A reader that notes where the newlines are as the bytes go by.
struct LineIndex<R> {
    inner: R,
    offset: u64,
    newlines: Newlines,
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut s = self.newlines.0.lock().unwrap_or_else(|p| p.into_inner());
        let base = self.offset;
        s.pending
            .extend(memchr::memchr_iter(b'\n', &buf[..n]).map(|i| base + i as u64));
        self.offset += n as u64;
        Ok(n)
    }
}

/// The field each header cell fills (`None`: ignored), with the header's own checks.
fn resolve_header(
    path: &Path,
    header: &[String],
    mapping: &Mapping,
) -> Result<Vec<Option<Field>>, InputError> {
    let mut columns: Vec<Option<Field>> = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        let field = mapping.field_for(name);
        if let Some(f) = &field
            && let Some(first) = columns.iter().position(|c| c.as_ref() == Some(f))
        {
            return Err(InputError::DuplicateColumn {
                path: path.to_owned(),
                column: f.name(),
                first: first + 1,
                second: i + 1,
            });
        }
        columns.push(field);
    }
    if let Some(missing) =
        fields::required_columns().find(|s| !columns.contains(&Some(s.field.clone())))
    {
        return Err(InputError::MissingColumn {
            path: path.to_owned(),
            column: missing.column,
        });
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read(content: &[u8]) -> Result<Vec<Record>, InputError> {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content).expect("write");
        Reader::open(f.path(), 1, Mapping::default())?.collect()
    }

    fn lines(records: &[Record]) -> Vec<(u64, bool)> {
        records
            .iter()
            .map(|r| match r {
                Record::Valid(row) => (row.line, true),
                Record::Invalid(i) => (i.line, false),
            })
            .collect()
    }

    fn message(r: &Record) -> &str {
        match r {
            Record::Invalid(i) => &i.message,
            Record::Valid(_) => panic!("expected an invalid row"),
        }
    }

    #[test]
    fn bom_crlf_and_case_insensitive_headers() {
        let recs =
            read(b"\xef\xbb\xbf Email ,FirstName,LASTNAME\r\na@x.io,Ann,Lee\r\nb@x.io,Bo,Ek\r\n")
                .expect("read");
        assert_eq!(lines(&recs), vec![(2, true), (3, true)]);
    }

    #[test]
    fn blank_lines_and_crlf_keep_line_numbers_physical() {
        let recs = read(b"email,firstname,lastname,custom:note\r\n\r\na@x.io,Ann,Lee,\r\n\nb@x.io,Bo,Ek,\"x\r\ny\"\r\nc@x.io,Cy,Do,\"\n\"").expect("read");
        assert_eq!(lines(&recs), vec![(3, true), (5, true), (7, true)]);
        let recs =
            read(b"email,firstname,lastname\n\na@x.io,Ann,Lee\n\n\nb@x.io,Bo,Ek\n").expect("read");
        assert_eq!(lines(&recs), vec![(3, true), (6, true)]);
    }

    #[test]
    fn quoted_newline_keeps_line_numbers_physical() {
        let recs = read(b"email,firstname,lastname,address_street,address_city,address_postcode,address_country_id,address_telephone\na@x.io,Ann,Lee,\"1 Main\nApt 2\",Lund,22100,se,123\nb@x.io,Bo,Ek,,,,,\n").expect("read");
        assert_eq!(lines(&recs), vec![(2, true), (4, true)]);
        let Record::Valid(row) = &recs[0] else {
            panic!()
        };
        let a = row.customer.address.as_ref().expect("address");
        assert_eq!(a.street, vec!["1 Main", "Apt 2"]);
        assert_eq!(a.country_id, "SE");
    }

    #[test]
    fn unterminated_quote_accounts_for_every_line() {
        let recs =
            read(b"email,firstname,lastname\na@x.io,Ann,Lee\nb@x.io,\"Bo,Ek\nc@x.io,Cy,Do\n")
                .expect("read");
        assert_eq!(lines(&recs), vec![(2, true), (3, false), (4, false)]);
        assert!(
            message(&recs[1]).contains("not closed"),
            "{}",
            message(&recs[1])
        );
    }

    #[test]
    fn wrong_column_count_and_bad_values_name_line_and_column() {
        let recs = read(
            "email,firstname,lastname,dob,gender\na@x.io,Ann\nnot-an-email,Bo,Ek,1990-02-30,7\nc@x.io,,Do,,\nd@x.io,J\u{f6}rg,\u{d6},2001-01-01,female\n"
                .as_bytes(),
        )
        .expect("read");
        assert_eq!(
            lines(&recs),
            vec![(2, false), (3, false), (4, false), (5, true)]
        );
        assert!(message(&recs[0]).contains("2 fields, the header has 5"));
        let m = message(&recs[1]);
        assert!(m.starts_with("line 3: email:"), "{m}");
        assert!(
            m.contains("dob: `1990-02-30` is not a calendar date"),
            "{m}"
        );
        assert!(m.contains("gender: `7`"), "{m}");
        assert!(message(&recs[2]).contains("firstname: required value is empty"));
    }

    #[test]
    fn non_utf8_cell_is_invalid_not_fatal() {
        let recs =
            read(b"email,firstname,lastname\na@x.io,J\xf6rg,Lee\nb@x.io,Bo,Ek\n").expect("read");
        assert_eq!(lines(&recs), vec![(2, false), (3, true)]);
        assert!(message(&recs[0]).contains("firstname: not valid UTF-8"));
    }

    #[test]
    fn header_problems_are_fatal_and_named() {
        assert!(matches!(read(b""), Err(InputError::Empty { .. })));
        let err = read(b"email,firstname\n").expect_err("missing lastname");
        assert!(err.to_string().contains("`lastname`"), "{err}");
        assert!(matches!(
            read(b"email,firstname,lastname,EMAIL\n"),
            Err(InputError::DuplicateColumn { .. })
        ));
        assert!(
            read(b"email,firstname,lastname\n")
                .expect("header only")
                .is_empty()
        );
    }

    #[test]
    fn oversized_rows_are_invalid_before_they_are_built_and_echoed_clipped() {
        let huge_email = format!("{}@example.com", "e".repeat(10_000_000));
        let header: String = (0..300).map(|i| format!(",custom:a{i}")).collect();
        let cells: String = (0..300).map(|i| format!(",v{i}")).collect();
        let content = format!(
            "email,firstname,lastname{header}\n{huge_email},Ann,Lee{empty}\nb@x.io,Bo,Ek{cells}\nc@x.io,Cy,Do{empty}\n",
            empty = ",".repeat(300)
        );
        let recs = read(content.as_bytes()).expect("read");
        assert_eq!(lines(&recs), vec![(2, false), (3, false), (4, true)]);
        let Record::Invalid(first) = &recs[0] else {
            panic!()
        };
        assert!(first.email.starts_with("eee") && first.email.ends_with('…'));
        assert_eq!(first.email.chars().count(), 257);
        assert!(
            first.message.contains("more than the 65536 a row may hold"),
            "{}",
            first.message
        );
        assert!(first.message.len() < 200, "{}", first.message);
        assert!(
            message(&recs[1]).contains("the row fills 303 columns, more than the 256"),
            "{}",
            message(&recs[1])
        );
    }

    #[test]
    fn absurd_lengths_are_invalid() {
        let long = "x".repeat(300);
        let recs = read(format!("email,firstname,lastname\na@x.io,{long},Lee\n").as_bytes())
            .expect("read");
        assert!(message(&recs[0]).contains("firstname: longer than 255"));
    }
}
