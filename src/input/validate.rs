//! Validation: one row's raw cells in, a [`Row`] or every [`Problem`] with it out.
//!
//! Pure: no file and no I/O, so every rule is tested with rows written in the test. A row is
//! checked in three steps, collecting every problem so that a person fixes it once:
//!
//! 1. each cell, in column order: UTF-8, not absurdly long, then through the mapping's value
//!    map and date format;
//! 2. the mapping's constants fill the fields the row left empty;
//! 3. each field, in [`FIELDS`] order: the check its [`Kind`] names, or, when it is empty,
//!    whether its [`FieldSpec::required`] says it may be.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use chrono::NaiveDate;
use secrecy::SecretString;

use super::fields::{FIELDS, Field, FieldSpec, Kind, Part};
use super::mapping::Mapping;
use crate::customer::{Address, Customer, Text};

/// The longest value we accept in a name field; Magento's own limit.
const MAX_NAME_CHARS: usize = 255;
/// The longest email address that SMTP allows.
const MAX_EMAIL_CHARS: usize = 254;
/// The longest value of any other field: beyond this a cell is a broken export, not data.
const MAX_FIELD_CHARS: usize = 4096;
/// Most bytes a row's cells may hold, over the columns it fills: every field at its longest
/// with room to spare. A row is built from its cells, so this bounds what one row costs.
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// Most cells a row may fill: every field, and more custom attributes than a shop defines.
pub const MAX_ROW_CELLS: usize = 256;
/// Most of a rejected cell a message (or the report) echoes, in characters.
const SHOWN_CHARS: usize = 256;

/// A row that passed validation.
#[derive(Debug)]
pub struct Row {
    /// 1-based physical line where the record starts.
    pub line: u64,
    pub customer: Customer,
    /// Sent on create only; never hashed, stored or reported.
    pub password: Option<SecretString>,
}

/// One thing wrong with a row: the field whose column holds it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: Field,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field.name(), self.reason)
    }
}

/// A row that failed validation.
#[derive(Debug)]
pub struct Rejected {
    /// The website the row names, found as for a valid row (its cell, the mapping's constant,
    /// the default; the default when the cell is not a number), so that the report shows it
    /// and the customer it names is not counted absent.
    pub website_id: u32,
    pub problems: Vec<Problem>,
}

/// Where a column's cells go: a line of [`FIELDS`], or a custom attribute.
#[derive(Debug)]
enum Slot {
    Known(usize),
    Custom(Text),
}

/// A header cell that names a field.
#[derive(Debug)]
struct Column {
    field: Field,
    slot: Slot,
}

impl Column {
    /// `None` only for a field missing from [`FIELDS`], which a test there rules out.
    fn new(field: Field) -> Option<Self> {
        let slot = match &field {
            Field::Custom(code) => Slot::Custom(Text::from(code.as_str())),
            known => Slot::Known(known.index()?),
        };
        Some(Column { field, slot })
    }
}

/// Checks the rows of one file: its columns, resolved once from the header, and what fills
/// the fields a row leaves empty.
#[derive(Debug)]
pub struct Validator {
    columns: Vec<Option<Column>>,
    constants: Vec<(Column, String)>,
    default_website: u32,
    mapping: Mapping,
}

/// A cell that passed its kind's check, as the customer record takes it.
enum Value {
    Text(Text),
    Code(u8),
    Number(u32),
    Lines(Vec<Text>),
    Secret(SecretString),
}

impl Validator {
    /// `columns` holds, per header cell, the field it fills (`None`: ignored). `default_website`
    /// is the `website_id` of rows that give none.
    pub fn new(columns: Vec<Option<Field>>, default_website: u32, mapping: Mapping) -> Self {
        let constants = mapping
            .constants()
            .iter()
            .filter_map(|(field, value)| Some((Column::new(field.clone())?, value.clone())))
            .collect();
        Validator {
            columns: columns
                .into_iter()
                .map(|f| f.and_then(Column::new))
                .collect(),
            constants,
            default_website,
            mapping,
        }
    }

    /// The field each column fills, in header order.
    pub fn fields(&self) -> impl Iterator<Item = Option<&Field>> {
        self.columns.iter().map(|c| c.as_ref().map(|c| &c.field))
    }

