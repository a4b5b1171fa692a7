//! The bulk loop: rows gathered into bulks by kind, each bulk recorded, submitted, polled
//! when the [`Schedule`] says it should be done, and each of its operations decided; rows the
//! queue failed in a retriable way go again in a later bulk. It runs beside the sync's send
//! loop, which feeds it through a [`Feed`] and takes the rows' ends from a channel.
//!
//! Submissions and polls each keep at most `--concurrency` requests in flight, and every
//! request passes the shared throttle (through the [`Shop`]), so both count against
//! `--rate`. While earlier bulks are being worked, later ones are submitted.
//!
//! # Stopping
//! On an interrupt or an outage (the `cancel` token), nothing more is submitted: rows never
//! submitted are `not_sent`, and so are the rows of bulks still in the queue, whose records
//! stay for the next run to resolve. The same happens when the queue works none of the
//! operations in flight for [`Settings::stall_limit`] (an operation can stay "open" for a
//! long time): the run ends cleanly rather than wait without end, and those rows are resolved
//! by the next run (an update among them stays in doubt, so it is sent again then). When the
//! sending stops otherwise (`--max-errors`, a fatal error), the feed is halted: rows not yet
//! in a bulk end `not_sent`, and the bulks in the queue are followed to their end.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::answer::{self, Verdict};
use super::schedule::Schedule;
pub use super::submit::Settings;
use super::submit::{Cx, Row, Submission, resolved, submit};
use super::{Rows, Shop};
use crate::api::{ApiError, BulkKind};
use crate::exec::Ended;
use crate::plan::Planned;
use crate::retry::Retrier;
use crate::state::{StateError, Store};

/// Rows the loop may hold per row of a bulk: enough bulks in flight to keep the queue busy
/// while earlier ones are polled, few enough to bound the memory.
const AHEAD: usize = 32;

/// Where the send loop hands rows to the bulk loop.
pub struct Feed {
    tx: Option<mpsc::UnboundedSender<Planned>>,
    outstanding: Arc<AtomicUsize>,
    cap: usize,
    halted: Arc<AtomicBool>,
}

impl Feed {
    /// Whether the loop takes another row now.
    pub fn has_room(&self) -> bool {
        self.outstanding.load(Ordering::Relaxed) < self.cap
    }

    /// Hands over a create or an update.
    pub fn push(&self, planned: Planned) {
        if let Some(tx) = &self.tx {
            self.outstanding.fetch_add(1, Ordering::Relaxed);
            // The loop ends only after the feed is closed: the send cannot fail before.
            let _ = tx.send(planned);
        }
    }

    /// Nothing more is to be submitted (`--max-errors`, a fatal error): the rows not yet in a
    /// bulk end `not_sent`, the bulks in the queue are still followed to their end.
    pub fn halt(&self) {
        self.halted.store(true, Ordering::Relaxed);
    }

    /// No more rows: the loop submits what it holds, and ends once every row has ended.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

/// Starts the loop: returns the feed, the rows' ends as they come, and the loop itself, to be
/// polled beside the send loop until it ends (after the feed is closed and every row ended).
pub fn start<'a>(
    settings: Settings,
    shop: &'a dyn Shop,
    rows: &'a dyn Rows,
    store: Arc<Store>,
    retrier: &'a Retrier,
    cancel: CancellationToken,
) -> (
    Feed,
    mpsc::UnboundedReceiver<Ended>,
    impl Future<Output = Result<(), StateError>> + Send + 'a,
) {
    let (tx, input) = mpsc::unbounded_channel();
    let (out, ends) = mpsc::unbounded_channel();
    let outstanding = Arc::new(AtomicUsize::new(0));
    let halted = Arc::new(AtomicBool::new(false));
    let feed = Feed {
        tx: Some(tx),
        outstanding: Arc::clone(&outstanding),
        cap: settings.size.saturating_mul(AHEAD).max(64),
        halted: Arc::clone(&halted),
    };
    let cx = Cx {
        settings,
        shop,
        rows,
        store,
        retrier,
        cancel,
    };
    let run = async move {
        let mut state = Loop::new(&outstanding, &halted, out, settings.size);
        state.run(&cx, input).await
    };
    (feed, ends, run)
}

/// A bulk in the shop's queue.
struct Bulk {
    kind: BulkKind,
    /// The store's record of it.
    record: u64,
    uuid: String,
    /// By item index; `None` once the row ended (or went to a later bulk).
    rows: Vec<Option<Row>>,
    /// Rows still open.
    open: usize,
    polling: bool,
}

