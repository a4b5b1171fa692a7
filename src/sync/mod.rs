//! `custsync sync`, the pipeline:
//!
//! ```text
//! CSV file --read thread: parse, validate--> plan thread: keys, hashes, index and sled look-ups
//!   --bounded channel (batches)--> send loop: rows to send go out under the rate limit,
//!   at most --concurrency at a time, with retries (exec); the rest are recorded at once
//!   --> one sink: report line, counts, progress, state writer thread
//!   --> absent customers: counted, listed, deleted (absent)
//!   --> the end: state stamp and index, summary, how the run ended
//! ```
//!
//! Each stage is a module: `read.rs`, `send.rs` (with the `--max-absent` gate, `gate.rs`),
//! [`crate::absent`], `end.rs`; [`run`] connects them, and `ending.rs` says how a run ends.
//! Interrupts (SIGINT/SIGTERM) stop the reading; rows already read are drained (in-flight
//! requests get a grace period), state is flushed and the report and summary written. An
//! outage ([`crate::outage`]) stops the sending the same way, but the reading goes on, so that
//! every row is reported.

mod end;
mod ending;
mod gate;
mod read;
mod send;

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::absent::{self, Deletes};
use crate::config::SyncConfig;
use crate::connect;
use crate::console;
use crate::exec::Executor;
use crate::input::{InputError, Reader};
use crate::outage::Watch;
use crate::progress::{Counters, Progress};
use crate::state::Store;
use crate::throttle::Throttle;

pub use ending::{Ending, Finished, Stop, SyncError};

/// Runs `custsync sync`.
pub async fn run(cfg: SyncConfig, cancel: CancellationToken) -> Result<Finished, SyncError> {
    let started = Instant::now();
    let cfg = Arc::new(cfg);

    // Open the file, the state store and the target.
    let reader = open_input(&cfg)?;
    let total_bytes = std::fs::metadata(&cfg.input).map_or(0, |m| m.len());
    let store = Arc::new(Store::open(&cfg.connect.state_dir)?);
    let throttle = Arc::new(Throttle::new(cfg.rate));
    let (sandbox, client) = connect::connect(
        &cfg.connect,
        cfg.dry_run,
        cfg.concurrency,
        Arc::clone(&throttle),
    )
    .await?;
    let ignored = reader.ignored_columns();
    if !ignored.is_empty() {
        console::note(&format!(
            "note: ignoring columns custsync does not know: {}",
            ignored.join(", ")
        ));
    }
    // The sending stops on an interrupt, or when the watch finds the shop gone.
    let sending = cancel.child_token();
    let watch = client
        .as_ref()
        .map(|c| Watch::start(cfg.outage_after, c.endpoint().to_owned(), sending.clone()));
    let executor = client
        .zip(watch.clone())
        .map(|(c, w)| Executor::new(c, cfg.retry, sending.clone()).watching(w));

    // Read and plan on threads of their own, send here.
    let counters = Arc::new(Counters::default());
    let (rows, planning) = read::start(
        reader,
        Arc::clone(&store),
        cfg.plan,
        &cancel,
        Arc::clone(&counters),
    )?;
    let progress = Progress::start(
        Arc::clone(&counters),
        total_bytes,
        cfg.progress_every,
        move || throttle.requests(),
    );
    let on = send::Sending {
        executor: executor.as_ref(),
        watch: watch.as_deref(),
        gate: gate::Gate::new(&cfg),
        store: &store,
        counters: &counters,
        cancel: &cancel,
    };
    let sent = send::all(rows, &cfg, on).await?;
    progress.finish();
    let read = planning.finish().await?;

    // Customers the file no longer has; then the target is done with.
    let read_to_end = !cancel.is_cancelled() && sent.fatal.is_none() && sent.wrong_base.is_none();
    let deletes = match (&executor, sent.stopped) {
        (Some(_), Some(Stop::Outage)) => Deletes::Stopped,
        (Some(exec), _) => Deletes::Send(exec),
        (None, _) => Deletes::DryRun,
    };
    let absent = absent::settle(
        &store,
        &read.index,
        &read.keys,
        read.absent.filter(|_| read_to_end),
        &cfg.absent,
        deletes,
    )
    .await?;
    if let Some(sb) = sandbox {
        sb.shutdown().await;
    }

    let (requests, retries) = executor
        .as_ref()
        .map_or((0, 0), |e| (e.requests(), e.retries()));
    let work = end::Work {
        index: read.index,
        sent,
        absent,
        requests,
        retries,
    };
    end::finish(&cfg, &store, work, started, cancel.is_cancelled()).await
}

/// Opens the input file, as the run and a census read it.
fn open_input(cfg: &SyncConfig) -> Result<Reader, InputError> {
    Reader::open(&cfg.input, cfg.default_website, cfg.mapping.clone())
}
