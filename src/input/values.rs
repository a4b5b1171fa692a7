//! The values hash: a row's filled cells by column name, in name order, the way `pull` can
//! compute it from what it read of the shop. It is what lets the first sync after a `pull`
//! take a row as unchanged without validating it, where the row hash (`quick.rs`) cannot:
//! that one depends on the file's layout, which `pull` never sees.
//!
//! `pull` hashes each customer's values (a [`Fields`], its columns' names) as the cells of a
//! row in custsync's own format, and keeps the hash in the index in place of a row hash, but
//! only after it has validated those very cells and found that they build the customer it
//! pulled: the same key, the same payload hash ([`of_fields`]). A row of the file with the same
//! filled cells (trimmed, under any column order and with any further empty or ignored
//! columns) hashes the same ([`Columns::hash`]). Its cells are then valid and build that same
//! customer, because under a mapping that changes no value (no value maps, date formats,
//! constants, splits or joins) validation reads nothing else of a row; a row with a cell
//! holding the `--empty-value` token, which clears a field, has no values hash. A file whose
//! values are written otherwise (`Male` for 1, another date format) misses and is validated
//! as before: the hash can only skip work, never decide otherwise than the validator.

use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed};

use super::fields::Field;
use super::header::{self, Source};
use super::mapping::Mapping;
use super::quick::VERSION;
use super::validate::{MAX_ROW_BYTES, MAX_ROW_CELLS, Validator};
use crate::customer::{Fields, KeyKind};

/// The columns a file's values hash reads: each field's column, by its name.
#[derive(Debug)]
pub struct Columns {
    /// The hash of each column's name and where its cell is, in name order.
    by_name: Vec<(u64, usize)>,
    /// `--empty-value`.
    token: Option<String>,
    seed: u64,
    /// Reused per row.
    buf: Vec<u8>,
}

impl Columns {
    /// For a file read through `sources`; `None` unless every field comes from a cell of its
    /// own and the mapping changes no value (see the module doc).
    pub fn new(sources: &[Source], mapping: &Mapping) -> Option<Self> {
        if !mapping.keeps_values() {
            return None;
        }
        let mut by_name = sources
            .iter()
            .map(|s| match s {
                Source::Cell { at, field } => Some((field.name(), *at)),
                Source::Split { .. } | Source::Join { .. } => None,
            })
            .collect::<Option<Vec<_>>>()?;
        by_name.sort();
        Some(Columns {
            by_name: (by_name.iter())
                .map(|(name, at)| (name_hash(name), *at))
                .collect(),
            token: mapping.empty_value().map(str::to_owned),
            seed: seed(mapping.key()),
            buf: Vec::new(),
        })
    }

    /// The hash of a row's filled cells (never 0); `None` when a cell holds the
    /// `--empty-value` token, or the row is larger than the validator takes.
    ///
    /// Neither UTF-8 nor Unicode spaces are looked at: a hash `pull` recorded is of valid
    /// UTF-8 texts that are their own trim (see [`of_fields`]), so a row whose cells, trimmed
    /// of ASCII spaces, have the same bytes has cells the validator reads as those texts.
    pub fn hash(&mut self, record: &csv::ByteRecord) -> Option<u64> {
        self.buf.clear();
        let (mut filled, mut bytes) = (0, 0);
        let token = self.token.as_deref().map(str::as_bytes);
        for &(name, at) in &self.by_name {
            let raw = record.get(at).unwrap_or_default();
            let text = raw.trim_ascii();
            if text.is_empty() {
                continue;
            }
            if Some(text) == token {
                return None;
            }
            (filled, bytes) = (filled + 1, bytes + raw.len());
            put(&mut self.buf, name, text);
        }
        // As `Validator::oversized` counts: every cell read is one of these columns.
        let fits = filled <= MAX_ROW_CELLS && bytes <= MAX_ROW_BYTES;
        fits.then(|| xxh3_64_with_seed(&self.buf, self.seed).max(1))
    }
}

