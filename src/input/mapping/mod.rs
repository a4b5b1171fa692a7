//! Column mapping for legacy exports, from `--map SOURCE=TARGET` and a `--mapping FILE`
//! (TOML), so that no preprocessing script is needed: renames, constants, value maps, date
//! formats, the `--empty-value` token, and the reshaping rules of `reshape.rs` (split, join).
//!
//! ```toml
//! [columns]            # source column -> target field
//! "E-Mail Address" = "email"
//! [constants]          # a value for every row, unless the row has its own
//! website_id = 2
//! [values.group_id]    # source value -> target value, per target field; "*": anything else
//! "Retail" = 1
//! "*" = 4
//! [formats]
//! dob = ["%d/%m/%Y", "%Y-%m-%d %H:%M:%S"]   # tried in order; sent as YYYY-MM-DD
//! [split]
//! "Full Name" = { into = ["firstname", "lastname"], rule = "last-word" }
//! [join]
//! address_street = "{Street} {House No}"
//! ```

mod reshape;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;

use super::Field;
use super::fields::FIELDS;
use super::kinds::shown;
use crate::customer::KeyKind;

pub use reshape::{Join, Piece, Split, fill};

/// A mapping that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    #[error("cannot read the mapping file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mapping file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "{origin}: `{target}` is not a field custsync knows; the fields are {}, custom:<code>",
        known_fields()
    )]
    UnknownField { origin: String, target: String },
    #[error("--map {0:?}: expected SOURCE=TARGET")]
    BadMap(String),
    #[error("{origin}: only dob takes a format")]
    UnknownFormat { origin: String },
    #[error("{origin}: {why}")]
    BadSplit { origin: String, why: String },
    #[error("{origin}: template {template:?} {why}")]
    BadJoin {
        origin: String,
        template: String,
        why: String,
    },
}

/// The field names a mapping may use, for the message that refuses another.
fn known_fields() -> String {
    FIELDS
        .iter()
        .map(|s| s.column)
        .chain(["address2_street, address2_city, ... (a further address: address<N>_<field>)"])
        .collect::<Vec<_>>()
        .join(", ")
}

/// A scalar of the TOML file, kept as the text it stands for.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Int(i64),
    Bool(bool),
    Float(f64),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Float(f) => f.to_string(),
        }
    }
}

/// One format, or a list tried in order.
#[derive(Deserialize)]
#[serde(untagged)]
enum Formats {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitEntry {
    into: Vec<String>,
    rule: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    columns: BTreeMap<String, String>,
    #[serde(default)]
    constants: BTreeMap<String, Scalar>,
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, Scalar>>,
    #[serde(default)]
    formats: BTreeMap<String, Formats>,
    #[serde(default)]
    split: BTreeMap<String, SplitEntry>,
    #[serde(default)]
    join: BTreeMap<String, String>,
}

/// A `[values.FIELD]` table.
#[derive(Debug, Default, Clone)]
struct ValueMap {
    /// Trimmed source value -> target value.
    table: HashMap<String, String>,
    /// The `"*"` entry: the target of any value not listed.
    otherwise: Option<String>,
}

impl ValueMap {
    fn get(&self, value: &str) -> Option<&String> {
        self.table
            .get(value)
            .or_else(|| {
                self.table
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(value))
                    .map(|(_, v)| v)
            })
            .or(self.otherwise.as_ref())
    }
}

/// How source columns and values become contract fields.
#[derive(Debug, Default, Clone)]
pub struct Mapping {
    /// Lower-cased, trimmed source column -> field.
    columns: HashMap<String, Field>,
    constants: Vec<(Field, String)>,
    values: HashMap<Field, ValueMap>,
    dob_formats: Vec<String>,
    /// Lower-cased, trimmed source column -> how it splits.
    splits: HashMap<String, Split>,
    joins: Vec<Join>,
    /// The cell text that clears a field (`--empty-value`).
    empty_value: Option<String>,
    /// What identifies a row's customer (`--key`): a custom key's column must be there, and
    /// each row must give it a value.
    key: KeyKind,
}