/// A task's result.
enum Work {
    Submitted(BulkKind, Result<(Submission, Vec<Row>), StateError>),
    Polled(u64, Result<Value, ApiError>),
    Ended(Box<Ended>),
    /// Rows that ended together (adopted after one search).
    EndedAll(Vec<Ended>),
}

type Task<'c> = Pin<Box<dyn Future<Output = Work> + Send + 'c>>;

/// Why the loop stopped submitting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Interrupt or outage.
    Cancelled,
    /// The queue worked nothing for the stall limit.
    Stalled,
}

struct Loop<'o> {
    outstanding: &'o AtomicUsize,
    halted: &'o AtomicBool,
    out: mpsc::UnboundedSender<Ended>,
    /// Rows waiting for a bulk: creates, updates.
    pending: [Vec<Row>; 2],
    /// Rows a bulk takes: `--bulk`, halved each time the shop finds a bulk too large.
    size: usize,
    bulks: HashMap<u64, Bulk>,
    schedule: Schedule,
    next_seq: u64,
    started: Instant,
    /// When the queue was last seen to work anything (or a bulk was accepted).
    progress: Instant,
    submitting: usize,
    polling: usize,
    closed: bool,
    stop: Option<Stop>,
}

fn slot(kind: BulkKind) -> usize {
    match kind {
        BulkKind::Create => 0,
        BulkKind::Update => 1,
    }
}

impl<'o> Loop<'o> {
    fn new(
        outstanding: &'o AtomicUsize,
        halted: &'o AtomicBool,
        out: mpsc::UnboundedSender<Ended>,
        size: usize,
    ) -> Self {
        let now = Instant::now();
        Loop {
            outstanding,
            halted,
            out,
            pending: [Vec::new(), Vec::new()],
            size,
            bulks: HashMap::new(),
            schedule: Schedule::default(),
            next_seq: 0,
            started: now,
            progress: now,
            submitting: 0,
            polling: 0,
            closed: false,
            stop: None,
        }
    }

    fn seconds(&self, t: Instant) -> f64 {
        t.duration_since(self.started).as_secs_f64()
    }

