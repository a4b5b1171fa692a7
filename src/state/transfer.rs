//! `custsync state export` / `import`: the mappings as CSV
//! `website_id,email,customer_id,payload_hash,synced_at`, for moving or seeding a state store.
//! A store keyed by a custom attribute (`--key custom:legacy_id`) names its key column for it
//! (`website_id,legacy_id,...`); import reads the key kind from that column, and refuses a
//! file of another kind than the store's mappings.
//!
//! People open exports in spreadsheets, so an e-mail that would read as a formula is written
//! escaped ([`escape_cell`]); import takes exactly that escape off again.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Entry, StateError, Store};
use crate::customer::{Key, KeyKind};
use crate::outputs::{escape_cell, unescape_cell};

/// The export's columns, with the e-mail key (see [`columns`]).
pub const COLUMNS: [&str; 5] = [
    "website_id",
    "email",
    "customer_id",
    "payload_hash",
    "synced_at",
];

/// The export's columns for a store keyed by `kind`.
pub fn columns(kind: &KeyKind) -> [&str; 5] {
    let mut columns = COLUMNS;
    columns[1] = kind.column();
    columns
}

/// Export and import failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("writing the export: {0}")]
    Write(#[source] io::Error),
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: csv::Error },
    #[error("{path} line {line}: {why}")]
    Invalid {
        path: PathBuf,
        line: u64,
        why: String,
    },
}

/// Writes every mapping; returns how many.
pub fn export(store: &Store, out: impl Write) -> Result<u64, TransferError> {
    let mut w = csv::Writer::from_writer(out);
    let write_err = |e: csv::Error| TransferError::Write(e.into());
    let kind = store.key_kind()?;
    // A key whose last write is in doubt goes without its hash (as unknown, 0): the store it
    // is imported into sends it again whole, as this one would, instead of a lost update
    // passing for unchanged there.
    let doubts = store.doubts()?;
    w.write_record(columns(&kind)).map_err(write_err)?;
    let mut n = 0;
    for entry in store.entries() {
        let (key, e) = entry?;
        let hash = match doubts.get(key.digest()) {
            Some(_) => 0,
            None => e.payload_hash,
        };
        let synced = DateTime::<Utc>::from_timestamp(e.synced_at, 0)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default();
        w.write_record([
            key.website_id.to_string().as_str(),
            &escape_cell(&key.value),
            &e.customer_id.to_string(),
            &format!("{hash:032x}"),
            &synced,
        ])
        .map_err(write_err)?;
        n += 1;
    }
    w.flush().map_err(TransferError::Write)?;
    Ok(n)
}

