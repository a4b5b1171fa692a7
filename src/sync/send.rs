//! Sending: planned rows that need a request pass the shop [`Gate`] (which reads the shop's
//! model when the first of them comes, and may find them invalid), then go out through the
//! [`Executor`], at most `--concurrency` at a time (each request under the shared rate limit);
//! the others are recorded at once, without a future each (on a re-run that is nearly every
//! row). Every [`crate::outcome::Outcome`] goes to one sink: report line, counts, progress,
//! state writer.
//!
//! A fatal error (authentication, a shop model that cannot be read) or `--max-errors` stops
//! the sending; an interrupt too. Rows already planned are then reported as not sent, and the
//! reading stops.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use super::ending::SyncError;
use super::read::Rows;
use crate::config::SyncConfig;
use crate::exec::{self, Ended, Executor};
use crate::outcome::{Skip, StateChange, Status};
use crate::plan::Planned;
use crate::report::{Counters, Report, Review, Tally};
use crate::runs::RowLog;
use crate::shop::Gate;
use crate::state::{Known, Op, Store, Writer};

/// What the sending left behind.
pub struct Sent {
    /// Counts by action and status.
    pub tally: Tally,
    /// What this run wrote to the store, to bring the index up to date.
    pub confirmed: Vec<(u64, Known)>,
    /// The fatal error that stopped the sending, if one did.
    pub fatal: Option<SyncError>,
    /// The review page, with every row noted, to be written once the run's end is known.
    pub review: Option<Review>,
}

/// Where each outcome is written, besides the counts and the state store.
pub struct Writers {
    pub report: Option<Report>,
    pub review: Option<Review>,
    pub history: RowLog,
}

/// The way out of a row to send: the shop's gate, then the executor (none in a dry run).
pub struct Outbound<'a> {
    pub gate: &'a mut Gate,
    pub executor: Option<&'a Executor>,
}

/// Sends (or, in a dry run, records) every planned row; returns once the last outcome is
/// written to the report and the run's history, and the state writer has applied every change.
pub async fn all(
    mut rows: Rows,
    writers: Writers,
    Outbound { gate, executor }: Outbound<'_>,
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
            if !planned.step.sends() {
                sink.take(exec::unsent(planned, cfg.dry_run).into())?;
                continue;
            }
            // A dry run sends nothing that an interrupt or --max-errors would hold back.
            let skip = if cfg.dry_run {
                None
            } else if cancel.is_cancelled() {
                Some(Skip::Interrupted)
            } else {
                stop.get().copied()
            };
            if let Some(why) = skip {
                sink.take(exec::skipped(planned, why))?;
                continue;
            }
            // Once, for the first row to send; nothing is in flight before it.
            if let Err(e) = gate.ready().await {
                sink.stop(e.into());
                sink.take(exec::skipped(planned, Skip::Stopped))?;
                continue;
            }
            let updated = planned.step.updated_key();
            let planned = gate.vet(planned);
            match executor {
                Some(exec) if planned.step.sends() => in_flight.push(exec.send(planned)),
                _ => {
                    // Not sent (a dry run, or a row the shop would refuse): an update's doubt
                    // mark, set when it was planned, goes.
                    let mut ended = Ended::from(exec::unsent(planned, cfg.dry_run));
                    ended.settled = updated;
                    sink.take(ended)?;
                }
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
    fatal: Option<SyncError>,
    confirmed: Vec<(u64, Known)>,
}

impl Sink<'_> {
    /// Stops the sending and the reading for a fatal error (the first one is kept).
    fn stop(&mut self, e: SyncError) {
        if self.fatal.is_none() {
            tracing::error!("stopping: {e}");
            let _ = self.stop.set(Skip::Stopped);
            self.reading.cancel();
            self.fatal = Some(e);
        }
    }

    fn take(&mut self, ended: Ended) -> Result<(), SyncError> {
        let Ended {
            outcome,
            fatal,
            settled,
        } = ended;
        if let Some(e) = fatal {
            self.stop(e.into());
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
