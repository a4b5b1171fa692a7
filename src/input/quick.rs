//! The row hash, and a row's key read straight from its cells: what lets a re-run take an
//! unchanged row as unchanged without validating it or building its customer.
//!
//! A row's hash is xxh3-64 of its raw cells (as read, cell boundaries included), seeded with
//! the run's [`fingerprint`]: everything else that shapes the customer built from those cells
//! or whether the row is valid at all (the header, the mapping with its `--empty-value` and
//! `--key`, the default website, how the file is read, and [`VERSION`]). Validation is a
//! function of exactly these: two rows with one hash build one customer. So when the index
//! says a row with this hash was found unchanged for the key the row names, it is unchanged
//! again, as surely as by its payload hash (see `state/index.rs` for when that is recorded).
//!
//! The key is read from its cells the way the validator reads it (trimmed, through the
//! mapping, the website's constant or default when its cell is empty). Only a hit in the
//! index is trusted, and a hit needs the same raw cells, which the validator gave that same
//! key: a key read wrongly here misses, it cannot hit another customer. The e-mail the report
//! shows is read the same way, so only files whose e-mail, website and key come from one
//! cell each (no split or join) take the fast path.

use std::borrow::Cow;

use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed};

use super::fields::Field;
use super::format::Format;
use super::header::Source;
use super::mapping::Mapping;
use super::values::Columns;
use crate::customer::{Key, KeyKind};

/// Bump whenever validation or building a customer from its cells changes in a way that
/// changes a payload or a row's validity: every row hash recorded before then misses.
pub const VERSION: u32 = 2;

/// The seed of a run's row hashes: a digest of everything besides the cells that shapes what
/// a row becomes (see the module doc).
pub fn fingerprint(
    header: &[String],
    default_website: u32,
    mapping: &Mapping,
    format: &Format,
) -> u64 {
    let mut h = Xxh3::new();
    h.update(&VERSION.to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(&default_website.to_le_bytes());
    for cell in header {
        h.update(&(cell.len() as u64).to_le_bytes());
        h.update(cell.as_bytes());
    }
    h.update(mapping.canonical().as_bytes());
    h.update(format!("{format:?}").as_bytes());
    h.digest()
}

/// What the fast path reads of a row: its key's digest and what the report shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quick {
    /// [`Key::digest`] of the key the row names.
    pub digest: u64,
    /// The e-mail as a valid row's customer holds it.
    pub email: String,
    pub website_id: u32,
}

/// Reads row hashes and keys for one file.
#[derive(Debug)]
pub struct QuickReader {
    seed: u64,
    email_at: Option<usize>,
    website_at: Option<usize>,
    /// The custom key's column, under `--key custom:<code>`.
    key_at: Option<usize>,
    /// Website when its cell is empty or missing: the mapping's constant, else the default.
    fallback_website: Option<u32>,
    mapping: Mapping,
    /// The values hash's columns, when the file has them (see `values.rs`).
    values: Option<Columns>,
    /// Reused per row: the cells' end offsets; the key's bytes.
    ends: Vec<u8>,
    key: Vec<u8>,
}

impl QuickReader {
    /// For a text file read through `sources`; `None` when its key or e-mail is not read from
    /// one cell each (split or joined, or a custom key with no column).
    pub fn new(
        sources: &[Source],
        seed: u64,
        default_website: u32,
        mapping: &Mapping,
    ) -> Option<Self> {
        let reshaped = |field: &Field| {
            sources.iter().any(|s| match s {
                Source::Cell { .. } => false,
                Source::Split { split, .. } => split.into.contains(field),
                Source::Join { join, .. } => &join.field == field,
            })
        };
        let cell_of = |field: &Field| {
            sources.iter().find_map(|s| match s {
                Source::Cell { at, field: f } if f == field => Some(*at),
                _ => None,
            })
        };
        let key_field = match mapping.key() {
            KeyKind::Email => None,
            KeyKind::Custom(code) => Some(Field::Custom(code.to_string())),
        };
        let fields = [
            Some(Field::Email),
            Some(Field::WebsiteId),
            key_field.clone(),
        ];
        if fields.iter().flatten().any(reshaped) || mapping.has_constant(&Field::Email) {
            return None;
        }
        let key_at = match &key_field {
            Some(f) => Some(cell_of(f)?),
            None => None,
        };
        let constant = mapping
            .constants()
            .iter()
            .find(|(f, _)| *f == Field::WebsiteId)
            .map(|(_, v)| v.trim().parse().ok());
        Some(QuickReader {
            seed,
            email_at: cell_of(&Field::Email),
            website_at: cell_of(&Field::WebsiteId),
            key_at,
            fallback_website: constant.unwrap_or(Some(default_website)),
            mapping: mapping.clone(),
            values: Columns::new(sources, mapping),
            ends: Vec::new(),
            key: Vec::new(),
        })
    }