/// Reads an export into `store` (existing keys are overwritten); returns how many.
pub fn import(store: &Store, path: &Path) -> Result<u64, TransferError> {
    let read_err = |source| TransferError::Read {
        path: path.to_owned(),
        source,
    };
    let mut r = csv::Reader::from_path(path).map_err(read_err)?;
    let headers: Vec<String> = r
        .headers()
        .map_err(read_err)?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let header_error = |why: String| TransferError::Invalid {
        path: path.to_owned(),
        line: 1,
        why,
    };
    let kind = match headers.get(1) {
        Some(column) if headers.len() == COLUMNS.len() => KeyKind::of_column(column)
            .map_err(|why| header_error(format!("the key column `{column}`: {why}")))?,
        _ => KeyKind::Email,
    };
    if headers != columns(&kind) {
        return Err(header_error(format!(
            "the header must be {} (or name a custom key attribute instead of email)",
            COLUMNS.join(",")
        )));
    }
    // No mixing: the store's mappings must be keyed as the file's (see `keyed.rs`).
    store.admit_key(&kind, false)?;
    // A first pass checks every line before anything is written: no id may end up recorded
    // for two keys, within the file or beside the store's other keys.
    let mut owner: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut keys: HashMap<u64, (u64, u64)> = HashMap::new();
    for record in r.records() {
        let (line, key, entry) = mapping(&record.map_err(read_err)?, &kind, path)?;
        let digest = key.digest();
        if let Some(&(id, first)) = keys.get(&digest)
            && id != entry.customer_id
        {
            return Err(TransferError::Invalid {
                path: path.to_owned(),
                line,
                why: format!(
                    "{} {} is also line {first}'s, with customer_id {id}: one key cannot be two \
                     customers",
                    kind.column(),
                    key.value
                ),
            });
        }
        keys.insert(digest, (entry.customer_id, line));
        if let Some(&(other, first)) = owner.get(&entry.customer_id)
            && other != digest
        {
            return Err(TransferError::Invalid {
                path: path.to_owned(),
                line,
                why: format!(
                    "customer_id {} is also line {first}'s: one customer cannot be two keys",
                    entry.customer_id
                ),
            });
        }
        owner.insert(entry.customer_id, (digest, line));
    }
    let files_keys: HashSet<u64> = owner.values().map(|(digest, _)| *digest).collect();
    for mapping in store.entries() {
        let (key, entry) = mapping?;
        let digest = key.digest();
        if files_keys.contains(&digest) {
            continue;
        }
        if let Some(&(_, line)) = owner.get(&entry.customer_id) {
            return Err(TransferError::Invalid {
                path: path.to_owned(),
                line,
                why: format!(
                    "customer_id {} is the state store's for {} {} already: one customer \
                     cannot be two keys",
                    entry.customer_id,
                    kind.column(),
                    key.value
                ),
            });
        }
    }
    drop((owner, keys));
    let mut r = csv::Reader::from_path(path).map_err(read_err)?;
    let mut n = 0;
    for record in r.records() {
        let (_, key, entry) = mapping(&record.map_err(read_err)?, &kind, path)?;
        store.put(&key, entry, None)?;
        n += 1;
    }
    // The next sync plans against an index instead of a sled read per row.
    store.rebuild_index()?;
    Ok(n)
}

