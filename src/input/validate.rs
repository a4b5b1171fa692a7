//! Validation: one row's raw cells in, a [`Row`] or every [`Problem`] with it out.
//!
//! Pure: no file and no I/O, so every rule is tested with rows written in the test. A row is
//! checked in three steps, collecting every problem so that a person fixes it once:
//!
//! 1. each [`Source`] of the header, in order: its cells UTF-8 and not absurdly long, cut
//!    (split) or put together (join), then through the mapping's value map and date formats;
//!    the `--empty-value` token passes as it is;
//! 2. the mapping's constants fill the fields the row left empty;
//! 3. each field, in [`FIELDS`] order: the token clears it (when [`FieldSpec::clearable`]),
//!    else the check its [`Kind`](super::fields::Kind) names, or, when it is empty, whether its
//!    [`FieldSpec::required`] says it may be; then each further address (`address2_*`, ...)
//!    by the same rules as the default one, its problems named by its own columns.

use std::borrow::Cow;
use std::fmt;

use secrecy::SecretString;

use super::draft::{Draft, place_address};
use super::fields::{FIELDS, Field, FieldSpec, Part};
use super::header::Source;
use super::kinds::{Value, check, key_value, shown};
use super::mapping::{Mapping, Piece, Split, fill};
use crate::customer::{Address, Customer, GENDER_CLEARED, KeyKind, Text};

/// The longest value of any other field: beyond this a cell is a broken export, not data.
const MAX_FIELD_CHARS: usize = 4096;
/// Most bytes a row's cells may hold, over the columns it fills: every field at its longest
/// with room to spare. A row is built from its cells, so this bounds what one row costs.
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// Most cells a row may fill: every field, and more custom attributes than a shop defines.
pub const MAX_ROW_CELLS: usize = 256;

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
    /// the default), so that the report shows it and the customer it names is not counted
    /// absent. `None` when the cell is given but cannot be read: the row's customer could be
    /// in any website, so it is neither counted as a copy nor kept from absence by guess.
    pub website_id: Option<u32>,
    pub problems: Vec<Problem>,
    /// Under `--key custom:<code>`, the key's value when the row gives one, so that the
    /// customer it names is not counted absent either.
    pub key_value: Option<Text>,
}

/// One cell of a row as the file holds it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cell<'a> {
    pub bytes: &'a [u8],
    /// A spreadsheet's date cell, as `YYYY-MM-DD` (midnight) or `YYYY-MM-DD HH:MM:SS`: a date
    /// already, which no date format is applied to.
    pub date: bool,
}

impl<'a> Cell<'a> {
    /// A cell of text.
    pub fn text(bytes: &'a [u8]) -> Self {
        Cell { bytes, date: false }
    }
}

/// A row's cells by column; a column the row does not have reads as empty.
pub trait Cells {
    fn cell(&self, at: usize) -> Cell<'_>;
}

impl Cells for [&[u8]] {
    fn cell(&self, at: usize) -> Cell<'_> {
        Cell::text(self.get(at).copied().unwrap_or_default())
    }
}

/// Where a field's values go: a line of [`FIELDS`], a custom attribute, or a line of a
/// further address.
#[derive(Debug)]
enum Slot {
    Known(usize),
    Custom(Text),
    Further(u16, usize),
}

/// A field that a source fills.
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
            Field::Further { number, of } => Slot::Further(*number, *of),
            known => Slot::Known(known.index()?),
        };
        Some(Column { field, slot })
    }
}

/// A [`Source`] with its fields resolved to their slots.
#[derive(Debug)]
enum Input {
    Cell {
        at: usize,
        column: Column,
    },
    Split {
        at: usize,
        split: Split,
        columns: Vec<Column>,
    },
    Join {
        at: Vec<usize>,
        pieces: Vec<Piece>,
        column: Column,
    },
}

impl Input {
    fn new(source: Source) -> Option<Self> {
        Some(match source {
            Source::Cell { at, field } => Input::Cell {
                at,
                column: Column::new(field)?,
            },
            Source::Split { at, split } => Input::Split {
                at,
                columns: split
                    .into
                    .iter()
                    .cloned()
                    .map(Column::new)
                    .collect::<Option<_>>()?,
                split,
            },
            Source::Join { at, join } => Input::Join {
                at,
                column: Column::new(join.field)?,
                pieces: join.pieces,
            },
        })
    }
}

