//! The run history: every sync and dry run is recorded in the state directory's `runs/`
//! folder with its summary and the outcome of every row, so that last night's failures can be
//! read (`custsync runs show ID --failed`) without a `--report` and without sending anything
//! again. The last `--keep-runs` runs are kept.
//!
//! A run is two files, both mode 0600 in a 0700 folder:
//!
//! - `000007.json`: the run's [`Summary`] (the summary JSON's keys). Written when the run
//!   starts, without `finished_at` and `exit_code`, and replaced (a new file renamed over it)
//!   when it ends: a run that was killed keeps the first form.
//! - `000007.csv`: the report's columns, one line per input row, written as outcomes arrive
//!   (so in the order rows finished, not held in memory); `line` gives the file order back.
//!
//! Plain files rather than a sled tree: a million-row run adds one appended file instead of a
//! million keys to the store's log, dropping an old run is deleting two files, and a person can
//! read the history with any tool. Only a sync holding the state directory's lock writes here;
//! reading needs no lock, so `custsync runs` works while a run goes on.
//!
//! `--only-failed` still works from the state store's `failed` keys, which outlive any number
//! of runs that did not touch them; the history is for people.

mod read;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::outcome::Outcome;
use crate::report::{CsvRows, RunInfo, Summary};

pub use read::{Filter, list, show};

/// The folder of the state directory that holds the history.
pub const DIR: &str = "runs";

/// What can go wrong with the history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunsError {
    #[error("run history {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// `runs show` of a run the history does not have.
    #[error("no run {id} in {dir} (see custsync runs)")]
    NoRun { id: u64, dir: PathBuf },
    /// A file of the history that this version cannot read.
    #[error("run history {path}: {why}")]
    Damaged { path: PathBuf, why: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> RunsError + '_ {
    move |source| RunsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A run's files, by id.
fn summary_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:06}.json"))
}

fn rows_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:06}.csv"))
}

/// The ids the history has, ascending.
fn ids(dir: &Path) -> Result<Vec<u64>, RunsError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir)(e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry.map_err(io_error(dir))?.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_suffix(".json").or_else(|| n.strip_suffix(".csv")))
            .and_then(|n| n.parse::<u64>().ok());
        ids.extend(id);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Creates a file that must not exist yet (so never through a symlink), mode 0600.
fn create_new(path: &Path) -> Result<File, RunsError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))
}

/// Writes `summary` as the run's record: a new file renamed over the old one, so that a reader
/// never sees half of it.
fn write_summary(dir: &Path, summary: &Summary) -> Result<(), RunsError> {
    let path = summary_path(dir, summary.run.run_id);
    let tmp = path.with_extension("json.tmp");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(&tmp)(e)),
        _ => {}
    }
    let mut file = create_new(&tmp)?;
    let mut json = serde_json::to_vec_pretty(summary).map_err(|e| io_error(&tmp)(e.into()))?;
    json.push(b'\n');
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(io_error(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_error(&path))
}

/// A run being recorded: its record in the history, finished by [`Recorder::finish`] or
/// [`Recorder::abandon`].
pub struct Recorder {
    dir: PathBuf,
    started: Summary,
}

/// The run's rows, written as they come.
pub struct RowLog {
    rows: CsvRows<File>,
    path: PathBuf,
}

