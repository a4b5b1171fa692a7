//! Customers the state store knows and the file no longer names ("absent"): counted for the
//! summary, held against `--max-absent`, listed by `--absent-report`, deleted from the shop by
//! `--delete-absent` within `--max-deletes`.
//!
//! Only a file read to the end says which customers it no longer has: after an interrupt or a
//! fatal error nothing is counted and nothing deleted. An invalid row whose email and website
//! can still be read keeps its customer from counting as absent; one whose key cannot be read
//! at all makes `--delete-absent` refuse, since its customer cannot be told from absent ones.
//! Under `--key custom:<code>` a customer is read before it is deleted, and kept when a row
//! still has its e-mail: the same person under a new key, whose row the e-mail made fail.
//!
//! `--max-absent` guards against a truncated or empty export: when more of the store's keys
//! than it allows are absent, the run sends nothing (the sync decides that before its first
//! request, see `sync/guard.rs`) and ends with exit code 1; a dry run reports the same verdict.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use crate::console;
use crate::customer::Key;
use crate::exec::Executor;
use crate::outputs::{Output, escape_cell};
use crate::plan::FileKeys;
use crate::report::WriteError;
use crate::state::{Entry, Index, StateError, Store};

/// What the run asks of absent customers.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--max-absent`: how many may be absent before the run refuses to send.
    pub max_absent: MaxAbsent,
    /// `--absent-report FILE`: list them (CSV `website_id,email,customer_id`; a store keyed by
    /// a custom attribute names that column for it, e.g. `website_id,legacy_id,customer_id`).
    pub report: Option<PathBuf>,
    /// `--delete-absent --max-deletes N`: the N.
    pub max_deletes: Option<u64>,
    /// How many of them to name in [`Absence::sample`] (for `--review`).
    pub sample: usize,
}

/// `--max-absent N` or `--max-absent P%`: the most keys of the state store that may be absent
/// from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxAbsent {
    Count(u64),
    /// A percentage of the store's keys, 0 to 100.
    Percent(f64),
}

impl MaxAbsent {
    /// The most absent keys allowed in a store of `keys` keys.
    pub fn allowed(self, keys: u64) -> u64 {
        match self {
            MaxAbsent::Count(n) => n,
            // The small epsilon keeps 10% of 1000 at 100 whatever the float rounding.
            MaxAbsent::Percent(p) => (p / 100.0 * keys as f64 + 1e-9).floor() as u64,
        }
    }

    /// Whether `absent` of a store's `keys` keys may be absent; strictly more may not.
    pub fn allows(self, absent: u64, keys: u64) -> bool {
        absent <= self.allowed(keys)
    }
}

impl FromStr for MaxAbsent {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxAbsent::Percent(p)),
                _ => Err(format!("`{s}` is not a percentage from 0% to 100%")),
            },
            None => s
                .parse()
                .map(MaxAbsent::Count)
                .map_err(|_| format!("`{s}` is neither a count (50) nor a percentage (10%)")),
        }
    }
}

impl fmt::Display for MaxAbsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxAbsent::Count(n) => write!(f, "{n}"),
            MaxAbsent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// More keys of the store are absent from the file than `--max-absent` allows.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error(
    "{absent} of the {keys} customers in the state store are absent from the file, more than \
     --max-absent {limit} allows: {what} (is the export truncated or empty? If they are really \
     gone, run again with a larger --max-absent, such as 100%)",
    what = if *.dry_run { "a real run would send nothing" } else { "nothing was sent" }
)]
pub struct TooManyAbsent {
    pub absent: u64,
    pub keys: u64,
    pub limit: MaxAbsent,
    pub dry_run: bool,
}

/// Whether `absent` of the store's `keys` keys pass the guard; why not, when they do not.
pub fn guard(limit: MaxAbsent, absent: u64, keys: u64, dry_run: bool) -> Result<(), TooManyAbsent> {
    if limit.allows(absent, keys) {
        Ok(())
    } else {
        Err(TooManyAbsent {
            absent,
            keys,
            limit,
            dry_run,
        })
    }
}

/// How many of the index's keys the file does not name.
pub fn count(index: &Index, keys: &FileKeys) -> u64 {
    keys.absent_from(index)
}