    async fn run<'c>(
        &mut self,
        cx: &'c Cx<'c>,
        mut input: mpsc::UnboundedReceiver<Planned>,
    ) -> Result<(), StateError> {
        let mut tasks: FuturesUnordered<Task<'c>> = FuturesUnordered::new();
        loop {
            self.launch(cx, &mut tasks);
            let idle = self.pending.iter().all(Vec::is_empty) && self.bulks.is_empty();
            if self.closed && tasks.is_empty() && idle {
                return Ok(());
            }
            let busy = |seq: u64| self.bulks.get(&seq).is_some_and(|b| b.polling);
            let wake = (self.polling < cx.settings.concurrency && self.stop.is_none())
                .then(|| self.schedule.next_due(&busy))
                .flatten()
                .map(|t| self.started + Duration::from_secs_f64(t.max(0.0)));
            tokio::select! {
                planned = input.recv(), if !self.closed => match planned {
                    Some(planned) => {
                        let row = Row {
                            planned,
                            tries: 0,
                            sent_before: false,
                        };
                        self.pending[slot(row.kind())].push(row);
                    }
                    None => self.closed = true,
                },
                Some(work) = tasks.next(), if !tasks.is_empty() => {
                    self.take(cx, work, &mut tasks)?;
                }
                () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
                () = cx.cancel.cancelled(), if self.stop.is_none() => {
                    self.stop = Some(Stop::Cancelled);
                }
            }
        }
    }

    /// Starts what can start: submissions of full bulks (of any rows, once the feed is
    /// closed), polls of bulks that should be done; when stopping, ends what waits.
    fn launch<'c>(&mut self, cx: &'c Cx<'c>, tasks: &mut FuturesUnordered<Task<'c>>) {
        if let Some(stop) = self.stop {
            self.end_waiting(cx, stop, tasks);
            return;
        }
        if self.halted.load(Ordering::Relaxed) {
            self.end_pending(cx, tasks);
        }
        let size = self.size;
        for kind in [BulkKind::Create, BulkKind::Update] {
            let pending = &mut self.pending[slot(kind)];
            while self.submitting < cx.settings.concurrency
                && (pending.len() >= size || (self.closed && !pending.is_empty()))
            {
                let rows: Vec<Row> = pending.drain(..pending.len().min(size)).collect();
                self.submitting += 1;
                tasks.push(Box::pin(async move {
                    Work::Submitted(kind, submit(cx, kind, rows).await)
                }));
            }
        }
        let now = self.seconds(Instant::now());
        let due = {
            let busy = |seq: u64| self.bulks.get(&seq).is_some_and(|b| b.polling);
            self.schedule.due(now, &busy)
        };
        for seq in due {
            if self.polling >= cx.settings.concurrency {
                break;
            }
            let Some(bulk) = self.bulks.get_mut(&seq) else {
                continue;
            };
            bulk.polling = true;
            self.polling += 1;
            let uuid = bulk.uuid.clone();
            tasks.push(Box::pin(async move {
                let status = cx.retrier.run(|| cx.shop.status(&uuid)).await;
                Work::Polled(seq, status)
            }));
        }
    }

    /// Ends the rows that wait while the loop stops: those never submitted, and those of
    /// bulks not being polled (their records stay for the next run).
    fn end_waiting<'c>(
        &mut self,
        cx: &'c Cx<'c>,
        stop: Stop,
        tasks: &mut FuturesUnordered<Task<'c>>,
    ) {
        self.end_pending(cx, tasks);
        let waiting: Vec<u64> = (self.bulks.iter())
            .filter(|(_, b)| !b.polling)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in waiting {
            let Some(bulk) = self.bulks.remove(&seq) else {
                continue;
            };
            self.schedule.forget(seq);
            let detail = match stop {
                Stop::Cancelled => format!(
                    "its bulk {} is in the shop's queue; the next run records what became of it",
                    bulk.uuid
                ),
                Stop::Stalled => format!(
                    "the shop's queue worked none of the operations in flight for {} s; bulk {} \
                     is resolved by the next run",
                    cx.settings.stall_limit.as_secs(),
                    bulk.uuid
                ),
            };
            for row in bulk.rows.into_iter().flatten() {
                let error = ApiError::Interrupted {
                    detail: detail.clone(),
                };
                tasks.push(end(cx.rows.refused(row.planned, error, false)));
            }
        }
    }

    /// Ends the rows not yet in a bulk: never submitted.
    fn end_pending<'c>(&mut self, cx: &'c Cx<'c>, tasks: &mut FuturesUnordered<Task<'c>>) {
        for row in self.pending.iter_mut().flat_map(std::mem::take) {
            let error = ApiError::Interrupted {
                detail: "the run stopped before its bulk was submitted".into(),
            };
            tasks.push(end(cx.rows.refused(row.planned, error, true)));
        }
    }

    /// Passes a row's end on.
    fn ended(&mut self, ended: Ended) {
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
        // The receiver goes only with the send loop, which waits for this loop.
        let _ = self.out.send(ended);
    }

    /// Takes a task's result.
    fn take<'c>(
        &mut self,
        cx: &'c Cx<'c>,
        work: Work,
        tasks: &mut FuturesUnordered<Task<'c>>,
    ) -> Result<(), StateError> {
        match work {
            Work::Ended(ended) => self.ended(*ended),
            Work::EndedAll(all) => all.into_iter().for_each(|ended| self.ended(ended)),
            Work::Submitted(kind, result) => {
                self.submitting -= 1;
                let (submission, alone) = result?;
                for row in alone {
                    tasks.push(end(cx.rows.send(row.planned)));
                }
                self.submitted(cx, kind, submission, tasks);
            }
            Work::Polled(seq, status) => {
                self.polling -= 1;
                self.polled(cx, seq, status, tasks);
            }
        }
        Ok(())
    }

    fn submitted<'c>(
        &mut self,
        cx: &'c Cx<'c>,
        kind: BulkKind,
        submission: Submission,
        tasks: &mut FuturesUnordered<Task<'c>>,
    ) {
        match submission {
            Submission::TooLarge(rows) => {
                // Nothing was queued: the rows go again first, in bulks half the size.
                self.size = (rows.len() / 2).max(1);
                tracing::info!(
                    "a bulk of {} rows was too large for the shop; bulks of {} now",
                    rows.len(),
                    self.size
                );
                let pending = &mut self.pending[slot(kind)];
                let later = std::mem::replace(pending, rows);
                pending.extend(later);
            }
            Submission::Alone(rows) => {
                for row in rows {
                    tasks.push(end(cx.rows.send(row.planned)));
                }
            }
            Submission::Failed {
                rows,
                error,
                unwritten,
            } => {
                refuse_all(cx, rows, error, unwritten, tasks);
            }
            Submission::Accepted {
                record,
                accepted,
                rows,
            } => {
                let mut rows: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
                for (index, message) in accepted.rejected {
                    if let Some(row) = rows.get_mut(index).and_then(Option::take) {
                        let error = refusal(message);
                        tasks.push(end(cx.rows.refused(row.planned, error, true)));
                    }
                }
                let open = rows.iter().flatten().count();
                let seq = self.next_seq;
                self.next_seq += 1;
                let now = Instant::now();
                self.progress = now;
                if open == 0 {
                    resolved(cx, record);
                    return;
                }
                self.schedule.submitted(seq, open as u64, self.seconds(now));
                self.bulks.insert(
                    seq,
                    Bulk {
                        kind,
                        record,
                        uuid: accepted.uuid,
                        rows,
                        open,
                        polling: false,
                    },
                );
            }
        }
    }

    fn polled<'c>(
        &mut self,
        cx: &'c Cx<'c>,
        seq: u64,
        status: Result<Value, ApiError>,
        tasks: &mut FuturesUnordered<Task<'c>>,
    ) {
        let Some(mut bulk) = self.bulks.remove(&seq) else {
            return;
        };
        bulk.polling = false;
        let ops = match status.map(|v| answer::operations(&v)) {
            Ok(Ok(ops)) => ops,
            Ok(Err(detail)) => {
                // Not a status this version reads: asked again later.
                tracing::warn!("the status of bulk {}: {detail}", bulk.uuid);
                let now = self.seconds(Instant::now());
                let finished = bulk.rows.len().saturating_sub(bulk.open) as u64;
                self.schedule.observed(seq, finished, now);
                self.bulks.insert(seq, bulk);
                return;
            }
            Err(error) => {
                // The status cannot be had: the rows may be done or not; the record stays.
                self.schedule.forget(seq);
                let rows = bulk.rows.into_iter().flatten().collect();
                refuse_all(cx, rows, error, false, tasks);
                return;
            }
        };
        let create = bulk.kind == BulkKind::Create;
        let before = bulk.open;
        let mut adopted = Vec::new();
        for op in ops {
            let verdict = answer::verdict(&op, create);
            if verdict == Verdict::Open {
                continue;
            }
            let Some(mut row) = bulk.rows.get_mut(op.index).and_then(Option::take) else {
                continue;
            };
            bulk.open -= 1;
            match verdict {
                Verdict::Saved(saved) => tasks.push(end(cx.rows.answered(row.planned, saved))),
                Verdict::Adopt => adopted.push((row.planned, row.sent_before)),
                Verdict::Retry(message) if row.tries < cx.settings.retries => {
                    tracing::debug!("line {}: {message}; sent again", row.planned.row.line);
                    row.tries += 1;
                    row.sent_before = true;
                    self.pending[slot(bulk.kind)].push(row);
                }
                Verdict::Retry(message) => {
                    let error = refusal(format!(
                        "{message} (still failing after {} resubmissions)",
                        row.tries
                    ));
                    tasks.push(end(cx.rows.refused(row.planned, error, true)));
                }
                Verdict::Failed(message) => {
                    tasks.push(end(cx.rows.refused(row.planned, refusal(message), true)));
                }
                Verdict::Unreadable(detail) => {
                    let error = ApiError::Unexpected {
                        url: format!("the status of bulk {}", bulk.uuid),
                        detail,
                    };
                    tasks.push(end(cx.rows.refused(row.planned, error, false)));
                }
                Verdict::Open => {}
            }
        }
        if !adopted.is_empty() {
            let all = cx.rows.adopt_all(adopted);
            tasks.push(Box::pin(async move { Work::EndedAll(all.await) }));
        }
        let now = Instant::now();
        if bulk.open < before {
            self.progress = now;
        }
        let finished = (bulk.rows.len() - bulk.open) as u64;
        let total = bulk.rows.len() as u64;
        let done = self
            .schedule
            .observed(seq, finished.min(total), self.seconds(now));
        if bulk.open == 0 {
            self.schedule.forget(seq);
            resolved(cx, bulk.record);
            return;
        }
        if !done && now.duration_since(self.progress) >= cx.settings.stall_limit {
            self.stop.get_or_insert(Stop::Stalled);
        }
        self.bulks.insert(seq, bulk);
    }
}