    /// Whether a row with hash `row_hash` is unchanged by the hash recorded for its key:
    /// `Some(0)` by its row hash, `Some(row_hash)` (to be recorded) by its values hash (see
    /// `values.rs`), computed only when the row hash misses; `None` when neither is the one
    /// recorded.
    pub fn unchanged(
        &mut self,
        record: &csv::ByteRecord,
        row_hash: u64,
        recorded: u64,
    ) -> Option<u64> {
        if recorded == 0 {
            return None;
        }
        if recorded == row_hash {
            return Some(0);
        }
        let values = self.values.as_mut()?;
        (values.hash(record) == Some(recorded)).then_some(row_hash)
    }

    /// The row's hash (never 0, which stands for no row).
    pub fn row_hash(&mut self, record: &csv::ByteRecord) -> u64 {
        self.ends.clear();
        let mut end = 0u32;
        for cell in record {
            end = end.wrapping_add(cell.len() as u32);
            self.ends.extend_from_slice(&end.to_le_bytes());
        }
        let cells = xxh3_64_with_seed(record.as_slice(), self.seed);
        xxh3_64_with_seed(&self.ends, cells).max(1)
    }

    /// The key and e-mail the row names, read as the validator reads them; `None` when they
    /// cannot be read that simply (the row then takes the validator's path).
    pub fn quick(&mut self, record: &csv::ByteRecord) -> Option<Quick> {
        let email = match self.value(record, self.email_at, &Field::Email)? {
            Some(e) if Some(&*e) == self.mapping.empty_value() => return None,
            Some(e) => e.into_owned(),
            None => String::new(),
        };
        let website_id = match self.value(record, self.website_at, &Field::WebsiteId)? {
            Some(w) => w.parse().ok()?,
            None => self.fallback_website?,
        };
        self.key.clear();
        self.key.extend_from_slice(&website_id.to_be_bytes());
        match self.key_at {
            None if email.is_ascii() => self
                .key
                .extend(email.trim().bytes().map(|b| b.to_ascii_lowercase())),
            None => self
                .key
                .extend_from_slice(Key::new(website_id, &email).value.as_bytes()),
            Some(at) => {
                let code = self
                    .mapping
                    .key()
                    .attribute()
                    .map(|c| Field::Custom(c.into()));
                let value = self.value(record, Some(at), code.as_ref()?)??;
                self.key.extend_from_slice(value.trim().as_bytes());
            }
        }
        Some(Quick {
            digest: Key::digest_of_bytes(&self.key),
            email,
            website_id,
        })
    }