    /// The column that fills `field`, if the header has one.
    pub fn position(&self, field: &Field) -> Option<usize> {
        self.fields().position(|f| f == Some(field))
    }

    /// Why a row is too large to be built at all, if it is: the cells it fills (those of
    /// columns that name a field) are more than [`MAX_ROW_CELLS`], or hold more than
    /// [`MAX_ROW_BYTES`]. Looked at before anything of the row is copied.
    pub fn oversized<'a>(&self, cells: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
        let (mut filled, mut bytes) = (0usize, 0usize);
        for (column, raw) in self.columns.iter().zip(cells) {
            if column.is_some() && !raw.trim_ascii().is_empty() {
                filled += 1;
                bytes += raw.len();
            }
        }
        if filled > MAX_ROW_CELLS {
            Some(format!(
                "the row fills {filled} columns, more than the {MAX_ROW_CELLS} a row may fill; \
                 nothing of it was read"
            ))
        } else if bytes > MAX_ROW_BYTES {
            Some(format!(
                "the row holds {bytes} bytes, more than the {MAX_ROW_BYTES} a row may hold; \
                 nothing of it was read"
            ))
        } else {
            None
        }
    }

    /// Checks one row's cells (in header order) against the contract's rules.
    pub fn check<'a>(
        &'a self,
        line: u64,
        cells: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Row, Rejected> {
        let mut problems = Vec::new();
        // 1. Each cell, into its field's slot.
        let mut values: [Option<Cow<'a, str>>; FIELDS.len()] = [const { None }; FIELDS.len()];
        let mut custom_attributes: Vec<(Text, Text)> = Vec::new();
        for (column, raw) in self.columns.iter().zip(cells) {
            let Some(column) = column else { continue };
            match self.decode(&column.field, raw) {
                Ok(Some(v)) => match &column.slot {
                    Slot::Known(i) => values[*i] = Some(v),
                    Slot::Custom(code) => custom_attributes.push((code.clone(), Text::from(v))),
                },
                Ok(None) => {}
                Err(reason) => problems.push(Problem {
                    field: column.field.clone(),
                    reason,
                }),
            }
        }
        // 2. The mapping's constants, where the row has nothing.
        for (column, value) in &self.constants {
            match &column.slot {
                Slot::Known(i) => {
                    values[*i].get_or_insert(Cow::Borrowed(value));
                }
                Slot::Custom(code) => {
                    if !custom_attributes.iter().any(|(c, _)| c == code) {
                        custom_attributes.push((code.clone(), Text::from(value.as_str())));
                    }
                }
            }
        }
        custom_attributes.sort();
        // 3. Each field by its kind.
        let address_given = FIELDS
            .iter()
            .zip(&values)
            .any(|(s, v)| s.part == Part::Address && v.is_some());
        let mut draft = Draft::new(self.default_website, custom_attributes);
        for (spec, value) in FIELDS.iter().zip(values) {
            let reason = match value {
                Some(v) => match check(spec.kind, &v) {
                    Ok(value) => {
                        draft.place(&spec.field, value);
                        continue;
                    }
                    Err(reason) => reason,
                },
                None => match missing(spec, address_given) {
                    // Not when step 1 already said what is wrong with the cell.
                    Some(reason) if !problems.iter().any(|p| p.field == spec.field) => {
                        reason.to_owned()
                    }
                    _ => continue,
                },
            };
            problems.push(Problem {
                field: spec.field.clone(),
                reason,
            });
        }
        if !problems.is_empty() {
            return Err(Rejected {
                website_id: draft.customer.website_id,
                problems,
            });
        }
        Ok(draft.into_row(line, address_given))
    }

    /// A cell as its field takes it: `None` when empty, `Err` when it cannot be data.
    fn decode<'a>(&'a self, field: &Field, raw: &'a [u8]) -> Result<Option<Cow<'a, str>>, String> {
        let v = std::str::from_utf8(raw)
            .map_err(|e| {
                format!(
                    "not valid UTF-8 (byte {} of the cell); save the file as UTF-8",
                    e.valid_up_to() + 1
                )
            })?
            .trim();
        if v.len() > MAX_FIELD_CHARS && v.chars().count() > MAX_FIELD_CHARS {
            return Err(format!("value is {} characters long", v.chars().count()));
        }
        if v.is_empty() {
            return Ok(None);
        }
        self.mapping.convert(field, v).map(Some)
    }
}

