//! Trying a call to the Commerce API again when its failure was transient: which failures
//! count, how long to wait, when to give up. Sending rows ([`crate::exec`]) and pulling
//! ([`crate::pull`]) both go through a [`Retrier`].
//!
//! # What is tried again
//! A call that got no answer, a 408 or a 5xx is tried again, up to `--retries` times; a 429
//! has a larger budget of its own (four times as many, at least 20), since it only asks the
//! client to wait and a throttled run should not give up on rows that merely had to queue.
//! Any other 4xx is the API's verdict on the row and is returned at once (see [`verdict`]).
//!
//! # How long to wait
//! The wait before try `n` is "full jitter": a random time between zero and
//! `min(cap, base * 2^n)`, so that workers that failed together do not come back together;
//! a server's `Retry-After` is a floor for it, up to [`MAX_RETRY_AFTER`]. A server that asks
//! for longer (a day, a far-off date) is not waited for: its answer counts as a failure (from
//! the `--retries` budget, not the 429 one), retried after the capped wait, and a row that
//! runs out of retries so says what the server asked. A wait from [`NOTICE_WAIT`] on is
//! announced (a warning, and [`Waiting`] for the progress line), so no run sleeps silently.
//!
//! # Interrupts
//! An interrupt ends a backoff at once; a call already on the wire gets [`DRAIN_GRACE`] to
//! come back, since its answer (a created customer's id) is worth recording.
//!
//! # Outages
//! A retrier [`watching`](Retrier::watching) a [`Watch`] shows it every try, so that the watch
//! can tell when the shop stopped answering (it then stops the retrier like an interrupt).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::defaults::{
    DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_CAP, DEFAULT_RETRIES, MAX_PAGE_SIZE,
};
use crate::outage::Watch;

/// How long a request already on the wire may still take after an interrupt.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// The longest a server's `Retry-After` is waited; see the module doc.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// A server's wait this long or longer is announced; shorter ones (a busy shop's 429s) are
/// only logged at debug level.
pub const NOTICE_WAIT: Duration = Duration::from_secs(10);

/// Retry settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (for failures other than 429).
    pub retries: u32,
    /// Backoff before the first retry, doubled each time.
    pub base: Duration,
    /// Longest backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: DEFAULT_RETRIES,
            base: Duration::from_millis(DEFAULT_BACKOFF_BASE_MS),
            cap: DEFAULT_BACKOFF_CAP,
        }
    }
}

impl RetryPolicy {
    /// Retries allowed for 429s: four times [`RetryPolicy::retries`], at least 20.
    pub fn throttle_budget(&self) -> u32 {
        self.retries.saturating_mul(4).max(20)
    }

    /// The wait before retry `attempt` (0 for the first), given the server's `Retry-After`.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.backoff_at(attempt, retry_after, fastrand::f64())
    }

    /// The same, with the random draw (0 to 1) given.
    fn backoff_at(&self, attempt: u32, retry_after: Option<Duration>, draw: f64) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.cap);
        let jitter = ceiling.mul_f64(draw);
        retry_after.map_or(jitter, |r| r.max(jitter))
    }
}

/// What a failed call deserves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The API's answer on the request (or not an API failure at all): no retry.
    Final,
    /// No answer, 408 or 5xx: retry from the `--retries` budget.
    Retry,
    /// 429: wait and retry, from the larger budget of its own.
    Throttled,
}

/// Sorts a failure; see the module doc. A 429 whose `Retry-After` is over the cap counts as a
/// failure like any other.
pub fn verdict(e: &ApiError) -> Verdict {
    match (e.is_transient(), e.status()) {
        (false, _) => Verdict::Final,
        (true, Some(429)) if !over_cap(e.retry_after()) => Verdict::Throttled,
        (true, _) => Verdict::Retry,
    }
}

fn over_cap(asked: Option<Duration>) -> bool {
    asked.is_some_and(|a| a > MAX_RETRY_AFTER)
}

/// The failure a row ends with, saying what the server asked for when that was over the cap.
fn final_error(e: ApiError, retries: u32) -> ApiError {
    let e = match e {
        ApiError::Status {
            status,
            message,
            retry_after: Some(asked),
        } if over_cap(Some(asked)) => ApiError::Status {
            status,
            message: format!(
                "{message} (the server's Retry-After asked for {} s, more than the {} s \
                 custsync waits; try again later)",
                asked.as_secs(),
                MAX_RETRY_AFTER.as_secs()
            ),
            retry_after: Some(asked),
        },
        other => other,
    };
    if retries == 0 {
        e
    } else {
        ApiError::GaveUp {
            retries,
            last: Box::new(e),
        }
    }
}

