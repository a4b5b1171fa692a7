//! Customers the state store knows and the file no longer names ("absent"): counted for the
//! summary, listed by `--absent-report`, deleted from the shop by `--delete-absent` within
//! `--max-deletes`.
//!
//! Only a file read to the end says which customers it no longer has: after an interrupt or a
//! fatal error nothing is counted and nothing deleted. An invalid row whose email and website
//! can still be read keeps its customer from counting as absent; one whose key cannot be read
//! at all makes `--delete-absent` refuse, since its customer cannot be told from absent ones.

use std::path::{Path, PathBuf};

use crate::customer::Key;
use crate::exec::Executor;
use crate::outputs::{Output, escape_cell};
use crate::plan::FileKeys;
use crate::report::WriteError;
use crate::state::{Entry, Index, StateError, Store};

/// What the run asks of absent customers.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--absent-report FILE`: list them (CSV `website_id,email,customer_id`).
    pub report: Option<PathBuf>,
    /// `--delete-absent --max-deletes N`: the N.
    pub max_deletes: Option<u64>,
    /// How many of them to name in [`Absence::sample`] (for `--review`).
    pub sample: usize,
}

/// The state store or the list could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AbsentError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Why `--delete-absent` did not delete every absent customer. The run still writes its state
/// and report, then ends with this as its error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// Invalid rows without a usable key: their customers might be taken for absent ones.
    #[error(
        "refusing --delete-absent: {rows} invalid rows have no usable email or website, so their \
         customers cannot be told from absent ones; fix them first"
    )]
    Unkeyed { rows: u64 },
    /// More absent customers than `--max-deletes`: nothing was deleted.
    #[error(
        "refusing --delete-absent: {absent} customers are absent, more than --max-deletes {max}; \
         nothing was deleted (see --absent-report)"
    )]
    TooMany { absent: u64, max: u64 },
    /// Some deletes failed (each is printed as it fails).
    #[error("{failed} absent customers could not be deleted")]
    NotDeleted { failed: u64 },
}

/// What the absent step found and did.
#[derive(Debug, Default)]
pub struct Absence {
    /// Keys in the store the file does not name.
    pub count: u64,
    /// Digests of the keys deleted, ascending, to drop from the index.
    pub deleted: Vec<u64>,
    /// Why `--delete-absent` did not do all it was asked.
    pub refused: Option<Refused>,
    /// The first [`Options::sample`] of them, with their customer ids.
    pub sample: Vec<(Key, u64)>,
}

/// Counts the absent customers, lists them in `report` (the claimed `--absent-report`) and
/// deletes them as `options` ask. `executor` is `None` in a dry run; `read_to_end` is false
/// when the run stopped before the end of the file.
pub async fn settle(
    store: &Store,
    index: &Index,
    keys: &FileKeys,
    options: &Options,
    report: Option<Output>,
    executor: Option<&Executor>,
    read_to_end: bool,
) -> Result<Absence, AbsentError> {
    if !read_to_end {
        return Ok(Absence::default());
    }
    if report.is_none() && options.max_deletes.is_none() && options.sample == 0 {
        // Only the count: the index has every key, so no sled scan.
        let count = index
            .digests()
            .filter(|d| !keys.contains_digest(*d))
            .count() as u64;
        return Ok(Absence {
            count,
            ..Absence::default()
        });
    }
    let found = find(store, keys, report, options)?;
    let mut absence = Absence {
        count: found.count,
        sample: (found.listed.iter())
            .take(options.sample)
            .map(|(key, e)| (key.clone(), e.customer_id))
            .collect(),
        ..Absence::default()
    };
    if let Some(max) = options.max_deletes {
        match refusal(keys, found.count, max) {
            Some(why) => absence.refused = Some(why),
            None => {
                let (deleted, failed) = delete(store, executor, &found).await?;
                absence.deleted = deleted;
                absence.refused = (failed > 0).then_some(Refused::NotDeleted { failed });
            }
        }
    }
    Ok(absence)
}

