//! Sending: planned rows that need a request pass the shop [`Gate`] (which reads the shop's
//! model when the first of them comes, and may find them invalid), then go out through the
//! [`Executor`], at most `--concurrency` at a time (each request under the shared rate limit);
//! the others are recorded at once, without a future each (on a re-run that is nearly every
//! row). Every [`Outcome`] goes to one sink: report line, review, run history, counts,
//! progress, state writer.
//!
//! Before the first of them, the `--max-absent` [`Guard`] may hold the rows to send until the
//! whole file is planned. A fatal error (authentication, a shop model that cannot be read, a
//! wrong base path), `--max-errors`, an outage or the guard stop the sending; an interrupt
//! too. Rows already planned are then reported as not sent; the reading stops on a fatal error
//! or an interrupt, and goes on otherwise, so that every line of the file is reported.
//!
//! While the [`Watch`] sees the shop answer nothing, a row whose retries ran out is held back:
//! it failed if the shop answers again, and is `not_sent` if the watch declares an outage.

use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use futures::StreamExt;
use futures::future::OptionFuture;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use super::ending::{Stop, SyncError};
use super::guard::Guard;
use super::read::Rows;
use crate::api::Client;
use crate::bulk::{self, Feed};
use crate::config::SyncConfig;
use crate::console;
use crate::customer::Key;
use crate::exec::{self, Ended, Executor};
use crate::outage::{Verdict, Watch};
use crate::outcome::{Action, Outcome, Skip, StateChange, Status};
use crate::plan::Planned;
use crate::progress::Counters;
use crate::report::{Report, Review, Tally};
use crate::retry::Retrier;
use crate::runs::RowLog;
use crate::shop::Gate;
use crate::state::{Known, Op, Store, Writer};

/// What the sending left behind.
pub struct Sent {
    /// Counts by action and status.
    pub tally: Tally,
    /// What this run wrote to the store, to bring the index up to date.
    pub confirmed: Vec<(u64, Known)>,
    /// The fatal error (a wrong base path among them) that stopped the sending, if one did.
    pub fatal: Option<SyncError>,
    /// Why the sending stopped before the end, when `--max-errors` or an outage stopped it.
    pub stopped: Option<Stop>,
    /// The review page, with every row noted, to be written once the run's end is known.
    pub review: Option<Review>,
}

/// Where each outcome is written, besides the counts and the state store.
pub struct Writers {
    pub report: Option<Report>,
    pub review: Option<Review>,
    pub history: RowLog,
}

/// Where the sending happens, and what may stop it.
pub struct Sending<'a> {
    /// The shop's gate: every row to send passes it.
    pub gate: &'a mut Gate,
    /// `None` in a dry run.
    pub executor: Option<&'a Executor>,
    pub watch: Option<&'a Watch>,
    /// The `--max-absent` guard; `None` when it cannot stop anything.
    pub guard: Option<Guard>,
    pub store: &'a Store,
    pub counters: &'a Counters,
    /// Cancelled on SIGINT/SIGTERM.
    pub cancel: &'a CancellationToken,
    /// `--bulk`: creates and updates go through the bulk loop instead of a request each.
    pub bulk: Option<Lane<'a>>,
    /// Why nothing may be sent at all, known before the first row (every row is still read
    /// and reported).
    pub hold: Option<Skip>,
}

/// What the bulk loop needs besides the executor.
pub struct Lane<'a> {
    pub settings: bulk::Settings,
    pub shop: &'a Client,
    pub retrier: &'a Retrier,
    pub store: Arc<Store>,
    /// The sending's token: an interrupt or an outage.
    pub sending: CancellationToken,
}