/// The values hash of a row in custsync's own format holding `fields` (the values `pull`
/// read of a customer), when that row is valid under `key` and builds the customer `pull`
/// recorded: key digest `digest`, payload hash `payload_hash`. 0 (no row hashes to it)
/// otherwise: the next sync then validates the customer's row.
pub fn of_fields(fields: &Fields, key: &KeyKind, digest: u64, payload_hash: u128) -> u64 {
    let Some(mut cells) = fields
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| {
            // A text with spaces around it is read trimmed, so no file has it as it is.
            (value.trim() == value).then_some(())?;
            Some((column(name)?, value.as_str()))
        })
        .collect::<Option<Vec<_>>>()
    else {
        return 0;
    };
    cells.sort();
    let header: Vec<String> = cells.iter().map(|(name, _)| name.clone()).collect();
    let mut mapping = Mapping::default();
    mapping.set_key(key.clone());
    let Ok(layout) = header::resolve(&header, &mapping) else {
        return 0;
    };
    // Every pulled customer has its website, so the default is never read.
    let validator = Validator::new(layout.sources, 0, mapping);
    let row: Vec<&[u8]> = cells.iter().map(|(_, value)| value.as_bytes()).collect();
    if validator.oversized(&row[..]).is_some() {
        return 0;
    }
    match validator.check(0, &row[..]) {
        Ok(built)
            if built.customer.key().digest() == digest
                && built.customer.payload_hash() == payload_hash =>
        {
            let mut buf = Vec::new();
            for (name, value) in &cells {
                put(&mut buf, name_hash(name), value.as_bytes());
            }
            xxh3_64_with_seed(&buf, seed(key)).max(1)
        }
        _ => 0,
    }
}

/// One filled cell into the hashed bytes: its column (by the hash of its name) and its text.
fn put(buf: &mut Vec<u8>, name: u64, text: &[u8]) {
    buf.extend_from_slice(&name.to_le_bytes());
    buf.extend_from_slice(&(text.len() as u64).to_le_bytes());
    buf.extend_from_slice(text);
}

