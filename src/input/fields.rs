//! The field vocabulary: every column the contract knows, in one table.
//!
//! [`FIELDS`] says, once per field, how its column is spelled, whether a row must fill it and
//! what kind of value it takes. Header parsing ([`Field::parse`]), messages ([`Field::name`]),
//! the header's required columns and the checks each cell gets are all read from it, so a new
//! column is one line here (and its place in the [`Customer`](crate::customer::Customer)).

/// A field of the contract that a column can fill, in the order of [`FIELDS`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Email,
    Firstname,
    Lastname,
    Middlename,
    Prefix,
    Suffix,
    Taxvat,
    Dob,
    Gender,
    GroupId,
    WebsiteId,
    StoreId,
    IsSubscribed,
    Password,
    Street,
    City,
    Postcode,
    Telephone,
    CountryId,
    Region,
    Company,
    /// `custom:<attribute_code>`.
    Custom(String),
    /// `address{number}_<name>` (number 2 to [`MAX_ADDRESS`]): a field of a further address,
    /// `of` the line of [`FIELDS`] of the default address's field it repeats.
    Further {
        number: u16,
        of: usize,
    },
}

/// The highest address number a column may give (`address99_city`).
pub const MAX_ADDRESS: u16 = 99;

/// Which record a field belongs to: the customer, or an address (the default one; its lines
/// are repeated by [`Field::Further`] for the further ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Customer,
    /// Filling any address cell gives the row an address.
    Address,
}

/// What a cell must hold, and what it becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An email address that [`check_email`](super::check_email) accepts.
    Email,
    /// A name-like text: at most 255 characters, no control characters.
    Name,
    /// A first, middle or last name: a [`Kind::Name`] of the characters Magento takes in one.
    PersonName,
    /// `YYYY-MM-DD`, a calendar date, not in the future.
    Date,
    /// One of these words (case-insensitive), standing for the code Magento takes.
    Choice(&'static [(&'static str, u8)]),
    /// A whole number (an id).
    Number,
    /// Any text, taken as written.
    Text,
    /// A password: taken as written, and only ever held as a secret.
    Secret,
    /// Street lines, split on `|` or a newline.
    Lines,
    /// A two-letter ISO country code, upper-cased.
    Country,
}

/// One line of the vocabulary.
#[derive(Debug)]
pub struct FieldSpec {
    pub field: Field,
    /// The column name as the contract spells it (headers match it case-insensitively).
    pub column: &'static str,
    pub part: Part,
    /// For the customer: the header must have the column and every row a value. For the
    /// address: every row that gives an address must fill it.
    pub required: bool,
    pub kind: Kind,
}

/// Magento's gender codes, and the words a file may use for them.
const GENDERS: &[(&str, u8)] = &[
    ("1", 1),
    ("2", 2),
    ("3", 3),
    ("male", 1),
    ("female", 2),
    ("not specified", 3),
];

/// Yes/no words; 1 is yes. Listed in the order the message names them.
const FLAGS: &[(&str, u8)] = &[
    ("true", 1),
    ("false", 0),
    ("1", 1),
    ("0", 0),
    ("yes", 1),
    ("no", 0),
];

const fn spec(
    field: Field,
    column: &'static str,
    part: Part,
    required: bool,
    kind: Kind,
) -> FieldSpec {
    FieldSpec {
        field,
        column,
        part,
        required,
        kind,
    }
}

use Part::{Address, Customer};
const REQUIRED: bool = true;
const OPTIONAL: bool = false;

/// Every field but `custom:<code>`, in the order a row's problems are listed.
#[rustfmt::skip]
pub static FIELDS: [FieldSpec; 21] = [
    spec(Field::Email,        "email",              Customer, REQUIRED, Kind::Email),
    spec(Field::Firstname,    "firstname",          Customer, REQUIRED, Kind::PersonName),
    spec(Field::Lastname,     "lastname",           Customer, REQUIRED, Kind::PersonName),
    spec(Field::Middlename,   "middlename",         Customer, OPTIONAL, Kind::PersonName),
    spec(Field::Prefix,       "prefix",             Customer, OPTIONAL, Kind::Name),
    spec(Field::Suffix,       "suffix",             Customer, OPTIONAL, Kind::Name),
    spec(Field::Taxvat,       "taxvat",             Customer, OPTIONAL, Kind::Name),
    spec(Field::Dob,          "dob",                Customer, OPTIONAL, Kind::Date),
    spec(Field::Gender,       "gender",             Customer, OPTIONAL, Kind::Choice(GENDERS)),
    spec(Field::GroupId,      "group_id",           Customer, OPTIONAL, Kind::Number),
    spec(Field::WebsiteId,    "website_id",         Customer, OPTIONAL, Kind::Number),
    spec(Field::StoreId,      "store_id",           Customer, OPTIONAL, Kind::Number),
    spec(Field::IsSubscribed, "is_subscribed",      Customer, OPTIONAL, Kind::Choice(FLAGS)),
    spec(Field::Password,     "password",           Customer, OPTIONAL, Kind::Secret),
    spec(Field::Street,       "address_street",     Address,  REQUIRED, Kind::Lines),
    spec(Field::City,         "address_city",       Address,  REQUIRED, Kind::Text),
    spec(Field::Postcode,     "address_postcode",   Address,  REQUIRED, Kind::Text),
    spec(Field::Telephone,    "address_telephone",  Address,  REQUIRED, Kind::Text),
    spec(Field::CountryId,    "address_country_id", Address,  REQUIRED, Kind::Country),
    spec(Field::Region,       "address_region",     Address,  OPTIONAL, Kind::Text),
    spec(Field::Company,      "address_company",    Address,  OPTIONAL, Kind::Text),
];

