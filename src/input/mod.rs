//! Reading the input CSV: header resolution, streaming, and per-row validation.
//!
//! The file is read one record at a time (never whole). Every physical line ends up in exactly
//! one [`Record`]: a valid row, or an invalid one whose message names the line, the column and
//! the reason. Only a problem with the file as a whole (unreadable, no header, a required column
//! missing) is an [`InputError`].

mod mapping;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use secrecy::SecretString;

use crate::customer::{Address, Customer, Text};
pub use mapping::{Mapping, MappingError};

/// The longest value we accept in a name field; Magento's own limit.
const MAX_NAME_CHARS: usize = 255;
/// The longest email address that SMTP allows.
const MAX_EMAIL_CHARS: usize = 254;
/// The longest value of any other field: beyond this a cell is a broken export, not data.
const MAX_FIELD_CHARS: usize = 4096;

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

/// A field of the contract that a column can fill.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Email,
    Firstname,
    Lastname,
    Middlename,
    Prefix,
    Suffix,
    Dob,
    Gender,
    Taxvat,
    GroupId,
    WebsiteId,
    StoreId,
    IsSubscribed,
    Password,
    Street,
    City,
    Postcode,
    CountryId,
    Region,
    Telephone,
    Company,
    /// `custom:<attribute_code>`.
    Custom(String),
}

impl Field {
    /// Parses a header cell: case-insensitive, surrounding spaces ignored.
    pub fn parse(name: &str) -> Option<Field> {
        let n = name.trim().to_lowercase();
        if let Some(code) = n.strip_prefix("custom:") {
            let code = code.trim();
            return (!code.is_empty()).then(|| Field::Custom(code.to_owned()));
        }
        Some(match n.as_str() {
            "email" => Field::Email,
            "firstname" => Field::Firstname,
            "lastname" => Field::Lastname,
            "middlename" => Field::Middlename,
            "prefix" => Field::Prefix,
            "suffix" => Field::Suffix,
            "dob" => Field::Dob,
            "gender" => Field::Gender,
            "taxvat" => Field::Taxvat,
            "group_id" => Field::GroupId,
            "website_id" => Field::WebsiteId,
            "store_id" => Field::StoreId,
            "is_subscribed" => Field::IsSubscribed,
            "password" => Field::Password,
            "address_street" => Field::Street,
            "address_city" => Field::City,
            "address_postcode" => Field::Postcode,
            "address_country_id" => Field::CountryId,
            "address_region" => Field::Region,
            "address_telephone" => Field::Telephone,
            "address_company" => Field::Company,
            _ => return None,
        })
    }

    /// The column name as the contract spells it, for messages.
    pub fn name(&self) -> String {
        match self {
            Field::Email => "email",
            Field::Firstname => "firstname",
            Field::Lastname => "lastname",
            Field::Middlename => "middlename",
            Field::Prefix => "prefix",
            Field::Suffix => "suffix",
            Field::Dob => "dob",
            Field::Gender => "gender",
            Field::Taxvat => "taxvat",
            Field::GroupId => "group_id",
            Field::WebsiteId => "website_id",
            Field::StoreId => "store_id",
            Field::IsSubscribed => "is_subscribed",
            Field::Password => "password",
            Field::Street => "address_street",
            Field::City => "address_city",
            Field::Postcode => "address_postcode",
            Field::CountryId => "address_country_id",
            Field::Region => "address_region",
            Field::Telephone => "address_telephone",
            Field::Company => "address_company",
            Field::Custom(code) => return format!("custom:{code}"),
        }
        .to_owned()
    }
}

/// One data line (or a run of lines swallowed by a broken quote) of the input.
#[derive(Debug)]
pub enum Record {
    Valid(Box<Row>),
    Invalid(InvalidRow),
}

