//! The state writer: a thread of its own that applies the sync's changes to sled in small
//! batches, so that sled's blocking writes stay off the async workers.
//!
//! Within a batch, the mappings are written before the marks they settle are cleared (mappings
//! with their values, then the values of schema 2 they replace, then failed marks, then doubt
//! marks): sled recovers a prefix of its writes after a crash, so a mark is never lost while
//! the mapping it guards is.

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use super::target::bind_if_unbound;
use super::{Entry, StateError, Store, last_sent, stored_value};
use crate::customer::{Fields, Key};

/// Small batches: very large sled batches were seen to grow a process past 3 GB.
const MAX_BATCH: usize = 512;
/// How long the writer waits for more ops to batch with the first (see [`gather`]).
const GATHER: Duration = Duration::from_millis(20);

/// One change for the [`Writer`].
#[derive(Debug)]
pub enum Op {
    /// The API confirmed this key's customer; the fields, when given, replace the last-sent
    /// values kept for change messages. Settles a doubt about the key.
    Put(Key, Entry, Option<Fields>),
    /// The API confirmed an update of this key's customer: the fields sent replace the ones
    /// kept, and the others stay, for the shop kept them too (a row without address columns
    /// leaves the address as it was).
    Update(Key, Entry, Fields),
    /// The API refused or retries ran out: remember the key for `--only-failed`.
    Failed(Key),
    /// The key's write surely did not change the shop (refused outright, or never sent):
    /// clear its doubt mark.
    Settle(Key),
}

/// Handle of the writer thread; [`Writer::finish`] waits until every op is applied.
pub struct Writer {
    tx: mpsc::Sender<Op>,
    handle: Result<thread::JoinHandle<Result<(), StateError>>, StateError>,
}

impl Store {
    /// Starts the writer thread that applies [`Op`]s in small batches.
    pub fn writer(&self) -> Result<Writer, StateError> {
        // Unbounded is safe here: ops arrive at the API's confirmation rate, far below what
        // sled applies, so the queue stays short.
        let (tx, rx) = mpsc::channel::<Op>();
        let trees = Trees {
            customers: self.customers.clone(),
            // A store created by schema 3 has none: no removal per confirmation then.
            fields: (!self.fields.is_empty()).then(|| self.fields.clone()),
            failed: self.failed.clone(),
            doubt: self.doubt.clone(),
        };
        let (db, mut bind) = (self.db.clone(), self.pending_binding());
        let kept_generation = Arc::clone(&self.kept_generation);
        let invalidated = Arc::clone(&self.index_invalidated);
        let path = self.dir.join("db");
        let handle = thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || {
                let err = |source| StateError::Sled {
                    path: path.clone(),
                    source,
                };
                while let Ok(first) = rx.recv() {
                    // Before the first write, not when the writer starts: a run that writes
                    // nothing leaves sled untouched (see `Store::keep_index`).
                    super::invalidate_index(&db, &invalidated).map_err(err)?;
                    let ops = gather(&rx, first);
                    // The first mapping binds an unbound store to the run's target.
                    let puts = ops
                        .iter()
                        .any(|op| matches!(op, Op::Put(..) | Op::Update(..)));
                    if puts {
                        kept_generation.store(0, Ordering::Relaxed);
                    }
                    if bind.is_some() && puts {
                        bind_if_unbound(&db, bind.take()).map_err(err)?;
                    }
                    trees.apply(ops).map_err(err)?;
                }
                Ok(())
            })
            .map_err(|source| StateError::Io {
                path: self.dir.clone(),
                source,
            });
        Ok(Writer { tx, handle })
    }
}

/// The trees the writer changes.
struct Trees {
    customers: sled::Tree,
    /// The values of schema 2, when the store still holds some.
    fields: Option<sled::Tree>,
    failed: sled::Tree,
    doubt: sled::Tree,
}

impl Trees {
    fn apply(&self, ops: Vec<Op>) -> Result<(), sled::Error> {
        let mut puts = sled::Batch::default();
        let mut old_values = sled::Batch::default();
        let mut fails = sled::Batch::default();
        let mut settled = sled::Batch::default();
        // Keys whose failed mark changes in this batch.
        let mut marked = HashSet::new();
        let mut any_settled = false;
        for op in ops {
            let (key, entry, f) = match op {
                Op::Put(key, entry, f) => (key, entry, f),
                Op::Update(key, entry, sent) => {
                    let last = last_sent(&self.customers, self.fields.as_ref(), &key.to_bytes());
                    let mut kept = last?.unwrap_or_default();
                    kept.extend(sent);
                    (key, entry, Some(kept))
                }
                Op::Failed(key) => {
                    let k = key.to_bytes();
                    fails.insert(k.clone(), &[]);
                    marked.insert(k);
                    continue;
                }
                Op::Settle(key) => {
                    settled.remove(key.to_bytes());
                    any_settled = true;
                    continue;
                }
            };
            let k = key.to_bytes();
            // Most keys never failed and are in no doubt: removing each anyway was a log write
            // per confirmation.
            if marked.contains(&k) || self.failed.contains_key(&k)? {
                fails.remove(k.clone());
                marked.insert(k.clone());
            }
            if self.doubt.contains_key(&k)? {
                settled.remove(k.clone());
                any_settled = true;
            }
            if f.is_some() && self.fields.is_some() {
                old_values.remove(k.clone());
            }
            puts.insert(
                k.clone(),
                stored_value(&self.customers, &k, &entry, f.as_ref())?,
            );
        }
        self.customers.apply_batch(puts)?;
        // After the mappings that hold the new values: the old ones are never read again.
        if let Some(fields) = &self.fields {
            fields.apply_batch(old_values)?;
        }
        if !marked.is_empty() {
            self.failed.apply_batch(fails)?;
        }
        if any_settled {
            self.doubt.apply_batch(settled)?;
        }
        Ok(())
    }
}

/// `first` and the ops queued behind it, up to [`MAX_BATCH`]; when that is not a full batch,
/// after waiting [`GATHER`] for more. Every sled batch costs log writes of its own (at 3,000
/// confirmations a second, batches of one or two kept seven sled IO threads busy), and sled
/// makes writes durable only every half second anyway. The wait is a sleep, not a wait on the
/// channel, so that the ops arriving meanwhile do not wake this thread one by one.
fn gather(rx: &mpsc::Receiver<Op>, first: Op) -> Vec<Op> {
    let mut ops = vec![first];
    ops.extend(rx.try_iter().take(MAX_BATCH - 1));
    if ops.len() < MAX_BATCH {
        thread::sleep(GATHER);
        ops.extend(rx.try_iter().take(MAX_BATCH - ops.len()));
    }
    ops
}

impl Writer {
    /// Queues one op. Never blocks.
    pub fn send(&self, op: Op) {
        // A send fails only when the thread has stopped on an error, which `finish` reports.
        let _ = self.tx.send(op);
    }

    /// Waits for every queued op to be applied.
    pub fn finish(self) -> Result<(), StateError> {
        drop(self.tx);
        match self.handle?.join() {
            Ok(result) => result,
            Err(_) => Err(StateError::Io {
                path: PathBuf::from("state-writer"),
                source: io::Error::other("the state writer thread panicked"),
            }),
        }
    }
}