/// Why an empty field makes the row invalid, if it does.
fn missing(spec: &FieldSpec, address_given: bool) -> Option<&'static str> {
    match spec.part {
        _ if !spec.required => None,
        Part::Customer => Some("required value is empty"),
        Part::Address => address_given.then_some("required when an address is given"),
    }
}

/// A cell checked by its field's kind.
fn check(kind: Kind, v: &str) -> Result<Value, String> {
    match kind {
        Kind::Email => check_email(v)
            .map(|()| Value::Text(Text::from(v)))
            .map_err(|why| format!("`{}` {why}", shown(v))),
        Kind::Name if v.chars().count() > MAX_NAME_CHARS => {
            Err(format!("longer than {MAX_NAME_CHARS} characters"))
        }
        Kind::Name if v.chars().any(char::is_control) => {
            Err("contains a control character".to_owned())
        }
        Kind::Name | Kind::Text => Ok(Value::Text(Text::from(v))),
        Kind::Date => check_dob(v)
            .map(|()| Value::Text(Text::from(v)))
            .map_err(|why| format!("`{}` {why}", shown(v))),
        Kind::Choice(words) => words
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(v))
            .map(|(_, code)| Value::Code(*code))
            .ok_or_else(|| {
                let listed: Vec<&str> = words.iter().map(|(word, _)| *word).collect();
                format!("`{}` is not one of {}", shown(v), listed.join(", "))
            }),
        Kind::Number => v
            .parse()
            .map(Value::Number)
            .map_err(|_| format!("`{}` is not a whole number", shown(v))),
        Kind::Secret => Ok(Value::Secret(SecretString::from(v.to_owned()))),
        Kind::Lines => Ok(Value::Lines(
            v.split(['\n', '|'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Text::from)
                .collect(),
        )),
        Kind::Country => {
            let code = v.to_uppercase();
            if code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic()) {
                Ok(Value::Text(Text::from(code)))
            } else {
                Err(format!(
                    "`{}` is not a two-letter ISO country code",
                    shown(&code)
                ))
            }
        }
    }
}

/// The record being filled from a row's checked values.
struct Draft {
    customer: Customer,
    address: Address,
    password: Option<SecretString>,
}

impl Draft {
    fn new(website_id: u32, custom_attributes: Vec<(Text, Text)>) -> Self {
        Draft {
            customer: Customer {
                email: String::new(),
                firstname: Text::default(),
                lastname: Text::default(),
                middlename: None,
                prefix: None,
                suffix: None,
                dob: None,
                gender: None,
                taxvat: None,
                group_id: None,
                website_id,
                store_id: None,
                is_subscribed: None,
                custom_attributes,
                address: None,
            },
            address: Address {
                street: Vec::new(),
                city: Text::default(),
                postcode: Text::default(),
                country_id: Text::default(),
                region: None,
                telephone: Text::default(),
                company: None,
                shop_region: None,
            },
            password: None,
        }
    }

    /// Puts a field's value where the customer record keeps it.
    fn place(&mut self, field: &Field, value: Value) {
        let (c, a) = (&mut self.customer, &mut self.address);
        match (field, value) {
            (Field::Email, Value::Text(v)) => c.email = v.into_string(),
            (Field::Firstname, Value::Text(v)) => c.firstname = v,
            (Field::Lastname, Value::Text(v)) => c.lastname = v,
            (Field::Middlename, Value::Text(v)) => c.middlename = Some(v),
            (Field::Prefix, Value::Text(v)) => c.prefix = Some(v),
            (Field::Suffix, Value::Text(v)) => c.suffix = Some(v),
            (Field::Taxvat, Value::Text(v)) => c.taxvat = Some(v),
            (Field::Dob, Value::Text(v)) => c.dob = Some(v),
            (Field::Gender, Value::Code(v)) => c.gender = Some(v),
            (Field::GroupId, Value::Number(n)) => c.group_id = Some(n),
            (Field::WebsiteId, Value::Number(n)) => c.website_id = n,
            (Field::StoreId, Value::Number(n)) => c.store_id = Some(n),
            (Field::IsSubscribed, Value::Code(v)) => c.is_subscribed = Some(v == 1),
            (Field::Password, Value::Secret(v)) => self.password = Some(v),
            (Field::Street, Value::Lines(v)) => a.street = v,
            (Field::City, Value::Text(v)) => a.city = v,
            (Field::Postcode, Value::Text(v)) => a.postcode = v,
            (Field::CountryId, Value::Text(v)) => a.country_id = v,
            (Field::Region, Value::Text(v)) => a.region = Some(v),
            (Field::Telephone, Value::Text(v)) => a.telephone = v,
            (Field::Company, Value::Text(v)) => a.company = Some(v),
            // Custom attributes are gathered in step 1; that every other field's kind gives
            // the value its place takes is held by `every_field_lands_in_the_customer`.
            _ => {}
        }
    }

