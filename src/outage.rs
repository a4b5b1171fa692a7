//! Whether the shop is there at all, as the answers to a run's requests tell: the
//! `--outage-after` guard and the wrong-base check. A [`Watch`] sees every try the
//! [`crate::retry::Retrier`] makes and may stop the sending, through the token it was given,
//! with a [`Verdict`]:
//!
//! - **Outage**: no request has been answered for `--outage-after` while requests failed
//!   without an answer (connection errors, timeouts, 5xx) or hung. Any 2xx, 3xx or 4xx, 429
//!   included, proves the shop is there. A request unanswered for that long counts as timed out
//!   even when `--timeout` is longer, so that a shop that stops answering mid-run stops the
//!   run in about `--outage-after`. A row whose retries run out while the watch is
//!   [`troubled`](Watch::troubled) may be the outage's victim rather than at fault: the sync
//!   holds its outcome back until the shop answers again (then it failed) or the verdict
//!   comes (then it is `not_sent`).
//! - **Wrong base**: the first answers are all 404 "Request does not match any route.": the
//!   endpoint's path is not a REST base, and every row would fail the same way.
//!
//! The rules are pure functions of the recorded times ([`State`]); a ticker applies them
//! every [`TICK`], so that a verdict comes while every request hangs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiError, AuthError};

/// Magento's answer to a path that is no route of its REST API.
pub const NO_ROUTE: &str = "Request does not match any route.";
/// No-route answers, with nothing else answered before them, that make the base wrong.
pub const NO_ROUTE_LIMIT: u32 = 3;
/// How often the rules are applied while nothing else happens.
const TICK: Duration = Duration::from_millis(250);

/// Why the watch stopped the sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing answered for `--outage-after`.
    Outage { after: Duration },
    /// The endpoint's base path is not the REST API's.
    WrongBase(WrongBase),
}

/// The endpoint answered only "Request does not match any route.".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{base} is not the REST base of a Commerce shop: it answered HTTP 404 \"{NO_ROUTE}\" to \
     every request ({answers}) (check --endpoint: https://<region>.api.commerce.adobe.com/<tenant-id> \
     for Adobe Commerce as a Cloud Service, https://shop.example/rest/<store code> on premises)"
)]
pub struct WrongBase {
    /// The endpoint as shown (without credentials).
    pub base: String,
    pub answers: u32,
}

/// What the answers so far say; see the module doc.
#[derive(Debug, Default)]
struct State {
    /// When a request was last answered.
    last_answer: Option<Instant>,
    /// Some answer other than "no route" came: the base is right.
    base_ok: bool,
    /// No-route answers so far (while the base is not known to be right).
    no_route: u32,
    /// Since the last answer: the start of the earliest try that failed without an answer.
    first_failure: Option<Instant>,
    /// Tries on the wire: id -> start.
    outstanding: HashMap<u64, Instant>,
    /// Calls of the retrier in progress (on the wire or waiting to retry).
    pending: u32,
}

impl State {
    /// Records how a try that started at `started` ended. IMS out of reach counts as no
    /// answer (nothing can be sent without a token); a token refused, or a try abandoned,
    /// says nothing about the shop.
    fn ended<T>(&mut self, started: Instant, now: Instant, result: &Result<T, ApiError>) {
        let answered = match result {
            Ok(_) => Some(None),
            Err(ApiError::Auth(AuthError::Unavailable { .. }) | ApiError::Transport { .. }) => None,
            Err(ApiError::Auth(_) | ApiError::Interrupted { .. }) => return,
            Err(e) => match e.status() {
                Some(s) if s >= 500 => None,
                status => Some(status.map(|s| (s, e))),
            },
        };
        match answered {
            Some(answer) => {
                self.last_answer = Some(now);
                self.first_failure = None;
                match answer {
                    Some((404, ApiError::Status { message, .. })) if message == NO_ROUTE => {
                        if !self.base_ok {
                            self.no_route += 1;
                        }
                    }
                    _ => self.base_ok = true,
                }
            }
            None => {
                let first = self.first_failure.get_or_insert(started);
                *first = (*first).min(started);
            }
        }
    }

