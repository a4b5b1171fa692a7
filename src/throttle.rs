//! The request rate limit, shared by every request to the Commerce API.
//!
//! Two layers: a governor limiter holds the user's `--rate` as a hard cap (with a burst of a
//! twentieth of the rate, so no one-second window carries more than the rate plus that), and
//! an adaptive pace below it. A 429 halves the pace for everyone (the refused request itself
//! waits out its `Retry-After`, see [`crate::retry`]); each success then wins back a little, so
//! the run settles at what the server accepts instead of every worker hammering the limit.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::MonotonicClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// A twentieth of the rate (1 to 10): enough slack that a request woken a little late does not
/// cost the run its place, small enough that no second carries much more than the rate.
fn burst(rate: NonZeroU32) -> NonZeroU32 {
    NonZeroU32::new((rate.get() / 20).clamp(1, 10)).unwrap_or(NonZeroU32::MIN)
}

/// governor's limiter on the standard monotonic clock: its default clock (quanta) calibrates
/// the TSC when first used, which cost every run over 0.1 s before its first row.
type Limiter = RateLimiter<NotKeyed, InMemoryState, MonotonicClock>;

/// Shared rate limiter; see the module doc.
pub struct Throttle {
    limiter: Option<Limiter>,
    max_rate: Option<f64>,
    pace: Mutex<Pace>,
    requests: AtomicU64,
}

struct Pace {
    /// Requests/s the server seems to accept; equal to `max_rate` when all is well.
    current: f64,
    next_slot: Instant,
}

impl Throttle {
    /// `rate` requests per second at most; `None` means no limit.
    pub fn new(rate: Option<NonZeroU32>) -> Self {
        let now = Instant::now();
        Throttle {
            limiter: rate.map(|r| {
                let quota = Quota::per_second(r).allow_burst(burst(r));
                RateLimiter::direct_with_clock(quota, MonotonicClock)
            }),
            max_rate: rate.map(|r| f64::from(r.get())),
            pace: Mutex::new(Pace {
                current: rate.map_or(f64::INFINITY, |r| f64::from(r.get())),
                next_slot: now,
            }),
            requests: AtomicU64::new(0),
        }
    }

    /// Waits until one more request may go out, and counts it.
    pub async fn acquire(&self) {
        let wait_until = {
            let mut p = self.lock();
            let now = Instant::now();
            if self.max_rate.is_some_and(|max| p.current < max) {
                let slot = now.max(p.next_slot);
                p.next_slot = slot + Duration::from_secs_f64(1.0 / p.current);
                slot
            } else {
                now
            }
        };
        // A timer, even one already due, waits for the timer wheel's next millisecond tick.
        if wait_until > Instant::now() {
            tokio::time::sleep_until(wait_until).await;
        }
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The server answered 429: slow everyone down.
    pub fn on_throttled(&self) {
        if let Some(max) = self.max_rate {
            let mut p = self.lock();
            p.current = (p.current.min(max) / 2.0).max(1.0);
        }
    }

    /// A request went through: win back a twentieth of the configured rate.
    pub fn on_success(&self) {
        if let Some(max) = self.max_rate {
            let mut p = self.lock();
            if p.current < max {
                p.current = (p.current + max / 20.0).min(max);
            }
        }
    }

    /// Requests let through so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pace> {
        // The pace holds plain numbers; a panic elsewhere cannot leave it inconsistent.
        self.pace
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only lower bounds on time: a rate limiter can never be faster than its rate, however
    // loaded the machine is.
    #[tokio::test]
    async fn rate_is_a_hard_cap_and_429_slows_down_then_recovers() {
        let t = Throttle::new(NonZeroU32::new(20));
        let start = Instant::now();
        for _ in 0..21 {
            t.acquire().await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(950),
            "21 requests at 20/s took {took:?}"
        );
        assert_eq!(t.requests(), 21);

        t.on_throttled();
        assert_eq!(t.lock().current, 10.0);
        let before = Instant::now();
        for _ in 0..6 {
            t.acquire().await;
        }
        assert!(
            before.elapsed() >= Duration::from_millis(490),
            "pace halved to 10/s"
        );
        for _ in 0..5 {
            t.on_success();
        }
        assert_eq!(t.lock().current, 15.0);
        for _ in 0..50 {
            t.on_success();
        }
        assert_eq!(t.lock().current, 20.0, "never above the configured rate");
    }
}