/// The longest current wait a server asked for, while it lasts: for the progress line.
#[derive(Debug, Default)]
pub struct Waiting(Mutex<Option<ServerWait>>);

#[derive(Clone, Copy, Debug)]
struct ServerWait {
    until: Instant,
    asked: Duration,
}

impl Waiting {
    fn start(&self, wait: Duration, asked: Duration) {
        let until = Instant::now() + wait;
        let mut w = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if w.is_none_or(|w| w.until < until) {
            *w = Some(ServerWait { until, asked });
        }
    }

    /// What the run waits for, while it waits: `None` when it does not.
    pub fn describe(&self) -> Option<String> {
        let w = (*self.0.lock().unwrap_or_else(PoisonError::into_inner))?;
        let left = w
            .until
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())?;
        let capped = if over_cap(Some(w.asked)) {
            format!(", capped at {} s", MAX_RETRY_AFTER.as_secs())
        } else {
            String::new()
        };
        Some(format!(
            "waiting {} s more for the shop (Retry-After: {} s{capped})",
            left.as_secs(),
            w.asked.as_secs()
        ))
    }
}

/// Runs calls again on transient failures, counting the retries it made.
pub struct Retrier {
    policy: RetryPolicy,
    cancel: CancellationToken,
    retries: AtomicU64,
    waiting: Arc<Waiting>,
    watch: Option<Arc<Watch>>,
}

impl Retrier {
    /// A retrier; `cancel` interrupts backoffs and, after [`DRAIN_GRACE`], calls in flight.
    pub fn new(policy: RetryPolicy, cancel: CancellationToken) -> Self {
        Retrier {
            policy,
            cancel,
            retries: AtomicU64::new(0),
            waiting: Arc::default(),
            watch: None,
        }
    }

    /// The same, showing every try to `watch` (see the module doc); the watch should stop
    /// this retrier's `cancel` token.
    pub fn watching(self, watch: Arc<Watch>) -> Self {
        Retrier {
            watch: Some(watch),
            ..self
        }
    }

    async fn attempt<T>(
        &self,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        match &self.watch {
            Some(w) => w.observe(call).await,
            None => call.await,
        }
    }

    /// Waits `wait`, or until the run is stopped: whether the whole wait passed.
    pub async fn pause(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.cancel.cancelled() => false,
        }
    }

    /// Retries made so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The long waits servers asked for, as they happen.
    pub fn waiting(&self) -> Arc<Waiting> {
        Arc::clone(&self.waiting)
    }

    /// The customers with `ids`, a search page at a time (a search answers one page at
    /// most), each page read by `page` as [`Retrier::run`] runs a call.
    pub async fn by_pages<'a, T, F, Fut>(&self, ids: &'a [u64], page: F) -> Result<Vec<T>, ApiError>
    where
        F: Fn(&'a [u64]) -> Fut,
        Fut: Future<Output = Result<Vec<T>, ApiError>>,
    {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_PAGE_SIZE as usize) {
            found.extend(self.run(|| page(chunk)).await?);
        }
        Ok(found)
    }

    /// Runs `call` until it succeeds, fails for good, or the retries run out (then the last
    /// failure comes back inside [`ApiError::GaveUp`]).
    pub async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let (mut failures, mut throttled) = (0, 0);
        let _pending = self.watch.as_ref().map(|w| w.pending());
        loop {
            let result = tokio::select! {
                r = self.attempt(call()) => r,
                () = async { self.cancel.cancelled().await; tokio::time::sleep(DRAIN_GRACE).await } => {
                    return Err(interrupted("the answer did not come before the run stopped"));
                }
            };
            let e = match result {
                Err(e) => e,
                ok => return ok,
            };
            let v = verdict(&e);
            let budget_left = match v {
                Verdict::Final => return Err(e),
                Verdict::Throttled => throttled < self.policy.throttle_budget(),
                Verdict::Retry => failures < self.policy.retries,
            };
            if !budget_left {
                return Err(final_error(e, failures + throttled));
            }
            let asked = e.retry_after();
            // The backoff grows with failures only: a 429 waits for its Retry-After instead.
            let wait = self
                .policy
                .backoff(failures, asked.map(|a| a.min(MAX_RETRY_AFTER)));
            if v == Verdict::Throttled {
                throttled += 1;
            } else {
                failures += 1;
            }
            let attempt = failures + throttled;
            match asked {
                Some(asked) if asked >= NOTICE_WAIT => {
                    self.waiting.start(wait, asked);
                    let capped = if over_cap(Some(asked)) {
                        format!(" (capped at {} s)", MAX_RETRY_AFTER.as_secs())
                    } else {
                        String::new()
                    };
                    tracing::warn!(
                        "{e}: the shop asks to wait {} s (Retry-After); retry {attempt} in {} s{capped}",
                        asked.as_secs(),
                        wait.as_secs()
                    );
                }
                _ => tracing::debug!("transient failure ({e}); retry {attempt} in {wait:?}"),
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.cancel.cancelled() => {
                    return Err(interrupted(&format!("stopped before retry {attempt}: {e}")));
                }
            }
        }
    }
}