/// Sends (or, in a dry run, records) every planned row; returns once the last outcome is
/// written to the report and the run's history, and the state writer has applied every change.
pub async fn all(
    mut rows: Rows,
    writers: Writers,
    cfg: &SyncConfig,
    on: Sending<'_>,
) -> Result<Sent, SyncError> {
    let stop: OnceLock<Skip> = OnceLock::new();
    if let Some(skip) = on.hold {
        let _ = stop.set(skip);
    }
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
            Some(on.store.writer()?)
        },
        counters: on.counters,
        stop: &stop,
        reading: rows.stopper(),
        max_errors: cfg.max_errors,
        watch: on.watch,
        held_back: Vec::new(),
        fatal: None,
        confirmed: Vec::new(),
    };
    let held = match &on.guard {
        Some(guard) => hold(&mut rows, &mut sink, guard, on.cancel).await?,
        None => Held::default(),
    };
    let gate = on.gate;
    let mut queue = held.rows.into_iter();
    let mut read_all = held.read_all;
    let mut in_flight = FuturesUnordered::new();
    let lane = on.bulk.as_ref().zip(on.executor).map(|(l, exec)| {
        let store = Arc::clone(&l.store);
        bulk::start(
            l.settings,
            l.shop,
            exec,
            store,
            l.retrier,
            l.sending.clone(),
        )
    });
    let (mut feed, mut ends, engine) = match lane {
        Some((feed, ends, engine)) => (Some(feed), Some(ends), Some(engine)),
        None => (None, None, None),
    };
    let mut engine = pin!(OptionFuture::from(engine));
    let mut engine_done = feed.is_none();
    loop {
        while in_flight.len() < cfg.concurrency && feed.as_ref().is_none_or(Feed::has_room) {
            let Some(planned) = queue.next() else { break };
            if !planned.step.sends() {
                sink.take(exec::unsent(planned, cfg.dry_run).into())?;
                continue;
            }
            // A dry run sends nothing that an interrupt or --max-errors would hold back.
            let skip = if cfg.dry_run {
                None
            } else if on.cancel.is_cancelled() {
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
                let why = sink.unready(e.into(), on.cancel).await?;
                sink.take(exec::skipped(planned, why))?;
                continue;
            }
            let updated = planned.step.updated_key();
            let planned = gate.vet(planned);
            match on.executor {
                Some(exec) if planned.step.sends() => match &feed {
                    Some(feed) if !planned.step.looks_first() => feed.push(planned),
                    _ => in_flight.push(exec.send(planned)),
                },
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
        if let (Some(feed), Some(_)) = (&feed, stop.get()) {
            feed.halt();
        }
        if queue.len() == 0 && read_all {
            // Every row is handed over: the bulk loop submits what it holds.
            feed.as_mut().map(Feed::close);
        }
        tokio::select! {
            ended = next_end(&mut ends), if ends.is_some() => match ended {
                Some(mut ended) => {
                    // A bulk's row cut short by the run stopping says why.
                    if ended.outcome.status() == Status::NotSent
                        && (on.cancel.is_cancelled() || stop.get().is_some())
                    {
                        let why = sink.why_stopped(on.cancel);
                        ended.outcome = ended.outcome.unconfirmed(why);
                    }
                    sink.take(ended)?
                }
                None => ends = None,
            },
            ran = &mut engine, if !engine_done => {
                engine_done = true;
                if let Some(Err(e)) = ran {
                    return Err(e.into());
                }
            }
            Some(mut ended) = in_flight.next(), if !in_flight.is_empty() => {
                // A request cut short says why the run stopped.
                if ended.outcome.status() == Status::NotSent {
                    let why = sink.why_stopped(on.cancel);
                    ended.outcome = ended.outcome.unconfirmed(why);
                }
                sink.take(ended)?
            }
            batch = rows.next(), if need_rows => match batch {
                Some(batch) => queue = batch.into_iter(),
                None => read_all = true,
            },
            else => break,
        }
    }
    drop(in_flight);
    sink.release()?;
    let stopped = match stop.get() {
        Some(Skip::TooManyErrors) => Some(Stop::TooManyErrors),
        Some(Skip::Outage) => Some(Stop::Outage),
        _ => None,
    };
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
        stopped,
        review,
    })
}