impl Recorder {
    /// Records the start of a run in the history of `state_dir` under the next id, with its
    /// empty row file, and drops the oldest runs beyond `keep` (at least this one is kept).
    /// The state directory's lock must be held.
    pub fn start(
        state_dir: &Path,
        keep: usize,
        dry_run: bool,
        mut run: RunInfo,
    ) -> Result<(Recorder, RowLog), RunsError> {
        let dir = state_dir.join(DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(io_error(&dir))?;
        let known = ids(&dir)?;
        run.run_id = known.last().map_or(1, |last| last + 1);
        let path = rows_path(&dir, run.run_id);
        let file = create_new(&path)?;
        let mut rows = CsvRows::new(file).map_err(io_error(&path))?;
        // The header at once: a run killed before its first rows still has a readable file.
        rows.flush().map_err(io_error(&path))?;
        let started = Summary {
            dry_run,
            run,
            ..Summary::default()
        };
        write_summary(&dir, &started)?;
        let surplus = (known.len() + 1).saturating_sub(keep.max(1));
        for old in &known[..surplus] {
            for path in [summary_path(&dir, *old), rows_path(&dir, *old)] {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io_error(&path)(e));
                    }
                    _ => {}
                }
            }
        }
        Ok((Recorder { dir, started }, RowLog { rows, path }))
    }

    /// The run's id, start and the rest of what its summary says of it.
    pub fn run(&self) -> &RunInfo {
        &self.started.run
    }

    /// Records how the run ended.
    pub fn finish(self, summary: &Summary) -> Result<(), RunsError> {
        write_summary(&self.dir, summary)
    }

    /// Records a run that stopped on a fatal error before it had its summary.
    pub fn abandon(self, error: String, exit_code: u8) -> Result<(), RunsError> {
        let mut summary = self.started;
        summary.run.finished_at = Some(crate::report::timestamp(chrono::Utc::now()));
        summary.run.exit_code = Some(exit_code);
        summary.run.error = Some(error);
        write_summary(&self.dir, &summary)
    }
}

impl RowLog {
    /// Records one row.
    pub fn write(&mut self, o: &Outcome) -> Result<(), RunsError> {
        self.rows.write(o).map_err(io_error(&self.path))
    }

