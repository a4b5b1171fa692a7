//! The run's numbers: counts by status and website as outcomes arrive ([`Tally`]), the
//! contract's summary JSON ([`Summary`], also what the run history keeps of a run), the dry
//! run's table and the final line.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::WriteError;
use crate::outcome::{Action, Outcome, Status};
use crate::outputs::Output;

/// The contract's summary JSON, in its order of keys.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Summary {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub invalid: u64,
    pub failed: u64,
    pub not_sent: u64,
    pub absent: u64,
    pub requests: u64,
    pub retries: u64,
    pub dry_run: bool,
    pub elapsed_s: f64,
    #[serde(flatten)]
    pub run: RunInfo,
    pub by_website: BTreeMap<Website, Counts>,
}

/// Which run a summary is of: the keys after the counts.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RunInfo {
    /// The run's number in the history of its state directory.
    pub run_id: u64,
    /// RFC 3339, UTC, whole seconds.
    pub started_at: String,
    /// `None` while the run goes on (or when it was killed).
    pub finished_at: Option<String>,
    /// The input file's path as given.
    pub file: String,
    /// Of the input's bytes; `None` when the run did not get to read them.
    pub file_sha256: Option<String>,
    /// The endpoint without credentials, or `sandbox`.
    pub target: String,
    /// The crate version, without a `v`.
    pub version: String,
    /// `None` while the run goes on (or when it was killed).
    pub exit_code: Option<u8>,
    /// What stopped a run that ended with a fatal error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A time as the summary writes it: RFC 3339, UTC, whole seconds (`2026-12-01T02:00:00Z`).
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A `by_website` key: a website id, or `unknown` for rows whose website cannot be read.
/// Ids sort numerically, `unknown` last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Website {
    Id(u32),
    Unknown,
}

impl From<Option<u32>> for Website {
    fn from(id: Option<u32>) -> Self {
        id.map_or(Website::Unknown, Website::Id)
    }
}

impl fmt::Display for Website {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Website::Id(id) => write!(f, "{id}"),
            Website::Unknown => f.write_str("unknown"),
        }
    }
}

impl FromStr for Website {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "unknown" {
            Ok(Website::Unknown)
        } else {
            s.parse().map(Website::Id)
        }
    }
}

impl Serialize for Website {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Website {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Rows by what became of them: one website's part of the summary.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Counts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub invalid: u64,
    pub failed: u64,
    pub not_sent: u64,
}

impl Counts {
    /// Counts one outcome under the one heading it belongs to.
    fn add(&mut self, o: &Outcome) {
        let counter = match (o.status(), o.action()) {
            (Status::Invalid, _) | (_, Action::Invalid) => &mut self.invalid,
            (Status::Failed, _) => &mut self.failed,
            (Status::NotSent, _) => &mut self.not_sent,
            (_, Action::Create) => &mut self.created,
            (_, Action::Update) => &mut self.updated,
            (_, Action::Unchanged) => &mut self.unchanged,
        };
        *counter += 1;
    }

    /// Every row counted.
    pub fn rows(&self) -> u64 {
        self.created + self.updated + self.unchanged + self.invalid + self.failed + self.not_sent
    }
}

/// Running counts, in all and by website, as outcomes arrive.
#[derive(Default)]
pub struct Tally {
    total: Counts,
    by_website: BTreeMap<Website, Counts>,
    never_created: u64,
}

impl Tally {
    /// Counts one outcome.
    pub fn add(&mut self, o: &Outcome) {
        if o.action() == Action::Unchanged && o.customer_id().is_none() {
            self.never_created += 1;
        }
        self.total.add(o);
        self.by_website
            .entry(o.row().website_id.into())
            .or_default()
            .add(o);
    }

    /// Failed rows so far.
    pub fn failed(&self) -> u64 {
        self.total.failed
    }

    /// Rows counted unchanged whose customer the store does not know: `--only-failed` passes
    /// over such a row (any other run creates it), and the user should hear of it.
    pub fn never_created(&self) -> u64 {
        self.never_created
    }

