//! When to poll a bulk: only once it should be done, so that polls stay few (each one costs a
//! request under `--rate`, like a submission).
//!
//! The shop's queue is taken to work its operations in the order they were submitted, at a
//! throughput learned from the polls: each bulk is expected done once the operations before
//! it and its own are worked. A poll that finds a bulk partly worked gives the queue's
//! position exactly, and two such polls its throughput; a bulk found done at its first poll
//! may have been done earlier, so the estimate is raised a little each time (the next poll
//! that comes too early corrects it). A bulk polled again waits a backoff that doubles, so
//! that a queue slower than any estimate is not hammered. Pure: time is seconds since the
//! engine started.

use std::collections::BTreeMap;

/// The throughput assumed before any poll told (operations per second).
const FIRST_GUESS: f64 = 1000.0;
/// How much a bulk found done at its first poll raises the estimate, until a poll finds the
/// queue inside a bulk.
const OPTIMISM: f64 = 1.1;
/// A poll comes after the estimate by this much of the bulk's own time, so as not to come early.
const MARGIN: f64 = 1.1;
/// The least and most time between two polls of one bulk (seconds).
const FIRST_BACKOFF: f64 = 0.25;
const MAX_BACKOFF: f64 = 30.0;

/// A bulk being worked.
#[derive(Clone, Debug)]
struct Tracked {
    ops: u64,
    submitted: f64,
    /// Operations submitted (in this run) before this bulk's.
    before: u64,
    polls: u32,
    /// No poll before this time.
    not_before: f64,
}

/// The bulks being worked, by the order they were submitted in; see the module doc.
#[derive(Debug, Default)]
pub struct Schedule {
    bulks: BTreeMap<u64, Tracked>,
    /// Operations submitted so far.
    submitted_ops: u64,
    /// Operations per second, once estimated.
    rate: Option<f64>,
    /// Where the queue was known to be: (time, operations worked); it is taken to go on
    /// from there at `rate`. The first submission, until a poll tells more.
    anchor: Option<(f64, u64)>,
    /// The last poll that found the queue inside a bulk: its position exactly.
    exact: Option<(f64, u64)>,
    /// The first submission.
    first: Option<f64>,
}

impl Schedule {
    /// Bulk `id` of `ops` operations was accepted at `now`; ids grow with submission order.
    pub fn submitted(&mut self, id: u64, ops: u64, now: f64) {
        self.anchor.get_or_insert((now, self.submitted_ops));
        self.first.get_or_insert(now);
        self.bulks.insert(
            id,
            Tracked {
                ops,
                submitted: now,
                before: self.submitted_ops,
                polls: 0,
                not_before: now,
            },
        );
        self.submitted_ops += ops;
    }

    /// The rate, or the first guess.
    fn pace(&self) -> f64 {
        self.rate.unwrap_or(FIRST_GUESS).max(1e-3)
    }

    /// Where the model puts the queue at `now`.
    fn position(&self, now: f64) -> f64 {
        let (t, p) = self.anchor.unwrap_or((now, 0));
        p as f64 + (now - t).max(0.0) * self.pace()
    }

    /// A poll of bulk `id` at `now` found `finished` of its operations worked. Returns
    /// whether the bulk is done (it is then no longer tracked).
    pub fn observed(&mut self, id: u64, finished: u64, now: f64) -> bool {
        let Some(b) = self.bulks.get_mut(&id) else {
            return true;
        };
        let first_poll = b.polls == 0;
        b.polls += 1;
        b.not_before = now + (FIRST_BACKOFF * 2f64.powi(b.polls as i32 - 1)).min(MAX_BACKOFF);
        let (ops, before) = (b.ops, b.before);
        let position = before + finished.min(ops);
        let start = self.first.unwrap_or(now);
        let slope = |(t, p): (f64, u64)| {
            (position > p && now > t).then(|| (position - p) as f64 / (now - t))
        };
        if finished >= ops {
            self.bulks.remove(&id);
            // The queue is at least this far: at least this fast, maybe faster.
            if (position as f64) > self.position(now) {
                self.anchor = Some((now, position));
            }
            let floor = self.exact.and_then(slope).or_else(|| slope((start, 0)));
            let rate = self.pace().max(floor.unwrap_or(0.0));
            // Until a poll finds the queue inside a bulk, the estimate is only a floor.
            let exploring = first_poll && self.exact.is_none();
            self.rate = Some(if exploring { rate * OPTIMISM } else { rate });
            return true;
        }
        let model = self.position(now);
        if finished > 0 {
            // Exactly here: the bulks before are done, this one partly.
            if let Some(measured) = self.exact.and_then(slope).or_else(|| slope((start, 0))) {
                self.rate = Some(measured);
            }
            self.exact = Some((now, position));
            self.anchor = Some((now, position));
        } else if (position as f64) < model {
            // Not started: the queue is not this far yet, so at most this fast.
            if let Some(ceiling) = self.exact.and_then(slope) {
                self.rate = Some(self.rate.map_or(ceiling, |r| r.min(ceiling)));
            }
            self.anchor = Some((now, position));
        }
        false
    }

