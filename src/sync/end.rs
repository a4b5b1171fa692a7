//! The end of a run: the state store stamped and its index brought up to date with what the
//! run wrote and deleted; the summary made, with the exit code the run ends with, and written
//! (summary JSON, run history, review page), sent to `--notify` and printed as the final line
//! (with a dry run's table); then how the run ended: a fatal error, a wrong base path, the
//! `--max-absent` verdict or a refused delete comes back as the run's error only now, once
//! everything it did is on disk.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Map;

use super::ending::{Ending, Finished, SyncError, exit_of};
use super::send::Sent;
use crate::absent::Absence;
use crate::config::SyncConfig;
use crate::console;
use crate::exit::Exit;
use crate::notify;
use crate::outputs::Output;
use crate::plan::RowHashes;
use crate::report::{self, Absentee, RunInfo, Summary};
use crate::runs::Recorder;
use crate::state::{Index, Known, StateError, Store};

/// What a run did, as its end needs it.
pub struct Work {
    /// The index the rows were planned against.
    pub index: Arc<Index>,
    /// The row hashes the planner found for the index.
    pub rows: RowHashes,
    pub sent: Sent,
    pub absent: Absence,
    /// Requests sent, retries and look-ups included (0 in a dry run).
    pub requests: u64,
    /// Retries made.
    pub retries: u64,
    /// The SHA-256 of the input, when it was read.
    pub sha256: Option<String>,
}

/// What the run changed in the store, for its index.
struct Written {
    index: Arc<Index>,
    rows: RowHashes,
    confirmed: Vec<(u64, Known)>,
    deleted: Vec<u64>,
}

/// Stamps the store with the run and brings its index up to date (a dry run changes nothing
/// but flushes).
fn stamp(store: &Store, dry_run: bool, written: Written) -> Result<(), StateError> {
    let Written {
        index,
        rows,
        confirmed,
        deleted,
    } = written;
    if !dry_run {
        store.set_last_run(chrono::Utc::now().timestamp())?;
        let unchanged = confirmed.is_empty() && deleted.is_empty() && rows.is_empty();
        if !(unchanged && store.keep_index()?) {
            // The reading and the sending are over: this is the last holder of the index.
            let mut index = Arc::unwrap_or_clone(index);
            index.update(confirmed, &deleted);
            // After the writes, which know no row hash: a row found unchanged was not sent.
            index.set_rows(&rows.found);
            index.set_sent_rows(&rows.sent);
            // Last: the index is trusted from the moment its generation is stored.
            store.save_index(&index)?;
        }
    }
    store.flush()
}

/// Writes what the run did and says how it ended; see the module doc.
pub async fn finish(
    cfg: &SyncConfig,
    store: &Arc<Store>,
    work: Work,
    summary_file: Option<Output>,
    history: Recorder,
    started: Instant,
    interrupted: bool,
) -> Result<Finished, SyncError> {
    let Work {
        index,
        rows,
        mut sent,
        mut absent,
        requests,
        retries,
        sha256,
    } = work;
    let written = Written {
        index,
        rows,
        confirmed: std::mem::take(&mut sent.confirmed),
        deleted: std::mem::take(&mut absent.deleted),
    };
    // sled calls block: off the async workers, though nothing else runs by now.
    let (store, dry_run) = (Arc::clone(store), cfg.dry_run);
    let stamped = tokio::task::spawn_blocking(move || stamp(&store, dry_run, written)).await;
    match stamped {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(abandon(history, e.into())),
        Err(_) => return Err(abandon(history, SyncError::ReaderPanicked)),
    }

    let error: Option<SyncError> = match (sent.fatal, absent.refused) {
        (Some(e), _) => Some(e),
        (None, Some(why)) => Some(why.into()),
        (None, None) => None,
    };
    let tally = &sent.tally;
    let mut summary = tally.summary(
        absent.count,
        requests,
        retries,
        cfg.dry_run,
        started.elapsed(),
    );
    summary.run = history.run().clone();
    summary.run.finished_at = Some(report::timestamp(chrono::Utc::now()));
    summary.run.file_sha256 = sha256;
    summary.run.error = error.as_ref().map(ToString::to_string);
    let mut finished = Finished {
        summary,
        ending: match (interrupted, sent.stopped) {
            (true, _) => Ending::Interrupted,
            (false, Some(stop)) => Ending::Stopped(stop),
            (false, None) => Ending::Complete,
        },
    };
    let exit = match &error {
        Some(e) => exit_of(Err(e)),
        None => exit_of(Ok(&finished)),
    };
    finished.summary.run.exit_code = Some(exit as u8);
    let summary = &finished.summary;

    history.finish(summary)?;
    if let Some(output) = summary_file {
        report::write_summary(output, summary)?;
    }
    if let Some(review) = sent.review {
        let absentees: Vec<Absentee> = (absent.sample.into_iter())
            .map(|(key, customer_id)| Absentee {
                website_id: key.website_id,
                key: key.value,
                customer_id,
            })
            .collect();
        review.finish(summary, &absentees, cfg.mapping.key().column())?;
    }
    let ok = exit == Exit::Ok;
    if let Some(url) = &cfg.notify {
        notify::post(url, summary, ok).await;
    }
    // The table is for the reader of a dry run; `--quiet` keeps only the final line.
    if cfg.dry_run {
        console::note(report::table(summary).trim_end());
    }
    let mut fields = Map::new();
    if let Ok(v) = serde_json::to_value(summary) {
        fields.insert("summary".into(), v);
    }
    console::final_line(&report::human(summary), ok, fields);
    // Such a run may well exit 0: dropped under --quiet, as the contract asks of such runs.
    if tally.never_created() > 0 {
        console::warn(&format!(
            "{} rows were passed over by --only-failed though their customers were never \
             created: run without --only-failed to create them",
            tally.never_created()
        ));
    }
    if tally.failed() > 0 && cfg.report.is_none() {
        console::alert(&format!(
            "some rows failed: custsync runs show {} --failed lists them with the reasons",
            summary.run.run_id
        ));
    }

    match error {
        Some(e) => Err(e),
        None => Ok(finished),
    }
}

/// Records a run that a fatal error stopped before its summary, and gives the error back.
/// Writes the summary of a run that `error` stopped before its end into `output` (the
/// claimed `--summary-json`), when there is one: no counts, its exit code and the error.
pub fn fatal(
    output: Option<Output>,
    run: RunInfo,
    cfg: &SyncConfig,
    error: SyncError,
) -> SyncError {
    if let Some(output) = output {
        let summary = Summary {
            dry_run: cfg.dry_run,
            run: RunInfo {
                finished_at: Some(report::timestamp(chrono::Utc::now())),
                exit_code: Some(exit_of(Err(&error)) as u8),
                error: Some(error.to_string()),
                ..run
            },
            ..Summary::default()
        };
        if let Err(not_written) = report::write_summary(output, &summary) {
            tracing::warn!("{not_written}");
        }
    }
    error
}

pub fn abandon(history: Recorder, error: SyncError) -> SyncError {
    if let Err(not_recorded) = history.abandon(error.to_string(), exit_of(Err(&error)) as u8) {
        tracing::warn!("{not_recorded}");
    }
    error
}