    /// The outage rule at `now`: work is pending, something failed or hangs, and nothing
    /// answered for `after` since it began.
    fn outage(&self, now: Instant, after: Duration) -> bool {
        if self.pending == 0 {
            return false;
        }
        let oldest_call = self.outstanding.values().min().copied();
        let trouble = match (self.first_failure, oldest_call) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return false,
        };
        let since = self.last_answer.map_or(trouble, |t| t.max(trouble));
        now.saturating_duration_since(since) >= after
    }

    /// The wrong-base rule.
    fn wrong_base(&self) -> bool {
        !self.base_ok && self.no_route >= NO_ROUTE_LIMIT
    }
}

/// Watches a run's answers; see the module doc.
pub struct Watch {
    after: Duration,
    base: String,
    stop: CancellationToken,
    verdict: OnceLock<Verdict>,
    state: Mutex<State>,
    next_id: AtomicU64,
}

impl Watch {
    /// A watch that cancels `stop` on a verdict; `base` is the endpoint as messages show it.
    /// Its ticker runs until `stop` is cancelled or the watch is dropped.
    pub fn start(after: Duration, base: String, stop: CancellationToken) -> Arc<Self> {
        let watch = Arc::new(Watch {
            after,
            base,
            stop,
            verdict: OnceLock::new(),
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(0),
        });
        let weak: Weak<Watch> = Arc::downgrade(&watch);
        let stop = watch.stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(TICK) => {}
                }
                match weak.upgrade() {
                    Some(w) => w.judge(),
                    None => return,
                }
            }
        });
        watch
    }

    /// Why the sending was stopped, once it was.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.get()
    }

    /// Counts a call of the retrier as pending until the guard is dropped.
    pub fn pending(&self) -> Pending<'_> {
        self.lock().pending += 1;
        Pending(self)
    }

    /// Runs one try, recording when it started and how it ended.
    pub async fn observe<T>(
        &self,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        self.lock().outstanding.insert(id, started);
        // Dropped with the try when an interrupt abandons it.
        let _on_the_wire = OnTheWire { watch: self, id };
        let result = call.await;
        self.lock().ended(started, Instant::now(), &result);
        self.judge();
        result
    }

    /// Whether a request failed without an answer and nothing has answered since.
    pub fn troubled(&self) -> bool {
        self.lock().first_failure.is_some()
    }

    /// The base is wrong by every answer so far, however few (for a call that cannot go on
    /// to more: the shop's model, read from routes every Commerce has).
    pub fn no_route_only(&self) -> Option<WrongBase> {
        let s = self.lock();
        (!s.base_ok && s.no_route > 0).then(|| WrongBase {
            base: self.base.clone(),
            answers: s.no_route,
        })
    }

    /// Waits, as pending work, until the sending is stopped (a verdict, or an interrupt): for a
    /// failure only the watch can judge.
    pub async fn wait_for_verdict(&self) {
        let _pending = self.pending();
        self.stop.cancelled().await;
    }

    /// Applies the rules now.
    fn judge(&self) {
        let verdict = {
            let s = self.lock();
            if s.wrong_base() {
                Some(Verdict::WrongBase(WrongBase {
                    base: self.base.clone(),
                    answers: s.no_route,
                }))
            } else if s.outage(Instant::now(), self.after) {
                Some(Verdict::Outage { after: self.after })
            } else {
                None
            }
        };
        if let Some(v) = verdict
            && self.verdict.set(v).is_ok()
        {
            self.stop.cancel();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state holds plain times and counts; a panic elsewhere cannot leave it broken.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A pending call of the retrier; see [`Watch::pending`].
pub struct Pending<'a>(&'a Watch);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.pending = s.pending.saturating_sub(1);
    }
}

/// A try on the wire, forgotten when it ends or is abandoned.
struct OnTheWire<'a> {
    watch: &'a Watch,
    id: u64,
}

