//! Sending: planned rows that need a request go out through the [`Executor`], at most
//! `--concurrency` at a time (each request under the shared rate limit); the others are
//! recorded at once, without a future each (on a re-run that is nearly every row). Every
//! [`crate::outcome::Outcome`] goes to one sink: report line, counts, progress, state writer.
//!
//! A fatal error (authentication) or `--max-errors` stops the sending; an interrupt too. Rows
//! already planned are then reported as not sent, and the reading stops.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use super::ending::SyncError;
use super::read::Rows;
use crate::api::ApiError;
use crate::config::SyncConfig;
use crate::exec::{self, Ended, Executor};
use crate::outcome::{Skip, StateChange, Status};
use crate::plan::Planned;
use crate::report::{Counters, Report, Review, Tally};
use crate::runs::RowLog;
use crate::state::{Known, Op, Store, Writer};

/// What the sending left behind.
pub struct Sent {
    /// Counts by action and status.
    pub tally: Tally,
    /// What this run wrote to the store, to bring the index up to date.
    pub confirmed: Vec<(u64, Known)>,
    /// The fatal error that stopped the sending, if one did.
    pub fatal: Option<ApiError>,
    /// The review page, with every row noted, to be written once the run's end is known.
    pub review: Option<Review>,
}

/// Where each outcome is written, besides the counts and the state store.
pub struct Writers {
    pub report: Option<Report>,
    pub review: Option<Review>,
    pub history: RowLog,
}

/// Sends (or, in a dry run, records) every planned row; returns once the last outcome is
/// written to the report and the run's history, and the state writer has applied every change.
pub async fn all(
    mut rows: Rows,
    writers: Writers,
    executor: Option<&Executor>,
    store: &Store,
    cfg: &SyncConfig,
    counters: &Counters,
    cancel: &CancellationToken,
) -> Result<Sent, SyncError> {
    let stop: OnceLock<Skip> = OnceLock::new();
    let Writers {
        report,
        review,
        history,
    } = writers;
    let mut sink = Sink {
        tally: Tally::default(),
        report,
        review,
        history,
        writer: if cfg.dry_run {
            None
        } else {
            Some(store.writer()?)
        },
        counters,
        stop: &stop,
        reading: rows.stopper(),
        max_errors: cfg.max_errors,
        fatal: None,
        confirmed: Vec::new(),
    };
    let mut queue = Vec::<Planned>::new().into_iter();
    let mut read_all = false;
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < cfg.concurrency {
            let Some(planned) = queue.next() else { break };
            match executor {
                Some(exec) if planned.step.sends() => {
                    let skip = if cancel.is_cancelled() {
                        Some(Skip::Interrupted)
                    } else {
                        stop.get().copied()
                    };
                    match skip {
                        Some(why) => sink.take(exec::skipped(planned, why))?,
                        None => in_flight.push(exec.send(planned)),
                    }
                }
                _ => sink.take(exec::unsent(planned, cfg.dry_run).into())?,
            }
        }
        let need_rows = queue.len() == 0 && !read_all;
        tokio::select! {
            Some(ended) = in_flight.next(), if !in_flight.is_empty() => sink.take(ended)?,
            batch = rows.next(), if need_rows => match batch {
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
        review,
        history,
        writer,
        fatal,
        confirmed,
        ..
    } = sink;
    if let Some(w) = writer {
        w.finish()?;
    }
    if let Some(r) = report {
        r.finish()?;
    }
    history.finish()?;
    Ok(Sent {
        tally,
        confirmed,
        fatal,
        review,
    })
}

/// The one consumer of outcomes: report, review, history, counts, progress, state.
struct Sink<'a> {
    tally: Tally,
    report: Option<Report>,
    review: Option<Review>,
    history: RowLog,
    writer: Option<Writer>,
    counters: &'a Counters,
    stop: &'a OnceLock<Skip>,
    /// Cancelled to stop the reading.
    reading: CancellationToken,
    max_errors: Option<u64>,
    fatal: Option<ApiError>,
    confirmed: Vec<(u64, Known)>,
}

impl Sink<'_> {
    fn take(&mut self, ended: Ended) -> Result<(), SyncError> {
        let Ended {
            outcome,
            fatal,
            settled,
        } = ended;
        if let Some(e) = fatal
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
        if let Some(r) = self.review.as_mut() {
            r.add(&outcome);
        }
        self.history.write(&outcome)?;
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
        if let (Some(w), Some(key)) = (&self.writer, settled) {
            w.send(Op::Settle(key));
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