/// The line and the mapping of one record of an export.
fn mapping(
    record: &csv::StringRecord,
    kind: &KeyKind,
    path: &Path,
) -> Result<(u64, Key, Entry), TransferError> {
    let line = record.position().map_or(0, |p| p.line());
    let invalid = |why: String| TransferError::Invalid {
        path: path.to_owned(),
        line,
        why,
    };
    let field = |i: usize| record.get(i).unwrap_or_default().trim();
    let website_id = field(0)
        .parse()
        .map_err(|_| invalid(format!("website_id `{}` is not a number", field(0))))?;
    let customer_id = field(2).parse().ok().filter(|id| *id > 0).ok_or_else(|| {
        invalid(format!(
            "customer_id `{}` is not a positive number",
            field(2)
        ))
    })?;
    let payload_hash = u128::from_str_radix(field(3), 16)
        .map_err(|_| invalid(format!("payload_hash `{}` is not 32 hex digits", field(3))))?;
    let synced_at = match field(4) {
        "" => 0,
        t => DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp())
            .or_else(|_| t.parse())
            .map_err(|_| invalid(format!("synced_at `{t}` is not an RFC 3339 time")))?,
    };
    let value = unescape_cell(field(1));
    if value.is_empty() {
        return Err(invalid(format!("{} is empty", kind.column())));
    }
    let entry = Entry {
        customer_id,
        payload_hash,
        synced_at,
        address_id: None,
        further_address_ids: Vec::new(),
    };
    Ok((line, kind.key(website_id, value), entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::Key;

    #[test]
    fn export_then_import_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Store::open(&dir.path().join("a")).expect("open");
        let emails = [
            "x@example.com",
            "Y@example.com",
            "=cmd|'/Ccalc'!A0@example.com",
            "'-1@example.com",
        ];
        for (i, email) in emails.iter().enumerate() {
            let e = Entry {
                customer_id: i as u64 + 10,
                payload_hash: u128::MAX / (i as u128 + 1),
                synced_at: 1_700_000_000,
                address_id: None,
                further_address_ids: Vec::new(),
            };
            a.put(&Key::new(i as u32 + 1, email), e, None).expect("put");
        }
        let mut out = Vec::new();
        assert_eq!(export(&a, &mut out).expect("export"), 4);
        let text = String::from_utf8(out).expect("utf8");
        // Formula e-mails are escaped for spreadsheets.
        assert!(
            text.contains("3,'=cmd|'/ccalc'!a0@example.com,12,"),
            "{text}"
        );
        assert!(text.contains("4,''-1@example.com,13,"), "{text}");
        assert!(
            text.starts_with(
                "website_id,email,customer_id,payload_hash,synced_at\n1,x@example.com,10,"
            ),
            "{text}"
        );
        assert!(text.contains("2023-11-14T22:13:20Z"), "{text}");
        let file = dir.path().join("export.csv");
        std::fs::write(&file, &text).expect("write");
        let b = Store::open(&dir.path().join("b")).expect("open");
        assert_eq!(import(&b, &file).expect("import"), 4);
        let got: Vec<_> = b.entries().map(|e| e.expect("entry")).collect();
        let want: Vec<_> = a.entries().map(|e| e.expect("entry")).collect();
        assert_eq!(got, want);
        let index = b
            .load_index()
            .expect("load")
            .expect("an import leaves a current index");
        for (key, entry) in want {
            let known = index.get(key.digest()).expect("every key indexed");
            assert_eq!(known.customer_id, entry.customer_id);
            assert!(known.matches(entry.payload_hash));
        }
    }

    #[test]
    fn a_key_in_doubt_is_exported_without_its_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Store::open(&dir.path().join("a")).expect("open");
        let (sure, doubted) = (Key::new(1, "a@x.io"), Key::new(1, "b@x.io"));
        for (i, key) in [&sure, &doubted].into_iter().enumerate() {
            let e = Entry {
                customer_id: i as u64 + 1,
                payload_hash: 0xabc,
                synced_at: 0,
                address_id: None,
                further_address_ids: Vec::new(),
            };
            a.put(key, e, None).expect("put");
        }
        a.doubt(&[(doubted.clone(), crate::state::Doubt::Update)])
            .expect("doubt");
        let mut out = Vec::new();
        export(&a, &mut out).expect("export");
        let text = String::from_utf8(out).expect("utf8");
        assert!(
            text.contains(&format!("1,a@x.io,1,{:032x},", 0xabc)),
            "{text}"
        );
        assert!(text.contains(&format!("1,b@x.io,2,{:032x},", 0)), "{text}");
    }

    #[test]
    fn an_import_records_no_id_for_two_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s")).expect("open");
        let taken = Entry {
            customer_id: 9,
            payload_hash: 0,
            synced_at: 0,
            address_id: None,
            further_address_ids: Vec::new(),
        };
        s.put(&Key::new(1, "old@x.io"), taken, None).expect("put");
        let header = "website_id,email,customer_id,payload_hash,synced_at\n";
        let hash = format!("{:032x}", 1);
        let cases = [
            (
                format!("1,a@x.io,5,{hash},\n1,b@x.io,5,{hash},\n"),
                "line 3",
                "line 2's",
            ),
            (format!("1,a@x.io,9,{hash},\n"), "line 2", "old@x.io"),
            (
                format!("1,a@x.io,5,{hash},\n1,A@X.io,6,{hash},\n"),
                "line 3",
                "line 2's",
            ),
            (format!("1,a@x.io,0,{hash},\n"), "line 2", "positive"),
        ];
        for (rows, line, names) in cases {
            let file = dir.path().join("dup.csv");
            std::fs::write(&file, format!("{header}{rows}")).expect("write");
            let err = import(&s, &file).expect_err("refused").to_string();
            assert!(err.contains(line) && err.contains(names), "{err}");
            assert_eq!(s.len(), 1, "nothing written");
        }
        // The store's key itself may move to another id, and another key take its old one.
        let file = dir.path().join("moved.csv");
        let rows = format!("1,old@x.io,10,{hash},\n1,new@x.io,9,{hash},\n");
        std::fs::write(&file, format!("{header}{rows}")).expect("write");
        assert_eq!(import(&s, &file).expect("import"), 2);
    }

    #[test]
    fn import_names_the_bad_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&dir.path().join("s")).expect("open");
        let file = dir.path().join("bad.csv");
        std::fs::write(
            &file,
            "website_id,email,customer_id,payload_hash,synced_at\n1,a@x.io,5,zz,\n",
        )
        .expect("write");
        let err = import(&s, &file).expect_err("bad hash");
        assert!(
            err.to_string().contains("line 2") && err.to_string().contains("payload_hash"),
            "{err}"
        );
    }
}
