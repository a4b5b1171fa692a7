//! The reader: streams an input file into [`Record`]s, one line (or sheet row) accounted for
//! at a time, whatever the file's format.
//!
//! It owns what is about the file rather than a row: which format it is (a spreadsheet by
//! its extension, else delimited text), the header (resolved in `header.rs`), and records that
//! are not rows at all: a wrong number of fields, or a quote left open that swallows the lines
//! after it. Rows with the right shape go to the [`Validator`]. Only a problem with the file
//! as a whole (unreadable, in an encoding not named, no header, a required column missing or
//! doubled) is an [`InputError`].

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use super::format::Format;
use super::header::{self, HeaderProblem};
use super::kinds::check_email;
use super::kinds::shown;
use super::mapping::Mapping;
use super::quick::{self, QuickReader};
use super::sheet::{self, SheetError, SheetFile};
use super::text::{Shape, TextError, TextFile};
use super::validate::{Cells, Rejected, Row, Validator};
use crate::customer::{Key, KeyKind, Text};

/// A failure that stops the whole run before any row is processed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The file is not UTF-8 and no `--encoding` was given.
    #[error(
        "{path}: line {line} is not UTF-8; the file looks like windows-1252 (what Excel saves as \
         \"CSV\" on Windows): run again with --encoding windows-1252, or with --encoding and the \
         file's own encoding (e.g. iso-8859-15)"
    )]
    Encoding { path: PathBuf, line: u64 },
    /// A spreadsheet that cannot be read.
    #[error("cannot read the spreadsheet {path}: {message}")]
    Sheet { path: PathBuf, message: String },
    /// `--sheet` names no sheet of the workbook.
    #[error("{path} has no sheet {sheet:?} (its sheets: {})", sheets.join(", "))]
    NoSheet {
        path: PathBuf,
        sheet: String,
        sheets: Vec<String>,
    },
    /// The file has no header line at all.
    #[error("{path} is empty: expected a header line with at least email, firstname, lastname")]
    Empty { path: PathBuf },
    /// A first pass over the file was asked of a pipe, which can be read only once.
    #[error(
        "{path} is not a regular file (a pipe?) and can be read only once, but --on-duplicate \
         last|error reads the file twice: write it to a file first"
    )]
    ReadOnce { path: PathBuf },
    /// A required column is missing from the header (and no constant stands for it).
    #[error(
        "{path}: the header has no `{column}` column (required: email, firstname, lastname, \
         from a column or a constant of the mapping)"
    )]
    MissingColumn { path: PathBuf, column: &'static str },
    /// `--key custom:<code>` and the header has no column for it.
    #[error(
        "{path}: the header has no `{key}` column, which --key {key} names as the customers' \
         identity (a column of that name, or one the mapping renames to it)"
    )]
    MissingKeyColumn { path: PathBuf, key: String },
    /// Two header cells (or a cell and a split or join of the mapping) fill the same field.
    #[error("{path}: `{column}` is filled twice: by {first} and by {second}")]
    DuplicateColumn {
        path: PathBuf,
        column: String,
        first: String,
        second: String,
    },
    /// A `[join]` template names a column the header does not have.
    #[error(
        "{path}: the mapping's [join] for {field} names the column `{column}`, which the header does not have"
    )]
    JoinColumn {
        path: PathBuf,
        field: String,
        column: String,
    },
}

/// One data line (or a run of lines swallowed by a broken quote) of the input.
#[derive(Debug)]
pub enum Record {
    Valid(Box<Row>),
    Invalid(InvalidRow),
    /// A row the state store knows as it is (by its row hash, see `quick.rs`): not
    /// validated, its customer not built. Only [`Reader::next_with`] reads one.
    Same(Same),
}

/// A row found unchanged by its row hash: what the report and the planner need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Same {
    pub line: u64,
    /// As a valid row's customer holds it.
    pub email: String,
    pub website_id: u32,
    /// The [`Key::digest`] of its key.
    pub digest: u64,
    pub customer_id: u64,
    /// Where the key is in the index that knew the row (for the planner's set of keys).
    pub at: usize,
    /// The key's custom attribute, under `--key custom:<code>` (for a duplicate's message).
    pub key_attribute: Option<Text>,
}