    /// The summary's counts with the run-wide numbers filled in; `run` is left to the caller.
    pub fn summary(
        &self,
        absent: u64,
        requests: u64,
        retries: u64,
        dry_run: bool,
        elapsed: Duration,
    ) -> Summary {
        let t = &self.total;
        Summary {
            rows: t.rows(),
            created: t.created,
            updated: t.updated,
            unchanged: t.unchanged,
            invalid: t.invalid,
            failed: t.failed,
            not_sent: t.not_sent,
            absent,
            requests,
            retries,
            dry_run,
            elapsed_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            run: RunInfo::default(),
            by_website: self.by_website.clone(),
        }
    }
}

/// A table of rows per action and website, for the reviewer of a dry run.
pub fn table(s: &Summary) -> String {
    type Column = fn(&Counts) -> u64;
    let columns: [(&str, Column); 4] = [
        ("create", |c| c.created),
        ("update", |c| c.updated),
        ("unchanged", |c| c.unchanged),
        ("invalid", |c| c.invalid),
    ];
    let mut out = format!("{:<12}", "website");
    for (name, _) in columns {
        out.push_str(&format!("{name:>10}"));
    }
    out.push('\n');
    for (website, counts) in &s.by_website {
        let name = match website {
            Website::Id(id) => id.to_string(),
            Website::Unknown => "(unknown)".to_owned(),
        };
        out.push_str(&format!("{name:<12}"));
        for (_, count) in columns {
            out.push_str(&format!("{:>10}", count(counts)));
        }
        out.push('\n');
    }
    out.push_str(&format!("{:<12}", "total"));
    for (_, count) in columns {
        let total: u64 = s.by_website.values().map(count).sum();
        out.push_str(&format!("{total:>10}"));
    }
    out.push_str(&format!(
        "\nabsent from the file but in the state store: {}\n",
        s.absent
    ));
    out
}

/// Writes the summary JSON (mode 0600) into its claimed file.
pub fn write_summary(output: Output, summary: &Summary) -> Result<(), WriteError> {
    let path = output.path().to_owned();
    let mut file = output.into_file()?;
    let err = |source| WriteError { path, source };
    serde_json::to_writer_pretty(&mut file, summary)
        .map_err(io::Error::from)
        .and_then(|()| file.write_all(b"\n"))
        .map_err(err)
}

/// The human summary line printed at the end: the counts, the rows not sent and the customers
/// absent from the file when there are any.
pub fn human(s: &Summary) -> String {
    let mut line = if s.dry_run {
        format!(
            "dry run: {} rows: would create {}, would update {}, {} unchanged, {} invalid; nothing was sent",
            s.rows, s.created, s.updated, s.unchanged, s.invalid
        )
    } else {
        let not_sent = match s.not_sent {
            0 => String::new(),
            n => format!(", {n} not sent"),
        };
        format!(
            "{} rows: {} created, {} updated, {} unchanged, {} invalid, {} failed{not_sent} ({} requests, {} retries) in {:.1} s",
            s.rows,
            s.created,
            s.updated,
            s.unchanged,
            s.invalid,
            s.failed,
            s.requests,
            s.retries,
            s.elapsed_s
        )
    };
    if s.absent > 0 {
        line.push_str(&format!(
            "; {} customers of the state store are absent from the file",
            s.absent
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::RowRef;

    fn row(line: u64, website_id: Option<u32>) -> RowRef {
        RowRef {
            line,
            email: format!("r{line}@x.io"),
            website_id,
        }
    }

    #[test]
    fn counts_by_website_add_up_to_the_totals() {
        let mut tally = Tally::default();
        let outcomes = [
            Outcome::invalid(row(2, None), "line 2: email: missing".into()),
            Outcome::invalid(row(3, Some(2)), "line 3: dob: bad".into()),
            Outcome::unchanged(row(4, Some(1)), Some(1), None, None, false),
            Outcome::unchanged(row(5, Some(10)), Some(2), None, None, false),
            Outcome::would_update(row(6, Some(2)), 3, Vec::new(), None),
        ];
        for o in &outcomes {
            tally.add(o);
        }
        let s = tally.summary(4, 0, 0, true, Duration::from_millis(1500));
        assert_eq!(
            (
                s.rows,
                s.invalid,
                s.unchanged,
                s.updated,
                s.absent,
                s.elapsed_s
            ),
            (5, 2, 2, 1, 4, 1.5)
        );
        let keys: Vec<String> = s.by_website.keys().map(ToString::to_string).collect();
        assert_eq!(
            keys,
            ["1", "2", "10", "unknown"],
            "numeric order, unknown last"
        );
        let sum: u64 = s.by_website.values().map(Counts::rows).sum();
        assert_eq!(sum, s.rows);
        assert_eq!(
            s.by_website[&Website::Id(2)],
            Counts {
                invalid: 1,
                updated: 1,
                ..Counts::default()
            }
        );
        let table = table(&s);
        assert!(table.contains("(unknown)"), "{table}");
        assert!(table.ends_with("absent from the file but in the state store: 4\n"));
    }

    #[test]
    fn the_json_has_the_contract_keys_in_order_and_reads_back() {
        let mut s = Summary {
            rows: 1,
            created: 1,
            ..Summary::default()
        };
        s.run = RunInfo {
            run_id: 7,
            started_at: "2026-12-01T02:00:00Z".into(),
            finished_at: Some("2026-12-01T02:00:41Z".into()),
            file: "customers.csv".into(),
            file_sha256: Some("ab".into()),
            target: "sandbox".into(),
            version: "0.1.0".into(),
            exit_code: Some(0),
            error: None,
        };
        s.by_website.insert(
            Website::Id(1),
            Counts {
                created: 1,
                ..Counts::default()
            },
        );
        let json = serde_json::to_string(&s).expect("serialises");
        let keys = [
            "rows",
            "created",
            "updated",
            "unchanged",
            "invalid",
            "failed",
            "not_sent",
            "absent",
            "requests",
            "retries",
            "dry_run",
            "elapsed_s",
            "run_id",
            "started_at",
            "finished_at",
            "file",
            "file_sha256",
            "target",
            "version",
            "exit_code",
            "by_website",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| json.find(&format!("\"{k}\":")).expect(k))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(!json.contains("\"error\""), "{json}");
        assert!(json.ends_with(
            "\"by_website\":{\"1\":{\"created\":1,\"updated\":0,\"unchanged\":0,\"invalid\":0,\"failed\":0,\"not_sent\":0}}}"
        ));
        let back: Summary = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, s);
    }

    #[test]
    fn timestamps_are_utc_whole_seconds() {
        let t = chrono::DateTime::from_timestamp(1_796_090_400, 123_000_000).expect("time");
        assert_eq!(timestamp(t), "2026-12-01T02:00:00Z");
    }
}