/// A row that passed validation.
#[derive(Debug)]
pub struct Row {
    /// 1-based physical line where the record starts.
    pub line: u64,
    pub customer: Customer,
    /// Sent on create only; never hashed, stored or reported.
    pub password: Option<SecretString>,
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
    mapping: Mapping,
    columns: Vec<Option<Field>>,
    default_website: u32,
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
        let columns = resolve_header(path, &header, &mapping)?;
        let header = header
            .iter()
            .map(|c| {
                String::from_utf8_lossy(c)
                    .trim_start_matches('\u{feff}')
                    .trim()
                    .to_owned()
            })
            .collect();
        Ok(Reader {
            csv,
            newlines,
            header,
            mapping,
            columns,
            default_website,
            record: csv::ByteRecord::new(),
            pending: VecDeque::new(),
            path: path.to_owned(),
        })
    }

    /// Header cells that map to no field, for the one-time "ignored" notice.
    pub fn ignored_columns(&self) -> Vec<String> {
        self.header
            .iter()
            .zip(&self.columns)
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

    fn classify(&mut self) {
        let expected = self.columns.len();
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
            let email = self.cell(&Field::Email).unwrap_or_default().to_owned();
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
            return;
        }
        let record = match validate(
            line,
            &self.columns,
            &self.record,
            self.default_website,
            &self.mapping,
        ) {
            Ok(row) => Record::Valid(Box::new(row)),
            Err(reasons) => Record::Invalid(InvalidRow {
                line,
                email: self
                    .cell(&Field::Email)
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                website_id: self
                    .cell(&Field::WebsiteId)
                    .and_then(|w| w.trim().parse().ok())
                    .or(Some(self.default_website)),
                message: format!("line {line}: {}", reasons.join("; ")),
            }),
        };
        self.pending.push_back(record);
    }

    fn cell(&self, field: &Field) -> Option<&str> {
        let i = self
            .columns
            .iter()
            .position(|c| c.as_ref() == Some(field))?;
        std::str::from_utf8(self.record.get(i)?).ok()
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

fn resolve_header(
    path: &Path,
    header: &csv::ByteRecord,
    mapping: &Mapping,
) -> Result<Vec<Option<Field>>, InputError> {
    let mut columns: Vec<Option<Field>> = Vec::with_capacity(header.len());
    for (i, cell) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(cell);
        // The csv crate keeps a UTF-8 BOM on the first cell; it is not part of the name.
        let name = name.trim_start_matches('\u{feff}');
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
    for (required, name) in [
        (Field::Email, "email"),
        (Field::Firstname, "firstname"),
        (Field::Lastname, "lastname"),
    ] {
        if !columns.contains(&Some(required)) {
            return Err(InputError::MissingColumn {
                path: path.to_owned(),
                column: name,
            });
        }
    }
    Ok(columns)
}

/// Checks one record against the contract's rules, collecting every problem so that a person
/// fixes the row once. The reasons name their column.
fn validate(
    line: u64,
    columns: &[Option<Field>],
    record: &csv::ByteRecord,
    default_website: u32,
    mapping: &Mapping,
) -> Result<Row, Vec<String>> {
    let mut errors = Vec::new();
    let mut cells: Vec<(&Field, Cow<str>)> = Vec::with_capacity(columns.len());
    for (field, raw) in columns.iter().zip(record.iter()) {
        let Some(field) = field else { continue };
        match std::str::from_utf8(raw) {
            Ok(v) => {
                let v = v.trim();
                if v.len() > MAX_FIELD_CHARS && v.chars().count() > MAX_FIELD_CHARS {
                    errors.push(format!(
                        "{}: value is {} characters long",
                        field.name(),
                        v.chars().count()
                    ));
                } else if !v.is_empty() {
                    match mapping.convert(field, v) {
                        Ok(v) => cells.push((field, v)),
                        Err(why) => errors.push(format!("{}: {why}", field.name())),
                    }
                }
            }
            Err(e) => errors.push(format!(
                "{}: not valid UTF-8 (byte {} of the cell); save the file as UTF-8",
                field.name(),
                e.valid_up_to() + 1
            )),
        }
    }
    for (field, value) in mapping.constants() {
        if !cells.iter().any(|(c, _)| *c == field) {
            cells.push((field, Cow::Borrowed(value)));
        }
    }
    let get = |f: &Field| cells.iter().find(|(c, _)| *c == f).map(|(_, v)| v.as_ref());
    let text = |f: Field, errors: &mut Vec<String>| -> Option<Text> {
        let v = get(&f)?;
        if v.chars().count() > MAX_NAME_CHARS {
            errors.push(format!(
                "{}: longer than {MAX_NAME_CHARS} characters",
                f.name()
            ));
            return None;
        }
        if v.chars().any(char::is_control) {
            errors.push(format!("{}: contains a control character", f.name()));
            return None;
        }
        Some(Text::from(v))
    };
    let required = |f: Field, errors: &mut Vec<String>| -> Text {
        let before = errors.len();
        match text(f.clone(), errors) {
            Some(v) => v,
            None => {
                // Empty, unless `text` already said what is wrong with it.
                if errors.len() == before {
                    errors.push(format!("{}: required value is empty", f.name()));
                }
                Text::default()
            }
        }
    };
    let one_of = |v: &str, choices: &[(&str, u8)]| {
        choices
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(v))
            .map(|(_, code)| *code)
    };
    let number = |f: Field, errors: &mut Vec<String>| -> Option<u32> {
        let v = get(&f)?;
        v.parse()
            .map_err(|_| errors.push(format!("{}: `{v}` is not a whole number", f.name())))
            .ok()
    };

    let email = get(&Field::Email).unwrap_or_default().to_owned();
    if email.is_empty() {
        errors.push("email: required value is empty".into());
    } else if let Err(why) = check_email(&email) {
        errors.push(format!("email: `{email}` {why}"));
    }
    let firstname = required(Field::Firstname, &mut errors);
    let lastname = required(Field::Lastname, &mut errors);
    let middlename = text(Field::Middlename, &mut errors);
    let prefix = text(Field::Prefix, &mut errors);
    let suffix = text(Field::Suffix, &mut errors);
    let taxvat = text(Field::Taxvat, &mut errors);
    let dob = get(&Field::Dob).and_then(|v| match check_dob(v) {
        Ok(()) => Some(Text::from(v)),
        Err(why) => {
            errors.push(format!("dob: `{v}` {why}"));
            None
        }
    });
    let genders = [
        ("1", 1),
        ("2", 2),
        ("3", 3),
        ("male", 1),
        ("female", 2),
        ("not specified", 3),
    ];
    let gender = get(&Field::Gender).and_then(|v| {
        let code = one_of(v, &genders);
        if code.is_none() {
            errors.push(format!(
                "gender: `{v}` is not one of 1, 2, 3, male, female, not specified"
            ));
        }
        code
    });
    let group_id = number(Field::GroupId, &mut errors);
    let website_id = number(Field::WebsiteId, &mut errors).unwrap_or(default_website);
    let store_id = number(Field::StoreId, &mut errors);
    let flags = [
        ("true", 1),
        ("1", 1),
        ("yes", 1),
        ("false", 0),
        ("0", 0),
        ("no", 0),
    ];
    let is_subscribed = get(&Field::IsSubscribed).and_then(|v| {
        let flag = one_of(v, &flags).map(|f| f == 1);
        if flag.is_none() {
            errors.push(format!(
                "is_subscribed: `{v}` is not one of true, false, 1, 0, yes, no"
            ));
        }
        flag
    });
    let mut custom_attributes: Vec<(Text, Text)> = cells
        .iter()
        .filter_map(|(f, v)| match f {
            Field::Custom(code) => Some((Text::from(code.as_str()), Text::from(v.as_ref()))),
            _ => None,
        })
        .collect();
    custom_attributes.sort();
    let address = address(&get, &mut errors);
    let password = get(&Field::Password).map(|p| SecretString::from(p.to_owned()));

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Row {
        line,
        customer: Customer {
            email,
            firstname,
            lastname,
            middlename,
            prefix,
            suffix,
            dob,
            gender,
            taxvat,
            group_id,
            website_id,
            store_id,
            is_subscribed,
            custom_attributes,
            address,
        },
        password,
    })
}