/// What the store knows of rows, by their keys' digests: for a key it knows and may take a
/// row of as unchanged (not in doubt), the customer id, the key's place in the index and the
/// row hash recorded for it (or the values hash `pull` recorded; 0 for none).
pub type Known<'a> = &'a dyn Fn(&[u64], &mut Vec<Option<(u64, usize, u64)>>);

/// A row rejected locally, with the reason for the report.
#[derive(Debug, Clone)]
pub struct InvalidRow {
    pub line: u64,
    /// The email cell as written, when there is one, so that the report can be searched.
    pub email: String,
    pub website_id: Option<u32>,
    pub message: String,
    /// The key of the customer the row names, when it can still be read (its website, and a
    /// valid email or, under `--key custom:<code>`, that value), so that the customer is not
    /// counted absent.
    pub key: Option<Key>,
}

/// Where the rows come from.
enum Body {
    /// Boxed: the csv reader and its buffers are most of the reader's size.
    Text(Box<TextFile>),
    Sheet(SheetFile),
}

/// What the reader was opened with, to open the file again.
#[derive(Clone)]
struct Opened {
    path: PathBuf,
    default_website: u32,
    mapping: Mapping,
    format: Format,
}

/// Streams [`Record`]s out of an input file.
pub struct Reader {
    body: Body,
    /// The header's number of cells: a text record with another number is malformed.
    width: usize,
    ignored: Vec<String>,
    validator: Validator,
    /// The `email` column, to name an invalid row in the report as it is written.
    email_at: Option<usize>,
    /// Each record with its row hash (0: none).
    pending: VecDeque<(Record, u64)>,
    opened: Opened,
    /// Row hashes and keys from the cells: a text file only (a sheet's cells are typed).
    quick: Option<QuickReader>,
    /// The rows read ahead, and records to read them into (see [`Reader::read_window`]).
    window: Vec<Ahead>,
    spare: Vec<csv::ByteRecord>,
}

/// Rows of a text file read ahead of their look-up in the index: enough that the look-ups of
/// one window wait for memory together, few enough that nothing else notices. 64 took a 1M-row
/// re-run 3 to 6% less time than 16, and 256 no less than 64.
const WINDOW: usize = 64;

/// A row read ahead, with its own copy of its cells.
struct Ahead {
    line: u64,
    row_hash: u64,
    quick: Option<quick::Quick>,
    record: csv::ByteRecord,
}

impl Reader {
    /// Opens a UTF-8 CSV file (or a spreadsheet) and resolves its header. `default_website`
    /// fills rows without a `website_id`.
    pub fn open(path: &Path, default_website: u32, mapping: Mapping) -> Result<Self, InputError> {
        Reader::open_with(path, default_website, mapping, &Format::default())
    }

    /// The same, read as `format` says.
    pub fn open_with(
        path: &Path,
        default_website: u32,
        mapping: Mapping,
        format: &Format,
    ) -> Result<Self, InputError> {
        let opened = Opened {
            path: path.to_owned(),
            default_website,
            mapping,
            format: format.clone(),
        };
        let (body, header) = open_body(&opened)?;
        let header = header.ok_or_else(|| InputError::Empty {
            path: path.to_owned(),
        })?;
        let layout =
            header::resolve(&header, &opened.mapping).map_err(|p| header_error(path, p))?;
        let quick = match body {
            Body::Text(_) => {
                let seed = quick::fingerprint(&header, default_website, &opened.mapping, format);
                QuickReader::new(&layout.sources, seed, default_website, &opened.mapping)
            }
            Body::Sheet(_) => None,
        };
        let validator = Validator::new(layout.sources, default_website, opened.mapping.clone());
        Ok(Reader {
            body,
            width: header.len(),
            ignored: layout.ignored,
            validator,
            email_at: layout.email_at,
            pending: VecDeque::new(),
            opened,
            quick,
            window: Vec::with_capacity(WINDOW),
            spare: Vec::with_capacity(WINDOW),
        })
    }

    /// The same file, opened again from its start (for a first pass over its keys).
    pub fn reopen(&self) -> Result<Self, InputError> {
        let o = &self.opened;
        if !std::fs::metadata(&o.path).is_ok_and(|m| m.is_file()) {
            return Err(InputError::ReadOnce {
                path: o.path.clone(),
            });
        }
        Reader::open_with(&o.path, o.default_website, o.mapping.clone(), &o.format)
    }