/// What may be done about absent customers.
#[derive(Clone, Copy)]
pub enum Deletes<'a> {
    /// A dry run: say how many would be deleted.
    DryRun,
    /// Delete through this executor.
    Send(&'a Executor),
    /// The sending stopped (the shop stopped answering): delete nothing.
    Stopped,
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

/// Why the run objects to the absent customers: `--max-absent`, or `--delete-absent` did not
/// delete every absent customer. The run still writes its state and report, then ends with
/// this as its error.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Refused {
    /// More absent customers than `--max-absent`: nothing was sent, nothing deleted.
    #[error(transparent)]
    TooManyAbsent(#[from] TooManyAbsent),
    /// Invalid rows without a usable key: their customers might be taken for absent ones.
    #[error(
        "refusing --delete-absent: {rows} invalid rows have no usable email or website, so their \
         customers cannot be told from absent ones; fix them first"
    )]
    Unkeyed { rows: u64 },
    /// More absent customers than `--max-deletes`: nothing was sent (the guard stops such a
    /// run before its first request), nothing deleted.
    #[error(
        "refusing --delete-absent: {absent} customers are absent, more than --max-deletes {max}; \
         nothing was sent or deleted (see --absent-report; if they are really gone, run again \
         with a larger --max-deletes)"
    )]
    TooMany { absent: u64, max: u64 },
    /// Some deletes failed (each is printed as it fails).
    #[error("{failed} absent customers could not be deleted")]
    NotDeleted { failed: u64 },
    /// Under a custom key, absent customers whose e-mail a row of the file still has were
    /// kept (each is printed), and the others deleted.
    #[error(
        "kept {kept} absent customers whose e-mail the file still has under another key; \
         fix the key in the file or in the shop{failed}",
        failed = if *.failed > 0 { format!("; {} more could not be deleted", .failed) } else { String::new() }
    )]
    Kept { kept: u64, failed: u64 },
}

/// What the absent step found and did.
#[derive(Debug, Default)]
pub struct Absence {
    /// Keys in the store the file does not name.
    pub count: u64,
    /// Digests of the keys deleted, ascending, to drop from the index.
    pub deleted: Vec<u64>,
    /// Why `--max-absent` or `--delete-absent` objects.
    pub refused: Option<Refused>,
    /// The first [`Options::sample`] of them, with their customer ids.
    pub sample: Vec<(Key, u64)>,
}

