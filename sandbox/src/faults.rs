//! Fault injection for the customer routes: a server-side rate limit, added latency, random
//! 429/503 answers before any work, and writes that succeed but are answered with a 500 or
//! with a dropped connection; for the async bulk API, operations that fail retriably and
//! bulks queued but answered with a 500 or a dropped connection. These are the failures a
//! sync client must survive without creating a customer twice. The IMS route is never
//! faulted.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use governor::clock::MonotonicClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::oneshot;

use super::error::ApiError;

/// What can go wrong on the customer routes, and how often.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Time from a customer-route request's arrival to its answer (at least).
    pub latency: Duration,
    /// Probability (0..=1) of a 429 before doing anything, with `Retry-After: retry_after`.
    pub p_429: f64,
    /// `Retry-After` of the injected 429s (whole seconds; may be zero).
    pub retry_after: Duration,
    /// Probability of a 503 before doing anything.
    pub p_503: f64,
    /// Probability, for POST/PUT/DELETE, of performing the write and then answering 500 with
    /// Magento's "Internal Error ... Report ID" body.
    pub p_write_then_500: f64,
    /// Probability, for POST/PUT/DELETE, of performing the write and then closing the TCP
    /// connection without any response.
    pub p_write_then_drop: f64,
    /// `expires_in` of issued tokens (`None` = 86399 s); expired tokens get 401.
    pub token_ttl: Option<Duration>,
    /// Server-side limit in requests per second over the customer routes; the excess gets
    /// 429 with `Retry-After: 1`. `None` or 0 = no limit.
    pub rate_limit: Option<u32>,
    /// Probability that the bulk consumer fails an operation retriably (status 2, as on a
    /// database deadlock) without applying it.
    pub p_bulk_retriable: f64,
    /// Probability that a bulk is queued (and will be processed) but its 202 is lost: answered
    /// with a 500 or a dropped connection instead, each half the time.
    pub p_bulk_answer_lost: f64,
}

/// A request turned away before any work: the error and its `Retry-After` in seconds.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) error: ApiError,
    pub(crate) retry_after: Option<u64>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal {
            error,
            retry_after: None,
        }
    }
}

/// What happens after a successful write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterWrite {
    /// Answer normally.
    Answer,
    /// Answer 500 although the write happened.
    Fail500,
    /// Close the connection without an answer.
    Drop,
}

/// The faults of one running sandbox, with the rate limiter's state.
#[derive(Debug)]
pub(crate) struct FaultGate {
    faults: Faults,
    limiter: Option<RateLimiter<NotKeyed, InMemoryState, MonotonicClock>>,
    /// Present when there is latency to add.
    delays: Option<Delays>,
}

impl FaultGate {
    pub(crate) fn new(faults: Faults) -> Self {
        let limiter = faults
            .rate_limit
            .and_then(NonZeroU32::new)
            .map(|n| RateLimiter::direct_with_clock(Quota::per_second(n), MonotonicClock));
        let delays = (!faults.latency.is_zero()).then(Delays::start);
        Self {
            faults,
            limiter,
            delays,
        }
    }

    /// The faults applied before a customer request is handled, in order: rate limit, random
    /// 429, random 503.
    pub(crate) fn before(&self) -> Result<(), Refusal> {
        if self.limiter.as_ref().is_some_and(|l| l.check().is_err()) {
            return Err(Refusal {
                error: too_many(),
                retry_after: Some(1),
            });
        }
        if roll(self.faults.p_429) {
            return Err(Refusal {
                error: too_many(),
                retry_after: Some(self.faults.retry_after.as_secs()),
            });
        }
        if roll(self.faults.p_503) {
            return Err(Refusal {
                error: ApiError::new(503, "Service Unavailable"),
                retry_after: None,
            });
        }
        Ok(())
    }

    /// Waits until the injected latency has passed since `arrived`.
    pub(crate) async fn answer_after(&self, arrived: Instant) {
        if let Some(delays) = &self.delays {
            delays.until(arrived + self.faults.latency).await;
        }
    }

    /// Decides the fate of the answer to a write that succeeded.
    pub(crate) fn after_write(&self) -> AfterWrite {
        if roll(self.faults.p_write_then_500) {
            AfterWrite::Fail500
        } else if roll(self.faults.p_write_then_drop) {
            AfterWrite::Drop
        } else {
            AfterWrite::Answer
        }
    }

    /// Decides the fate of the 202 of a bulk that was queued.
    pub(crate) fn after_bulk(&self) -> AfterWrite {
        if !roll(self.faults.p_bulk_answer_lost) {
            AfterWrite::Answer
        } else if fastrand::bool() {
            AfterWrite::Fail500
        } else {
            AfterWrite::Drop
        }
    }

    /// Whether the consumer fails the operation at hand retriably.
    pub(crate) fn bulk_operation_retriable(&self) -> bool {
        roll(self.faults.p_bulk_retriable)
    }

    /// Lifetime of issued tokens.
    pub(crate) fn token_ttl(&self) -> Duration {
        self.faults.token_ttl.unwrap_or(Duration::from_secs(86_399))
    }
}

/// Exact waits for the injected latency. Tokio's timer ticks every millisecond and rounds
/// deadlines up, so `sleep(20 ms)` answered after 21.5 ms on average: an emulator that
/// claims 20 ms must add 20 ms, or every throughput measured against it is off by 7%. One
/// thread sleeps to each deadline at the OS timer's precision and wakes the request.
#[derive(Debug)]
struct Delays(mpsc::Sender<(Instant, oneshot::Sender<()>)>);

impl Delays {
    fn start() -> Self {
        let (tx, rx) = mpsc::channel();
        // The thread ends when the gate, and with it the sender, is dropped.
        std::thread::Builder::new()
            .name("sandbox-latency".into())
            .spawn(move || wake_at_deadlines(&rx))
            .map_or_else(
                |e| tracing::warn!(error = %e, "no latency thread; latency is not injected"),
                drop,
            );
        Delays(tx)
    }

    /// Resolves at `deadline` (at once when the thread is gone).
    async fn until(&self, deadline: Instant) {
        let (tx, rx) = oneshot::channel();
        if self.0.send((deadline, tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Wakes each waiter at its deadline. Deadlines arrive nearly in order (one latency, counted
/// from arrival, but queued after work of varying length): each goes in its sorted place,
/// nearly always the back.
fn wake_at_deadlines(rx: &mpsc::Receiver<(Instant, oneshot::Sender<()>)>) {
    let mut queue: VecDeque<(Instant, oneshot::Sender<()>)> = VecDeque::new();
    loop {
        let received = match queue.front() {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some((deadline, _)) => {
                let now = Instant::now();
                if *deadline <= now {
                    if let Some((_, waiter)) = queue.pop_front() {
                        let _ = waiter.send(());
                    }
                    continue;
                }
                rx.recv_timeout(*deadline - now)
            }
        };
        match received {
            Ok(waiter) => {
                let at = queue.partition_point(|(deadline, _)| *deadline <= waiter.0);
                queue.insert(at, waiter);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn too_many() -> ApiError {
    ApiError::new(429, "Too Many Requests")
}

fn roll(p: f64) -> bool {
    p > 0.0 && fastrand::f64() < p
}
