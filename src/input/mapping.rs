//! Column mapping for legacy exports: renames, constants, value maps and date formats, from
//! `--map SOURCE=TARGET` and a `--mapping FILE` (TOML), so that no preprocessing script is
//! needed.
//!
//! ```toml
//! [columns]            # source column -> target field
//! "E-Mail Address" = "email"
//! [constants]          # a value for every row, unless the row has its own
//! website_id = 2
//! [values.group_id]    # source value -> target value, per target field
//! "Retail" = 1
//! [formats]
//! dob = "%d/%m/%Y"     # strftime-style format of the source dates
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;

use super::Field;

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
        "{origin}: `{target}` is not a field custsync knows (use the contract's column names or custom:<code>)"
    )]
    UnknownField { origin: String, target: String },
    #[error("--map {0:?}: expected SOURCE=TARGET")]
    BadMap(String),
    #[error("{origin}: only dob takes a format")]
    UnknownFormat { origin: String },
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
    formats: BTreeMap<String, String>,
}

/// How source columns and values become contract fields.
#[derive(Debug, Default, Clone)]
pub struct Mapping {
    /// Lower-cased, trimmed source column -> field.
    columns: HashMap<String, Field>,
    constants: Vec<(Field, String)>,
    values: HashMap<Field, HashMap<String, String>>,
    dob_format: Option<String>,
}

impl Mapping {
    /// Reads a mapping file.
    pub fn from_file(path: &Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: File = toml::from_str(&text).map_err(|e| MappingError::Parse {
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
            let table = table
                .into_iter()
                .map(|(k, v)| (k.trim().to_owned(), v.into_text()))
                .collect();
            m.values.insert(f, table);
        }
        for (target, format) in file.formats {
            if field(&origin("formats"), &target)? != Field::Dob {
                return Err(MappingError::UnknownFormat {
                    origin: origin("formats"),
                });
            }
            m.dob_format = Some(format);
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

    /// The field a header cell fills: a rename, else the cell's own name.
    pub fn field_for(&self, header: &str) -> Option<Field> {
        match self.columns.get(&normalise(header)) {
            Some(f) => Some(f.clone()),
            None => Field::parse(header),
        }
    }

    /// Constants for fields a row leaves empty.
    pub fn constants(&self) -> &[(Field, String)] {
        &self.constants
    }

    /// A cell's value as the target field takes it: through the value map and the date
    /// format, if any. `Err` says why the value cannot be used.
    pub fn convert<'a>(&self, field: &Field, value: &'a str) -> Result<Cow<'a, str>, String> {
        if self.values.is_empty() && self.dob_format.is_none() {
            return Ok(Cow::Borrowed(value));
        }
        let value = match self.values.get(field) {
            None => Cow::Borrowed(value),
            Some(table) => {
                let found = table.get(value).or_else(|| {
                    table
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(value))
                        .map(|(_, v)| v)
                });
                let mapped = found.ok_or_else(|| {
                    format!(
                        "`{value}` has no entry in the mapping's [values.{}]",
                        field.name()
                    )
                })?;
                Cow::Owned(mapped.clone())
            }
        };
        match (field, &self.dob_format) {
            (Field::Dob, Some(format)) => NaiveDate::parse_from_str(&value, format)
                .map(|d| Cow::Owned(d.format("%Y-%m-%d").to_string()))
                .map_err(|_| format!("`{value}` does not match the date format {format}")),
            _ => Ok(value),
        }
    }
}

fn normalise(name: &str) -> String {
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