impl Drop for OnTheWire<'_> {
    fn drop(&mut self) {
        self.watch.lock().outstanding.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, message: &str) -> Result<(), ApiError> {
        Err(ApiError::Status {
            status,
            message: message.into(),
            retry_after: None,
        })
    }

    fn abandoned() -> Result<(), ApiError> {
        Err(ApiError::Interrupted {
            detail: "the answer did not come before the run stopped".into(),
        })
    }

    fn refused() -> Result<(), ApiError> {
        Err(ApiError::Transport {
            url: "http://shop/V1/customers".into(),
            detail: "could not connect".into(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_needs_pending_work_trouble_and_silence_for_long_enough() {
        let after = Duration::from_secs(60);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // (answers and failures: (try start, try end, result)), tries on the wire (start),
        // pending calls, now) -> outage
        type Case = (
            Vec<(u64, u64, Result<(), ApiError>)>,
            Vec<u64>,
            u32,
            u64,
            bool,
        );
        let cases: Vec<Case> = vec![
            // Failing since 0, nothing answered: 60 s later it is an outage, not before.
            (vec![(0, 1, refused())], vec![], 1, 59, false),
            (vec![(0, 1, refused())], vec![], 1, 61, true),
            // Nothing pending any more: no outage, however long it is quiet.
            (vec![(0, 1, refused())], vec![], 0, 600, false),
            // An answer at 50 resets the clock; a 429 and a 400 are answers, a 503 is not.
            (
                vec![(0, 1, refused()), (40, 50, status(429, "slow down"))],
                vec![],
                1,
                100,
                false,
            ),
            (
                vec![(0, 1, refused()), (40, 50, status(429, "slow down"))],
                vec![],
                1,
                111,
                false,
            ),
            (
                vec![
                    (0, 1, refused()),
                    (40, 50, status(400, "bad")),
                    (55, 56, refused()),
                ],
                vec![],
                1,
                116,
                true,
            ),
            (
                vec![(0, 1, status(503, "down")), (40, 50, status(503, "down"))],
                vec![],
                1,
                61,
                true,
            ),
            // A try that hangs, with nothing answered since it began.
            (vec![], vec![10], 1, 69, false),
            (vec![], vec![10], 1, 70, true),
            (vec![(0, 20, Ok(()))], vec![10], 1, 79, false),
            (vec![(0, 20, Ok(()))], vec![10], 1, 80, true),
            // Quiet without trouble is no outage; an abandoned try says nothing.
            (vec![(0, 1, Ok(()))], vec![], 1, 600, false),
            (vec![(0, 1, abandoned())], vec![], 1, 600, false),
        ];
        for (i, (tries, wire, pending, now, want)) in cases.into_iter().enumerate() {
            let mut s = State {
                pending,
                ..State::default()
            };
            for (start, end, result) in &tries {
                s.ended(at(*start), at(*end), result);
            }
            for (id, start) in wire.iter().enumerate() {
                s.outstanding.insert(id as u64, at(*start));
            }
            assert_eq!(s.outage(at(now), after), want, "case {i}: {s:?}");
        }
    }

    #[test]
    fn a_base_is_wrong_when_the_first_answers_are_all_no_route() {
        let now = Instant::now();
        let mut s = State::default();
        for _ in 0..NO_ROUTE_LIMIT - 1 {
            s.ended(now, now, &status(404, NO_ROUTE));
        }
        assert!(!s.wrong_base());
        s.ended(now, now, &status(404, NO_ROUTE));
        assert!(s.wrong_base());

        // Any other answer first proves the base: a created customer, or a 404 of another kind.
        for first in [Ok(()), status(404, "No such entity with customerId = 7")] {
            let mut s = State::default();
            s.ended(now, now, &first);
            for _ in 0..10 {
                s.ended(now, now, &status(404, NO_ROUTE));
            }
            assert!(!s.wrong_base());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_watch_stops_the_sending_once_with_its_verdict() {
        let stop = CancellationToken::new();
        let w = Watch::start(Duration::from_secs(5), "http://shop/x".into(), stop.clone());
        assert!(w.observe(async { Ok(()) }).await.is_ok());
        assert!(!w.troubled());
        {
            let _pending = w.pending();
            assert!(w.observe(async { refused() }).await.is_err());
            assert!(w.troubled());
            tokio::time::sleep(Duration::from_secs(6)).await;
            assert!(stop.is_cancelled());
        }
        assert_eq!(
            w.verdict(),
            Some(&Verdict::Outage {
                after: Duration::from_secs(5)
            })
        );

        let stop = CancellationToken::new();
        let w = Watch::start(Duration::from_secs(5), "http://shop/x".into(), stop.clone());
        for _ in 0..NO_ROUTE_LIMIT {
            let _ = w.observe(async { status(404, NO_ROUTE) }).await;
        }
        assert!(stop.is_cancelled());
        let Some(Verdict::WrongBase(e)) = w.verdict() else {
            panic!("{:?}", w.verdict())
        };
        assert!(
            e.to_string()
                .starts_with("http://shop/x is not the REST base"),
            "{e}"
        );
    }
}
