//! The header: where each field's value comes from in a row.
//!
//! A header cell fills the field its name (or the mapping's rename) names, or is cut into
//! several fields by a `[split]`; a `[join]` builds a field from several cells. Every field is
//! filled from one place at most, and every required field from one place or a constant.
//! Pure: the reader hands in the header's names and turns a [`HeaderProblem`] into an error
//! that names the file.

use super::fields::{self, Field};
use super::mapping::{Join, Mapping, Split, normalise};

/// Where one field (or, for a split, several) comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The cell of column `at`.
    Cell { at: usize, field: Field },
    /// The cell of column `at`, cut into fields.
    Split { at: usize, split: Split },
    /// A template over the cells of these columns (in the template's order).
    Join { at: Vec<usize>, join: Join },
}

impl Source {
    /// The fields this source fills.
    fn fields(&self) -> Vec<&Field> {
        match self {
            Source::Cell { field, .. } => vec![field],
            Source::Split { split, .. } => split.into.iter().collect(),
            Source::Join { join, .. } => vec![&join.field],
        }
    }

    /// What the source is, for a message: `column 3 (Full Name)` or `the [join] template`.
    fn describe(&self, header: &[String]) -> String {
        let column = |at: usize| format!("column {} (`{}`)", at + 1, header[at]);
        match self {
            Source::Cell { at, .. } => column(*at),
            Source::Split { at, .. } => format!("the [split] of {}", column(*at)),
            Source::Join { .. } => "the mapping's [join] template".to_owned(),
        }
    }
}

/// The header, resolved.
#[derive(Debug)]
pub struct Layout {
    pub sources: Vec<Source>,
    /// Names of the header cells no source reads, for the one-time "ignored" notice.
    pub ignored: Vec<String>,
    /// The column that fills `email` as it is, to name an invalid row in the report.
    pub email_at: Option<usize>,
}

/// Why a header cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    /// A required field comes from no column and no constant.
    Missing { column: &'static str },
    /// A field comes from two places.
    Twice {
        column: String,
        first: String,
        second: String,
    },
    /// A `[join]` template names a column the header does not have.
    JoinColumn { field: String, column: String },
    /// `--key custom:<code>`, and no column (nor constant) fills that attribute.
    MissingKey { key: String },
}