/// Checks the rows of one file: where each field comes from, resolved once from the header,
/// and what fills the fields a row leaves empty.
#[derive(Debug)]
pub struct Validator {
    inputs: Vec<Input>,
    /// The columns some input reads, each once, in order.
    used: Vec<usize>,
    constants: Vec<(Column, String)>,
    default_website: u32,
    mapping: Mapping,
}

/// The values of one row by slot, as step 1 leaves them.
struct Gathered<'a> {
    values: [Option<Cow<'a, str>>; FIELDS.len()],
    custom_attributes: Vec<(Text, Text)>,
    /// Further addresses' values: (number, line of [`FIELDS`], value).
    further: Vec<(u16, usize, Cow<'a, str>)>,
    problems: Vec<Problem>,
}

impl<'a> Gathered<'a> {
    fn put(&mut self, column: &Column, value: Result<Option<Cow<'a, str>>, String>) {
        match (value, &column.slot) {
            (Ok(None), _) => {}
            (Ok(Some(v)), Slot::Known(i)) => self.values[*i] = Some(v),
            (Ok(Some(v)), Slot::Custom(code)) => {
                self.custom_attributes.push((code.clone(), Text::from(v)));
            }
            (Ok(Some(v)), Slot::Further(n, i)) => self.further.push((*n, *i, v)),
            (Err(reason), _) => self.problems.push(Problem {
                field: column.field.clone(),
                reason,
            }),
        }
    }
}

impl Validator {
    /// `sources` says where each field comes from (see [`super::header`]). `default_website`
    /// is the `website_id` of rows that give none.
    pub fn new(sources: Vec<Source>, default_website: u32, mapping: Mapping) -> Self {
        let constants = mapping
            .constants()
            .iter()
            .filter_map(|(field, value)| Some((Column::new(field.clone())?, value.clone())))
            .collect();
        let mut used: Vec<usize> = sources
            .iter()
            .flat_map(|s| match s {
                Source::Cell { at, .. } | Source::Split { at, .. } => vec![*at],
                Source::Join { at, .. } => at.clone(),
            })
            .collect();
        used.sort_unstable();
        used.dedup();
        Validator {
            inputs: sources.into_iter().filter_map(Input::new).collect(),
            used,
            constants,
            default_website,
            mapping,
        }
    }

    /// What identifies a row's customer (`--key`).
    pub fn key(&self) -> &KeyKind {
        self.mapping.key()
    }

    /// Why a row is too large to be built at all, if it is: the cells it fills (those of
    /// columns that some field reads) are more than [`MAX_ROW_CELLS`], or hold more than
    /// [`MAX_ROW_BYTES`]. Looked at before anything of the row is copied.
    pub fn oversized<C: Cells + ?Sized>(&self, cells: &C) -> Option<String> {
        let (mut filled, mut bytes) = (0usize, 0usize);
        for &at in &self.used {
            let raw = cells.cell(at).bytes;
            if !raw.trim_ascii().is_empty() {
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

    /// Checks one row's cells against the contract's rules.
    pub fn check<'a, C: Cells + ?Sized>(
        &'a self,
        line: u64,
        cells: &'a C,
    ) -> Result<Row, Rejected> {
        // 1. Each source, into its fields' slots.
        let mut row = Gathered {
            values: [const { None }; FIELDS.len()],
            custom_attributes: Vec::new(),
            further: Vec::new(),
            problems: Vec::new(),
        };
        for input in &self.inputs {
            match input {
                Input::Cell { at, column } => {
                    let value = self.decode(&column.field, cells.cell(*at));
                    row.put(column, value);
                }
                Input::Split { at, split, columns } => match cell_text(cells.cell(*at)) {
                    Ok(text) => {
                        for (column, part) in columns.iter().zip(split.apply(text)) {
                            row.put(column, self.value(&column.field, part));
                        }
                    }
                    Err(reason) => {
                        if let Some(first) = columns.first() {
                            row.put(first, Err(reason));
                        }
                    }
                },
                Input::Join { at, pieces, column } => {
                    let texts: Result<Vec<&str>, String> =
                        at.iter().map(|&i| cell_text(cells.cell(i))).collect();
                    let value = texts.and_then(|texts| match fill(pieces, texts) {
                        None => Ok(None),
                        Some(joined) => self
                            .value(&column.field, &joined)
                            .map(|v| v.map(|v| Cow::Owned(v.into_owned()))),
                    });
                    row.put(column, value);
                }
            }
        }
        let Gathered {
            mut values,
            mut custom_attributes,
            mut further,
            mut problems,
        } = row;
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
                Slot::Further(n, i) => {
                    if !further.iter().any(|(fn_, fi, _)| (fn_, fi) == (n, i)) {
                        further.push((*n, *i, Cow::Borrowed(value)));
                    }
                }
            }
        }
        // A custom attribute holding the token is cleared: sent empty.
        let token = self.mapping.empty_value();
        for (_, value) in &mut custom_attributes {
            if Some(value.as_str()) == token {
                value.clear();
            }
        }
        custom_attributes.sort();
        // The key's value, under `--key custom:<code>`: required, and never cleared.
        let key_value = match key_value(self.mapping.key(), &custom_attributes, token) {
            Ok(value) => value,
            Err((field, reason)) => {
                if !problems.iter().any(|p| p.field == field) {
                    problems.push(Problem { field, reason });
                }
                None
            }
        };
        // 3. Each field by its kind.
        let clears = |v: &Option<Cow<'_, str>>| v.as_deref().is_some_and(|v| Some(v) == token);
        let address_given = FIELDS
            .iter()
            .zip(&values)
            .any(|(s, v)| s.part == Part::Address && v.is_some() && !clears(v));
        let mut draft = Draft::new(self.default_website, custom_attributes);
        draft.customer.key_attribute = self.mapping.key().attribute().map(Text::from);
        for (spec, value) in FIELDS.iter().zip(values) {
            let reported = problems.iter().any(|p| p.field == spec.field);
            match verdict(spec, value, token, address_given, reported) {
                Verdict::Place(value) => draft.place(&spec.field, value),
                Verdict::Skip => {}
                Verdict::Problem(reason) => problems.push(Problem {
                    field: spec.field.clone(),
                    reason,
                }),
            }
        }
        // Each further address by the same rules as the default one, in number order.
        let mut by_number = std::collections::BTreeMap::new();
        for (n, i, v) in further {
            let values: &mut [Option<Cow<'_, str>>; FIELDS.len()] =
                by_number.entry(n).or_insert([const { None }; FIELDS.len()]);
            values[i] = Some(v);
        }
        for (number, values) in by_number {
            let given = values.iter().any(|v| v.is_some() && !clears(v));
            if !given {
                continue;
            }
            let mut address = Address::empty();
            for (of, (spec, value)) in FIELDS.iter().zip(values).enumerate() {
                if spec.part != Part::Address {
                    continue;
                }
                let field = Field::Further { number, of };
                let reported = problems.iter().any(|p| p.field == field);
                match verdict(spec, value, token, true, reported) {
                    Verdict::Place(value) => place_address(&mut address, &spec.field, value),
                    Verdict::Skip => {}
                    Verdict::Problem(reason) => problems.push(Problem { field, reason }),
                }
            }
            draft.further(number, address);
        }
        if !problems.is_empty() {
            let unreadable = problems.iter().any(|p| p.field == Field::WebsiteId);
            return Err(Rejected {
                website_id: (!unreadable).then_some(draft.customer.website_id),
                problems,
                key_value,
            });
        }
        Ok(draft.into_row(line, address_given))
    }

    /// A cell as its field takes it: `None` when empty, `Err` when it cannot be data. A date
    /// cell is a date already: for `dob`, its date.
    fn decode<'a>(&'a self, field: &Field, cell: Cell<'a>) -> Result<Option<Cow<'a, str>>, String> {
        let v = cell_text(cell)?;
        if cell.date && !v.is_empty() {
            return Ok(Some(Cow::Borrowed(match field {
                Field::Dob => v.get(..10).unwrap_or(v),
                _ => v,
            })));
        }
        self.value(field, v)
    }

    /// A trimmed text as its field takes it: through the mapping, unless it is the empty-value
    /// token, which passes as it is.
    fn value<'a>(&'a self, field: &Field, v: &'a str) -> Result<Option<Cow<'a, str>>, String> {
        if v.len() > MAX_FIELD_CHARS && v.chars().count() > MAX_FIELD_CHARS {
            return Err(format!("value is {} characters long", v.chars().count()));
        }
        if v.is_empty() {
            return Ok(None);
        }
        if Some(v) == self.mapping.empty_value() {
            return Ok(Some(Cow::Borrowed(v)));
        }
        self.mapping.convert(field, v).map(Some)
    }
}

/// A cell's text, trimmed, when it is UTF-8.
fn cell_text(cell: Cell<'_>) -> Result<&str, String> {
    std::str::from_utf8(cell.bytes).map(str::trim).map_err(|e| {
        format!(
            "not valid UTF-8 (byte {} of the cell): save the file as UTF-8, or name its \
                 encoding with --encoding",
            e.valid_up_to() + 1
        )
    })
}

/// Whether the `--empty-value` token may clear the field; `Err` says why not.
fn cleared(spec: &FieldSpec, token: &str) -> Result<(), String> {
    match spec {
        s if s.clearable() => Ok(()),
        s if s.required => Err(format!("`{token}` cannot clear a required field")),
        _ => Err(format!(
            "`{token}` cannot clear this field: give a value, or leave the cell empty to keep \
             the shop's"
        )),
    }
}

/// What step 3 makes of one field's value.
enum Verdict {
    Place(Value),
    Skip,
    Problem(String),
}

/// Step 3 for one field: `address_given` says whether its address (if it is an address field)
/// is given, `reported` whether step 1 already said what is wrong with its cell.
fn verdict(
    spec: &FieldSpec,
    value: Option<Cow<'_, str>>,
    token: Option<&str>,
    address_given: bool,
    reported: bool,
) -> Verdict {
    let reason = match value {
        Some(v) if Some(&*v) == token => match cleared(spec, &v) {
            // Clearing a field of an address the row does not give would clear nothing, and
            // the row would pass for done.
            Ok(()) if spec.part == Part::Address && !address_given => format!(
                "`{}` clears this field of the row's address, but the row gives no address",
                shown(&v)
            ),
            Ok(()) => {
                return Verdict::Place(match spec.field {
                    Field::Gender => Value::Code(GENDER_CLEARED),
                    _ => Value::Text(Text::default()),
                });
            }
            Err(reason) => reason,
        },
        Some(v) => match check(spec.kind, &v) {
            Ok(value) => return Verdict::Place(value),
            Err(reason) => reason,
        },
        None => match missing(spec, address_given) {
            Some(reason) if !reported => reason.to_owned(),
            _ => return Verdict::Skip,
        },
    };
    Verdict::Problem(reason)
}

/// Why an empty field makes the row invalid, if it does.
fn missing(spec: &FieldSpec, address_given: bool) -> Option<&'static str> {
    match spec.part {
        _ if !spec.required => None,
        Part::Customer => Some("required value is empty"),
        Part::Address => address_given.then_some("required when an address is given"),
    }
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
        let header: Vec<&str> = row.iter().map(|(c, _)| *c).collect();
        let cells: Vec<&[u8]> = row.iter().map(|(_, v)| *v).collect();
        validator(&header, Mapping::default()).check(7, &cells[..])
    }

    /// A validator for a header of contract column names.
    fn validator(header: &[&str], mapping: Mapping) -> Validator {
        let sources = header
            .iter()
            .enumerate()
            .filter_map(|(at, c)| {
                Some(Source::Cell {
                    at,
                    field: Field::parse(c)?,
                })
            })
            .collect();
        Validator::new(sources, 1, mapping)
    }

    /// A case's cells: (column, raw value).
    type Cells<'a> = &'a [(&'a str, &'a [u8])];
    /// The problems expected, as (column, reason); none for a valid row.
    type Verdict<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn a_custom_key_needs_its_value_in_every_row() {
        let mut mapping = Mapping::default();
        mapping.set_empty_value("__EMPTY__VALUE__");
        mapping.set_key(KeyKind::Custom("legacy_id".into()));
        let v = validator(
            &["email", "firstname", "lastname", "custom:legacy_id"],
            mapping,
        );
        let check = |email: &[u8], key: &[u8]| v.check(4, &[email, b"Ann", b"Lee", key][..]);
        let row = check(b"Ann@x.io", b" L-1 ").expect("valid");
        assert_eq!(row.customer.key_attribute.as_deref(), Some("legacy_id"));
        assert_eq!(row.customer.key(), crate::customer::Key::custom(1, "L-1"));
        // (email, key cell, the problem, the key value the rejected row still gives)
        type Case<'a> = (&'a [u8], &'a [u8], &'a str, Option<&'a str>);
        let table: &[Case] = &[
            (
                b"a@x.io",
                b"",
                "custom:legacy_id: required value is empty: it identifies the customer \
                 (--key custom:legacy_id)",
                None,
            ),
            (
                b"a@x.io",
                b"__EMPTY__VALUE__",
                "custom:legacy_id: `__EMPTY__VALUE__` cannot clear the key (--key custom:legacy_id)",
                None,
            ),
            (b"bad", b"L-2", "email: `bad` has no @", Some("L-2")),
        ];
        for &(email, key, reason, value) in table {
            let r = check(email, key).expect_err("invalid");
            let reasons: Vec<String> = r.problems.iter().map(ToString::to_string).collect();
            assert_eq!(reasons, [reason]);
            assert_eq!(r.key_value.as_deref(), value);
        }
    }

    #[test]
    fn further_addresses_keep_their_numbers_and_are_not_the_default() {
        let mut mapping = Mapping::default();
        mapping.set_empty_value("__EMPTY__VALUE__");
        let cells: [(&str, &[u8]); 10] = [
            BASE[0],
            BASE[1],
            BASE[2],
            ("address3_street", b"Hamngatan 3"),
            ("address3_city", b"Malm\xc3\xb6"),
            ("address3_postcode", b"21120"),
            ("address3_telephone", b"040"),
            ("address3_country_id", b"se"),
            ("address3_company", b"__EMPTY__VALUE__"),
            ("address2_region", b"__EMPTY__VALUE__"),
        ];
        let header: Vec<&str> = cells.iter().map(|(c, _)| *c).collect();
        let values: Vec<&[u8]> = cells.iter().map(|(_, v)| *v).collect();
        let row = validator(&header, mapping)
            .check(2, &values[..])
            .expect("valid");
        let c = row.customer;
        assert_eq!(c.address, None);
        let mut want = Address::empty();
        want.street = vec![Text::from("Hamngatan 3")];
        want.city = "Malmö".into();
        want.postcode = "21120".into();
        want.telephone = "040".into();
        want.country_id = "SE".into();
        want.company = Some(Text::default());
        assert_eq!(
            c.further_addresses,
            [None, Some(want)],
            "address2 only cleared: none"
        );
        assert_eq!(c.fields()["address3_city"], "Malmö");
        assert!(!c.fields().contains_key("city"));
    }

    #[test]
    fn each_rule_names_its_column_and_reason() {
        let not_utf8 = "not valid UTF-8 (byte 2 of the cell): save the file as UTF-8, or name \
                        its encoding with --encoding";
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
            // Names: the characters Magento's Validator\Name takes, and no others.
            (&[("firstname", "Zoë-Anne O'Brien Jr. & Co, 2nd".as_bytes()), ("lastname", "Jo\u{308}rg d’Arc".as_bytes())], &[]),
            (&[("lastname", b"Smith (Jr)")], &[("lastname", "`Smith (Jr)` holds `(`, which Magento does not take in a name (letters, digits, spaces and , - _ . ' \u{2019} ` & only)")]),
            (&[("middlename", "Di 😀".as_bytes())], &[("middlename", "`Di 😀` holds `😀`, which Magento does not take in a name (letters, digits, spaces and , - _ . ' \u{2019} ` & only)")]),
            (&[("firstname", b"#N/A")], &[("firstname", "`#N/A` holds `#`, which Magento does not take in a name (letters, digits, spaces and , - _ . ' \u{2019} ` & only)")]),
            (&[("prefix", b"Dr. (h.c.)")], &[]),
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
            // A further address: the same rules, named by its own columns.
            (&[("address2_city", b"Malm\xc3\xb6")], &[
                ("address2_street", "required when an address is given"),
                ("address2_postcode", "required when an address is given"),
                ("address2_telephone", "required when an address is given"),
                ("address2_country_id", "required when an address is given"),
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
        use crate::input::kinds::shown;
        let long = "9".repeat(4000);
        let err = check_row(&[("gender", long.as_bytes())]).expect_err("bad gender");
        let m = err.problems[0].to_string();
        assert!(m.len() < 400 && m.contains("9…` is not one of"), "{m}");
        assert_eq!(shown("abc"), "abc");
        assert_eq!(shown(&"é".repeat(256)), "é".repeat(256));
        assert_eq!(shown(&"é".repeat(300)), format!("{}…", "é".repeat(256)));
        // A run-on cell (a quote left open) holds the next cells, maybe a password.
        for run_on in ["ann@x.io,Ann,Pw-1\nbob@x.io", "ann@x.io;Pw", "ann@x.io\tPw"] {
            assert_eq!(shown(run_on), "ann@x.io…", "{run_on:?}");
        }
        assert_eq!(
            shown(&format!("{},Pw", "a".repeat(256))),
            format!("{}…", "a".repeat(256))
        );
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
                further_addresses: Vec::new(),
                key_attribute: None,
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
        assert_eq!(website(&[bad]), Err(Some(1)), "the default");
        assert_eq!(
            website(&[bad, ("website_id", b"3")]),
            Err(Some(3)),
            "its cell"
        );
        assert_eq!(
            website(&[("website_id", b"three")]),
            Err(None),
            "not a number: none"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[constants]\nwebsite_id = 2\n[values.website_id]\nEU = 4\n",
        )
        .expect("write");
        let mapping = Mapping::from_file(&path).expect("mapping");
        let validator = validator(&["email", "firstname", "lastname", "website_id"], mapping);
        let website = |row: [&[u8]; 4]| {
            validator
                .check(2, &row[..])
                .map(|_| ())
                .map_err(|r| r.website_id)
        };
        assert_eq!(
            website([b"bad", b"Ann", b"Lee", b""]),
            Err(Some(2)),
            "the mapping's constant"
        );
        assert_eq!(
            website([b"bad", b"Ann", b"Lee", b"eu"]),
            Err(Some(4)),
            "through the value map"
        );
    }

    #[test]
    fn the_empty_value_token_clears_what_may_be_cleared() {
        let mut mapping = Mapping::default();
        mapping.set_empty_value("__EMPTY__VALUE__");
        let header = [
            "email",
            "firstname",
            "lastname",
            "middlename",
            "dob",
            "custom:note",
            "gender",
        ];
        let v = validator(&header, mapping.clone());
        let token: &[u8] = b"__EMPTY__VALUE__";
        let row = v
            .check(
                2,
                &[&b"a@x.io"[..], b"Ann", b"Lee", token, token, token, token][..],
            )
            .expect("valid");
        let c = row.customer;
        assert_eq!(c.middlename.as_deref(), Some(""));
        assert_eq!(c.dob.as_deref(), Some(""));
        assert_eq!(c.gender, Some(GENDER_CLEARED));
        assert_eq!(c.custom_attributes, [(Text::from("note"), Text::default())]);
        // A company cleared of no address is a problem, not a row done.
        let v = validator(
            &["email", "firstname", "lastname", "address_company"],
            mapping,
        );
        let rejected = v
            .check(2, &[&b"a@x.io"[..], b"Ann", b"Lee", token][..])
            .expect_err("nothing to clear");
        assert_eq!(
            rejected.problems[0].to_string(),
            "address_company: `__EMPTY__VALUE__` clears this field of the row's address, but \
             the row gives no address"
        );

        let reasons = |header: &[&str], cells: &[&[u8]]| -> Vec<String> {
            let mut mapping = Mapping::default();
            mapping.set_empty_value("__EMPTY__VALUE__");
            validator(header, mapping).check(2, cells).map_or_else(
                |r| r.problems.iter().map(ToString::to_string).collect(),
                |_| vec![],
            )
        };
        assert_eq!(
            reasons(
                &["email", "firstname", "lastname"],
                &[b"a@x.io", b"Ann", token]
            ),
            ["lastname: `__EMPTY__VALUE__` cannot clear a required field"]
        );
        let r = reasons(
            &["email", "firstname", "lastname", "group_id"],
            &[b"a@x.io", b"Ann", b"Lee", token],
        );
        assert!(
            r[0].starts_with("group_id: `__EMPTY__VALUE__` cannot clear this field"),
            "{r:?}"
        );
    }

    /// Cells with a date flag, as a spreadsheet gives them.
    struct Typed<'a>(&'a [(&'a str, bool)]);

    impl super::Cells for Typed<'_> {
        fn cell(&self, at: usize) -> Cell<'_> {
            self.0.get(at).map_or(Cell::default(), |(text, date)| Cell {
                bytes: text.as_bytes(),
                date: *date,
            })
        }
    }

    #[test]
    fn splits_joins_formats_and_date_cells() {
        let toml = r#"
[columns]
"Mail" = "email"
"Born" = "dob"
"Since" = "custom:since"
[constants]
lastname = "-"
[formats]
dob = ["%d/%m/%Y", "%Y-%m-%d %H:%M:%S"]
[split]
"Full Name" = { into = ["firstname", "lastname"], rule = "last-word" }
[join]
address_street = "{Street} {No}"
"#;
        let mapping = Mapping::from_toml(toml, std::path::Path::new("m.toml")).expect("mapping");
        let header: Vec<String> = ["Mail", "Full Name", "Born", "Street", "No", "Since"]
            .map(String::from)
            .to_vec();
        let layout = crate::input::header::resolve(&header, &mapping).expect("layout");
        let v = Validator::new(layout.sources, 1, mapping);
        let check = |cells: &[(&str, bool)]| {
            v.check(3, &Typed(cells))
                .map(|row| row.customer)
                .map_err(|r| {
                    r.problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                })
        };
        let c = check(&[
            ("a@x.io", false),
            ("Anna Maria Lindqvist", false),
            ("24/12/1980", false),
            ("", false),
            ("", false),
            ("2020-01-02 10:00:00", true),
        ])
        .expect("valid");
        assert_eq!(
            (c.firstname.as_str(), c.lastname.as_str()),
            ("Anna Maria", "Lindqvist")
        );
        assert_eq!(c.dob.as_deref(), Some("1980-12-24"));
        assert_eq!(
            c.custom_attributes,
            [(Text::from("since"), Text::from("2020-01-02 10:00:00"))]
        );
        let c = check(&[
            ("a@x.io", false),
            ("Cher", false),
            ("1980-12-24 08:15:00", true),
            ("", false),
            ("", false),
            ("", false),
        ])
        .expect("valid");
        assert_eq!(
            (c.firstname.as_str(), c.lastname.as_str()),
            ("Cher", "-"),
            "the constant"
        );
        assert_eq!(
            c.dob.as_deref(),
            Some("1980-12-24"),
            "a date cell's date, no format"
        );
        let c = check(&[
            ("a@x.io", false),
            ("Bo Ek", false),
            ("1980-12-24 00:00:00", false),
        ])
        .expect("the second format");
        assert_eq!(c.dob.as_deref(), Some("1980-12-24"));
        let err = check(&[("a@x.io", false), ("Bo Ek", false), ("1980-12-24", false)])
            .expect_err("no format");
        assert_eq!(
            err,
            ["dob: `1980-12-24` matches none of the date formats %d/%m/%Y, %Y-%m-%d %H:%M:%S"]
        );
        let c = check(&[
            ("a@x.io", false),
            ("Bo Ek", false),
            ("", false),
            ("", false),
            ("12", false),
        ])
        .expect_err("a street makes an address");
        assert!(c[0].starts_with("address_city: required"), "{c:?}");
    }
}
