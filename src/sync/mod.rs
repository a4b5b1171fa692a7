//! `custsync sync`, the pipeline:
//!
//! ```text
//! CSV file --read thread: parse, validate--> plan thread: keys, hashes, index and sled look-ups
//!   --bounded channel (batches)--> send loop: rows to send are checked against the shop's
//!   model (shop), then go out under the rate limit, at most --concurrency at a time, with
//!   retries (exec); the rest are recorded at once
//!   --> one sink: report line, review, run history, counts, progress, state writer thread
//!   --> absent customers: counted, listed, deleted (absent)
//!   --> the end: state stamp and index, summary, history, review, how the run ended
//! ```
//!
//! Each stage is a module: `read.rs`, `send.rs` (with the `--max-absent` guard, `guard.rs`),
//! [`crate::absent`], `end.rs`; [`run`] connects them, and `ending.rs` says how a run ends.
//! Before any of it, the state store must be bound to the run's target ([`connect::admit`]): a
//! run elsewhere stops there, having sent nothing and written nothing in the state directory.
//! Interrupts (SIGINT/SIGTERM) stop the reading; rows already read are drained (in-flight
//! requests get a grace period), state is flushed and the report and summary written. An
//! outage ([`crate::outage`]) stops the sending the same way, but the reading goes on, so that
//! every row is reported.
//!
//! Every run that opens its state directory is recorded in the run history ([`crate::runs`]):
//! its rows as they finish, its summary at the end, or its error when a fatal one stops it.

mod end;
mod ending;
mod guard;
mod read;
mod send;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::absent::{self, Deletes};
use crate::api::Client;
use crate::bulk;
use crate::config::{SyncConfig, Target};
use crate::connect;
use crate::console;
use crate::exec::Executor;
use crate::input::{InputError, Reader};
use crate::outage::Watch;
use crate::outcome::Skip;
use crate::outputs::{self, Output};
use crate::progress::{Counters, Progress};
use crate::report::{Report, Review, RunInfo};
use crate::retry::Retrier;
use crate::runs::{Recorder, RowLog};
use crate::shop::{self, Gate};
use crate::state::{Binding, Store};
use crate::throttle::Throttle;

pub use ending::{Ending, Finished, Stop, SyncError, exit_of};

/// Runs `custsync sync`.
pub async fn run(cfg: SyncConfig, cancel: CancellationToken) -> Result<Finished, SyncError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let cfg = Arc::new(cfg);

    // Claim every output (checked and created) before the input is read, the state touched
    // or a request sent; open the file and the state store, and start the run's record in
    // the history.
    let reads: Vec<&std::path::Path> = std::iter::once(&cfg.input)
        .chain(&cfg.reads)
        .map(|p| p.as_path())
        .collect();
    let claimed = outputs::claim(
        &reads,
        Some(&cfg.connect.state_dir),
        [
            ("--report", cfg.report.as_deref()),
            ("--summary-json", cfg.summary_json.as_deref()),
            ("--absent-report", cfg.absent.report.as_deref()),
            ("--review", cfg.review.as_deref()),
        ],
    )?;
    let [report, summary, absent_report, review] = claimed;
    // A run that stops on a fatal error still says so in its summary file: monitoring that
    // reads it must not find the last good night's there.
    let opened = open_input(&cfg)
        .map_err(SyncError::from)
        .and_then(|reader| Ok((reader, open_store(&cfg, started_at)?)));
    let (reader, (store, target, history, rows)) = match opened {
        Ok(opened) => opened,
        Err(e) => return Err(end::fatal(summary, run_info(&cfg, started_at), &cfg, e)),
    };
    let outputs = [report, absent_report, review];
    match pipeline(&cfg, &cancel, reader, &store, target, outputs, rows).await {
        Ok(work) => {
            let interrupted = cancel.is_cancelled();
            let finished =
                end::finish(&cfg, &store, work, summary, history, started, interrupted).await;
            if let (Ok(f), Ok(store)) = (&finished, Arc::try_unwrap(store)) {
                let replay = f.summary.created + f.summary.updated >= crate::state::REPLAY_AFTER;
                let closed = tokio::task::spawn_blocking(move || store.close(replay)).await;
                // Everything is on disk already: a store that did not close cleanly costs
                // the next run its replay, nothing else.
                if let Ok(Err(e)) = closed {
                    tracing::warn!("closing the state store: {e}");
                }
            }
            finished
        }
        Err(e) => {
            let run = history.run().clone();
            Err(end::fatal(summary, run, &cfg, end::abandon(history, e)))
        }
    }
}