    /// Header cells that map to no field, for the one-time "ignored" notice.
    pub fn ignored_columns(&self) -> Vec<String> {
        self.ignored.clone()
    }

    /// The SHA-256 of the file's bytes, in hex; reads what the records left unread.
    pub fn sha256(&mut self) -> Result<String, InputError> {
        match &mut self.body {
            Body::Text(t) => t.sha256().map_err(|source| InputError::Io {
                path: self.opened.path.clone(),
                source,
            }),
            Body::Sheet(s) => Ok(s.sha256().to_owned()),
        }
    }

    /// Bytes of the file consumed so far, for progress.
    pub fn bytes_read(&self) -> u64 {
        match &self.body {
            Body::Text(t) => t.bytes_read(),
            Body::Sheet(s) => {
                s.progress(std::fs::metadata(&self.opened.path).map_or(0, |m| m.len()))
            }
        }
    }

    /// The next record with its row hash (0 for all but a valid row of a text file); a row
    /// that `known` knows as it is comes as [`Record::Same`], without being validated, with
    /// its row hash only when it was known by its values hash (for the index to learn).
    pub fn next_with(
        &mut self,
        known: Option<Known<'_>>,
    ) -> Option<Result<(Record, u64), InputError>> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Some(Ok(r));
            }
            match self.read_next(known) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Reads the next record into `pending`; `false` at the end of the file.
    fn read_next(&mut self, known: Option<Known<'_>>) -> Result<bool, InputError> {
        if let (Some(known), Some(_), Body::Text(_)) = (known, &self.quick, &self.body) {
            return self.read_window(known);
        }
        let mut row_hash = 0;
        let (line, outcome) = match &mut self.body {
            Body::Sheet(sheet) => match sheet.next_row() {
                None => return Ok(false),
                Some(line) => match self.validator.oversized(sheet.row()) {
                    Some(why) => (line, Err(why)),
                    None => (line, Ok(self.validator.check(line, sheet.row()))),
                },
            },
            Body::Text(text) => match text.next(self.width).map_err(|source| InputError::Io {
                path: self.opened.path.clone(),
                source,
            })? {
                None => return Ok(false),
                Some(Shape::Malformed {
                    line,
                    embedded,
                    got,
                }) => {
                    self.malformed(line, embedded, got);
                    return Ok(true);
                }
                Some(Shape::Fits { line }) => {
                    if let Some(q) = &mut self.quick {
                        row_hash = q.row_hash(text.record());
                    }
                    match self.validator.oversized(text.record()) {
                        Some(why) => (line, Err(why)),
                        None => (line, Ok(self.validator.check(line, text.record()))),
                    }
                }
            },
        };
        let record = self.record_of(line, outcome, None);
        self.push(record, row_hash);
        Ok(true)
    }

    /// Reads up to [`WINDOW`] rows of a text file, asks `known` about all of them at once,
    /// and validates those it does not know: a row a look-up at a time waited for memory at
    /// every row, a third of a re-run's reading.
    fn read_window(&mut self, known: Known<'_>) -> Result<bool, InputError> {
        let (Body::Text(text), Some(q)) = (&mut self.body, &mut self.quick) else {
            return Ok(false);
        };
        let mut rows = std::mem::take(&mut self.window);
        let mut tail = None;
        while rows.len() < WINDOW {
            let shape = text.next(self.width).map_err(|source| InputError::Io {
                path: self.opened.path.clone(),
                source,
            })?;
            let Some(Shape::Fits { line }) = shape else {
                // The end, or a malformed record, which stays in `text` until the window's
                // rows before it are pushed.
                tail = shape;
                break;
            };
            let row_hash = q.row_hash(text.record());
            let quick = q.quick(text.record());
            let mut record = self.spare.pop().unwrap_or_default();
            text.swap_record(&mut record);
            rows.push(Ahead {
                line,
                row_hash,
                quick,
                record,
            });
        }
        let asks: Vec<u64> = rows
            .iter()
            .map(|r| r.quick.as_ref().map_or(0, |q| q.digest))
            .collect();
        let mut answers = Vec::with_capacity(asks.len());
        known(&asks, &mut answers);
        let found = !rows.is_empty();
        for (row, answer) in rows
            .drain(..)
            .zip(answers.into_iter().chain(std::iter::repeat(None)))
        {
            let same = answer.and_then(|(customer_id, at, recorded)| {
                let q = self.quick.as_mut()?;
                let learn = q.unchanged(&row.record, row.row_hash, recorded)?;
                Some((customer_id, at, learn))
            });
            match (row.quick, same) {
                (Some(quick), Some((customer_id, at, learn))) => {
                    let same = Same {
                        line: row.line,
                        email: quick.email,
                        website_id: quick.website_id,
                        digest: quick.digest,
                        customer_id,
                        at,
                        key_attribute: self.validator.key().attribute().map(Text::from),
                    };
                    self.push(Record::Same(same), learn);
                }
                _ => {
                    let outcome = match self.validator.oversized(&row.record) {
                        Some(why) => Err(why),
                        None => Ok(self.validator.check(row.line, &row.record)),
                    };
                    let record = self.record_of(row.line, outcome, Some(&row.record));
                    self.push(record, row.row_hash);
                }
            }
            self.spare.push(row.record);
        }
        self.window = rows;
        match tail {
            Some(Shape::Malformed {
                line,
                embedded,
                got,
            }) => {
                self.malformed(line, embedded, got);
                Ok(true)
            }
            _ => Ok(found),
        }
    }

    /// The record of a checked row; `cells` are its own when they are no longer the body's
    /// current ones (read ahead in a window).
    fn record_of(
        &self,
        line: u64,
        outcome: Result<Result<Row, Rejected>, String>,
        cells: Option<&dyn Cells>,
    ) -> Record {
        let email = || match cells {
            Some(cells) => self.email_in(cells),
            None => self.email(),
        };
        match outcome {
            Err(why) => Record::Invalid(InvalidRow {
                line,
                email: email(),
                website_id: None,
                message: format!("line {line}: {why}"),
                key: None,
            }),
            Ok(Ok(row)) => Record::Valid(Box::new(row)),
            Ok(Err(rejected)) => {
                let reasons: Vec<String> =
                    rejected.problems.iter().map(ToString::to_string).collect();
                let email = email();
                let w = rejected.website_id;
                let key = match (self.validator.key(), w, rejected.key_value) {
                    (_, None, _) => None,
                    (KeyKind::Email, Some(w), _) => {
                        check_email(&email).is_ok().then(|| Key::new(w, &email))
                    }
                    (KeyKind::Custom(_), Some(w), value) => value.map(|v| Key::custom(w, &v)),
                };
                Record::Invalid(InvalidRow {
                    line,
                    email,
                    website_id: w,
                    message: format!("line {line}: {}", reasons.join("; ")),
                    key,
                })
            }
        }
    }

    /// Queues a record; only a valid row, or one known by its values hash, keeps its row
    /// hash.
    fn push(&mut self, record: Record, row_hash: u64) {
        let row_hash = if matches!(record, Record::Valid(_) | Record::Same(_)) {
            row_hash
        } else {
            0
        };
        self.pending.push_back((record, row_hash));
    }

    /// A record with the wrong number of fields, or whose quoted field took in rows: one
    /// invalid row for its first line, and one for each line the record runs across.
    fn malformed(&mut self, line: u64, embedded: u64, got: usize) {
        let expected = self.width;
        let end = line + embedded;
        let message = if embedded == 0 {
            format!("line {line}: malformed CSV: {got} fields, the header has {expected}")
        } else if got == expected {
            format!(
                "line {line}: malformed CSV: a quoted field runs on to line {end} and takes in \
                 lines that read as rows of their own (is a quote not closed?)"
            )
        } else {
            format!(
                "line {line}: malformed CSV: {got} fields, the header has {expected}; a quoted \
                 field runs on to line {end} (is a quote not closed?)"
            )
        };
        let first = Record::Invalid(InvalidRow {
            line,
            email: self.email(),
            website_id: None,
            message,
            key: None,
        });
        self.pending.push_back((first, 0));
        for l in line + 1..=line + embedded {
            let swallowed = Record::Invalid(InvalidRow {
                line: l,
                email: String::new(),
                website_id: None,
                message: format!(
                    "line {l}: malformed CSV: inside the quoted field that starts on line {line} \
                     (is a quote not closed?)"
                ),
                key: None,
            });
            self.pending.push_back((swallowed, 0));
        }
    }

    /// The email cell of the record just read, as an invalid row's report line shows it:
    /// trimmed and clipped (see [`shown`]); empty when it is not there or not UTF-8.
    fn email(&self) -> String {
        match &self.body {
            Body::Text(t) => self.email_in(t.record()),
            Body::Sheet(s) => self.email_in(s.row()),
        }
    }

    /// The same, of `cells`.
    fn email_in(&self, cells: &(impl Cells + ?Sized)) -> String {
        let Some(at) = self.email_at else {
            return String::new();
        };
        let cell = cells.cell(at);
        shown(std::str::from_utf8(cell.bytes).unwrap_or_default().trim()).into_owned()
    }
}