impl Field {
    /// Parses a header cell: case-insensitive, surrounding spaces ignored.
    pub fn parse(name: &str) -> Option<Field> {
        let n = name.trim().to_lowercase();
        if let Some(code) = n.strip_prefix("custom:") {
            let code = code.trim();
            return (!code.is_empty()).then(|| Field::Custom(code.to_owned()));
        }
        if let Some(further) = Field::further(&n) {
            return Some(further);
        }
        FIELDS
            .iter()
            .find(|s| s.column == n)
            .map(|s| s.field.clone())
    }

    /// The column name as the contract spells it, for messages.
    pub fn name(&self) -> String {
        match self {
            Field::Custom(code) => format!("custom:{code}"),
            Field::Further { number, of } => {
                let name = FIELDS.get(*of).map_or("", |s| s.column);
                format!("address{number}_{}", name.trim_start_matches("address_"))
            }
            // Every other field has its line in the table (a test holds it to that).
            known => known.spec().map_or("", |s| s.column).to_owned(),
        }
    }

    /// The field's line in [`FIELDS`]; `None` for `custom:<code>`.
    pub fn index(&self) -> Option<usize> {
        FIELDS.iter().position(|s| s.field == *self)
    }

    fn spec(&self) -> Option<&'static FieldSpec> {
        self.index().map(|i| &FIELDS[i])
    }

    /// `address{n}_<name>` for an `address_<name>` of [`FIELDS`] and `n` from 2 to
    /// [`MAX_ADDRESS`] (written without leading zeros, so that each has one spelling).
    fn further(name: &str) -> Option<Field> {
        let rest = name.strip_prefix("address")?;
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, short) = rest.split_at(digits);
        let number: u16 = number
            .parse()
            .ok()
            .filter(|n| (2..=MAX_ADDRESS).contains(n))?;
        if rest.starts_with('0') {
            return None;
        }
        let column = format!("address{short}");
        let of = FIELDS
            .iter()
            .position(|s| s.part == Part::Address && s.column == column)?;
        Some(Field::Further { number, of })
    }
}

impl FieldSpec {
    /// Whether the `--empty-value` token may clear the field in the shop: an optional field
    /// that holds a text, or the gender. An id has no "nothing" to set (every customer has a
    /// group, a website and a store), the subscription is `no`, and a required field must keep
    /// a value.
    pub fn clearable(&self) -> bool {
        !self.required
            && (matches!(
                self.kind,
                Kind::Name | Kind::PersonName | Kind::Text | Kind::Date
            ) || self.field == Field::Gender)
    }
}

/// The columns the header must have, in the order they are checked.
pub fn required_columns() -> impl Iterator<Item = &'static FieldSpec> {
    FIELDS
        .iter()
        .filter(|s| s.required && s.part == Part::Customer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_parses_back_to_its_field() {
        for s in &FIELDS {
            assert_eq!(Field::parse(s.column).as_ref(), Some(&s.field));
            assert_eq!(
                Field::parse(&format!(" {} ", s.column.to_uppercase())).as_ref(),
                Some(&s.field)
            );
            assert_eq!(s.field.name(), s.column);
        }
        let columns: std::collections::HashSet<_> = FIELDS.iter().map(|s| s.column).collect();
        let fields: std::collections::HashSet<_> = FIELDS.iter().map(|s| &s.field).collect();
        assert_eq!(columns.len(), FIELDS.len(), "no column twice");
        assert_eq!(fields.len(), FIELDS.len(), "no field twice");
    }

    #[test]
    fn custom_columns_and_unknown_names() {
        assert_eq!(
            Field::parse("Custom: Loyalty_No"),
            Some(Field::Custom("loyalty_no".into()))
        );
        assert_eq!(Field::Custom("x".into()).name(), "custom:x");
        assert_eq!(Field::Custom("x".into()).index(), None);
        for unknown in [
            "custom:",
            "shoe_size",
            "street",
            "",
            "address1_city",
            "address02_city",
            "address100_city",
            "address2_shoe",
            "address2city",
        ] {
            assert_eq!(Field::parse(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn further_address_columns_repeat_the_address_fields() {
        for s in FIELDS.iter().filter(|s| s.part == Part::Address) {
            let column = s.column.replacen("address_", "address7_", 1);
            let field = Field::parse(&format!(" {} ", column.to_uppercase())).expect("parses");
            assert_eq!(field.name(), column);
            assert_eq!(field.index(), None);
        }
        assert_eq!(
            Field::parse("address2_city"),
            Some(Field::Further { number: 2, of: 15 })
        );
    }

    #[test]
    fn text_fields_that_may_be_empty_can_be_cleared() {
        let clearable: Vec<_> = FIELDS
            .iter()
            .filter(|s| s.clearable())
            .map(|s| s.column)
            .collect();
        assert_eq!(
            clearable,
            [
                "middlename",
                "prefix",
                "suffix",
                "taxvat",
                "dob",
                "gender",
                "address_region",
                "address_company"
            ]
        );
    }

    #[test]
    fn the_header_requires_email_and_names() {
        let required: Vec<_> = required_columns().map(|s| s.column).collect();
        assert_eq!(required, ["email", "firstname", "lastname"]);
    }
}
