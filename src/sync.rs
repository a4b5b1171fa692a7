//! The sync pipeline, on one screen:
//!
//! ```text
//! CSV file --parse thread: parse, validate, hash--> planning thread: sled look-ups
//!   --bounded channel (batches)--> async loop: rows to send go out under the rate limit,
//!   at most --concurrency at a time, with retries (exec); the rest are recorded at once
//!   --> one sink: report line, counts, progress, state writer thread
//! ```
//!
//! Interrupts (SIGINT/SIGTERM) stop the reading; rows already read are drained (in-flight
//! requests get a grace period), state is flushed and the report and summary written.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::config::SyncConfig;
use crate::connect::{self, ConnectError};
use crate::customer::Key;
use crate::exec::{self, Executor};
use crate::input::{self, InputError};
use crate::outcome::{Outcome, Skip, StateChange, Status};
use crate::plan::{FileKeys, Planned, Planner, Step};
use crate::report::{self, Counters, Progress, Report, Summary, Tally, WriteError};
use crate::state::{Entry, Index, Indexed, Known, Op, StateError, Store, Writer};
use crate::throttle::Throttle;

/// Rows per message from the reader thread: amortises channel costs on large files.
const BATCH: usize = 256;

/// A failure that stops the run (exit code 1).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("internal error: the reader thread stopped unexpectedly")]
    ReaderPanicked,
}

/// How a run that got through its rows ended.
#[derive(Debug)]
pub struct Finished {
    pub summary: Summary,
    /// The run was interrupted by a signal.
    pub interrupted: bool,
    /// A fatal error stopped the sending part-way (report and state still written).
    pub fatal: Option<ApiError>,
    /// `--delete-absent` refused to delete, and why.
    pub refused: Option<String>,
}

/// Runs `custsync sync`.
pub async fn run(cfg: SyncConfig, cancel: CancellationToken) -> Result<Finished, SyncError> {
    let started = Instant::now();
    let reader = input::Reader::open(&cfg.input, cfg.default_website, cfg.mapping.clone())?;
    let total_bytes = std::fs::metadata(&cfg.input).map_or(0, |m| m.len());
    let store = Arc::new(Store::open(&cfg.connect.state_dir)?);
    // Read before anything writes the store (a write makes the file stale).
    let index = store.load_index()?;

    let throttle = Arc::new(Throttle::new(cfg.rate));
    let (sandbox, client) = connect::connect(
        &cfg.connect,
        cfg.dry_run,
        cfg.concurrency,
        Arc::clone(&throttle),
    )
    .await?;
    let ignored = reader.ignored_columns();
    if !ignored.is_empty() && !cfg.quiet {
        eprintln!(
            "note: ignoring columns custsync does not know: {}",
            ignored.join(", ")
        );
    }
    let executor = client.map(|c| Executor::new(c, cfg.retry, cancel.clone()));
    let counters = Arc::new(Counters::default());

    // Reading and planning on threads of their own (sled reads block, so not on the async
    // workers).
    let reading = cancel.child_token();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Planned>>(16);
    let reader_task = {
        let store = Arc::clone(&store);
        let reading = reading.clone();
        let counters = Arc::clone(&counters);
        let options = cfg.plan;
        tokio::task::spawn_blocking(move || {
            plan_file(reader, &store, index, options, &reading, &counters, &tx)
        })
    };

    let progress = Progress::start(Arc::clone(&counters), total_bytes, cfg.quiet, move || {
        throttle.requests()
    });
    let stop: OnceLock<Skip> = OnceLock::new();
    let mut sink = Sink {
        tally: Tally::default(),
        report: cfg.report.as_deref().map(Report::create).transpose()?,
        writer: if cfg.dry_run {
            None
        } else {
            Some(store.writer()?)
        },
        counters: &counters,
        stop: &stop,
        reading: &reading,
        max_errors: cfg.max_errors,
        fatal: None,
        confirmed: Vec::new(),
    };

    // Senders: at most `concurrency` sends in flight. Rows that send nothing are recorded at
    // once, without a future each: on a re-run that is nearly every row.
    let mut rx = rx;
    let mut queue = Vec::<Planned>::new().into_iter();
    let mut read_all = false;
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < cfg.concurrency {
            let Some(planned) = queue.next() else { break };
            let sends = matches!(planned.step, Step::Create { .. } | Step::Update { .. });
            match executor.as_ref() {
                Some(exec) if sends => {
                    let skip = if cancel.is_cancelled() {
                        Some(Skip::Interrupted)
                    } else {
                        stop.get().copied()
                    };
                    match skip {
                        Some(why) => sink.take(exec::skipped(planned, why), None)?,
                        None => in_flight.push(exec.send(planned)),
                    }
                }
                _ => sink.take(exec::unsent(planned, cfg.dry_run), None)?,
            }
        }
        let need_rows = queue.len() == 0 && !read_all;
        tokio::select! {
            Some((outcome, error)) = in_flight.next(), if !in_flight.is_empty() => sink.take(outcome, error)?,
            batch = rx.recv(), if need_rows => match batch {
                Some(batch) => queue = batch.into_iter(),
                None => read_all = true,
            },
            else => break,
        }
    }
    drop(in_flight);
    let Sink {
        tally,
        report,
        writer,
        fatal,
        confirmed,
        ..
    } = sink;
    progress.finish();

    let (keys, mut index) = reader_task.await.map_err(|_| SyncError::ReaderPanicked)??;
    // The planner is done with the index: bring it up to date with what this run wrote.
    if let Some(w) = writer {
        w.finish()?;
        index.update(confirmed, &[]);
    }
    // Only a file read to the end says which customers it no longer has.
    let complete = !cancel.is_cancelled() && fatal.is_none();
    let mut refused = None;
    let wants_list = cfg.absent_report.is_some() || cfg.delete_absent.is_some();
    let absent = match (complete, wants_list) {
        (false, _) => 0,
        (true, false) => index
            .digests()
            .filter(|d| !keys.contains_digest(*d))
            .count() as u64,
        (true, true) => {
            let absent = find_absent(
                &store,
                &keys,
                cfg.absent_report.as_deref(),
                cfg.delete_absent,
            )?;
            if let Some(max) = cfg.delete_absent {
                let (why, deleted) =
                    delete_absent(&cfg, executor.as_ref(), &store, &keys, &absent, max).await?;
                refused = why;
                let mut gone: Vec<u64> = deleted.iter().map(Key::digest).collect();
                gone.sort_unstable();
                index.update(Vec::new(), &gone);
            }
            absent.count
        }
    };
    if !cfg.dry_run {
        store.set_last_run(chrono::Utc::now().timestamp())?;
        // Last: the index is trusted from the moment its generation is stored.
        store.save_index(&index)?;
    }
    store.flush()?;
    if let Some(r) = report {
        r.finish()?;
    }
    if let Some(sb) = sandbox {
        sb.shutdown().await;
    }

    let (requests, retries) = executor
        .as_ref()
        .map_or((0, 0), |e| (e.requests(), e.retries()));
    let summary = tally.summary(absent, requests, retries, cfg.dry_run, started.elapsed());
    if let Some(path) = &cfg.summary_json {
        report::write_summary(path, &summary)?;
    }
    if cfg.dry_run {
        print!("{}", tally.table(absent));
    }
    println!("{}", report::human(&summary));
    if tally.failed() > 0 && cfg.report.is_none() && !cfg.quiet {
        eprintln!("some rows failed: run again with --report FILE to see which and why");
    }
    Ok(Finished {
        summary,
        interrupted: cancel.is_cancelled(),
        fatal,
        refused,
    })
}