    fn into_row(self, line: u64, address_given: bool) -> Row {
        let mut customer = self.customer;
        customer.address = address_given.then_some(self.address);
        Row {
            line,
            customer,
            password: self.password,
        }
    }
}

/// A rejected cell as a message or the report echoes it: its first [`SHOWN_CHARS`]
/// characters, and `…` when there were more (a 10 MB cell is not copied into every output).
pub fn shown(cell: &str) -> Cow<'_, str> {
    match cell.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => Cow::Owned(format!("{}…", &cell[..at])),
        None => Cow::Borrowed(cell),
    }
}

/// Top-level domains the shop's e-mail validator knows (`Laminas\Validator\Hostname`'s list,
/// IANA's; see the file's head), one a line.
const TLDS: &str = include_str!("tlds.txt");

/// Whether `tld` is in [`TLDS`], compared in lower case as Laminas does.
fn known_tld(tld: &str) -> bool {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let set = SET.get_or_init(|| {
        TLDS.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    });
    set.contains(tld.to_lowercase().as_str())
}

/// The email check, as strict as the shop's (`Laminas\Validator\EmailAddress`, which Magento
/// runs on a customer's email), so that a typo fails here rather than in the real run: one
/// `@`, a local part of at most 64 characters without spaces or `..`, a dotted domain whose
/// top-level domain is a real one (`gmail.con` is refused).
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
    if !known_tld(tld) {
        return Err("has a top-level domain that does not exist (a typo?)");
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

    /// A valid row's cells; a case's cells replace these or add columns after them.
    const BASE: [(&str, &[u8]); 3] = [
        ("email", b"a@x.io"),
        ("firstname", b"Ann"),
        ("lastname", b"Lee"),
    ];

    /// The row of `BASE` with `cells` over it, checked with no mapping.
    fn check_row(cells: &[(&str, &[u8])]) -> Result<Row, Rejected> {
        let mut row: Vec<(&str, &[u8])> = BASE.to_vec();
        for &(column, value) in cells {
            match row.iter_mut().find(|(c, _)| *c == column) {
                Some(cell) => cell.1 = value,
                None => row.push((column, value)),
            }
        }
        let columns = row.iter().map(|(c, _)| Field::parse(c)).collect();
        let validator = Validator::new(columns, 1, Mapping::default());
        validator.check(7, row.iter().map(|(_, v)| *v))
    }

    /// A case's cells: (column, raw value).
    type Cells<'a> = &'a [(&'a str, &'a [u8])];
    /// The problems expected, as (column, reason); none for a valid row.
    type Verdict<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn each_rule_names_its_column_and_reason() {
        let not_utf8 = "not valid UTF-8 (byte 2 of the cell); save the file as UTF-8";
        #[rustfmt::skip]
        let cases: &[(Cells, Verdict)] = &[
            // Valid: the row as it is, and values that take some reading.
            (&[], &[]),
            (&[("email", b"  first.last+tag@sub.example.org ")], &[]),
            (&[("gender", b"FEMALE"), ("is_subscribed", b"No"), ("dob", b"1815-12-10")], &[]),
            (&[("middlename", b""), ("custom:note", b"   ")], &[]),
            // Required values.
            (&[("email", b"")], &[("email", "required value is empty")]),
            (&[("firstname", b"   ")], &[("firstname", "required value is empty")]),
            // Each kind's check.
            (&[("email", b"not-an-email")], &[("email", "`not-an-email` has no @")]),
            (&[("email", b"a@b")], &[("email", "`a@b` has no dot in the domain")]),
            (&[("firstname", &[b'x'; 256])], &[("firstname", "longer than 255 characters")]),
            (&[("lastname", b"Le\x07e")], &[("lastname", "contains a control character")]),
            (&[("dob", b"1990-02-30")], &[("dob", "`1990-02-30` is not a calendar date")]),
            (&[("dob", b"17/05/1990")], &[("dob", "`17/05/1990` is not a date in the form YYYY-MM-DD")]),
            (&[("dob", b"2999-01-01")], &[("dob", "`2999-01-01` is in the future")]),
            (&[("gender", b"robot")], &[("gender", "`robot` is not one of 1, 2, 3, male, female, not specified")]),
            (&[("website_id", b"two")], &[("website_id", "`two` is not a whole number")]),
            (&[("group_id", b"-1")], &[("group_id", "`-1` is not a whole number")]),
            (&[("is_subscribed", b"maybe")], &[("is_subscribed", "`maybe` is not one of true, false, 1, 0, yes, no")]),
            // What any cell must be, before its kind is looked at.
            (&[("middlename", b"J\xf6rg")], &[("middlename", not_utf8)]),
            (&[("custom:note", &[b'y'; 4097])], &[("custom:note", "value is 4097 characters long")]),
            // A cell that cannot be read is not also called empty.
            (&[("firstname", b"J\xf6rg")], &[("firstname", not_utf8)]),
            // An address: any cell asks for the required ones.
            (&[("address_city", b"Lund")], &[
                ("address_street", "required when an address is given"),
                ("address_postcode", "required when an address is given"),
                ("address_telephone", "required when an address is given"),
                ("address_country_id", "required when an address is given"),
            ]),
            (&[("address_region", b"Sk\xc3\xa5ne")], &[
                ("address_street", "required when an address is given"),
                ("address_city", "required when an address is given"),
                ("address_postcode", "required when an address is given"),
                ("address_telephone", "required when an address is given"),
                ("address_country_id", "required when an address is given"),
            ]),
            (&[("address_street", b"1 Main"), ("address_city", b"Lund"), ("address_postcode", b"22100"),
               ("address_telephone", b"1"), ("address_country_id", b"swe")],
             &[("address_country_id", "`SWE` is not a two-letter ISO country code")]),
            // Every problem of a row, each once, in the table's order.
            (&[("gender", b"7"), ("firstname", b""), ("email", b"a@b")], &[
                ("email", "`a@b` has no dot in the domain"),
                ("firstname", "required value is empty"),
                ("gender", "`7` is not one of 1, 2, 3, male, female, not specified"),
            ]),
        ];
        for (cells, expected) in cases {
            let got: Vec<(String, String)> = match check_row(cells) {
                Ok(_) => Vec::new(),
                Err(rejected) => rejected
                    .problems
                    .into_iter()
                    .map(|p| (p.field.name(), p.reason))
                    .collect(),
            };
            let expected: Vec<(String, String)> = expected
                .iter()
                .map(|(c, r)| ((*c).to_owned(), (*r).to_owned()))
                .collect();
            let row: Vec<_> = cells
                .iter()
                .map(|(c, v)| format!("{c}={}", String::from_utf8_lossy(v)))
                .collect();
            assert_eq!(got, expected, "row {row:?}");
        }
    }

    #[test]
    fn a_problem_reads_column_then_reason() {
        let problem = Problem {
            field: Field::Custom("note".into()),
            reason: "value is 4097 characters long".into(),
        };
        assert_eq!(
            problem.to_string(),
            "custom:note: value is 4097 characters long"
        );
    }

    #[test]
    fn rejected_cells_are_echoed_clipped() {
        let long = "9".repeat(4000);
        let err = check_row(&[("gender", long.as_bytes())]).expect_err("bad gender");
        let m = err.problems[0].to_string();
        assert!(m.len() < 400 && m.contains("9…` is not one of"), "{m}");
        assert_eq!(shown("abc"), "abc");
        assert_eq!(shown(&"é".repeat(256)), "é".repeat(256));
        assert_eq!(shown(&"é".repeat(300)), format!("{}…", "é".repeat(256)));
    }

    #[test]
    fn every_field_lands_in_the_customer() {
        let cells: [(&str, &[u8]); 23] = [
            ("email", b" Ann.Lee@Example.com "),
            ("firstname", b"\xc3\x85sa"),
            ("lastname", b"Lee"),
            ("middlename", b"M"),
            ("prefix", b"Dr"),
            ("suffix", b"Jr"),
            ("taxvat", b"SE123"),
            ("dob", b"1985-03-14"),
            ("gender", b"not specified"),
            ("group_id", b"4"),
            ("website_id", b"2"),
            ("store_id", b"5"),
            ("is_subscribed", b"yes"),
            ("password", b"s3cret"),
            ("address_street", b"Storgatan 1 | Lgh 2\n"),
            ("address_city", b"Lund"),
            ("address_postcode", b"223 50"),
            ("address_telephone", b"+46 46 123"),
            ("address_country_id", b"se"),
            ("address_region", b"Sk\xc3\xa5ne"),
            ("address_company", b"ACME"),
            ("custom:zz", b"last"),
            ("custom:loyalty_no", b"L-1"),
        ];
        let row = check_row(&cells).expect("valid");
        assert_eq!(row.line, 7);
        assert!(row.password.is_some());
        let t = Text::from;
        assert_eq!(
            row.customer,
            Customer {
                email: "Ann.Lee@Example.com".into(),
                firstname: t("Åsa"),
                lastname: t("Lee"),
                middlename: Some(t("M")),
                prefix: Some(t("Dr")),
                suffix: Some(t("Jr")),
                dob: Some(t("1985-03-14")),
                gender: Some(3),
                taxvat: Some(t("SE123")),
                group_id: Some(4),
                website_id: 2,
                store_id: Some(5),
                is_subscribed: Some(true),
                custom_attributes: vec![(t("loyalty_no"), t("L-1")), (t("zz"), t("last"))],
                address: Some(Address {
                    street: vec![t("Storgatan 1"), t("Lgh 2")],
                    city: t("Lund"),
                    postcode: t("223 50"),
                    country_id: t("SE"),
                    region: Some(t("Skåne")),
                    telephone: t("+46 46 123"),
                    company: Some(t("ACME")),
                    shop_region: None,
                }),
            }
        );
        let minimal = check_row(&[]).expect("valid");
        assert_eq!(
            (
                minimal.customer.website_id,
                minimal.customer.address,
                minimal.password.is_none()
            ),
            (1, None, true),
            "the default website; no address, no password"
        );
    }

    #[test]
    fn a_rejected_row_names_the_website_its_key_would_have() {
        let website =
            |cells: &[(&str, &[u8])]| check_row(cells).map(|_| ()).map_err(|r| r.website_id);
        let bad = ("dob", &b"never"[..]);
        assert_eq!(website(&[bad]), Err(1), "the default");
        assert_eq!(website(&[bad, ("website_id", b"3")]), Err(3), "its cell");
        assert_eq!(
            website(&[("website_id", b"three")]),
            Err(1),
            "not a number: the default"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[constants]\nwebsite_id = 2\n[values.website_id]\nEU = 4\n",
        )
        .expect("write");
        let mapping = Mapping::from_file(&path).expect("mapping");
        let columns = ["email", "firstname", "lastname", "website_id"];
        let validator = Validator::new(
            columns.iter().map(|c| Field::parse(c)).collect(),
            1,
            mapping,
        );
        let website = |row: [&[u8]; 4]| {
            validator
                .check(2, row)
                .map(|_| ())
                .map_err(|r| r.website_id)
        };
        assert_eq!(
            website([b"bad", b"Ann", b"Lee", b""]),
            Err(2),
            "the mapping's constant"
        );
        assert_eq!(
            website([b"bad", b"Ann", b"Lee", b"eu"]),
            Err(4),
            "through the value map"
        );
    }

    #[test]
    fn email_rules() {
        let local_64 = format!("{}@x.io", "a".repeat(64));
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o@exämple.de",
            "a@b.MUSEUM",
            "a@b.онлайн",
            &local_64,
        ] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        let local_65 = format!("{}@x.io", "a".repeat(65));
        for bad in [
            "a",
            "a@b",
            "a b@c.de",
            "a@@b.de",
            ".a@b.de",
            "a..b@c.de",
            "a@b.c",
            "a@-b.de",
            "a@b.d3",
            &local_65,
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        for typo in ["ann@gmail.con", "ann@example.comm", "ann@example.cmo"] {
            assert_eq!(
                check_email(typo),
                Err("has a top-level domain that does not exist (a typo?)"),
                "{typo}"
            );
        }
    }
}