/// Holds the absent customers against `--max-absent`, lists them in `report` (the claimed
/// `--absent-report`) and deletes them as `options` ask. `counted` is how many there are (see
/// [`count`]), `None` when the run stopped before the end of the file; `index` is the store's
/// keys when the run began.
pub async fn settle(
    store: &Store,
    index: &Index,
    keys: &FileKeys,
    counted: Option<u64>,
    options: &Options,
    report: Option<Output>,
    deletes: Deletes<'_>,
) -> Result<Absence, AbsentError> {
    let Some(count) = counted else {
        return Ok(Absence::default());
    };
    let dry_run = matches!(deletes, Deletes::DryRun);
    let guarded = guard(options.max_absent, count, index.len() as u64, dry_run);
    let mut absence = Absence {
        count,
        refused: guarded.err().map(Refused::from),
        ..Absence::default()
    };
    if report.is_none() && options.max_deletes.is_none() && options.sample == 0 {
        return Ok(absence);
    }
    // A scan of the whole store: sled blocks, so the other tasks move off this thread.
    let found = tokio::task::block_in_place(|| find(store, keys, report, options))?;
    absence.sample = (found.listed.iter())
        .take(options.sample)
        .map(|(key, e)| (key.clone(), e.customer_id))
        .collect();
    let Some(max) = options.max_deletes.filter(|_| absence.refused.is_none()) else {
        return Ok(absence);
    };
    let custom = store.key_kind()?.attribute().is_some();
    match (refusal(keys, found.count, max), deletes) {
        (Some(why), _) => absence.refused = Some(why),
        (None, Deletes::Stopped) => console::alert(&format!(
            "not deleting the {} absent customers: the sending stopped",
            found.count
        )),
        (None, Deletes::DryRun) => {
            // A dry run reads nothing from the shop, so it cannot tell which the real run
            // will keep (see `keep`): it says that it may.
            console::note(&format!(
                "dry run: would delete {} absent customers{}",
                found.count,
                if custom {
                    " (at most: under a custom key the run reads each first, and keeps one \
                     whose e-mail the file still has)"
                } else {
                    ""
                }
            ));
        }
        (None, Deletes::Send(exec)) => {
            let (deleted, left) = delete(store, exec, &found, custom.then_some(keys)).await?;
            absence.deleted = deleted;
            absence.refused = match left {
                Left { kept: 0, failed: 0 } => None,
                Left { kept: 0, failed } => Some(Refused::NotDeleted { failed }),
                Left { kept, failed } => Some(Refused::Kept { kept, failed }),
            };
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
    // The key's own column: `email`, or the custom attribute's code under `--key custom:`.
    let kind = store.key_kind()?;
    let mut out = report
        .map(|output| -> Result<_, WriteError> {
            let p = output.path().to_owned();
            let mut w = csv::Writer::from_writer(output.into_file()?);
            w.write_record(["website_id", kind.column(), "customer_id"])
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
                &escape_cell(&key.value),
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

/// The absent customers not deleted: kept (see [`keep`]), or failed.
#[derive(Debug, Default, PartialEq)]
struct Left {
    kept: u64,
    failed: u64,
}

/// Deletes the absent customers and forgets their mappings. Under a custom key (`named` is the
/// file's keys then) each is read first and kept when the file still names its e-mail.
/// Returns the digests deleted, ascending, and what was left.
async fn delete(
    store: &Store,
    exec: &Executor,
    found: &Found,
    named: Option<&FileKeys>,
) -> Result<(Vec<u64>, Left), AbsentError> {
    let mut deleted = Vec::new();
    let mut left = Left::default();
    // Under a custom key, the customers as the shop has them now: a search a page.
    let current = match named {
        None => HashMap::new(),
        Some(_) => {
            let ids: Vec<u64> = found.listed.iter().map(|(_, e)| e.customer_id).collect();
            match exec.current(&ids).await {
                Ok(list) => (list.into_iter())
                    .filter_map(|c| Some((c.get("id")?.as_u64()?, c)))
                    .collect(),
                Err(e) => {
                    console::alert(&format!(
                        "not deleting the {} absent customers: reading them first: {e}",
                        ids.len()
                    ));
                    left.failed = ids.len() as u64;
                    return Ok((deleted, left));
                }
            }
        }
    };
    for (key, entry) in &found.listed {
        let id = entry.customer_id;
        let kept = named
            .zip(current.get(&id))
            .and_then(|(keys, c)| keep(keys, c));
        if let Some(why) = kept {
            console::alert(&format!("kept customer {id} ({}): {why}", key.value));
            left.kept += 1;
            continue;
        }
        // Forgets the mapping once deleted.
        match exec.delete(store, key, id).await? {
            Ok(()) => deleted.push(key.digest()),
            Err(e) => {
                console::alert(&format!(
                    "could not delete customer {id} ({}): {e}",
                    key.value
                ));
                left.failed += 1;
            }
        }
    }
    tokio::task::block_in_place(|| store.flush())?;
    console::note(&format!(
        "deleted {} absent customers ({} kept, {} failed)",
        deleted.len(),
        left.kept,
        left.failed
    ));
    deleted.sort_unstable();
    Ok((deleted, left))
}

/// Why an absent customer, as the shop has it now (`current`), must not be deleted: a row of
/// the file has its e-mail in its website. Under a custom key that is most likely the same
/// person under a new key, whose row failed because the e-mail is taken; deleting the
/// customer would lose its orders and addresses and let the next run create another.
fn keep(keys: &FileKeys, current: &Value) -> Option<String> {
    let email = current.get("email").and_then(Value::as_str)?;
    let website_id = crate::customer::website_of(current)?;
    keys.names_email(website_id, email).then(|| {
        format!("the file still has its e-mail {email} in website {website_id}, under another key")
    })
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
             nothing was sent or deleted (see --absent-report; if they are really gone, run \
             again with a larger --max-deletes)"
        );
    }

    #[test]
    fn max_absent_is_a_count_or_a_share_of_the_store_and_strictly_more_trips_it() {
        let pct = MaxAbsent::Percent;
        // (limit, absent, store keys) -> allowed
        let cases = [
            (pct(10.0), 100, 1000, true),
            (pct(10.0), 101, 1000, false),
            (pct(10.0), 0, 0, true),
            (pct(10.0), 1, 5, false),
            (pct(100.0), 1000, 1000, true),
            (pct(0.0), 1, 1000, false),
            (pct(2.5), 25, 1000, true),
            (pct(2.5), 26, 1000, false),
            (MaxAbsent::Count(50), 50, 60, true),
            (MaxAbsent::Count(50), 51, 1000, false),
        ];
        for (limit, absent, keys, want) in cases {
            assert_eq!(
                limit.allows(absent, keys),
                want,
                "{limit} {absent} of {keys}"
            );
        }
    }

    #[test]
    fn max_absent_reads_counts_and_percentages() {
        let cases = [
            ("10%", Ok(MaxAbsent::Percent(10.0))),
            (" 2.5 % ", Ok(MaxAbsent::Percent(2.5))),
            ("100%", Ok(MaxAbsent::Percent(100.0))),
            ("50", Ok(MaxAbsent::Count(50))),
            ("101%", Err(())),
            ("-1", Err(())),
            ("ten", Err(())),
            ("%", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<MaxAbsent>().map_err(drop), want, "{text}");
        }
        assert_eq!(MaxAbsent::Percent(10.0).to_string(), "10%");
        let e = guard(MaxAbsent::Percent(10.0), 600, 1000, false).expect_err("trips");
        assert!(
            e.to_string().starts_with(
                "600 of the 1000 customers in the state store are absent from the file, more \
                 than --max-absent 10% allows: nothing was sent"
            ),
            "{e}"
        );
    }
}