/// The next row's end from the bulk loop; `None` once it ended every row.
async fn next_end(ends: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Ended>>) -> Option<Ended> {
    match ends {
        Some(rx) => rx.recv().await,
        None => None,
    }
}

/// The rows to send that the guard held.
#[derive(Default)]
struct Held {
    rows: Vec<Planned>,
    /// Every planned row has been taken from the channel.
    read_all: bool,
}

/// Takes planned rows, recording those that send nothing, until the guard has decided;
/// returns the rows to send it held (and, when the guard turned out not to be needed, the rest
/// of their batch). A verdict against the file (or a file not read to the end) stops the
/// sending before it began.
async fn hold(
    rows: &mut Rows,
    sink: &mut Sink<'_>,
    guard: &Guard,
    cancel: &CancellationToken,
) -> Result<Held, SyncError> {
    let mut held = Vec::new();
    loop {
        let Some(batch) = rows.next().await else {
            match rows.absent().await {
                Some(absent) => shut_if(sink, guard, rows, absent),
                // Not read to the end (an interrupt, a read error): nothing may be sent.
                None => {
                    let _ = sink.stop.set(Skip::Stopped);
                }
            }
            return Ok(Held {
                rows: held,
                read_all: true,
            });
        };
        let mut batch = batch.into_iter();
        while let Some(planned) = batch.next() {
            if !planned.step.sends() {
                sink.take(exec::unsent(planned, false).into())?;
                continue;
            }
            if held.is_empty() {
                // The index is there: this row was planned against it.
                let keys = rows.index().map_or(0, |i| i.len() as u64);
                if !guard.needed(keys) {
                    held.push(planned);
                    held.extend(batch);
                    return Ok(Held {
                        rows: held,
                        read_all: false,
                    });
                }
            }
            held.push(planned);
        }
        if guard.census_due(held.len())
            && let Some(index) = rows.index()
        {
            match guard.census(index, cancel).await? {
                Some(absent) => shut_if(sink, guard, rows, absent),
                None => {
                    let _ = sink.stop.set(Skip::Interrupted);
                }
            }
            return Ok(Held {
                rows: held,
                read_all: false,
            });
        }
    }
}

/// Stops the sending before it began when `absent` keys are too many (to leave or to delete).
fn shut_if(sink: &Sink<'_>, guard: &Guard, rows: &Rows, absent: u64) {
    let Some(index) = rows.index() else { return };
    if let Err(skip) = guard.decide(absent, &index)
        && sink.stop.set(skip).is_ok()
    {
        // The reason ends the run as its error; said in full here too, it came twice.
        console::note(
            "stopping before the first request (the reason is on the last line); reading the \
             rest of the file to report every row",
        );
    }
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
    watch: Option<&'a Watch>,
    /// Rows that failed without an answer while the shop answered nothing, with the keys
    /// they settle; see the module doc.
    held_back: Vec<(Outcome, Option<Key>)>,
    fatal: Option<SyncError>,
    confirmed: Vec<(u64, Known)>,
}