fn name_hash(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

/// The column that holds a [`Fields`] name: its own, or for the default address's fields
/// (`city`) the `address_` one.
fn column(name: &str) -> Option<String> {
    Field::parse(name)
        .or_else(|| Field::parse(&format!("address_{name}")))
        .map(|field| field.name())
}

/// The seed of the values hash: what else the validator reads (the key), and the versions
/// whose changes change what a row builds.
fn seed(key: &KeyKind) -> u64 {
    let mut h = Xxh3::new();
    h.update(b"values");
    h.update(&VERSION.to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(format!("{key:?}").as_bytes());
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::validate::Row;

    const HEADER: &str = "email,firstname,lastname,dob,gender,website_id,address_street,\
                          address_city,address_postcode,address_country_id,address_telephone";
    const ANN: &str = "ann@x.io,Ann,Lee,1980-02-03,2,1,Main 1|Floor 2,Lund,22100,SE,+46 1";

    fn cells(line: &str) -> csv::ByteRecord {
        csv::ByteRecord::from(line.split(',').collect::<Vec<_>>())
    }

    fn mapping(key: &KeyKind) -> Mapping {
        let mut m = Mapping::default();
        m.set_key(key.clone());
        m
    }

    /// A file's header and one of its rows: the values hash of the row, and the row.
    fn read(header: &str, line: &str, m: &Mapping) -> (Option<u64>, Option<Row>) {
        let header: Vec<String> = header.split(',').map(str::to_owned).collect();
        let layout = header::resolve(&header, m).expect("header");
        let mut columns = Columns::new(&layout.sources, m).expect("a values hash");
        let record = cells(line);
        let row = Validator::new(layout.sources, 1, m.clone())
            .check(2, &record)
            .ok();
        (columns.hash(&record), row)
    }

    /// What `pull` records of the customer the row builds.
    fn pulled(row: &Row, key: &KeyKind) -> u64 {
        let c = &row.customer;
        of_fields(&c.fields(), key, c.key().digest(), c.payload_hash())
    }

    #[test]
    fn a_row_holding_what_was_pulled_hashes_as_pull_did_however_it_is_laid_out() {
        let m = mapping(&KeyKind::Email);
        let (hash, row) = read(HEADER, ANN, &m);
        let recorded = pulled(&row.expect("valid"), &KeyKind::Email);
        assert_ne!(recorded, 0);
        assert_eq!(hash, Some(recorded));
        // Other column order, spaces around cells, an empty column and an ignored one.
        let header = format!(
            "nick,middlename,{}",
            HEADER.split(',').rev().collect::<Vec<_>>().join(",")
        );
        let line = format!(
            "Bo,, {} ",
            ANN.split(',').rev().collect::<Vec<_>>().join(" , ")
        );
        assert_eq!(read(&header, &line, &m).0, Some(recorded));
    }

    #[test]
    fn any_other_value_or_a_value_written_otherwise_misses() {
        let m = mapping(&KeyKind::Email);
        let recorded = pulled(&read(HEADER, ANN, &m).1.expect("valid"), &KeyKind::Email);
        let with = |from: &str, to: &str| read(HEADER, &ANN.replace(from, to), &m).0;
        for (from, to) in [
            ("Lund", "Malmö"),
            (",2,", ",female,"),
            ("Main 1|Floor 2", "Main 1"),
            ("ann@", "Ann@"),
        ] {
            assert_ne!(with(from, to), Some(recorded), "{to}");
        }
        // A further filled column: a middle name the shop does not have.
        let (hash, _) = read(&format!("{HEADER},middlename"), &format!("{ANN},Q"), &m);
        assert_ne!(hash, Some(recorded));
    }

    #[test]
    fn a_row_the_validator_would_not_take_as_it_is_has_no_hash() {
        let mut m = mapping(&KeyKind::Email);
        m.set_empty_value("NULL");
        let (hash, _) = read(HEADER, &ANN.replace("Lund", "NULL"), &m);
        assert_eq!(hash, None, "the token clears a field");
        let huge = "x".repeat(MAX_ROW_BYTES);
        assert_eq!(read(HEADER, &ANN.replace("Lund", &huge), &m).0, None);
        let mut mapped = mapping(&KeyKind::Email);
        mapped.add_rename("mail=email").expect("rename");
        let header = HEADER.replace("email", "mail");
        assert!(
            read(&header, ANN, &mapped).0.is_some(),
            "a rename keeps values"
        );
    }

    #[test]
    fn pull_records_no_hash_for_values_a_row_would_not_build_as_pulled() {
        let key = KeyKind::Email;
        let row = read(HEADER, ANN, &mapping(&key)).1.expect("valid");
        let c = &row.customer;
        let (digest, payload) = (c.key().digest(), c.payload_hash());
        let hash = |f: &dyn Fn(&mut Fields)| {
            let mut fields = c.fields();
            f(&mut fields);
            of_fields(&fields, &key, digest, payload)
        };
        assert_ne!(hash(&|_| {}), 0);
        // Values a row would build otherwise, or not at all; a field no column fills.
        for change in [
            |f: &mut Fields| drop(f.insert("city".into(), " Lund".into())),
            |f: &mut Fields| drop(f.insert("city".into(), "Ystad".into())),
            |f: &mut Fields| drop(f.insert("email".into(), "not an e-mail".into())),
            |f: &mut Fields| drop(f.remove("firstname")),
            |f: &mut Fields| drop(f.insert("shop_only".into(), "x".into())),
        ] {
            assert_eq!(hash(&change), 0);
        }
        // The same values under another key are another hash.
        let legacy = KeyKind::Custom("legacy_id".into());
        assert_ne!(
            of_fields(&c.fields(), &legacy, digest, payload),
            hash(&|_| {})
        );
    }
}
