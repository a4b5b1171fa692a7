//! Reading and planning, on two threads of their own so that both cores are busy on a large
//! file (and sled's blocking reads stay off the async workers): one parses and validates
//! ([`crate::input`]), the other plans ([`crate::plan`]: keys, hashes, index and sled
//! look-ups). Planned rows reach the sender in batches through a bounded channel; before a
//! batch goes, the planner marks its updates in doubt with one flush (a real run only), so
//! that no update can leave unmarked (see `state/doubt.rs`). Once the whole file is planned,
//! the count of the store's keys it does not name follows the rows, for the `--max-absent`
//! gate.
//!
//! With an index file that matches the store, the reading thread asks it first whether a
//! row is known as it is (by its row hash, see `input/quick.rs`, or after `pull` by its values
//! hash, see `input/values.rs`): such a row is neither validated nor built, and is planned
//! unchanged. Not under `--force` or `--only-failed`, nor for a key in doubt.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ending::SyncError;
use crate::absent;
use crate::customer::Key;
use crate::input::{Known, Reader, Record};
use crate::plan::{self, Duplicates, FileKeys, OnDuplicate, Planned, Planner, RowHashes};
use crate::progress::Counters;
use crate::state::{Doubt, Index, Indexed, StateError, Store};

/// Rows per message from the reader thread: amortises channel costs on large files (each
/// message may wake a thread: at 256 rows a 1M-row re-run switched threads 10,000 times).
const BATCH: usize = 1024;
/// Batches the reader may run ahead of the planner, and the planner of the sender.
const QUEUE: usize = 8;

/// The planned rows as they come, for the sender.
pub struct Rows {
    rx: mpsc::Receiver<Vec<Planned>>,
    reading: CancellationToken,
    index: Arc<OnceLock<Arc<Index>>>,
    absent: Option<oneshot::Receiver<u64>>,
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

    /// The index the rows are planned against; there once the first row has been planned.
    pub fn index(&self) -> Option<Arc<Index>> {
        self.index.get().cloned()
    }