impl Sink<'_> {
    /// Stops the sending and the reading for a fatal error (the first one is kept).
    fn stop(&mut self, e: SyncError) {
        if self.fatal.is_none() {
            // The error itself ends the run as its last line; said in full here too, it came
            // twice (under --quiet as well).
            tracing::debug!("stopping: {e}");
            console::note(
                "stopping on a fatal error (the reason is on the last line); reading the rest \
                 of the file to report every row",
            );
            let _ = self.stop.set(Skip::Stopped);
            self.reading.cancel();
            self.fatal = Some(e);
        }
    }

    /// The shop's model could not be read: why the rows are not sent. When nothing answered
    /// its requests at all, that is for the watch to judge (an outage, or a wrong base path),
    /// not a fault of the setup; anything else is fatal.
    async fn unready(
        &mut self,
        e: SyncError,
        cancel: &CancellationToken,
    ) -> Result<Skip, SyncError> {
        if let Some(w) = self.watch {
            if let Some(wrong) = w.no_route_only() {
                self.stop(wrong.into());
            } else if w.troubled() {
                w.wait_for_verdict().await;
            }
            self.judge()?;
        }
        if cancel.is_cancelled() {
            return Ok(Skip::Interrupted);
        }
        if let Some(why) = self.stop.get() {
            return Ok(*why);
        }
        self.stop(e);
        Ok(Skip::Stopped)
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
        let unanswered =
            outcome.status() == Status::Failed && outcome.http_status().is_none_or(|s| s >= 500);
        match self.watch {
            Some(w) if unanswered && w.verdict().is_none() && w.troubled() => {
                self.held_back.push((outcome, settled));
            }
            _ => self.record(outcome, settled)?,
        }
        self.judge()
    }

    /// Acts on the watch's verdict, and releases the rows held back once it is clear what
    /// they are.
    fn judge(&mut self) -> Result<(), SyncError> {
        let Some(w) = self.watch else { return Ok(()) };
        match w.verdict() {
            Some(Verdict::Outage { after }) => {
                if self.stop.set(Skip::Outage).is_ok() {
                    console::alert(&format!(
                        "stopping: the shop (or IMS, for a token) has answered nothing for {} s \
                         (--outage-after); the rows not confirmed are reported as not sent",
                        after.as_secs()
                    ));
                }
                self.release()
            }
            Some(Verdict::WrongBase(e)) => {
                self.stop(e.clone().into());
                self.release()
            }
            None if !self.held_back.is_empty() && !w.troubled() => self.release(),
            None => Ok(()),
        }
    }

    /// Why requests are being cut short.
    fn why_stopped(&self, cancel: &CancellationToken) -> Skip {
        if cancel.is_cancelled() {
            return Skip::Interrupted;
        }
        match self.watch.and_then(Watch::verdict) {
            Some(Verdict::Outage { .. }) => Skip::Outage,
            Some(Verdict::WrongBase(_)) => Skip::Stopped,
            None => self.stop.get().copied().unwrap_or(Skip::Stopped),
        }
    }

    /// Records the rows held back: `not_sent` after an outage, failed otherwise.
    fn release(&mut self) -> Result<(), SyncError> {
        let outage = matches!(
            self.watch.and_then(Watch::verdict),
            Some(Verdict::Outage { .. })
        );
        for (outcome, settled) in std::mem::take(&mut self.held_back) {
            let outcome = if outage {
                outcome.unconfirmed(Skip::Outage)
            } else {
                outcome
            };
            self.record(outcome, settled)?;
        }
        Ok(())
    }

    fn record(&mut self, outcome: Outcome, settled: Option<Key>) -> Result<(), SyncError> {
        self.tally.add(&outcome);
        self.counters.done.fetch_add(1, Ordering::Relaxed);
        if outcome.status() == Status::Failed {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(r) = self.report.as_mut() {
            r.write(&outcome)?;
        }
        if let Some(r) = self.review.as_mut() {
            r.add(&outcome);
        }
        self.history.write(&outcome)?;
        let update = outcome.action() == Action::Update;
        if let (Some(w), Some(change)) = (&self.writer, outcome.into_state()) {
            w.send(match change {
                StateChange::Confirmed(key, entry, fields) => {
                    let known = Known::new(entry.payload_hash, entry.customer_id);
                    self.confirmed.push((key.digest(), known));
                    match fields {
                        Some(sent) if update => Op::Update(key, entry, sent),
                        fields => Op::Put(key, entry, fields),
                    }
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
            console::alert(&format!(
                "stopping: {} rows failed (--max-errors); the remaining rows are reported as not sent",
                self.tally.failed()
            ));
        }
        Ok(())
    }
}