/// Every row of `rows` fails with `error`; the first carries the error itself (a fatal one
/// stops the run), the others a copy.
fn refuse_all<'c>(
    cx: &'c Cx<'c>,
    rows: Vec<Row>,
    error: ApiError,
    unwritten: bool,
    tasks: &mut FuturesUnordered<Task<'c>>,
) {
    let copies: Vec<ApiError> = (1..rows.len()).map(|_| error.twin()).collect();
    for (row, e) in rows.into_iter().zip(std::iter::once(error).chain(copies)) {
        tasks.push(end(cx.rows.refused(row.planned, e, unwritten)));
    }
}

/// A row's end, as a task.
fn end<'c>(ended: futures::future::BoxFuture<'c, Ended>) -> Task<'c> {
    Box::pin(async move { Work::Ended(Box::new(ended.await)) })
}

/// The shop's verdict on one row of a bulk.
fn refusal(message: String) -> ApiError {
    ApiError::Status {
        status: 400,
        message,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use futures::future::BoxFuture;
    use serde_json::json;

    use super::*;
    use crate::api::ALREADY_EXISTS;
    use crate::outcome::{Outcome, RowRef};
    use crate::plan::Step;
    use crate::retry::RetryPolicy;

    /// A shop whose queue works a bulk at once: `retry…` e-mails fail retriably the first
    /// time, `dup…` already exist, `bad…` are refused.
    #[derive(Default)]
    struct FakeShop {
        bulks: Mutex<Vec<Vec<String>>>,
        seen: Mutex<HashSet<String>>,
        polls: Mutex<usize>,
        /// A bulk of more items is answered 413, as a web server with a body limit does.
        max_items: Option<usize>,
    }

    impl Shop for FakeShop {
        fn submit<'a>(
            &'a self,
            _: BulkKind,
            items: &'a [Value],
            _: &'a [&'a str],
        ) -> BoxFuture<'a, Result<Value, ApiError>> {
            if self.max_items.is_some_and(|max| items.len() > max) {
                let error = ApiError::Status {
                    status: 413,
                    message: "Payload Too Large".into(),
                    retry_after: None,
                };
                return Box::pin(async move { Err(error) });
            }
            let emails = items
                .iter()
                .map(|i| i["customer"]["email"].as_str().unwrap_or("").to_owned())
                .collect();
            let mut bulks = self.bulks.lock().expect("lock");
            bulks.push(emails);
            let uuid = format!("u{}", bulks.len() - 1);
            Box::pin(async move { Ok(json!({"bulk_uuid": uuid, "request_items": []})) })
        }

        fn status<'a>(&'a self, uuid: &'a str) -> BoxFuture<'a, Result<Value, ApiError>> {
            *self.polls.lock().expect("lock") += 1;
            let n: usize = uuid[1..].parse().expect("uuid");
            let emails = self.bulks.lock().expect("lock")[n].clone();
            let mut seen = self.seen.lock().expect("lock");
            let ops: Vec<Value> = (emails.iter().enumerate())
                .map(|(i, email)| {
                    let first = seen.insert(email.clone());
                    let (status, message) = match email.as_str() {
                        e if e.starts_with("retry") && first => (2, "deadlock"),
                        e if e.starts_with("dup") => (3, ALREADY_EXISTS),
                        e if e.starts_with("bad") => (3, "bad dob"),
                        _ => (1, ""),
                    };
                    let saved = json!({"id": 100 + i, "email": email, "website_id": 1});
                    json!({"id": i, "status": status, "result_message": message,
                        "result_serialized_data": saved.to_string()})
                })
                .collect();
            Box::pin(async move { Ok(json!({"operations_list": ops})) })
        }

        fn current<'a>(&'a self, _: &'a [u64]) -> BoxFuture<'a, Result<Vec<Value>, ApiError>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn by_emails<'a>(
            &'a self,
            _: &'a [&'a str],
            _: u32,
        ) -> BoxFuture<'a, Result<Vec<Value>, ApiError>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn find<'a>(
            &'a self,
            _: &'a str,
            _: u32,
        ) -> BoxFuture<'a, Result<Option<Value>, ApiError>> {
            Box::pin(async { Ok(None) })
        }
    }

    /// Ends each row with a report line that says how.
    struct Marks;

    fn marked(planned: Planned, how: String) -> BoxFuture<'static, Ended> {
        Box::pin(async move { Outcome::invalid(planned.row, how).into() })
    }

    impl Rows for Marks {
        fn answered<'a>(&'a self, planned: Planned, saved: Value) -> BoxFuture<'a, Ended> {
            marked(planned, format!("saved {}", saved["id"]))
        }
        fn adopt_all(&self, planned: Vec<(Planned, bool)>) -> BoxFuture<'_, Vec<Ended>> {
            let all = planned
                .into_iter()
                .map(|(p, _)| marked(p, "adopted".into()));
            Box::pin(futures::future::join_all(all))
        }
        fn refused(&self, planned: Planned, error: ApiError, _: bool) -> BoxFuture<'_, Ended> {
            marked(planned, format!("refused: {error}"))
        }
        fn send(&self, planned: Planned) -> BoxFuture<'_, Ended> {
            marked(planned, "alone".into())
        }
    }

    fn create(line: u64, email: &str) -> Planned {
        let customer = crate::customer::Customer {
            email: email.into(),
            ..crate::customer::tests::ann()
        };
        Planned {
            row: RowRef {
                line,
                email: email.into(),
                website_id: Some(1),
            },
            step: Step::Create {
                hash: customer.payload_hash(),
                customer: Box::new(customer),
                password: None,
                recheck: false,
            },
        }
    }

    /// Runs the loop over creates of `emails` (lines 2, 3, ...) against `shop` in bulks of
    /// `size`, `concurrency` at a time: each row's e-mail and message, in the order they
    /// ended.
    async fn creates(
        shop: &FakeShop,
        store: &Arc<Store>,
        (size, concurrency): (usize, usize),
        emails: &[String],
    ) -> Vec<(String, String)> {
        let retrier = Retrier::new(RetryPolicy::default(), CancellationToken::new());
        let settings = Settings {
            size,
            concurrency,
            retries: 1,
            stall_limit: Duration::from_secs(60),
        };
        let cancel = CancellationToken::new();
        let (mut feed, mut ends, run) =
            start(settings, shop, &Marks, Arc::clone(store), &retrier, cancel);
        for (line, email) in emails.iter().enumerate() {
            feed.push(create(line as u64 + 2, email));
        }
        feed.close();
        run.await.expect("the loop ends");
        let mut got = Vec::new();
        while let Some(ended) = ends.recv().await {
            let (row, message) = (ended.outcome.row(), ended.outcome.message());
            got.push((row.email.clone(), message.to_owned()));
        }
        got
    }

    fn store(dir: &tempfile::TempDir) -> Arc<Store> {
        Arc::new(Store::open(&dir.path().join("s")).expect("store"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_operation_decides_its_row_and_a_retriable_one_goes_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let shop = FakeShop::default();
        let emails = ["a@x.io", "retry@x.io", "dup@x.io", "bad@x.io", "b@x.io"].map(String::from);
        let mut got = creates(&shop, &store, (2, 2), &emails).await;
        got.sort();
        let want = [
            ("a@x.io", "saved 100"),
            ("b@x.io", "saved 100"),
            ("bad@x.io", "refused: HTTP 400: bad dob"),
            ("dup@x.io", "adopted"),
            // Resubmitted alone in the last bulk.
            ("retry@x.io", "saved 100"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(e, m)| ((*e).to_owned(), (*m).to_owned()))
            .collect();
        assert_eq!(got, want);
        let bulks = shop.bulks.lock().expect("lock").clone();
        assert_eq!(bulks.len(), 4, "{bulks:?}");
        assert!(bulks[3].contains(&"retry@x.io".to_owned()), "{bulks:?}");
        assert!(*shop.polls.lock().expect("lock") <= 8, "few polls");
        // Every bulk resolved: nothing for the next run (the last removal is off the loop).
        for _ in 0..100 {
            if store.bulks_len() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(store.bulks_len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bulk_too_large_for_the_shop_goes_again_in_halves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shop = FakeShop {
            max_items: Some(3),
            ..FakeShop::default()
        };
        let emails: Vec<String> = (0..10).map(|i| format!("p{i}@x.io")).collect();
        let got = creates(&shop, &store(&dir), (8, 1), &emails).await;
        assert!(got.iter().all(|(_, m)| m.starts_with("saved")), "{got:?}");
        let saved = got.len();
        assert_eq!(saved, 10, "every row in a bulk, none alone");
        let bulks = shop.bulks.lock().expect("lock").clone();
        assert!(bulks.iter().all(|b| b.len() <= 3), "{bulks:?}");
        assert_eq!(bulks.concat().len(), 10, "each row queued once: {bulks:?}");
    }
}