/// The state store, admitted for the run's target and key, and the run's record started.
fn open_store(
    cfg: &SyncConfig,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<(Arc<Store>, Binding, Recorder, RowLog), SyncError> {
    let store = Arc::new(Store::open_reading_index(&cfg.connect.state_dir)?);
    let target = connect::admit(&store, &cfg.connect, cfg.dry_run, cfg.quiet)?;
    store.admit_key(cfg.mapping.key(), cfg.dry_run)?;
    let (history, rows) = Recorder::start(
        &cfg.connect.state_dir,
        cfg.keep_runs,
        cfg.dry_run,
        run_info(cfg, started_at),
    )?;
    Ok((store, target, history, rows))
}

/// How long a bulk loop waits for a queue that works none of its operations.
const BULK_STALL_LIMIT: Duration = Duration::from_secs(600);
/// How long the resolution of an earlier run's bulks waits for operations still open.
const BULK_RECOVERY_PATIENCE: Duration = Duration::from_secs(120);

/// Resolves the bulks an earlier run left unresolved (see [`bulk::resolve`]); how many are
/// still open.
async fn resolve_bulks(
    client: &Client,
    store: &Arc<Store>,
    retrier: &Retrier,
) -> Result<usize, SyncError> {
    if store.bulks_len() == 0 {
        return Ok(0);
    }
    let done = bulk::resolve(client, store, retrier, BULK_RECOVERY_PATIENCE).await?;
    console::note(&format!(
        "note: resolved {} bulks an earlier run left behind ({} customers recorded)",
        done.bulks, done.recorded,
    ));
    Ok(done.left)
}

/// Opens the input file, as the run and a census read it.
fn open_input(cfg: &SyncConfig) -> Result<Reader, InputError> {
    Reader::open_with(
        &cfg.input,
        cfg.default_website,
        cfg.mapping.clone(),
        &cfg.format,
    )
}

/// What the summary says of the run itself, as far as it is known at the start.
fn run_info(cfg: &SyncConfig, started_at: chrono::DateTime<chrono::Utc>) -> RunInfo {
    RunInfo {
        started_at: crate::report::timestamp(started_at),
        file: cfg.input.display().to_string(),
        target: match &cfg.connect.target {
            Target::Sandbox => "sandbox".to_owned(),
            Target::Remote(c) => crate::redact::url(&c.endpoint),
        },
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..RunInfo::default()
    }
}

/// Everything from connecting to the absent customers: what the run did, for its end.
async fn pipeline(
    cfg: &Arc<SyncConfig>,
    cancel: &CancellationToken,
    reader: Reader,
    store: &Arc<Store>,
    target: Binding,
    [report, absent_report, review]: [Option<Output>; 3],
    history: RowLog,
) -> Result<end::Work, SyncError> {
    let empty_store = store.is_empty();
    let writers = send::Writers {
        report: report
            .map(|o| Report::create(o, cfg.report_only.clone()))
            .transpose()?,
        review: review.map(Review::new),
        history,
    };
    let total_bytes = std::fs::metadata(&cfg.input).map_or(0, |m| m.len());
    let throttle = Arc::new(Throttle::new(cfg.rate));
    let (sandbox, client) =
        connect::connect(&cfg.connect, cfg.concurrency, Arc::clone(&throttle)).await?;
    let client = client.map(Arc::new);
    let ignored = reader.ignored_columns();
    if !ignored.is_empty() {
        console::note(&format!(
            "note: ignoring columns custsync does not know: {}",
            ignored.join(", ")
        ));
    }
    // The index the rows are planned against, once loaded: the executor reads the store's
    // ids from it.
    let index = Arc::new(OnceLock::new());
    // The sending stops on an interrupt, or when the watch finds the shop gone; the watch sees
    // every request the run makes, the shop's model read among them.
    let sending = cancel.child_token();
    let watch = (client.as_ref())
        .map(|c| Watch::start(cfg.outage_after, c.endpoint().to_owned(), sending.clone()));
    let executor = (client.as_ref().zip(watch.as_ref()))
        .filter(|_| !cfg.dry_run)
        .map(|(c, w)| {
            Executor::new(Arc::clone(c), cfg.retry, sending.clone(), Arc::clone(store))
                .watching(Arc::clone(w))
                .knowing(Arc::clone(&index))
        });
    let retrier = Retrier::new(cfg.retry, sending.clone());
    let bulk_retrier = match &watch {
        Some(w) => Retrier::new(cfg.retry, sending.clone()).watching(Arc::clone(w)),
        None => Retrier::new(cfg.retry, sending.clone()),
    };
    // Bulks an earlier run left unresolved are settled before anything is planned; a dry run
    // cannot record what they did, so its counts may differ from the real run's.
    // Rows of bulks still open must not be planned over: a create planned again while the
    // queue holds it is a second customer when the key is not the e-mail. So nothing is sent:
    // every row is read and reported not sent, and the run fails. (Interrupted, the run reads
    // nothing more and ends as interrupted.)
    let mut open_bulks = 0;
    if let (Some(c), Some(_)) = (&client, &executor) {
        open_bulks = resolve_bulks(c, store, &bulk_retrier).await?;
    } else if store.bulks_len() > 0 {
        console::note(&format!(
            "note: {} bulks an earlier run submitted are not resolved yet: the real run \
             resolves them first, so its counts can differ from this dry run's",
            store.bulks_len()
        ));
    }
    let mut gate = Gate::new(shop::Setup {
        client: client.clone(),
        retrier: match &watch {
            Some(w) => retrier.watching(Arc::clone(w)),
            None => retrier,
        },
        store: Arc::clone(store),
        target,
        rules: shop::Rules::new(&cfg.regions_optional).keyed_by(cfg.mapping.key().attribute()),
        dry_run: cfg.dry_run,
        quiet: cfg.quiet,
        empty_store,
        force: cfg.plan.force,
    });

    // Read and plan on threads of their own, send here.
    let counters = Arc::new(Counters::default());
    let options = read::PlanningOptions {
        plan: cfg.plan,
        mark_doubts: !cfg.dry_run,
    };
    let (planned, planning) = read::start(
        reader,
        Arc::clone(store),
        index,
        options,
        cancel,
        Arc::clone(&counters),
    );
    let waiting = executor.as_ref().map(Executor::waiting);
    let requested = Arc::clone(&throttle);
    let progress = Progress::start(
        Arc::clone(&counters),
        total_bytes,
        cfg.progress_every,
        move || requested.requests(),
        move || waiting.as_ref().and_then(|w| w.describe()),
    );
    let on = send::Sending {
        gate: &mut gate,
        executor: executor.as_ref(),
        watch: watch.as_deref(),
        guard: guard::Guard::new(cfg),
        store,
        counters: &counters,
        cancel,
        bulk: cfg
            .bulk
            .zip(client.as_deref())
            .map(|(size, shop)| send::Lane {
                settings: bulk::Settings {
                    size,
                    concurrency: cfg.concurrency,
                    retries: cfg.retry.retries,
                    stall_limit: BULK_STALL_LIMIT,
                },
                shop,
                retrier: &bulk_retrier,
                store: Arc::clone(store),
                sending: sending.clone(),
            }),
        hold: (open_bulks > 0 && !cancel.is_cancelled()).then_some(Skip::BulksOpen),
    };
    let mut sent = send::all(planned, writers, cfg, on).await?;
    if open_bulks > 0 && !cancel.is_cancelled() {
        sent.fatal.get_or_insert(SyncError::BulksOpen {
            left: open_bulks,
            waited_s: BULK_RECOVERY_PATIENCE.as_secs(),
        });
    }
    progress.finish();
    let read = planning.finish().await?;

    // Customers the file no longer has; then the target is done with.
    let read_to_end = !cancel.is_cancelled() && sent.fatal.is_none();
    let mut deletes = match (&executor, sent.stopped) {
        (Some(_), _) if open_bulks > 0 => Deletes::Stopped,
        (Some(_), Some(Stop::Outage)) => Deletes::Stopped,
        (Some(exec), _) => Deletes::Send(exec),
        (None, _) => Deletes::DryRun,
    };
    // Deletes go by the store's ids too: not through mappings that are another shop's.
    if matches!(deletes, Deletes::Send(_))
        && read_to_end
        && cfg.absent.max_deletes.is_some()
        && let Err(e) = gate.vouched().await
    {
        sent.fatal.get_or_insert(e.into());
        deletes = Deletes::Stopped;
    }
    let mut keys = read.keys;
    keys.unkeyed += gate.unknown_websites();
    let absent = absent::settle(
        store,
        &read.index,
        &keys,
        read.absent.filter(|_| read_to_end),
        &cfg.absent,
        absent_report,
        deletes,
    )
    .await?;
    if let Some(sb) = sandbox {
        sb.shutdown().await;
    }

    // Every request passed the throttle: the shop's model and its customer count (a dry run's
    // only requests), the writes, their look-ups and retries.
    let requests = throttle.requests();
    let retries =
        executor.as_ref().map_or(0, Executor::retries) + gate.retries() + bulk_retrier.retries();
    Ok(end::Work {
        index: read.index,
        rows: read.rows,
        sent,
        absent,
        requests,
        retries,
        sha256: read.sha256,
    })
}
