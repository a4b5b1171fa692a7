//! A run's progress on stderr: rows finished (sent, unchanged or invalid) out of the rows the
//! file is estimated to hold, the rate and the time left.
//!
//! The file's row count is not known until it is read, so it is estimated from the rows read
//! so far and the share of the file's bytes they took; the estimate firms up as the reading
//! goes, and is exact once the file is read (which, on a run that sends, is long before the
//! end). The time left is the rows left at the rate so far.
//!
//! On a terminal (see [`crate::console`]) a bar, redrawn five times a second; otherwise a
//! plain line every ten seconds, after a timestamp (or one JSON object with the numbers);
//! nothing under `--quiet`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value, json};

use crate::console;

/// Live counters shared between the pipeline and the display.
#[derive(Default)]
pub struct Counters {
    pub bytes_read: AtomicU64,
    /// Records read from the file.
    pub read: AtomicU64,
    /// Rows whose outcome is known.
    pub done: AtomicU64,
    /// Rows that failed.
    pub failed: AtomicU64,
}

/// One look at the counters, with what follows from them.
#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    done: u64,
    /// Rows the file is estimated to hold.
    estimated: u64,
    failed: u64,
    requests: u64,
    /// Rows finished per second so far.
    rate: f64,
    /// Seconds left at that rate; `None` before the first row is finished.
    eta: Option<f64>,
    /// What the run waits for, while it waits for a server.
    waiting: Option<String>,
}

impl Snapshot {
    fn take(
        c: &Counters,
        total_bytes: u64,
        requests: u64,
        waiting: Option<String>,
        elapsed: Duration,
    ) -> Self {
        let done = c.done.load(Ordering::Relaxed);
        let estimated = estimate(
            c.read.load(Ordering::Relaxed),
            c.bytes_read.load(Ordering::Relaxed),
            total_bytes,
        )
        .max(done);
        let rate = done as f64 / elapsed.as_secs_f64().max(0.001);
        Snapshot {
            done,
            estimated,
            failed: c.failed.load(Ordering::Relaxed),
            requests,
            rate,
            eta: (done > 0).then(|| (estimated - done) as f64 / rate),
            waiting,
        }
    }

    /// The numbers as a sentence.
    fn line(&self) -> String {
        let percent = self.done * 100 / self.estimated.max(1);
        let eta = self.eta.map_or_else(|| "unknown".to_owned(), duration);
        let mut line = format!(
            "{} of ~{} rows finished ({percent}%), {:.1} rows/s, {} requests, {} failed, about {eta} left",
            self.done, self.estimated, self.rate, self.requests, self.failed
        );
        if let Some(wait) = &self.waiting {
            line.push_str("; ");
            line.push_str(wait);
        }
        line
    }

    /// The numbers as JSON fields.
    fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("rows_finished".into(), json!(self.done));
        m.insert("rows_estimated".into(), json!(self.estimated));
        m.insert(
            "rows_per_s".into(),
            json!((self.rate * 10.0).round() / 10.0),
        );
        m.insert("eta_s".into(), json!(self.eta.map(f64::round)));
        m.insert("requests".into(), json!(self.requests));
        m.insert("failed".into(), json!(self.failed));
        if let Some(wait) = &self.waiting {
            m.insert("waiting".into(), json!(wait));
        }
        m
    }
}

/// The rows a file of `total_bytes` holds, estimated from `read` rows in its first
/// `bytes_read` bytes (`read` itself once the whole file is read, or when its size is unknown).
fn estimate(read: u64, bytes_read: u64, total_bytes: u64) -> u64 {
    if bytes_read == 0 || bytes_read >= total_bytes {
        return read;
    }
    let scaled = read as u128 * total_bytes as u128 / bytes_read as u128;
    u64::try_from(scaled).unwrap_or(u64::MAX).max(read)
}

/// Seconds as a short human duration: `45s`, `4m 10s`, `2h 05m`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The display, until [`Progress::finish`].
pub struct Progress {
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts the display for a file of `total_bytes` (0 when unknown); plain lines come every
    /// `every`. `requests` reads the requests sent so far; `waiting` says what the run waits
    /// for, while it waits for a server.
    pub fn start(
        counters: Arc<Counters>,
        total_bytes: u64,
        every: Duration,
        requests: impl Fn() -> u64 + Send + Sync + 'static,
        waiting: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        if console::quiet() {
            return Progress {
                bar: None,
                ticker: None,
            };
        }
        let started = Instant::now();
        let snapshot = move |c: &Counters| {
            Snapshot::take(c, total_bytes, requests(), waiting(), started.elapsed())
        };
        if console::fancy() {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {msg} [{elapsed_precise}]")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let ticker_bar = bar.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    let now = snapshot(&counters);
                    ticker_bar.set_length(now.estimated);
                    ticker_bar.set_position(now.done);
                    ticker_bar.set_message(now.line());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            Progress {
                bar: Some(bar),
                ticker: Some(ticker),
            }
        } else {
            let ticker = tokio::spawn(async move {
                let mut interval = tokio::time::interval(every);
                interval.tick().await;
                loop {
                    interval.tick().await;
                    let now = snapshot(&counters);
                    console::progress_line(&format!("progress: {}", now.line()), now.fields());
                }
            });
            Progress {
                bar: None,
                ticker: Some(ticker),
            }
        }
    }

    /// Stops the display and clears the bar.
    pub fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_estimated_from_the_share_of_bytes_read() {
        // (rows read, bytes read, file bytes) -> estimated rows
        let cases = [
            (0, 0, 1000, 0),
            (100, 250, 1000, 400),
            (100, 1000, 1000, 100),
            (100, 1200, 1000, 100),
            (100, 500, 0, 100),
            (u64::MAX / 2, 1, u64::MAX, u64::MAX),
        ];
        for (read, bytes, total, want) in cases {
            assert_eq!(estimate(read, bytes, total), want, "{read} {bytes} {total}");
        }
    }

    #[test]
    fn the_line_has_the_rate_and_the_time_left() {
        let c = Counters::default();
        c.read.store(400, Ordering::Relaxed);
        c.bytes_read.store(500, Ordering::Relaxed);
        c.done.store(100, Ordering::Relaxed);
        c.failed.store(2, Ordering::Relaxed);
        let s = Snapshot::take(&c, 1000, 120, None, Duration::from_secs(10));
        assert_eq!((s.estimated, s.rate, s.eta), (800, 10.0, Some(70.0)));
        assert_eq!(
            s.line(),
            "100 of ~800 rows finished (12%), 10.0 rows/s, 120 requests, 2 failed, about 1m 10s left"
        );
        assert_eq!(s.fields()["eta_s"], json!(70.0));
        let wait = Some("waiting 30 s: the server asked (Retry-After)".to_owned());
        let fresh = Snapshot::take(&Counters::default(), 1000, 0, wait, Duration::ZERO);
        assert_eq!(fresh.eta, None);
        assert!(
            fresh
                .line()
                .ends_with("about unknown left; waiting 30 s: the server asked (Retry-After)"),
            "{}",
            fresh.line()
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        let cases = [
            (0.4, "0s"),
            (45.0, "45s"),
            (250.0, "4m 10s"),
            (7500.0, "2h 05m"),
            (-3.0, "0s"),
        ];
        for (secs, want) in cases {
            assert_eq!(duration(secs), want, "{secs}");
        }
    }
}