/// Why `--delete-absent --max-deletes max` must not delete `absent` customers, if it must not.
fn refusal(keys: &FileKeys, absent: u64, max: u64) -> Option<Refused> {
    if keys.unkeyed > 0 {
        Some(Refused::Unkeyed { rows: keys.unkeyed })
    } else if absent > max {
        Some(Refused::TooMany { absent, max })
    } else {
        None
    }
}

/// Keys in the state store that the file no longer has.
struct Found {
    count: u64,
    /// The first ones: as many as may be deleted plus one, or as the sample asks for.
    listed: Vec<(Key, Entry)>,
}

/// Scans the store for absent keys, writing each to `report` when given.
fn find(
    store: &Store,
    keys: &FileKeys,
    report: Option<Output>,
    options: &Options,
) -> Result<Found, AbsentError> {
    let mut out = report
        .map(|output| -> Result<_, WriteError> {
            let p = output.path().to_owned();
            let mut w = csv::Writer::from_writer(output.into_file()?);
            w.write_record(["website_id", "email", "customer_id"])
                .map_err(|e| write_error(&p, e.into()))?;
            Ok((w, p))
        })
        .transpose()?;
    let keep = (options.max_deletes)
        .map_or(0, |m| m.saturating_add(1))
        .max(options.sample as u64);
    let mut found = Found {
        count: 0,
        listed: Vec::new(),
    };
    for entry in store.entries() {
        let (key, e) = entry?;
        if keys.contains(&key) {
            continue;
        }
        found.count += 1;
        if let Some((w, p)) = out.as_mut() {
            w.write_record([
                key.website_id.to_string().as_str(),
                &escape_cell(&key.email),
                &e.customer_id.to_string(),
            ])
            .map_err(|err| write_error(p, err.into()))?;
        }
        if (found.listed.len() as u64) < keep {
            found.listed.push((key, e));
        }
    }
    if let Some((mut w, p)) = out {
        w.flush().map_err(|e| write_error(&p, e))?;
    }
    Ok(found)
}

fn write_error(path: &Path, source: std::io::Error) -> WriteError {
    WriteError {
        path: path.to_owned(),
        source,
    }
}

/// Deletes the absent customers (a dry run, without an executor, only says how many it would)
/// and forgets their mappings. Returns the digests deleted, ascending, and how many failed.
async fn delete(
    store: &Store,
    executor: Option<&Executor>,
    found: &Found,
) -> Result<(Vec<u64>, u64), AbsentError> {
    let Some(exec) = executor else {
        println!("dry run: would delete {} absent customers", found.count);
        return Ok((Vec::new(), 0));
    };
    let mut deleted = Vec::new();
    let mut failed = 0;
    for (key, entry) in &found.listed {
        // Forgets the mapping once deleted.
        match exec.delete(store, key, entry.customer_id).await? {
            Ok(()) => deleted.push(key.digest()),
            Err(e) => {
                eprintln!(
                    "could not delete customer {} ({}): {e}",
                    entry.customer_id, key.email
                );
                failed += 1;
            }
        }
    }
    store.flush()?;
    println!(
        "deleted {} absent customers ({failed} failed)",
        deleted.len()
    );
    deleted.sort_unstable();
    Ok((deleted, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(unkeyed: u64) -> FileKeys {
        let mut keys = FileKeys::default();
        keys.unkeyed = unkeyed;
        keys
    }

    #[test]
    fn delete_absent_refuses_unkeyed_rows_first_then_too_many() {
        // (unkeyed rows, absent, --max-deletes) -> refusal
        let cases = [
            (0, 0, 0, None),
            (0, 5, 5, None),
            (0, 6, 5, Some(Refused::TooMany { absent: 6, max: 5 })),
            (2, 0, 5, Some(Refused::Unkeyed { rows: 2 })),
            (2, 9, 5, Some(Refused::Unkeyed { rows: 2 })),
        ];
        for (unkeyed, absent, max, want) in cases {
            assert_eq!(
                refusal(&keys(unkeyed), absent, max),
                want,
                "{unkeyed} unkeyed, {absent} absent, max {max}"
            );
        }
        assert_eq!(
            Refused::TooMany { absent: 5, max: 4 }.to_string(),
            "refusing --delete-absent: 5 customers are absent, more than --max-deletes 4; \
             nothing was deleted (see --absent-report)"
        );
    }
}