fn interrupted(detail: &str) -> ApiError {
    ApiError::Interrupted {
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> ApiError {
        ApiError::Status {
            status,
            message: format!("status {status}"),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn transport() -> ApiError {
        ApiError::Transport {
            url: "http://shop/V1/customers".into(),
            detail: "connection reset".into(),
        }
    }

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        }
    }

    /// A call that answers from a script, then succeeds; counts its tries.
    struct Script {
        answers: Mutex<VecDeque<ApiError>>,
        tries: AtomicU64,
    }

    impl Script {
        fn new(answers: Vec<ApiError>) -> Self {
            Script {
                answers: Mutex::new(answers.into()),
                tries: AtomicU64::new(0),
            }
        }

        async fn call(&self) -> Result<&'static str, ApiError> {
            self.tries.fetch_add(1, Ordering::Relaxed);
            match self.answers.lock().expect("script").pop_front() {
                Some(e) => Err(e),
                None => Ok("saved"),
            }
        }

        fn tries(&self) -> u64 {
            self.tries.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn verdicts() {
        let cases = [
            (transport(), Verdict::Retry),
            (status(408, None), Verdict::Retry),
            (status(500, None), Verdict::Retry),
            (status(503, Some(2)), Verdict::Retry),
            (status(429, Some(1)), Verdict::Throttled),
            (status(429, Some(120)), Verdict::Throttled),
            (status(429, Some(121)), Verdict::Retry),
            (status(503, Some(86_400)), Verdict::Retry),
            (status(400, None), Verdict::Final),
            (status(404, None), Verdict::Final),
            (
                ApiError::Interrupted {
                    detail: "stop".into(),
                },
                Verdict::Final,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(verdict(&e), want, "{e}");
        }
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling_with_retry_after_as_a_floor() {
        let p = policy(5);
        let ms = Duration::from_millis;
        // (attempt, retry_after, draw) -> wait
        let cases = [
            (0, None, 1.0, ms(100)),
            (0, None, 0.5, ms(50)),
            (1, None, 1.0, ms(200)),
            (3, None, 1.0, ms(800)),
            (4, None, 1.0, ms(1000)),
            (4, None, 0.0, ms(0)),
            (u32::MAX, None, 1.0, ms(1000)),
            (0, Some(ms(3000)), 1.0, ms(3000)),
            (4, Some(ms(300)), 1.0, ms(1000)),
            (4, Some(ms(300)), 0.1, ms(300)),
        ];
        for (attempt, retry_after, draw, want) in cases {
            assert_eq!(
                p.backoff_at(attempt, retry_after, draw),
                want,
                "attempt {attempt}, retry-after {retry_after:?}, draw {draw}"
            );
        }
        for attempt in 0..10 {
            assert!(p.backoff(attempt, None) <= p.cap);
        }
    }

    #[test]
    fn defaults_come_from_one_place() {
        let p = RetryPolicy::default();
        assert_eq!(p.retries, DEFAULT_RETRIES);
        assert_eq!(p.base, Duration::from_millis(DEFAULT_BACKOFF_BASE_MS));
        assert_eq!(p.cap, DEFAULT_BACKOFF_CAP);
        assert_eq!(p.throttle_budget(), 20);
        assert_eq!(policy(10).throttle_budget(), 40);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_within_the_backoff_ceilings() {
        let script = Script::new(vec![transport(), status(503, None), status(500, None)]);
        let r = Retrier::new(policy(5), CancellationToken::new());
        let start = Instant::now();
        assert_eq!(r.run(|| script.call()).await.expect("saved"), "saved");
        assert_eq!((script.tries(), r.retries()), (4, 3));
        // Ceilings 100 + 200 + 400 ms.
        assert!(
            start.elapsed() <= Duration::from_millis(700),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_verdict_on_the_row_is_not_retried() {
        let script = Script::new(vec![status(400, None)]);
        let r = Retrier::new(policy(5), CancellationToken::new());
        let e = r.run(|| script.call()).await.expect_err("400");
        assert_eq!(e.status(), Some(400));
        assert!(!matches!(e, ApiError::GaveUp { .. }));
        assert_eq!((script.tries(), r.retries()), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_retries_gives_up_with_the_last_failure() {
        let script = Script::new((0..4).map(|_| status(503, None)).collect());
        let r = Retrier::new(policy(2), CancellationToken::new());
        let e = r.run(|| script.call()).await.expect_err("gives up");
        let ApiError::GaveUp { retries, last } = e else {
            panic!("expected GaveUp, got {e}")
        };
        assert_eq!((retries, last.status()), (2, Some(503)));
        assert_eq!(script.tries(), 3);

        let once = Script::new(vec![transport()]);
        let none = Retrier::new(policy(0), CancellationToken::new());
        let e = none.run(|| once.call()).await.expect_err("no retries");
        assert!(matches!(e, ApiError::Transport { .. }), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_has_a_budget_of_its_own_and_waits_its_retry_after() {
        let script = Script::new((0..6).map(|_| status(429, Some(10))).collect());
        let r = Retrier::new(policy(1), CancellationToken::new());
        let start = Instant::now();
        assert!(
            r.run(|| script.call()).await.is_ok(),
            "six 429s with 1 retry"
        );
        assert_eq!(r.retries(), 6);
        assert!(
            start.elapsed() >= Duration::from_secs(60),
            "{:?}",
            start.elapsed()
        );

        let endless = Script::new((0..30).map(|_| status(429, Some(1))).collect());
        let r = Retrier::new(policy(1), CancellationToken::new());
        let e = r.run(|| endless.call()).await.expect_err("budget");
        assert!(matches!(e, ApiError::GaveUp { retries: 20, .. }), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_over_the_cap_is_a_failure_waited_capped_then_named() {
        let script = Script::new((0..3).map(|_| status(429, Some(86_400))).collect());
        let r = Retrier::new(policy(2), CancellationToken::new());
        let waiting = r.waiting();
        let start = Instant::now();
        let watch = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            waiting.describe()
        };
        let (result, seen) = tokio::join!(r.run(|| script.call()), watch);
        let e = result.expect_err("out of retries");
        // Two retries from the --retries budget, each after the capped wait.
        assert_eq!((script.tries(), r.retries()), (3, 2));
        assert_eq!(start.elapsed(), 2 * MAX_RETRY_AFTER);
        let ApiError::GaveUp { retries: 2, last } = &e else {
            panic!("{e}")
        };
        assert_eq!(last.status(), Some(429));
        assert!(
            e.to_string()
                .contains("Retry-After asked for 86400 s, more than the 120 s custsync waits"),
            "{e}"
        );
        assert_eq!(
            seen.as_deref(),
            Some("waiting 90 s more for the shop (Retry-After: 86400 s, capped at 120 s)")
        );
        assert_eq!(waiting.describe(), None, "over once the wait is");

        // Without retries the first answer says so at once.
        let once = Script::new(vec![status(503, Some(3600))]);
        let none = Retrier::new(policy(0), CancellationToken::new());
        let e = none.run(|| once.call()).await.expect_err("no retries");
        assert!(e.to_string().contains("asked for 3600 s"), "{e}");
        // Within the cap a Retry-After is waited in full and not announced as capped.
        let short = Script::new(vec![status(429, Some(60))]);
        let r = Retrier::new(policy(0), CancellationToken::new());
        let start = Instant::now();
        assert!(
            r.run(|| short.call()).await.is_ok(),
            "a 429 has its own budget"
        );
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_ends_a_backoff_at_once() {
        let script = Script::new(vec![status(503, Some(600))]);
        let cancel = CancellationToken::new();
        let r = Retrier::new(policy(5), cancel.clone());
        let start = Instant::now();
        let stop = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        };
        let (result, ()) = tokio::join!(r.run(|| script.call()), stop);
        let e = result.expect_err("interrupted");
        assert!(matches!(e, ApiError::Interrupted { .. }), "{e}");
        assert!(e.to_string().contains("before retry 1"), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_in_flight_gets_the_drain_grace_after_an_interrupt() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r = Retrier::new(policy(5), cancel);
        let start = Instant::now();
        let slow = r
            .run(|| async {
                tokio::time::sleep(DRAIN_GRACE / 2).await;
                Ok::<_, ApiError>(7)
            })
            .await;
        assert_eq!(slow.expect("answered within the grace"), 7);
        let hung = r.run(std::future::pending::<Result<(), ApiError>>).await;
        assert!(matches!(hung, Err(ApiError::Interrupted { .. })));
        assert!(start.elapsed() >= DRAIN_GRACE + DRAIN_GRACE / 2);
    }
}