/// The default address, when any `address_*` cell is filled; then the fields Magento requires
/// must all be there.
fn address<'a>(
    get: &impl Fn(&Field) -> Option<&'a str>,
    errors: &mut Vec<String>,
) -> Option<Address> {
    let fields = [
        Field::Street,
        Field::City,
        Field::Postcode,
        Field::CountryId,
        Field::Region,
        Field::Telephone,
        Field::Company,
    ];
    if fields.iter().all(|f| get(f).is_none()) {
        return None;
    }
    let mut need = |f: Field| {
        get(&f).map(Text::from).unwrap_or_else(|| {
            errors.push(format!("{}: required when an address is given", f.name()));
            Text::default()
        })
    };
    let street: Vec<Text> = need(Field::Street)
        .split(['\n', '|'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Text::from)
        .collect();
    let city = need(Field::City);
    let postcode = need(Field::Postcode);
    let telephone = need(Field::Telephone);
    let country_id = need(Field::CountryId).to_uppercase();
    let iso = country_id.len() == 2 && country_id.chars().all(|c| c.is_ascii_alphabetic());
    if !country_id.is_empty() && !iso {
        errors.push(format!(
            "address_country_id: `{country_id}` is not a two-letter ISO country code"
        ));
    }
    Some(Address {
        street,
        city,
        postcode,
        country_id,
        region: get(&Field::Region).map(Text::from),
        telephone,
        company: get(&Field::Company).map(Text::from),
    })
}

/// A practical email check, close to what Magento's validator accepts: one `@`, a local part
/// without spaces, a dotted domain whose last label is at least two letters.
pub fn check_email(email: &str) -> Result<(), &'static str> {
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err("is longer than 254 characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("has no @");
    };
    if local.is_empty() || local.len() > 64 {
        return Err("has an empty or over-long part before the @");
    }
    if local.contains('@') || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains a space or a second @");
    }
    // Magento's validator takes international domains but only ASCII before the @.
    if !local.chars().all(|c| c.is_ascii_graphic()) {
        return Err("has a character before the @ that is not plain ASCII");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("has a misplaced dot before the @");
    }
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return Err("has no dot in the domain");
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if !domain.split('.').all(label_ok) {
        return Err("has an invalid domain");
    }
    if tld.chars().count() < 2 || !tld.chars().all(char::is_alphabetic) {
        return Err("has an invalid top-level domain");
    }
    Ok(())
}

fn check_dob(v: &str) -> Result<(), &'static str> {
    let shaped = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err("is not a date in the form YYYY-MM-DD");
    }
    // The shape is checked, so the parts are digits; no format string to interpret per row.
    let part = |r: std::ops::Range<usize>| v[r].parse::<u32>().unwrap_or(0);
    let year = i32::try_from(part(0..4)).unwrap_or(0);
    let date =
        NaiveDate::from_ymd_opt(year, part(5..7), part(8..10)).ok_or("is not a calendar date")?;
    if date > chrono::Utc::now().date_naive() {
        return Err("is in the future");
    }
    Ok(())
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
    fn absurd_lengths_are_invalid() {
        let long = "x".repeat(300);
        let recs = read(format!("email,firstname,lastname\na@x.io,{long},Lee\n").as_bytes())
            .expect("read");
        assert!(message(&recs[0]).contains("firstname: longer than 255"));
    }

    #[test]
    fn email_rules() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "o@exämple.de"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a", "a@b", "a b@c.de", "a@@b.de", ".a@b.de", "a@b.c", "a@-b.de", "a@b.d3",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