impl Mapping {
    /// Reads a mapping file.
    pub fn from_file(path: &Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: path.to_owned(),
            source,
        })?;
        Mapping::from_toml(&text, path)
    }

    /// Reads a mapping file's text; `path` names it in errors.
    pub(in crate::input) fn from_toml(text: &str, path: &Path) -> Result<Self, MappingError> {
        let file: File = toml::from_str(text).map_err(|e| MappingError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let origin = |section: &str| format!("{} [{section}]", path.display());
        let mut m = Mapping::default();
        for (source, target) in file.columns {
            m.columns
                .insert(normalise(&source), field(&origin("columns"), &target)?);
        }
        for (target, value) in file.constants {
            m.constants
                .push((field(&origin("constants"), &target)?, value.into_text()));
        }
        for (target, table) in file.values {
            let f = field(&origin(&format!("values.{target}")), &target)?;
            let mut map = ValueMap::default();
            for (k, v) in table {
                match k.trim() {
                    "*" => map.otherwise = Some(v.into_text()),
                    k => {
                        map.table.insert(k.to_owned(), v.into_text());
                    }
                }
            }
            m.values.insert(f, map);
        }
        for (target, formats) in file.formats {
            if field(&origin("formats"), &target)? != Field::Dob {
                return Err(MappingError::UnknownFormat {
                    origin: origin("formats"),
                });
            }
            m.dob_formats = match formats {
                Formats::One(f) => vec![f],
                Formats::Many(list) => list,
            };
        }
        for (source, entry) in file.split {
            let o = format!("{} [split] {source:?}", path.display());
            let into = entry
                .into
                .iter()
                .map(|t| field(&o, t))
                .collect::<Result<_, _>>()?;
            m.splits
                .insert(normalise(&source), Split::parse(&o, into, &entry.rule)?);
        }
        for (target, template) in file.join {
            let f = field(&origin("join"), &target)?;
            m.joins.push(Join::parse(&origin("join"), f, &template)?);
        }
        Ok(m)
    }

    /// Adds a `--map SOURCE=TARGET` rename; it wins over the file.
    pub fn add_rename(&mut self, spec: &str) -> Result<(), MappingError> {
        let (source, target) = spec
            .rsplit_once('=')
            .filter(|(s, t)| !s.trim().is_empty() && !t.trim().is_empty())
            .ok_or_else(|| MappingError::BadMap(spec.to_owned()))?;
        let f = field(&format!("--map {spec}"), target)?;
        self.columns.insert(normalise(source), f);
        Ok(())
    }

    /// Sets the cell text that clears a field in the shop (`--empty-value`); an empty token
    /// clears nothing.
    pub fn set_empty_value(&mut self, token: &str) {
        self.empty_value = Some(token.trim().to_owned()).filter(|t| !t.is_empty());
    }

    /// The token that clears a field, if any.
    pub fn empty_value(&self) -> Option<&str> {
        self.empty_value.as_deref()
    }

    /// Sets what identifies a row's customer (`--key`).
    pub fn set_key(&mut self, key: KeyKind) {
        self.key = key;
    }

    /// What identifies a row's customer.
    pub fn key(&self) -> &KeyKind {
        &self.key
    }

    /// The field a header cell fills: a rename, else the cell's own name.
    pub fn field_for(&self, header: &str) -> Option<Field> {
        match self.columns.get(&normalise(header)) {
            Some(f) => Some(f.clone()),
            None => Field::parse(header),
        }
    }

    /// How a header cell splits into fields, if the mapping splits it.
    pub fn split_for(&self, header: &str) -> Option<&Split> {
        self.splits.get(&normalise(header))
    }

    /// The fields built from templates.
    pub fn joins(&self) -> &[Join] {
        &self.joins
    }

    /// Constants for fields a row leaves empty.
    pub fn constants(&self) -> &[(Field, String)] {
        &self.constants
    }

    /// Everything the mapping says, in an order that does not depend on its maps' (for the
    /// row hash's fingerprint: two mappings that read a row differently must differ here).
    pub fn canonical(&self) -> String {
        let mut parts: Vec<String> = self.columns.iter().map(|c| format!("{c:?}")).collect();
        parts.extend(self.splits.iter().map(|s| format!("{s:?}")));
        parts.extend(self.values.iter().map(|(field, map)| {
            let mut table: Vec<_> = map.table.iter().collect();
            table.sort();
            format!("{field:?}{table:?}{:?}", map.otherwise)
        }));
        parts.sort();
        let rest = (&self.constants, &self.dob_formats, &self.joins);
        parts.push(format!("{rest:?}{:?}{:?}", self.empty_value, self.key));
        parts.join("\n")
    }

    /// Whether a row's values reach its fields as its cells hold them (but for the
    /// `--empty-value` token): the mapping renames columns and does nothing else (no value
    /// maps, date formats, constants, splits or joins).
    pub fn keeps_values(&self) -> bool {
        self.values.is_empty()
            && self.dob_formats.is_empty()
            && self.constants.is_empty()
            && self.splits.is_empty()
            && self.joins.is_empty()
    }

    /// Whether a constant fills `field` (so that the header need not have it).
    pub fn has_constant(&self, field: &Field) -> bool {
        self.constants.iter().any(|(f, _)| f == field)
    }

    /// A cell's value as the target field takes it: through the value map and the date
    /// formats, if any. `Err` says why the value cannot be used.
    pub fn convert<'a>(&self, field: &Field, value: &'a str) -> Result<Cow<'a, str>, String> {
        if self.values.is_empty() && self.dob_formats.is_empty() {
            return Ok(Cow::Borrowed(value));
        }
        let value = match self.values.get(field) {
            None => Cow::Borrowed(value),
            Some(map) => {
                let mapped = map.get(value).ok_or_else(|| {
                    format!(
                        "`{}` has no entry in the mapping's [values.{}]",
                        shown(value),
                        field.name()
                    )
                })?;
                Cow::Owned(mapped.clone())
            }
        };
        match field {
            Field::Dob if !self.dob_formats.is_empty() => self.date(&value).map(Cow::Owned),
            _ => Ok(value),
        }
    }

    /// A source date through the first of the formats it matches, as `YYYY-MM-DD`. A format
    /// with a time of day takes the date of a date-time.
    fn date(&self, value: &str) -> Result<String, String> {
        self.dob_formats
            .iter()
            .find_map(|format| {
                NaiveDate::parse_from_str(value, format)
                    .or_else(|_| NaiveDateTime::parse_from_str(value, format).map(|t| t.date()))
                    .ok()
            })
            .map(|d| d.format("%Y-%m-%d").to_string())
            .ok_or_else(|| match self.dob_formats.as_slice() {
                [one] => format!("`{}` does not match the date format {one}", shown(value)),
                many => format!(
                    "`{}` matches none of the date formats {}",
                    shown(value),
                    many.join(", ")
                ),
            })
    }
}