    /// A cell as the validator takes it: UTF-8, trimmed, `None` when empty, through the
    /// mapping unless it is the empty-value token. `None` (outer) when it cannot be read.
    fn value<'a>(
        &self,
        record: &'a csv::ByteRecord,
        at: Option<usize>,
        field: &Field,
    ) -> Option<Option<Cow<'a, str>>> {
        let Some(at) = at else { return Some(None) };
        let text = std::str::from_utf8(record.get(at).unwrap_or_default())
            .ok()?
            .trim();
        if text.is_empty() {
            return Some(None);
        }
        if Some(text) == self.mapping.empty_value() {
            return Some(Some(Cow::Borrowed(text)));
        }
        self.mapping.convert(field, text).ok().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::header;
    use crate::input::validate::Validator;

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    fn toml(text: &str) -> Mapping {
        Mapping::from_toml(text, std::path::Path::new("m.toml")).expect("mapping")
    }

    const HEADER: [&str; 5] = ["email", "firstname", "lastname", "website_id", "nick"];

    #[test]
    fn whatever_shapes_a_row_besides_its_cells_changes_the_fingerprint() {
        let header = strings(&HEADER);
        let plain = Format::default();
        let base = fingerprint(&header, 1, &Mapping::default(), &plain);
        let with = |f: fn(&mut Mapping)| {
            let mut m = Mapping::default();
            f(&mut m);
            fingerprint(&header, 1, &m, &plain)
        };
        let semicolons = Format {
            delimiter: Some(b';'),
            ..Format::default()
        };
        let changed = [
            (
                "a rename",
                with(|m| m.add_rename("nick=middlename").expect("rename")),
            ),
            ("an empty-value token", with(|m| m.set_empty_value("NULL"))),
            ("another token", with(|m| m.set_empty_value("-"))),
            (
                "a custom key",
                with(|m| m.set_key(KeyKind::Custom("nick".into()))),
            ),
            (
                "a constant",
                fingerprint(&header, 1, &toml("[constants]\ngroup_id = 2\n"), &plain),
            ),
            (
                "a value map",
                fingerprint(&header, 1, &toml("[values.gender]\nm = \"male\"\n"), &plain),
            ),
            (
                "the default website",
                fingerprint(&header, 2, &Mapping::default(), &plain),
            ),
            (
                "another header",
                fingerprint(&strings(&HEADER[..4]), 1, &Mapping::default(), &plain),
            ),
            (
                "another format",
                fingerprint(&header, 1, &Mapping::default(), &semicolons),
            ),
        ];
        for (what, f) in &changed {
            assert_ne!(*f, base, "{what}");
        }
        let mut all: Vec<u64> = changed.iter().map(|(_, f)| *f).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), changed.len(), "each differs from the others");
        // The same mapping read twice: its maps' order does not count.
        let renames = "[columns]\na = \"firstname\"\nb = \"lastname\"\nc = \"middlename\"\n\
                       d = \"prefix\"\ne = \"suffix\"\n[values.gender]\nm = \"male\"\nf = \"female\"\n";
        let (one, two) = (toml(renames), toml(renames));
        assert_eq!(
            fingerprint(&header, 1, &one, &plain),
            fingerprint(&header, 1, &two, &plain)
        );
    }

    fn reader(header: &[&str], mapping: &Mapping, seed: u64) -> (QuickReader, Validator) {
        let header = strings(header);
        let layout = header::resolve(&header, mapping).expect("header");
        let quick = QuickReader::new(&layout.sources, seed, 1, mapping).expect("simple");
        (quick, Validator::new(layout.sources, 1, mapping.clone()))
    }

    #[test]
    fn the_row_hash_is_of_the_cells_and_their_boundaries() {
        let (mut q, _) = reader(&HEADER, &Mapping::default(), 7);
        let (mut other_seed, _) = reader(&HEADER, &Mapping::default(), 8);
        let row = |cells: &[&str]| csv::ByteRecord::from(cells.to_vec());
        let a = row(&["a@x.io", "Ann", "Lee", "1", "ab"]);
        let h = q.row_hash(&a);
        assert_ne!(h, 0);
        assert_eq!(h, q.row_hash(&a.clone()));
        assert_ne!(h, other_seed.row_hash(&a));
        for other in [
            row(&["a@x.io", "Ann", "Lee", "1", "aB"]),
            row(&["a@x.io", "AnnL", "ee", "1", "ab"]),
            row(&["a@x.io", "Ann", "Lee", "1", "ab", ""]),
            row(&["a@x.io", "Ann", "Lee ", "1", "ab"]),
        ] {
            assert_ne!(h, q.row_hash(&other), "{other:?}");
        }
    }

    #[test]
    fn the_quick_key_is_the_validators() {
        type Case<'a> = (Mapping, &'a [&'a str], Vec<&'a [&'a str]>);
        let cases: Vec<Case> = vec![
            (
                Mapping::default(),
                &HEADER,
                vec![
                    &[" Ann@X.io ", "Ann", "Lee", "2", "n"],
                    &["JOE@x.io ", "J", "L", "", "n"],
                    &["asa@X.IO", "J", "L", " 3 ", "n"],
                ],
            ),
            (
                toml("[constants]\nwebsite_id = \"4\"\n"),
                &HEADER,
                vec![
                    &["b@x.io", "B", "E", "", ""],
                    &["b@x.io", "B", "E", "5", ""],
                ],
            ),
            (
                toml("[values.website_id]\nse = \"6\"\n"),
                &HEADER,
                vec![&["c@x.io", "C", "D", "SE", ""]],
            ),
            (
                {
                    let mut m = Mapping::default();
                    m.set_key(KeyKind::Custom("legacy_id".into()));
                    m
                },
                &["email", "firstname", "lastname", "custom:legacy_id"],
                vec![&["D@x.io", "D", "E", " L-1 "], &["d@x.io", "D", "E", "l-2"]],
            ),
        ];
        for (mapping, header, rows) in cases {
            let (mut q, validator) = reader(header, &mapping, 1);
            for cells in rows {
                let record = csv::ByteRecord::from(cells.to_vec());
                let row = validator.check(2, &record).expect("valid");
                let got = q.quick(&record).expect("read");
                let want = Quick {
                    digest: row.customer.key().digest(),
                    email: row.customer.email.clone(),
                    website_id: row.customer.website_id,
                };
                assert_eq!(got, want, "{cells:?}");
            }
        }
    }

    #[test]
    fn only_a_key_and_email_of_one_cell_each_are_read_quickly() {
        let joined = toml("[join]\nemail = \"{user}@{domain}\"\n");
        let header = strings(&["user", "domain", "firstname", "lastname"]);
        let layout = header::resolve(&header, &joined).expect("header");
        assert!(QuickReader::new(&layout.sources, 1, 1, &joined).is_none());
        let constant = toml("[constants]\nemail = \"x@y.io\"\n");
        let header = strings(&["firstname", "lastname"]);
        let layout = header::resolve(&header, &constant).expect("header");
        assert!(QuickReader::new(&layout.sources, 1, 1, &constant).is_none());
    }
}
