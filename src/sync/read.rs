//! Reading and planning, on two threads of their own so that both cores are busy on a large
//! file (and sled's blocking reads stay off the async workers): one parses and validates
//! ([`crate::input`]), the other plans ([`crate::plan`]: keys, hashes, index and sled
//! look-ups). Planned rows reach the sender in batches through a bounded channel; before a
//! batch goes, the planner marks its updates in doubt with one flush (a real run only), so
//! that no update can leave unmarked (see `state/doubt.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ending::SyncError;
use crate::input::{Reader, Record};
use crate::plan::{self, Duplicates, FileKeys, OnDuplicate, Planned, Planner};
use crate::report::Counters;
use crate::state::{Doubt, Index, Indexed, StateError, Store};

/// Rows per message from the reader thread: amortises channel costs on large files.
const BATCH: usize = 256;
/// Batches the reader may run ahead of the planner, and the planner of the sender.
const QUEUE: usize = 16;

/// The planned rows as they come, for the sender.
pub struct Rows {
    rx: mpsc::Receiver<Vec<Planned>>,
    reading: CancellationToken,
}

impl Rows {
    /// The next batch; `None` once the file is read (or the reading stopped).
    pub async fn next(&mut self) -> Option<Vec<Planned>> {
        self.rx.recv().await
    }

    /// A token that stops the reading when cancelled; rows already read are still planned
    /// and delivered.
    pub fn stopper(&self) -> CancellationToken {
        self.reading.clone()
    }
}

/// The reading and planning threads, until they are done.
pub struct Planning {
    task: JoinHandle<Result<Read, SyncError>>,
}

/// What reading the whole file told.
pub struct Read {
    /// The keys the file names, for the absent check.
    pub keys: FileKeys,
    /// The index the rows were planned against: every key of the store when the run began.
    pub index: Index,
    /// The SHA-256 of the file's bytes, once read.
    pub sha256: Option<String>,
}

/// How the rows are planned.
#[derive(Clone, Copy, Debug)]
pub struct PlanningOptions {
    pub plan: plan::Options,
    /// Mark updates in doubt before they go: false in a dry run, which changes no state.
    pub mark_doubts: bool,
}

/// Starts reading `reader` and planning its rows against `store`. Call it before anything
/// writes the store: a write makes the index file stale.
pub fn start(
    reader: Reader,
    store: Arc<Store>,
    options: PlanningOptions,
    cancel: &CancellationToken,
    counters: Arc<Counters>,
) -> Result<(Rows, Planning), SyncError> {
    let index = store.load_index()?;
    let reading = cancel.child_token();
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = {
        let reading = reading.clone();
        tokio::task::spawn_blocking(move || {
            read(reader, &store, index, options, &reading, &counters, &tx)
        })
    };
    Ok((Rows { rx, reading }, Planning { task }))
}

impl Planning {
    /// Waits for both threads (the sender has taken every row).
    pub async fn finish(self) -> Result<Read, SyncError> {
        self.task.await.map_err(|_| SyncError::ReaderPanicked)?
    }
}

/// The two threads' work: this one parses and validates, a scoped one plans.
fn read(
    mut reader: Reader,
    store: &Store,
    index: Option<Index>,
    options: PlanningOptions,
    reading: &CancellationToken,
    counters: &Counters,
    tx: &mpsc::Sender<Vec<Planned>>,
) -> Result<Read, SyncError> {
    // `--on-duplicate last|error` needs the file's duplicated keys before its first row.
    let duplicates = match options.plan.on_duplicate {
        OnDuplicate::First => Duplicates::default(),
        OnDuplicate::Last | OnDuplicate::Error => {
            Duplicates::scan(reader.reopen()?.take_while(|_| !reading.is_cancelled()))?
        }
    };
    let (records_tx, records_rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(8);
    std::thread::scope(|scope| {
        let planning = scope.spawn(move || -> Result<Read, SyncError> {
            // Without a current index file, one from a scan of the store (nothing writes it
            // before a row is planned) costs less than a sled read per row; parsing goes on
            // meanwhile.
            let index = match index {
                Some(index) => index,
                None => store.build_index()?,
            };
            let doubts = store.doubts()?;
            let known = Indexed {
                store,
                index: &index,
                doubts: &doubts,
            };
            let mut planner = Planner::new(&known, options.plan).with_duplicates(duplicates);
            for records in records_rx {
                let planned = records
                    .into_iter()
                    .map(|r| planner.plan(r))
                    .collect::<Result<Vec<_>, _>>()?;
                if options.mark_doubts {
                    doubt_updates(store, &planned)?;
                }
                if tx.blocking_send(planned).is_err() {
                    break;
                }
            }
            let keys = planner.into_keys();
            Ok(Read {
                keys,
                index,
                sha256: None,
            })
        });
        let mut batch = Vec::with_capacity(BATCH);
        let mut read_error = None;
        while !reading.is_cancelled() {
            match reader.next() {
                None => break,
                Some(Ok(record)) => batch.push(record),
                Some(Err(e)) => {
                    read_error = Some(e);
                    break;
                }
            }
            if batch.len() == BATCH {
                counters
                    .bytes_read
                    .store(reader.bytes_read(), Ordering::Relaxed);
                counters.read.fetch_add(BATCH as u64, Ordering::Relaxed);
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if records_tx.send(full).is_err() {
                    break;
                }
            }
        }
        counters
            .bytes_read
            .store(reader.bytes_read(), Ordering::Relaxed);
        counters
            .read
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if !batch.is_empty() {
            let _ = records_tx.send(batch);
        }
        drop(records_tx);
        let mut planned = planning.join().map_err(|_| SyncError::ReaderPanicked)??;
        match read_error {
            Some(e) => Err(e.into()),
            None => {
                // A run stopped early still names the file it was given: the rest is read
                // through the digest only.
                planned.sha256 = Some(reader.sha256()?);
                Ok(planned)
            }
        }
    })
}

/// Marks the updates among `planned` in doubt, durably, before any of them can be sent.
fn doubt_updates(store: &Store, planned: &[Planned]) -> Result<(), StateError> {
    let keys: Vec<_> = planned
        .iter()
        .filter_map(|p| p.step.updated_key())
        .collect();
    store.doubt(&keys, Doubt::Update)
}