/// A column name as the mapping keys it: trimmed (a BOM too), lower-cased.
pub(super) fn normalise(name: &str) -> String {
    name.trim()
        .trim_start_matches('\u{feff}')
        .trim()
        .to_lowercase()
}

fn field(origin: &str, target: &str) -> Result<Field, MappingError> {
    Field::parse(target).ok_or_else(|| MappingError::UnknownField {
        origin: origin.to_owned(),
        target: target.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::reshape::SplitRule;
    use super::*;

    #[test]
    fn a_legacy_mapping_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            r#"
[columns]
"E-Mail Address" = "email"
"Customer Group" = "group_id"
"Loyalty" = "custom:loyalty_no"

[constants]
website_id = 2

[values.group_id]
"Retail" = 1
"Wholesale" = 2

[formats]
dob = "%d/%m/%Y"
"#,
        )
        .expect("write");
        let mut m = Mapping::from_file(&path).expect("mapping");
        m.add_rename("Given Name=firstname").expect("rename");
        assert_eq!(m.field_for(" e-mail address "), Some(Field::Email));
        assert_eq!(m.field_for("GIVEN NAME"), Some(Field::Firstname));
        assert_eq!(
            m.field_for("Loyalty"),
            Some(Field::Custom("loyalty_no".into()))
        );
        assert_eq!(m.field_for("lastname"), Some(Field::Lastname));
        assert_eq!(m.constants(), &[(Field::WebsiteId, "2".to_owned())]);
        assert_eq!(
            m.convert(&Field::GroupId, "wholesale").expect("mapped"),
            "2"
        );
        let err = m.convert(&Field::GroupId, "Gold").expect_err("unmapped");
        assert!(
            err.contains("`Gold`") && err.contains("[values.group_id]"),
            "{err}"
        );
        assert_eq!(
            m.convert(&Field::Dob, "17/05/1990").expect("date"),
            "1990-05-17"
        );
        assert!(m.convert(&Field::Dob, "1990-05-17").is_err());
        assert_eq!(m.convert(&Field::Lastname, "Lee").expect("as is"), "Lee");
    }

    fn from_text(toml: &str) -> Result<Mapping, MappingError> {
        Mapping::from_toml(toml, Path::new("m.toml"))
    }

    #[test]
    fn richer_mappings() {
        let m = from_text(
            r#"
[constants]
lastname = "-"
[values.group_id]
"Retail" = 1
"*" = 4
[formats]
dob = ["%d/%m/%Y", "%Y-%m-%d %H:%M:%S"]
[split]
"Full Name" = { into = ["firstname", "lastname"], rule = "last-word" }
[join]
address_street = "{Street} {House No}"
"#,
        )
        .expect("mapping");
        assert!(m.has_constant(&Field::Lastname));
        assert!(!m.has_constant(&Field::Firstname));
        assert_eq!(m.convert(&Field::GroupId, "retail").expect("listed"), "1");
        assert_eq!(m.convert(&Field::GroupId, "Gold").expect("*"), "4");
        assert_eq!(
            m.convert(&Field::Dob, "24/12/1980").expect("first"),
            "1980-12-24"
        );
        assert_eq!(
            m.convert(&Field::Dob, "1980-12-24 00:00:00")
                .expect("second"),
            "1980-12-24"
        );
        let err = m.convert(&Field::Dob, "1980-12-24").expect_err("neither");
        assert_eq!(
            err,
            "`1980-12-24` matches none of the date formats %d/%m/%Y, %Y-%m-%d %H:%M:%S"
        );
        let split = m.split_for(" full name ").expect("split");
        assert_eq!(split.into, [Field::Firstname, Field::Lastname]);
        assert_eq!(split.rule, SplitRule::LastWord);
        assert_eq!(m.joins().len(), 1);
        assert_eq!(m.joins()[0].field, Field::Street);
    }

    #[test]
    fn unknown_keys_are_refused_with_the_valid_ones() {
        let err = from_text("[colums]\n").expect_err("section").to_string();
        for section in ["columns", "constants", "values", "formats", "split", "join"] {
            assert!(err.contains(section), "{err}");
        }
        let err = from_text(
            "[split]\n\"Name\" = { into = [\"firstname\", \"lastname\"], rul = \"x\" }\n",
        )
        .expect_err("split key")
        .to_string();
        assert!(err.contains("rul") && err.contains("rule"), "{err}");
        let err = from_text("[constants]\nshoe_size = 4\n")
            .expect_err("field")
            .to_string();
        assert!(
            err.contains("`shoe_size`") && err.contains("email, firstname, lastname"),
            "{err}"
        );
        let err = from_text("[join]\naddress_street = \"{Street\"\n")
            .expect_err("template")
            .to_string();
        assert!(err.contains("{Street"), "{err}");
    }

    #[test]
    fn the_empty_value_token() {
        let mut m = Mapping::default();
        assert_eq!(m.empty_value(), None);
        m.set_empty_value(" __EMPTY__VALUE__ ");
        assert_eq!(m.empty_value(), Some("__EMPTY__VALUE__"));
        m.set_empty_value("");
        assert_eq!(m.empty_value(), None);
    }

    #[test]
    fn mistakes_are_named() {
        let mut m = Mapping::default();
        assert!(matches!(
            m.add_rename("nothing"),
            Err(MappingError::BadMap(_))
        ));
        let err = m.add_rename("A=shoe_size").expect_err("unknown");
        assert!(err.to_string().contains("shoe_size"), "{err}");
    }
}