    /// When each bulk should be done: once the queue, going on from where it was last known
    /// to be, has worked it; and not before its own operations could be worked.
    fn expected(&self) -> impl Iterator<Item = (u64, f64, &Tracked)> {
        let rate = self.pace();
        let (t, p) = self.anchor.unwrap_or((0.0, 0));
        self.bulks.iter().map(move |(id, b)| {
            let end = b.before + b.ops;
            let margin = (MARGIN - 1.0) * b.ops as f64 / rate;
            let queued = t + end.saturating_sub(p) as f64 / rate;
            let own = b.submitted + b.ops as f64 / rate;
            (*id, queued.max(own) + margin, b)
        })
    }

    /// The bulks to poll at `now` (those that should be done, and not polled too recently),
    /// oldest first, leaving out those in `busy` (being polled).
    pub fn due(&self, now: f64, busy: &impl Fn(u64) -> bool) -> Vec<u64> {
        self.expected()
            .filter(|(id, done, b)| done.max(b.not_before) <= now && !busy(*id))
            .map(|(id, ..)| id)
            .collect()
    }

    /// When the next bulk not in `busy` falls due, if any is tracked.
    pub fn next_due(&self, busy: &impl Fn(u64) -> bool) -> Option<f64> {
        self.expected()
            .filter(|(id, ..)| !busy(*id))
            .map(|(_, done, b)| done.max(b.not_before))
            .min_by(f64::total_cmp)
    }

    /// Stops tracking bulk `id` (given up on).
    pub fn forget(&mut self, id: u64) {
        self.bulks.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: u64) -> bool {
        false
    }
    const NONE: &fn(u64) -> bool = &(none as fn(u64) -> bool);

    /// A queue working `rate` ops/s from time 0, bulks of `size` all submitted at `every`
    /// seconds apart: simulates polls at the times the schedule asks, returns the polls made.
    fn simulate(rate: f64, size: u64, bulks: u64, every: f64) -> (u32, f64) {
        let mut s = Schedule::default();
        let submitted: Vec<f64> = (0..bulks).map(|i| i as f64 * every).collect();
        // When each op finishes, queue in submission order.
        let mut done_at = Vec::new();
        let mut t: f64 = 0.0;
        for &sub in &submitted {
            for _ in 0..size {
                t = t.max(sub) + 1.0 / rate;
                done_at.push(t);
            }
        }
        let finished = |bulk: u64, now: f64| {
            let ops = &done_at[(bulk * size) as usize..((bulk + 1) * size) as usize];
            ops.iter().filter(|&&d| d <= now).count() as u64
        };
        let (mut polls, mut now, mut next) = (0, 0.0, 0);
        let mut last_done: f64 = 0.0;
        loop {
            while next < bulks && submitted[next as usize] <= now {
                s.submitted(next, size, submitted[next as usize]);
                next += 1;
            }
            for id in s.due(now, NONE) {
                polls += 1;
                if s.observed(id, finished(id, now), now) {
                    last_done = now;
                }
            }
            let upcoming = [s.next_due(NONE), submitted.get(next as usize).copied()];
            match upcoming.into_iter().flatten().min_by(f64::total_cmp) {
                Some(t) => now = t.max(now + 1e-3),
                None => break,
            }
        }
        (polls, last_done)
    }

    #[test]
    fn a_queue_ahead_of_the_submissions_is_polled_about_once_a_bulk() {
        // 2,000 ops/s, bulks of 200 every 0.05 s: the queue is the bottleneck.
        let (polls, end) = simulate(2000.0, 200, 100, 0.05);
        assert!(polls <= 110, "{polls} polls for 100 bulks");
        assert!(end < 10.0 * 1.03, "last bulk seen done at {end}");
    }

    #[test]
    fn a_slow_queue_costs_few_polls_and_is_seen_done_soon_after() {
        // 20 ops/s, 10 bulks of 100 at once: 50 s of work.
        let (polls, end) = simulate(20.0, 100, 10, 0.0);
        assert!(polls <= 15, "{polls} polls for 10 bulks");
        assert!(end < 50.0 * 1.15, "last bulk seen done at {end}");
    }

    #[test]
    fn a_fast_queue_raises_its_estimate() {
        let (polls, end) = simulate(100_000.0, 100, 50, 0.1);
        assert!(polls <= 55, "{polls} polls for 50 bulks");
        assert!(end < 5.0 + 0.5, "{end}");
    }

    #[test]
    fn a_bulk_polled_again_backs_off() {
        let mut s = Schedule::default();
        s.submitted(1, 10, 0.0);
        assert!(s.due(0.0, NONE).is_empty(), "not before it can be done");
        assert_eq!(s.due(0.02, NONE), vec![1]);
        assert!(!s.observed(1, 0, 0.02));
        assert!(s.due(0.2, NONE).is_empty(), "backoff");
        assert!(s.next_due(NONE).is_some_and(|t| t >= 0.26));
        assert!(s.due(1.0, &|id| id == 1).is_empty(), "being polled");
        assert!(s.observed(1, 10, 1.0));
        assert_eq!(s.next_due(NONE), None);
    }
}