/// The one consumer of outcomes: report, counts, progress, state.
struct Sink<'a> {
    tally: Tally,
    report: Option<Report>,
    writer: Option<Writer>,
    counters: &'a Counters,
    stop: &'a OnceLock<Skip>,
    reading: &'a CancellationToken,
    max_errors: Option<u64>,
    fatal: Option<ApiError>,
    /// What this run wrote, to bring the index up to date at the end.
    confirmed: Vec<(u64, Known)>,
}

impl Sink<'_> {
    fn take(&mut self, outcome: Outcome, error: Option<ApiError>) -> Result<(), SyncError> {
        if let Some(e) = error
            && self.fatal.is_none()
        {
            tracing::error!("stopping: {e}");
            let _ = self.stop.set(Skip::Stopped);
            self.reading.cancel();
            self.fatal = Some(e);
        }
        self.tally.add(&outcome);
        self.counters.done.fetch_add(1, Ordering::Relaxed);
        let counter = if outcome.status() == Status::Failed {
            &self.counters.failed
        } else {
            &self.counters.ok
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = self.report.as_mut() {
            r.write(&outcome)?;
        }
        if let (Some(w), Some(change)) = (&self.writer, outcome.into_state()) {
            w.send(match change {
                StateChange::Confirmed(key, entry, fields) => {
                    let known = Known::new(entry.payload_hash, entry.customer_id);
                    self.confirmed.push((key.digest(), known));
                    Op::Put(key, entry, fields)
                }
                StateChange::Failed(key) => Op::Failed(key),
            });
        }
        if self
            .max_errors
            .is_some_and(|max| self.tally.failed() >= max)
            && self.stop.set(Skip::TooManyErrors).is_ok()
        {
            eprintln!(
                "stopping: {} rows failed (--max-errors); the remaining rows are reported as not sent",
                self.tally.failed()
            );
        }
        Ok(())
    }
}