/// Resolves `header` (names as written) through `mapping`.
pub fn resolve(header: &[String], mapping: &Mapping) -> Result<Layout, HeaderProblem> {
    let mut sources = Vec::with_capacity(header.len());
    for (at, name) in header.iter().enumerate() {
        if let Some(split) = mapping.split_for(name) {
            sources.push(Source::Split {
                at,
                split: split.clone(),
            });
        } else if let Some(field) = mapping.field_for(name) {
            sources.push(Source::Cell { at, field });
        }
    }
    let keys: Vec<String> = header.iter().map(|h| normalise(h)).collect();
    for join in mapping.joins() {
        let at = join
            .columns()
            .map(|c| {
                let key = normalise(c);
                keys.iter()
                    .position(|k| *k == key)
                    .ok_or_else(|| HeaderProblem::JoinColumn {
                        field: join.field.name(),
                        column: c.to_owned(),
                    })
            })
            .collect::<Result<_, _>>()?;
        sources.push(Source::Join {
            at,
            join: join.clone(),
        });
    }
    for (i, source) in sources.iter().enumerate() {
        for field in source.fields() {
            if let Some(earlier) = sources[..i].iter().find(|s| s.fields().contains(&field)) {
                return Err(HeaderProblem::Twice {
                    column: field.name(),
                    first: earlier.describe(header),
                    second: source.describe(header),
                });
            }
        }
    }
    let filled = |f: &Field| sources.iter().any(|s| s.fields().contains(&f));
    if let Some(missing) =
        fields::required_columns().find(|s| !filled(&s.field) && !mapping.has_constant(&s.field))
    {
        return Err(HeaderProblem::Missing {
            column: missing.column,
        });
    }
    if let Some(code) = mapping.key().attribute() {
        let field = Field::Custom(code.to_owned());
        if !filled(&field) && !mapping.has_constant(&field) {
            return Err(HeaderProblem::MissingKey {
                key: mapping.key().to_string(),
            });
        }
    }
    let used = |at: usize| {
        sources.iter().any(|s| match s {
            Source::Cell { at: a, .. } | Source::Split { at: a, .. } => *a == at,
            Source::Join { at: cells, .. } => cells.contains(&at),
        })
    };
    let ignored = header
        .iter()
        .enumerate()
        .filter(|(at, name)| !name.is_empty() && !used(*at))
        .map(|(_, name)| name.clone())
        .collect();
    let email_at = sources.iter().find_map(|s| match s {
        Source::Cell {
            at,
            field: Field::Email,
        } => Some(*at),
        _ => None,
    });
    Ok(Layout {
        sources,
        ignored,
        email_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(toml: &str) -> Mapping {
        Mapping::from_toml(toml, std::path::Path::new("m.toml")).expect("mapping")
    }

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn columns_splits_and_joins() {
        let m = mapping(
            r#"
[columns]
"Mail" = "email"
[split]
"Full Name" = { into = ["firstname", "lastname"], rule = "last-word" }
[join]
address_street = "{Street} {House No}"
"#,
        );
        let layout = resolve(
            &header(&["Mail", "Full Name", "House No", "Fax", "Street", ""]),
            &m,
        )
        .expect("layout");
        assert_eq!(layout.email_at, Some(0));
        assert_eq!(layout.ignored, ["Fax"]);
        assert!(matches!(&layout.sources[2], Source::Join { at, .. } if *at == [4, 2]));
    }

    #[test]
    fn a_constant_stands_for_a_required_column() {
        let m = mapping("[constants]\nlastname = \"-\"\n");
        assert!(resolve(&header(&["email", "firstname"]), &m).is_ok());
        assert_eq!(
            resolve(&header(&["email", "lastname"]), &m).expect_err("firstname"),
            HeaderProblem::Missing {
                column: "firstname"
            }
        );
    }

    #[test]
    fn a_custom_key_needs_its_column() {
        let mut m = mapping("[columns]\n\"Kundnr\" = \"custom:legacy_id\"\n");
        m.set_key(crate::customer::KeyKind::Custom("legacy_id".into()));
        assert!(resolve(&header(&["email", "firstname", "lastname", "Kundnr"]), &m).is_ok());
        assert!(
            resolve(
                &header(&["email", "firstname", "lastname", "custom:Legacy_ID"]),
                &m
            )
            .is_ok()
        );
        assert_eq!(
            resolve(
                &header(&["email", "firstname", "lastname", "legacy_id"]),
                &m
            )
            .expect_err("no key column"),
            HeaderProblem::MissingKey {
                key: "custom:legacy_id".into()
            }
        );
    }

    #[test]
    fn a_field_from_two_places_is_refused() {
        assert_eq!(
            resolve(
                &header(&["email", "firstname", "lastname", "EMAIL"]),
                &Mapping::default()
            )
            .expect_err("twice"),
            HeaderProblem::Twice {
                column: "email".into(),
                first: "column 1 (`email`)".into(),
                second: "column 4 (`EMAIL`)".into()
            }
        );
        let m = mapping(
            "[split]\n\"Name\" = { into = [\"firstname\", \"lastname\"], rule = \"last-word\" }\n",
        );
        let err = resolve(&header(&["email", "lastname", "Name"]), &m).expect_err("twice");
        assert!(
            matches!(&err, HeaderProblem::Twice { second, .. } if second.contains("[split] of column 3")),
            "{err:?}"
        );
        let m = mapping("[join]\naddress_street = \"{Street} {No}\"\n");
        assert_eq!(
            resolve(&header(&["email", "firstname", "lastname", "Street"]), &m)
                .expect_err("no column"),
            HeaderProblem::JoinColumn {
                field: "address_street".into(),
                column: "No".into()
            }
        );
    }
}