    /// Flushes the rows to the file.
    pub fn finish(mut self) -> Result<(), RunsError> {
        self.rows.flush().map_err(io_error(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;
    use crate::customer::Key;
    use crate::outcome::{Action, RowRef};
    use std::os::unix::fs::PermissionsExt;

    fn info() -> RunInfo {
        RunInfo {
            started_at: "2026-12-01T02:00:00Z".into(),
            file: "customers.csv".into(),
            target: "sandbox".into(),
            version: "0.1.0".into(),
            ..RunInfo::default()
        }
    }

    fn row(line: u64) -> RowRef {
        RowRef {
            line,
            email: format!("r{line}@x.io"),
            website_id: Some(1),
        }
    }

    fn refused(line: u64) -> Outcome {
        let error = ApiError::Status {
            status: 400,
            message: format!("\"Email\" r{line} is not valid, says the shop"),
            retry_after: None,
        };
        let key = Key::new(1, &format!("r{line}@x.io"));
        Outcome::failed(row(line), Action::Create, key, None, &error)
    }

    /// Records a run with these outcomes, in this order, and finishes it with exit code 3.
    fn record(state: &Path, keep: usize, outcomes: Vec<Outcome>) -> u64 {
        let (recorder, mut rows) = Recorder::start(state, keep, false, info()).expect("start");
        let id = recorder.run().run_id;
        for o in &outcomes {
            rows.write(o).expect("row");
        }
        rows.finish().expect("rows");
        let mut summary = Summary {
            rows: outcomes.len() as u64,
            run: recorder.run().clone(),
            ..Summary::default()
        };
        summary.run.exit_code = Some(3);
        recorder.finish(&summary).expect("finish");
        id
    }

    fn show_text(state: &Path, id: u64, filter: Filter) -> String {
        let mut out = Vec::new();
        show(state, id, filter, &mut out).expect("show");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn runs_get_the_next_id_private_files_and_the_last_n_are_kept() {
        let state = tempfile::tempdir().expect("tempdir");
        let ids: Vec<u64> = (0..4).map(|_| record(state.path(), 3, vec![])).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        let dir = state.path().join(DIR);
        assert_eq!(super::ids(&dir).expect("ids"), [2, 3, 4]);
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&summary_path(&dir, 4)), 0o600);
        assert_eq!(mode(&rows_path(&dir, 4)), 0o600);
        let s = read::read_summary(&summary_path(&dir, 4)).expect("summary");
        assert_eq!((s.run.run_id, s.run.exit_code), (4, Some(3)));

        // A run that is still going (or was killed) has no exit code yet.
        let (recorder, _rows) = Recorder::start(state.path(), 3, true, info()).expect("start");
        let s = read::read_summary(&summary_path(&dir, 5)).expect("summary");
        assert_eq!((s.run.run_id, s.run.exit_code, s.dry_run), (5, None, true));
        let mut list = Vec::new();
        assert_eq!(super::list(state.path(), &mut list).expect("list"), 3);
        let list = String::from_utf8(list).expect("utf-8");
        let first: Vec<&str> = list
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap_or_default())
            .collect();
        assert_eq!(first, ["5", "4", "3"], "newest first:\n{list}");
        assert!(
            list.lines()
                .nth(1)
                .is_some_and(|l| l.contains("unfinished")),
            "{list}"
        );
        recorder
            .abandon("cannot reach the shop".into(), 1)
            .expect("abandon");
        let s = read::read_summary(&summary_path(&dir, 5)).expect("summary");
        assert_eq!(s.run.exit_code, Some(1));
        assert_eq!(s.run.error.as_deref(), Some("cannot reach the shop"));
    }

    #[test]
    fn show_prints_the_selected_rows_in_file_order() {
        let state = tempfile::tempdir().expect("tempdir");
        let outcomes = vec![
            Outcome::unchanged(row(3), Some(1), None, None, false),
            refused(5),
            Outcome::invalid(row(4), "line 4: dob: not a date".into()),
            refused(2),
        ];
        let id = record(state.path(), 30, outcomes);
        let all = show_text(state.path(), id, Filter::default());
        let lines: Vec<u64> = all
            .lines()
            .skip(1)
            .map(|l| {
                l.split(',')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("line")
            })
            .collect();
        assert_eq!(lines, [2, 3, 4, 5]);
        assert!(
            all.starts_with(
                "line,email,website_id,action,status,customer_id,http_status,message\n"
            )
        );
        let failed = Filter {
            failed: true,
            ..Filter::default()
        };
        assert_eq!(
            show_text(state.path(), id, failed)
                .lines()
                .skip(1)
                .collect::<Vec<_>>(),
            [
                "2,r2@x.io,1,create,failed,,400,\"\"\"Email\"\" r2 is not valid, says the shop\"",
                "5,r5@x.io,1,create,failed,,400,\"\"\"Email\"\" r5 is not valid, says the shop\"",
            ]
        );
        let invalid = Filter {
            invalid: true,
            ..Filter::default()
        };
        assert_eq!(show_text(state.path(), id, invalid).lines().count(), 2);
        assert!(matches!(
            show(state.path(), 99, failed, &mut Vec::new()),
            Err(RunsError::NoRun { id: 99, .. })
        ));
    }

    #[test]
    fn show_reads_what_a_killed_run_left() {
        let state = tempfile::tempdir().expect("tempdir");
        let id = record(state.path(), 30, vec![refused(3), refused(2)]);
        let path = rows_path(&state.path().join(DIR), id);
        let mut text = fs::read(&path).expect("read");
        text.extend_from_slice(b"4,r4@x.io,1,cre");
        fs::write(&path, text).expect("write");
        let shown = show_text(state.path(), id, Filter::default());
        assert_eq!(shown.lines().count(), 3, "{shown}");

        // Killed before anything was written: the header is there from the start, and a file
        // left empty (by an older version) reads as no rows.
        let (recorder, rows) = Recorder::start(state.path(), 30, false, info()).expect("start");
        let id = recorder.run().run_id;
        let path = rows_path(&state.path().join(DIR), id);
        assert!(
            fs::metadata(&path).expect("rows file").len() > 0,
            "header written"
        );
        drop(rows);
        fs::write(&path, b"").expect("empty");
        assert_eq!(
            show_text(state.path(), id, Filter::default())
                .lines()
                .count(),
            1
        );
    }

    #[test]
    fn filters_by_status_and_knows_invalid_rows_by_their_action() {
        let f = |failed, invalid, not_sent| Filter {
            failed,
            invalid,
            not_sent,
        };
        // (filter, action, status) -> shown
        let cases = [
            (f(false, false, false), "unchanged", "ok", true),
            (f(true, false, false), "create", "failed", true),
            (f(true, false, false), "invalid", "failed", false),
            (f(true, false, false), "invalid", "invalid", false),
            (f(false, true, false), "invalid", "failed", true),
            (f(false, true, false), "invalid", "invalid", true),
            (f(false, false, true), "update", "not_sent", true),
            (f(false, false, true), "update", "failed", false),
            (f(true, true, true), "create", "ok", false),
        ];
        for (filter, action, status, want) in cases {
            assert_eq!(
                filter.selects(action.as_bytes(), status.as_bytes()),
                want,
                "{filter:?} {action} {status}"
            );
        }
    }
}