/// The reader's work, on two threads so that both cores are busy on a large file: this one
/// parses and validates, a second one plans (keys, hashes, index and sled look-ups). Returns
/// the keys the file names, for the absent check, and the index the plan was made against.
fn plan_file(
    mut reader: input::Reader,
    store: &Store,
    index: Option<Index>,
    options: crate::plan::Options,
    reading: &CancellationToken,
    counters: &Counters,
    tx: &tokio::sync::mpsc::Sender<Vec<Planned>>,
) -> Result<(FileKeys, Index), SyncError> {
    let (records_tx, records_rx) = std::sync::mpsc::sync_channel::<Vec<input::Record>>(8);
    std::thread::scope(|scope| {
        let planning = scope.spawn(move || -> Result<(FileKeys, Index), SyncError> {
            // Without a current index file, one from a scan of the store (nothing writes it
            // before a row is planned) costs less than a sled read per row; parsing goes on
            // meanwhile.
            let index = match index {
                Some(index) => index,
                None => store.build_index()?,
            };
            let known = Indexed {
                store,
                index: &index,
            };
            let mut planner = Planner::new(&known, options);
            for records in records_rx {
                let planned = records
                    .into_iter()
                    .map(|r| planner.plan(r))
                    .collect::<Result<Vec<_>, _>>()?;
                if tx.blocking_send(planned).is_err() {
                    break;
                }
            }
            Ok((planner.into_keys(), index))
        });
        let mut batch = Vec::with_capacity(BATCH);
        let mut read_error = None;
        while !reading.is_cancelled() {
            match reader.next() {
                None => break,
                Some(Ok(record)) => batch.push(record),
                Some(Err(e)) => {
                    read_error = Some(e);
                    break;
                }
            }
            if batch.len() == BATCH {
                counters
                    .bytes_read
                    .store(reader.bytes_read(), Ordering::Relaxed);
                counters.read.fetch_add(BATCH as u64, Ordering::Relaxed);
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if records_tx.send(full).is_err() {
                    break;
                }
            }
        }
        counters
            .bytes_read
            .store(reader.bytes_read(), Ordering::Relaxed);
        counters
            .read
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if !batch.is_empty() {
            let _ = records_tx.send(batch);
        }
        drop(records_tx);
        let planned = planning.join().map_err(|_| SyncError::ReaderPanicked)??;
        match read_error {
            Some(e) => Err(e.into()),
            None => Ok(planned),
        }
    })
}

/// Keys in the state store that this file no longer has.
struct Absent {
    count: u64,
    /// The first ones, as many as may be deleted plus one.
    listed: Vec<(Key, Entry)>,
}

fn find_absent(
    store: &Store,
    keys: &FileKeys,
    report: Option<&Path>,
    max_deletes: Option<u64>,
) -> Result<Absent, SyncError> {
    let mut out = report
        .map(|p| -> Result<_, WriteError> {
            let mut w = csv::Writer::from_writer(report::create_private(p)?);
            let err = |e: csv::Error| WriteError {
                path: p.to_owned(),
                source: e.into(),
            };
            w.write_record(["website_id", "email", "customer_id"])
                .map_err(err)?;
            Ok((w, p))
        })
        .transpose()?;
    let keep = max_deletes.map_or(0, |m| m.saturating_add(1));
    let mut absent = Absent {
        count: 0,
        listed: Vec::new(),
    };
    for entry in store.entries() {
        let (key, e) = entry?;
        if keys.contains(&key) {
            continue;
        }
        absent.count += 1;
        if let Some((w, p)) = out.as_mut() {
            w.write_record([
                key.website_id.to_string(),
                key.email.clone(),
                e.customer_id.to_string(),
            ])
            .map_err(|err| WriteError {
                path: p.to_path_buf(),
                source: err.into(),
            })?;
        }
        if (absent.listed.len() as u64) < keep {
            absent.listed.push((key, e));
        }
    }
    if let Some((mut w, p)) = out {
        w.flush().map_err(|source| WriteError {
            path: p.to_owned(),
            source,
        })?;
    }
    Ok(absent)
}

/// `--delete-absent --max-deletes N`. Returns why it refused, if it did, and the keys deleted.
async fn delete_absent(
    cfg: &SyncConfig,
    executor: Option<&Executor>,
    store: &Store,
    keys: &FileKeys,
    absent: &Absent,
    max: u64,
) -> Result<(Option<String>, Vec<Key>), SyncError> {
    if keys.unkeyed > 0 {
        let why = format!(
            "refusing --delete-absent: {} invalid rows have no usable email or website, so their \
             customers cannot be told from absent ones; fix them first",
            keys.unkeyed
        );
        return Ok((Some(why), Vec::new()));
    }
    if absent.count > max {
        let why = format!(
            "refusing --delete-absent: {} customers are absent, more than --max-deletes {max}; \
             nothing was deleted (see --absent-report)",
            absent.count
        );
        return Ok((Some(why), Vec::new()));
    }
    let Some(exec) = executor.filter(|_| !cfg.dry_run) else {
        println!("dry run: would delete {} absent customers", absent.count);
        return Ok((None, Vec::new()));
    };
    let mut deleted = Vec::new();
    let mut failed = 0;
    for (key, entry) in &absent.listed {
        match exec.delete(entry.customer_id).await {
            Ok(()) => {
                store.forget(key)?;
                deleted.push(key.clone());
            }
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
    let why = (failed > 0).then(|| format!("{failed} absent customers could not be deleted"));
    Ok((why, deleted))
}