impl Iterator for Reader {
    type Item = Result<Record, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_with(None).map(|r| r.map(|(record, _)| record))
    }
}

/// Whether `path` names a spreadsheet, by its extension.
fn is_spreadsheet(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| sheet::EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Opens the file's rows and reads its header (`None`: no header at all).
fn open_body(o: &Opened) -> Result<(Body, Option<Vec<String>>), InputError> {
    let path = &o.path;
    if is_spreadsheet(path) {
        let (sheet, header) =
            SheetFile::open(path, o.format.sheet.as_deref()).map_err(|e| match e {
                SheetError::Unreadable(message) => InputError::Sheet {
                    path: path.clone(),
                    message,
                },
                SheetError::NoSheet { sheet, sheets } => InputError::NoSheet {
                    path: path.clone(),
                    sheet,
                    sheets,
                },
            })?;
        return Ok((Body::Sheet(sheet), header));
    }
    let (text, header) =
        TextFile::open(path, o.format.delimiter, o.format.encoding).map_err(|e| match e {
            TextError::Io(source) => InputError::Io {
                path: path.clone(),
                source,
            },
            TextError::Legacy { line } => InputError::Encoding {
                path: path.clone(),
                line,
            },
        })?;
    Ok((Body::Text(Box::new(text)), header))
}

fn header_error(path: &Path, problem: HeaderProblem) -> InputError {
    let path = path.to_owned();
    match problem {
        HeaderProblem::Missing { column } => InputError::MissingColumn { path, column },
        HeaderProblem::MissingKey { key } => InputError::MissingKeyColumn { path, key },
        HeaderProblem::Twice {
            column,
            first,
            second,
        } => InputError::DuplicateColumn {
            path,
            column,
            first,
            second,
        },
        HeaderProblem::JoinColumn { field, column } => InputError::JoinColumn {
            path,
            field,
            column,
        },
    }
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

    /// Every record of the file at `path` with its row hash, read with `known`.
    fn read_with(path: &Path, known: Option<Known<'_>>) -> Vec<(Record, u64)> {
        let mut r = Reader::open(path, 1, Mapping::default()).expect("open");
        std::iter::from_fn(|| r.next_with(known))
            .collect::<Result<Vec<_>, _>>()
            .expect("read")
    }

    fn lines(records: &[Record]) -> Vec<(u64, bool)> {
        records
            .iter()
            .map(|r| match r {
                Record::Valid(row) => (row.line, true),
                Record::Same(same) => (same.line, true),
                Record::Invalid(i) => (i.line, false),
            })
            .collect()
    }

    fn message(r: &Record) -> &str {
        match r {
            Record::Invalid(i) => &i.message,
            _ => panic!("expected an invalid row"),
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
    fn a_lone_cr_ends_a_line_as_it_ends_a_record() {
        // Old Mac line ends, with a quoted line break of their own.
        let recs = read(
            b"email,firstname,lastname,custom:note\ra@x.io,Ann,A,\"two\rlines\"\rbad,Bo,B,\rc@x.io,Cy,C,\r",
        )
        .expect("read");
        assert_eq!(lines(&recs), vec![(2, true), (4, false), (5, true)]);
        assert!(
            message(&recs[1]).starts_with("line 4: email"),
            "{}",
            message(&recs[1])
        );
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
    fn a_quote_left_open_in_the_last_column_takes_no_row_along() {
        // The open quote leaves the header's number of fields: the rows it takes in would
        // vanish into one cell (created as an address, or a password) without the check.
        let header = "email,firstname,lastname,address_city,address_postcode,\
                      address_country_id,address_telephone,address_street\n";
        let a = "a@example.com,Ann,A,Lund,22100,SE,123,Main 1\n";
        let open = "b@example.com,Bo,B,Lund,22100,SE,123,\"Main 2\n";
        let c = "c@example.com,Cy,C,Lund,22100,SE,123,Main 3\n";
        let d = "d@example.com,Di,D,Lund,22100,SE,123,Main 4\n";
        let closed_later = "c@example.com,Cy,C,Lund,22100,SE,123,\"Main 3\"\n";
        let cases = [
            // To the end of the file.
            (
                format!("{header}{a}{open}{c}{d}"),
                vec![(2, true), (3, false), (4, false), (5, false)],
            ),
            // Closed by the next line's quote, which leaves the field count as it is.
            (
                format!("{header}{a}{open}{closed_later}{d}"),
                vec![(2, true), (3, false), (4, false), (5, true)],
            ),
            (
                "email,firstname,lastname,password\nq1@x.io,Ann,A,\"S3cret!1\nq2@x.io,Bo,B,S3cret!2\n"
                    .to_owned(),
                vec![(2, false), (3, false)],
            ),
            // Opened mid-row and closed mid-row below: the cell holds the rest of this row
            // (its password) and the start of the next customer's.
            (
                "email,firstname,lastname,address_street,address_city,password\n\
                 dan@x.io,Dan,D,\"1 Main,Lund,Pw-dan\neve@x.io,Eve,E,2 Side\",Lund,Pw-eve\n"
                    .to_owned(),
                vec![(2, false), (3, false)],
            ),
        ];
        for (file, want) in cases {
            let recs = read(file.as_bytes()).expect("read");
            assert_eq!(lines(&recs), want, "{file}");
            let first = recs.iter().position(|r| matches!(r, Record::Invalid(_)));
            let message = message(&recs[first.expect("an invalid row")]);
            assert!(message.contains("is a quote not closed?"), "{message}");
        }
        // A multi-line address holds no row: it stays one valid row on its first line.
        let file = format!(
            "{header}{a}b@example.com,Bo,B,Lund,22100,SE,123,\"Main 2, 3 tr\nc/o Cy, Lund\"\n{d}"
        );
        let recs = read(file.as_bytes()).expect("read");
        assert_eq!(lines(&recs), vec![(2, true), (3, true), (5, true)]);
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
    fn non_utf8_cell_in_a_utf8_file_is_invalid_not_fatal() {
        let recs = read(
            b"email,firstname,lastname\nc@x.io,\xc3\x85sa,Lee\na@x.io,J\xf6rg,Lee\nb@x.io,Bo,Ek\n",
        )
        .expect("read");
        assert_eq!(lines(&recs), vec![(2, true), (3, false), (4, true)]);
        assert!(message(&recs[1]).contains("firstname: not valid UTF-8"));
        assert!(message(&recs[1]).contains("--encoding"));
    }

    fn read_as(content: &[u8], name: &str, format: &Format) -> Result<Vec<Record>, InputError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        Reader::open_with(&path, 1, Mapping::default(), format)?.collect()
    }

    fn names(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| match r {
                Record::Valid(row) => {
                    format!("{} {}", row.customer.firstname, row.customer.lastname)
                }
                Record::Invalid(i) => i.message.clone(),
                Record::Same(same) => same.email.clone(),
            })
            .collect()
    }

    #[test]
    fn a_legacy_file_stops_until_its_encoding_is_named() {
        // Windows-1252, semicolons, CRLF, Swedish letters in the header and the rows.
        let file = b"E-post;F\xf6rnamn;Efternamn;firstname;lastname;email\r\n\
                     ;x;x;\xc5sa;L\xf6fgren;asa@x.se\r\n;x;x;Bj\xf6rn;\xc4ng;bjorn@x.se\r\n";
        let err = read_as(file, "kunder.csv", &Format::default()).expect_err("legacy");
        assert!(
            matches!(err, InputError::Encoding { line: 1, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("--encoding windows-1252"), "{message}");
        let format = Format {
            encoding: Some(encoding_rs::WINDOWS_1252),
            ..Format::default()
        };
        let recs = read_as(file, "kunder.csv", &format).expect("read");
        assert_eq!(names(&recs), ["Åsa Löfgren", "Björn Äng"]);
        assert_eq!(lines(&recs), vec![(2, true), (3, true)]);
    }

    #[test]
    fn utf16_with_a_bom_and_tabs() {
        let text = "email\tfirstname\tlastname\tcustom:note\r\n\
                    a@x.io\tÅsa\tLee\t\"two\r\nlines\"\r\nb@x.io\tBo\tEk\t\r\n";
        for (bom, encode) in [
            (&b"\xff\xfe"[..], u16::to_le_bytes as fn(u16) -> [u8; 2]),
            (b"\xfe\xff", u16::to_be_bytes),
        ] {
            let mut file = bom.to_vec();
            file.extend(text.encode_utf16().flat_map(encode));
            let recs = read_as(&file, "u.csv", &Format::default()).expect("read");
            assert_eq!(names(&recs), ["Åsa Lee", "Bo Ek"]);
            assert_eq!(lines(&recs), vec![(2, true), (4, true)]);
        }
    }

    #[test]
    fn a_bom_wins_over_the_encoding_given() {
        // A cron job's `--encoding windows-1252` meets an export saved as "CSV UTF-8" (with a
        // BOM), then one saved as UTF-16.
        let format = Format {
            encoding: Some(encoding_rs::WINDOWS_1252),
            ..Format::default()
        };
        let text = "email,firstname,lastname\r\njesus@x.de,Jesús,Strauß\r\n";
        let mut utf8 = b"\xef\xbb\xbf".to_vec();
        utf8.extend(text.as_bytes());
        let mut utf16 = b"\xff\xfe".to_vec();
        utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        for file in [utf8, utf16] {
            let recs = read_as(&file, "k.csv", &format).expect("read");
            assert_eq!(names(&recs), ["Jesús Strauß"]);
        }
    }

    #[test]
    fn a_given_delimiter_wins() {
        let file = b"email|firstname|lastname|w;x;y;z\na@x.io|Ann|Lee|1;2;3;4\n";
        let detected = read_as(file, "p.csv", &Format::default()).expect_err("; wins a tie");
        assert!(
            matches!(detected, InputError::MissingColumn { .. }),
            "{detected:?}"
        );
        let format = Format {
            delimiter: Some(b'|'),
            ..Format::default()
        };
        let recs = read_as(file, "p.csv", &format).expect("read");
        assert_eq!(names(&recs), ["Ann Lee"]);
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
    fn a_row_the_store_knows_as_it_is_is_not_validated() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(b"email,firstname,lastname,website_id\nAnn@X.io ,Ann,Lee,2\nbad,Bo,Ek,1\nc@x.io,Cy,Do,\n")
            .expect("write");
        let all = |known| read_with(f.path(), known);
        let plain = all(None);
        let hashes: Vec<u64> = plain.iter().map(|(_, h)| *h).collect();
        assert!(hashes[0] != 0 && hashes[2] != 0 && hashes[0] != hashes[2]);
        assert_eq!(hashes[1], 0, "an invalid row has none");
        let ann = Key::new(2, "ann@x.io").digest();
        let known = |asks: &[u64], out: &mut Vec<Option<(u64, usize, u64)>>| {
            out.extend(
                asks.iter()
                    .map(|&d| (d == ann).then_some((99, 5, hashes[0]))),
            );
        };
        let fast = all(Some(&known));
        let Record::Same(same) = &fast[0].0 else {
            panic!("{:?}", fast[0])
        };
        let want = Same {
            line: 2,
            email: "Ann@X.io".into(),
            website_id: 2,
            digest: ann,
            customer_id: 99,
            at: 5,
            key_attribute: None,
        };
        assert_eq!(*same, want);
        let rest: Vec<_> = fast[1..]
            .iter()
            .map(|(r, h)| (lines(std::slice::from_ref(r)), *h))
            .collect();
        assert_eq!(
            rest,
            vec![(vec![(3, false)], 0), (vec![(4, true)], hashes[2])]
        );
    }

    #[test]
    fn a_row_known_by_the_values_pull_recorded_is_not_validated_and_its_hash_learnt() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(b"email,firstname,lastname,website_id\nann@x.io,Ann,Lee,2\nbo@x.io,Bo,Ek,1\n")
            .expect("write");
        let plain = read_with(f.path(), None);
        let pulled: Vec<(u64, u64)> = plain
            .iter()
            .map(|(r, _)| {
                let Record::Valid(row) = r else {
                    panic!("{r:?}")
                };
                let c = &row.customer;
                let (digest, payload) = (c.key().digest(), c.payload_hash());
                let values =
                    crate::input::values_hash_of(&c.fields(), &KeyKind::Email, digest, payload);
                (digest, values)
            })
            .collect();
        // Ann's values as pulled; Bo's changed in the shop since.
        let known = |asks: &[u64], out: &mut Vec<Option<(u64, usize, u64)>>| {
            out.extend(
                asks.iter()
                    .map(|d| match pulled.iter().position(|(k, _)| k == d) {
                        Some(0) => Some((99, 5, pulled[0].1)),
                        Some(_) => Some((98, 6, pulled[1].1 ^ 1)),
                        None => None,
                    }),
            );
        };
        let fast = read_with(f.path(), Some(&known));
        assert!(matches!(&fast[0].0, Record::Same(s) if s.customer_id == 99 && s.at == 5));
        assert_eq!(
            fast[0].1, plain[0].1,
            "the row hash, for the index to learn"
        );
        assert!(matches!(&fast[1].0, Record::Valid(_)));
        assert_eq!(fast[1].1, plain[1].1);
    }

    #[test]
    fn rows_read_ahead_in_windows_keep_their_order_lines_and_reasons() {
        // More rows than a window, with a broken quote, an invalid row and unknown rows
        // among the known ones.
        let mut content = String::from("email,firstname,lastname\n");
        for i in 0..2 * WINDOW + 8 {
            match i {
                i if i == WINDOW + 1 => content.push_str("bad-email,Bo,Ek\n"),
                i if i == WINDOW + 7 => content.push_str("short@x.io,Cy\n"),
                i if i == 2 * WINDOW - 2 => content.push_str("open@x.io,\"Di,Do\n\"Ek\",Fa\n"),
                _ => content.push_str(&format!("c{i}@x.io,Ann,Lee\n")),
            }
        }
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content.as_bytes()).expect("write");
        let all = |known| read_with(f.path(), known);
        let plain = all(None);
        let every_third: Vec<(u64, u64)> = plain
            .iter()
            .filter_map(|(r, h)| match r {
                Record::Valid(row) if row.line % 3 == 0 => Some((row.customer.key().digest(), *h)),
                _ => None,
            })
            .collect();
        let known = |asks: &[u64], out: &mut Vec<Option<(u64, usize, u64)>>| {
            out.extend(asks.iter().map(|&d| {
                let known = every_third.iter().find(|(digest, _)| *digest == d);
                known.map(|&(_, row)| (7, 0, row))
            }));
        };
        let windowed = all(Some(&known));
        let shape = |records: &[(Record, u64)]| -> Vec<(u64, bool, u64, String)> {
            records
                .iter()
                .map(|(r, h)| match r {
                    Record::Valid(row) => (row.line, true, *h, row.customer.email.to_string()),
                    Record::Same(same) => (same.line, true, 0, same.email.clone()),
                    Record::Invalid(i) => (i.line, false, *h, i.message.clone()),
                })
                .collect()
        };
        let (plain, windowed) = (shape(&plain), shape(&windowed));
        assert_eq!(plain.len(), windowed.len());
        for (p, w) in plain.iter().zip(&windowed) {
            let same = p.1 && p.0 % 3 == 0;
            let want = if same {
                (p.0, true, 0, p.3.clone())
            } else {
                p.clone()
            };
            assert_eq!(*w, want);
        }
        let same_rows = windowed.iter().filter(|w| w.1 && w.2 == 0).count();
        assert_eq!(same_rows, every_third.len());
        assert!(
            windowed.iter().any(|w| w.3.contains("malformed CSV")),
            "{windowed:?}"
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