    /// After [`Rows::next`] said the rows are all delivered: how many of the store's keys the
    /// file does not name, or `None` when the file was not read to the end.
    pub async fn absent(&mut self) -> Option<u64> {
        self.absent.take()?.await.ok()
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
    pub index: Arc<Index>,
    /// The SHA-256 of the file's bytes, once read.
    pub sha256: Option<String>,
    /// How many of the index's keys the file does not name; `None` unless it was read to the
    /// end.
    pub absent: Option<u64>,
    /// The row hashes the index should learn.
    pub rows: RowHashes,
}

/// How the rows are planned.
#[derive(Clone, Copy, Debug)]
pub struct PlanningOptions {
    pub plan: plan::Options,
    /// Mark updates in doubt before they go: false in a dry run, which changes no state.
    pub mark_doubts: bool,
}

/// Starts reading `reader` and planning its rows against `store`, and sets `shared` to the
/// index they are planned against. Nothing may write the store until the first row is
/// planned: a write makes the index file stale, and the planning would scan the store instead.
pub fn start(
    reader: Reader,
    store: Arc<Store>,
    shared: Arc<OnceLock<Arc<Index>>>,
    options: PlanningOptions,
    cancel: &CancellationToken,
    counters: Arc<Counters>,
) -> (Rows, Planning) {
    let reading = cancel.child_token();
    let (tx, rx) = mpsc::channel(QUEUE);
    let (absent_tx, absent_rx) = oneshot::channel();
    let task = {
        let reading = reading.clone();
        let shared = Arc::clone(&shared);
        // Loading the index waits for its file (read since the store opened): not on an
        // async worker.
        tokio::task::spawn_blocking(move || {
            let index = store.load_index()?;
            let ends = Ends {
                tx: &tx,
                index: &shared,
                absent: absent_tx,
            };
            read(reader, &store, index, options, &reading, &counters, ends)
        })
    };
    let rows = Rows {
        rx,
        reading,
        index: shared,
        absent: Some(absent_rx),
    };
    (rows, Planning { task })
}

/// Where the threads' results go, besides the returned [`Read`].
struct Ends<'a> {
    /// The planned rows.
    tx: &'a mpsc::Sender<Vec<Planned>>,
    /// The index, once it is loaded or built.
    index: &'a OnceLock<Arc<Index>>,
    /// The absent count, once the whole file is planned.
    absent: oneshot::Sender<u64>,
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
    ends: Ends<'_>,
) -> Result<Read, SyncError> {
    let (tx, shared) = (ends.tx, ends.index);
    // `--on-duplicate last|error` needs the file's duplicated keys before its first row.
    let duplicates = match options.plan.on_duplicate {
        OnDuplicate::First => Duplicates::default(),
        OnDuplicate::Last | OnDuplicate::Error => {
            Duplicates::scan(reader.reopen()?.take_while(|_| !reading.is_cancelled()))?
        }
    };
    let doubts = store.doubts()?;
    let loaded = index.map(Arc::new);
    // A row hash is only ever recorded in an index file (a rebuilt index has none).
    let fast = loaded
        .clone()
        .filter(|_| !options.plan.force && !options.plan.only_failed);
    // The planner plans against this same index: the place of a key is the same in both.
    let known = |asks: &[u64], out: &mut Vec<Option<(u64, usize, u64)>>| {
        let Some(index) = fast.as_ref() else { return };
        let mut found = Vec::with_capacity(asks.len());
        index.find_all(asks.iter().copied(), &mut found);
        out.extend(asks.iter().zip(found).map(|(&digest, found)| {
            let (at, k) = found?;
            doubts
                .get(digest)
                .is_none()
                .then_some((k.customer_id, at, k.row()))
        }));
    };
    let (records_tx, records_rx) = std::sync::mpsc::sync_channel::<Vec<(Record, u64)>>(8);
    std::thread::scope(|scope| {
        let doubts = &doubts;
        let planning = scope.spawn(move || -> Result<PlanningDone, SyncError> {
            // Without a current index file, one from a scan of the store (nothing writes it
            // before a row is planned) costs less than a sled read per row; parsing goes on
            // meanwhile.
            let index = match loaded {
                Some(index) => index,
                None => Arc::new(store.build_index()?),
            };
            let _ = shared.set(Arc::clone(&index));
            let known = Indexed {
                store,
                index: &index,
                doubts,
            };
            let mut planner = Planner::new(&known, options.plan).with_duplicates(duplicates);
            for records in records_rx {
                // Sized up front: a collect into a `Result` grew it step by step, copying.
                let mut planned = Vec::with_capacity(records.len());
                for (record, row_hash) in records {
                    planned.push(planner.plan_hashed(record, row_hash)?);
                }
                if options.mark_doubts {
                    doubt_updates(store, &planned)?;
                }
                if tx.blocking_send(planned).is_err() {
                    break;
                }
            }
            let rows = planner.take_row_hashes();
            Ok((planner.into_keys(), index, rows))
        });
        let mut batch = Vec::with_capacity(BATCH);
        let mut read_error = None;
        let mut at_end = false;
        // Rows known unchanged without validation: by their row hash, by their values hash.
        let mut known_by = (0u64, 0u64);
        let check: Known<'_> = &known;
        let check = fast.is_some().then_some(check);
        loop {
            // The token takes a lock to ask: once in a while, not at every row.
            if batch.len() % 64 == 0 && reading.is_cancelled() {
                break;
            }
            match reader.next_with(check) {
                None => {
                    at_end = true;
                    break;
                }
                Some(Ok(record)) => {
                    match record {
                        (Record::Same(_), 0) => known_by.0 += 1,
                        (Record::Same(_), _) => known_by.1 += 1,
                        _ => {}
                    }
                    batch.push(record);
                }
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
        tracing::debug!(
            by_row_hash = known_by.0,
            by_values_hash = known_by.1,
            "rows known unchanged without being validated"
        );
        let (keys, index, rows) = planning.join().map_err(|_| SyncError::ReaderPanicked)??;
        if let Some(e) = read_error {
            return Err(e.into());
        }
        let absent = at_end.then(|| absent::count(&index, &keys));
        if let Some(n) = absent {
            // The sender may be gone (it stopped on a fatal error): nobody needs the count then.
            let _ = ends.absent.send(n);
        }
        // A run stopped early still names the file it was given: the rest is read through
        // the digest only.
        let sha256 = Some(reader.sha256()?);
        Ok(Read {
            keys,
            index,
            sha256,
            absent,
            rows,
        })
    })
}

/// What the planning thread leaves: the file's keys, the index, the row hashes to record.
type PlanningDone = (FileKeys, Arc<Index>, RowHashes);

/// Marks the updates among `planned` (and the creates under a custom key) in doubt, durably,
/// before any of them can be sent.
fn doubt_updates(store: &Store, planned: &[Planned]) -> Result<(), StateError> {
    let marks: Vec<(Key, Doubt)> = (planned.iter())
        .filter_map(|p| {
            let update = p.step.updated_key().map(|key| (key, Doubt::Update));
            // A create under a custom key, which "already exists" cannot catch.
            update.or_else(|| p.step.custom_created_key().map(|key| (key, Doubt::Create)))
        })
        .collect();
    store.doubt(&marks)
}
