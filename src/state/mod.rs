//! The local state store: for each key, the customer id Commerce confirmed and the hash of the
//! payload last sent. Backed by sled, behind one lock file per state directory.
//!
//! sled calls block, so the sync pipeline reads on its planning thread and writes through
//! [`Writer`], a thread of its own that applies small batches. A mapping is written only after
//! the API confirmed the write; sled flushes its log every half second and at the end, so a
//! killed run loses at most the last moments of confirmations, which the next run recovers by
//! adopting the customers it finds already created.
//!
//! The planner reads the store through the [`Lookup`] trait ([`Indexed`]: the [`Index`] of
//! every key, then sled), so that its decisions can be tested without a disk.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::customer::{Fields, Key};

mod index;
pub mod lookup;
mod target;
mod transfer;
pub use index::{Index, Known};
pub use lookup::{Indexed, Lookup};
pub use target::{Admission, Binding};
pub use transfer::{TransferError, export, import};

/// Bumped when the byte layout of keys or entries changes.
const SCHEMA_VERSION: u8 = 1;
/// sled's default cache is 1 GiB; the planner's look-ups are a single pass, so little helps.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Small batches: very large sled batches were seen to grow a process past 3 GB.
const MAX_BATCH: usize = 512;
/// How long the writer waits for more ops to batch with the first (see [`gather`]).
const GATHER: Duration = Duration::from_millis(20);

/// What can go wrong with the state directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Another process holds the directory's lock.
    #[error(
        "the state directory {dir} is in use by another custsync run (lock file {lock}{holder}); \
         wait for it to finish, or use another --state directory"
    )]
    Locked {
        dir: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    /// The directory or its lock file cannot be created or read.
    #[error("state directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// sled refused an operation.
    #[error("state store {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    /// The store was written by a different version of custsync.
    #[error(
        "state store {path} has schema version {found}, this custsync reads version {SCHEMA_VERSION}"
    )]
    Schema { path: PathBuf, found: u8 },
    /// The store is bound to another target than the run's (see [`Store::admit`]).
    #[error(
        "the state store {dir} is bound to {bound}, but this run goes to {target}; nothing was \
         sent. Give the target it is bound to, use another --state directory, or move the \
         binding on purpose with `custsync state rebind`"
    )]
    Bound {
        dir: PathBuf,
        bound: String,
        target: String,
    },
    /// Mappings from before bindings, from a real shop, and a run against the embedded sandbox.
    #[error(
        "the state store {dir} holds {entries} mappings from a custsync that did not record its \
         target, and the embedded sandbox has no data there, so they came from a real shop; \
         this run goes to the embedded sandbox (no --endpoint or CUSTSYNC_ENDPOINT) and sent \
         nothing. Give the shop's endpoint, or bind the store to the sandbox on purpose with \
         `custsync state rebind`"
    )]
    LegacyNotSandbox { dir: PathBuf, entries: usize },
}

/// What the store remembers about one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The id Commerce gave the customer.
    pub customer_id: u64,
    /// [`crate::customer::Customer::payload_hash`] of the last payload the API accepted.
    pub payload_hash: u128,
    /// Unix seconds of that confirmation.
    pub synced_at: i64,
    /// Id of the default address custsync created, sent back on updates so it is not duplicated.
    pub address_id: Option<u64>,
}

impl Entry {
    const LEN: usize = 1 + 8 + 16 + 8 + 8;

    fn to_bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = SCHEMA_VERSION;
        b[1..9].copy_from_slice(&self.customer_id.to_le_bytes());
        b[9..25].copy_from_slice(&self.payload_hash.to_le_bytes());
        b[25..33].copy_from_slice(&self.synced_at.to_le_bytes());
        b[33..41].copy_from_slice(&self.address_id.unwrap_or(0).to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != Self::LEN || b[0] != SCHEMA_VERSION {
            return None;
        }
        let u64_at = |i: usize| b[i..i + 8].try_into().ok().map(u64::from_le_bytes);
        let address = u64_at(33)?;
        Some(Entry {
            customer_id: u64_at(1)?,
            payload_hash: u128::from_le_bytes(b[9..25].try_into().ok()?),
            synced_at: i64::from_le_bytes(b[25..33].try_into().ok()?),
            address_id: (address != 0).then_some(address),
        })
    }
}

/// One change for the [`Writer`].
#[derive(Debug)]
pub enum Op {
    /// The API confirmed this key's customer; the fields, when given, replace the last-sent
    /// values kept for change messages.
    Put(Key, Entry, Option<Fields>),
    /// The API refused or retries ran out: remember the key for `--only-failed`.
    Failed(Key),
}

/// An open, locked state directory.
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    customers: sled::Tree,
    /// key -> last-sent field values (JSON), read only when a row's hash changed: kept apart
    /// so that the hot look-ups of the planner stay small.
    fields: sled::Tree,
    failed: sled::Tree,
    /// This process already told sled the index file is stale.
    index_invalidated: std::sync::atomic::AtomicBool,
    /// The target the state writer binds the store to with its first mapping.
    pending_binding: std::sync::Mutex<Option<Binding>>,
    _lock: File,
}

impl Store {
    /// Opens (creating it, mode 0700) the state directory and takes its lock.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let lock_path = dir.join("lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&lock_path)
                    .ok()
                    .map(|pid| pid.trim().to_owned())
                    .filter(|pid| !pid.is_empty())
                    .map(|pid| format!(", held by process {pid}"))
                    .unwrap_or_default();
                return Err(StateError::Locked {
                    dir: dir.to_owned(),
                    lock: lock_path,
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        lock.set_len(0).map_err(io_err(&lock_path))?;
        write!(lock, "{}", std::process::id()).map_err(io_err(&lock_path))?;

        let db_path = dir.join("db");
        let sled_err = |source| StateError::Sled {
            path: db_path.clone(),
            source,
        };
        let db = sled::Config::new()
            .path(&db_path)
            .cache_capacity(CACHE_BYTES)
            .flush_every_ms(Some(500))
            .open()
            .map_err(sled_err)?;
        match db.get("schema").map_err(sled_err)? {
            None => {
                db.insert("schema", &[SCHEMA_VERSION]).map_err(sled_err)?;
            }
            Some(v) if v.as_ref() == [SCHEMA_VERSION] => {}
            Some(v) => {
                return Err(StateError::Schema {
                    path: db_path,
                    found: v.first().copied().unwrap_or(0),
                });
            }
        }
        let customers = db.open_tree("customers").map_err(sled_err)?;
        let failed = db.open_tree("failed").map_err(sled_err)?;
        let fields = db.open_tree("fields").map_err(sled_err)?;
        Ok(Store {
            dir: dir.to_owned(),
            db,
            customers,
            fields,
            failed,
            index_invalidated: std::sync::atomic::AtomicBool::new(false),
            pending_binding: std::sync::Mutex::new(None),
            _lock: lock,
        })
    }

    fn err(&self, source: sled::Error) -> StateError {
        StateError::Sled {
            path: self.dir.join("db"),
            source,
        }
    }

    /// The entry for `key`, if the API ever confirmed one.
    pub fn get(&self, key: &Key) -> Result<Option<Entry>, StateError> {
        let v = self
            .customers
            .get(key.to_bytes())
            .map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| Entry::from_bytes(&v)))
    }

    /// The field values last sent for `key` (or read from the shop by `pull`).
    pub fn fields(&self, key: &Key) -> Result<Option<Fields>, StateError> {
        let v = self.fields.get(key.to_bytes()).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Whether `key` failed in an earlier run and has not succeeded since.
    pub fn is_failed(&self, key: &Key) -> Result<bool, StateError> {
        self.failed
            .contains_key(key.to_bytes())
            .map_err(|e| self.err(e))
    }

    /// Number of mapped keys.
    pub fn len(&self) -> usize {
        self.customers.len()
    }

    /// True when no key is mapped.
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    /// Number of keys remembered as failed.
    pub fn failed_len(&self) -> usize {
        self.failed.len()
    }

    /// Every mapping, in key order (website, then email).
    pub fn entries(&self) -> impl Iterator<Item = Result<(Key, Entry), StateError>> + '_ {
        self.customers.iter().filter_map(move |kv| match kv {
            Ok((k, v)) => Some(Ok((Key::from_bytes(&k)?, Entry::from_bytes(&v)?))),
            Err(e) => Some(Err(self.err(e))),
        })
    }

    /// Records a mapping directly (import, pull); the sync uses [`Writer`].
    pub fn put(&self, key: &Key, entry: Entry, fields: Option<&Fields>) -> Result<(), StateError> {
        self.invalidate_index()?;
        let k = key.to_bytes();
        if let Some(f) = fields {
            self.fields
                .insert(k.clone(), encode_fields(f))
                .map_err(|e| self.err(e))?;
        }
        self.customers
            .insert(k, &entry.to_bytes()[..])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Drops a mapping; returns whether there was one.
    pub fn forget(&self, key: &Key) -> Result<bool, StateError> {
        self.invalidate_index()?;
        self.failed
            .remove(key.to_bytes())
            .map_err(|e| self.err(e))?;
        let old = self
            .customers
            .remove(key.to_bytes())
            .map_err(|e| self.err(e))?;
        Ok(old.is_some())
    }

    /// Unix seconds of the end of the last sync that changed state, if any.
    pub fn last_run(&self) -> Result<Option<i64>, StateError> {
        let v = self.db.get("last_run").map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| v.as_ref().try_into().ok().map(i64::from_le_bytes)))
    }

    /// Stamps the end of a sync.
    pub fn set_last_run(&self, unix: i64) -> Result<(), StateError> {
        self.db
            .insert("last_run", &unix.to_le_bytes())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Bytes the store takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StateError> {
        self.db.size_on_disk().map_err(|e| self.err(e))
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<(), StateError> {
        self.db.flush().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Stops trusting the index file until a sync writes a new one; called before any write.
    fn invalidate_index(&self) -> Result<(), StateError> {
        use std::sync::atomic::Ordering;
        if !self.index_invalidated.swap(true, Ordering::Relaxed) {
            self.db
                .remove(index::GENERATION_KEY)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Starts the writer thread that applies [`Op`]s in small batches.
    pub fn writer(&self) -> Result<Writer, StateError> {
        self.invalidate_index()?;
        // Unbounded is safe here: ops arrive at the API's confirmation rate, far below what
        // sled applies, so the queue stays short.
        let (tx, rx) = mpsc::channel::<Op>();
        let customers = self.customers.clone();
        let fields = self.fields.clone();
        let failed = self.failed.clone();
        let (db, mut bind) = (self.db.clone(), self.pending_binding());
        let path = self.dir.join("db");
        let handle = thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || {
                let err = |source| StateError::Sled {
                    path: path.clone(),
                    source,
                };
                while let Ok(first) = rx.recv() {
                    let mut puts = sled::Batch::default();
                    let mut values = sled::Batch::default();
                    let mut fails = sled::Batch::default();
                    // Keys whose failed mark changes in this batch.
                    let mut marked = HashSet::new();
                    for op in gather(&rx, first) {
                        match op {
                            Op::Put(key, entry, f) => {
                                if let Some(b) = bind.take() {
                                    // Only if still unbound: an earlier writer may have bound it.
                                    let absent: Option<&[u8]> = None;
                                    let _ = db
                                        .compare_and_swap(target::BINDING_KEY, absent, Some(b))
                                        .map_err(err)?;
                                }
                                let k = key.to_bytes();
                                // Most keys never failed: removing each anyway was a log
                                // write per confirmation.
                                if marked.contains(&k) || failed.contains_key(&k).map_err(err)? {
                                    fails.remove(k.clone());
                                    marked.insert(k.clone());
                                }
                                if let Some(f) = f {
                                    values.insert(k.clone(), encode_fields(&f));
                                }
                                puts.insert(k, &entry.to_bytes()[..]);
                            }
                            Op::Failed(key) => {
                                let k = key.to_bytes();
                                fails.insert(k.clone(), &[]);
                                marked.insert(k);
                            }
                        }
                    }
                    // Values before the mapping: a mapping is never without its values.
                    fields.apply_batch(values).map_err(err)?;
                    customers.apply_batch(puts).map_err(err)?;
                    if !marked.is_empty() {
                        failed.apply_batch(fails).map_err(err)?;
                    }
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

fn encode_fields(f: &Fields) -> Vec<u8> {
    serde_json::to_vec(f).expect("serialising a map of strings to memory cannot fail")
}

/// Handle of the writer thread; [`Writer::finish`] waits until every op is applied.
pub struct Writer {
    tx: mpsc::Sender<Op>,
    handle: Result<thread::JoinHandle<Result<(), StateError>>, StateError>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64) -> Entry {
        Entry {
            customer_id: id,
            payload_hash: u128::MAX - u128::from(id),
            synced_at: 1_700_000_000,
            address_id: id.is_multiple_of(2).then_some(id * 10),
        }
    }

    #[test]
    fn entries_round_trip_through_the_writer_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Key::new(1, "a@x.io");
        let b = Key::new(2, "B@x.io");
        {
            let store = Store::open(dir.path()).expect("open");
            let w = store.writer().expect("writer");
            w.send(Op::Failed(a.clone()));
            w.send(Op::Put(b.clone(), entry(2), None));
            w.finish().expect("finish");
            assert!(store.is_failed(&a).expect("read"));
            let w = store.writer().expect("writer");
            let mut f = Fields::new();
            f.insert("lastname".into(), "Lee".into());
            w.send(Op::Put(a.clone(), entry(1), Some(f.clone())));
            w.finish().expect("finish");
            store.flush().expect("flush");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.get(&a).expect("get"), Some(entry(1)));
        assert_eq!(store.get(&b).expect("get"), Some(entry(2)));
        assert_eq!(
            store
                .fields(&a)
                .expect("fields")
                .map(|f| f["lastname"].clone()),
            Some("Lee".into())
        );
        assert_eq!(store.fields(&b).expect("fields"), None);
        assert!(
            !store.is_failed(&a).expect("read"),
            "a success clears the failure"
        );
        let keys: Vec<Key> = store.entries().map(|e| e.expect("entry").0).collect();
        assert_eq!(keys, vec![a.clone(), b]);
        assert!(store.forget(&a).expect("forget"));
        assert_eq!(store.get(&a).expect("get"), None);
    }

    #[test]
    fn a_success_clears_a_failure_queued_in_the_same_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let (a, b) = (Key::new(1, "a@x.io"), Key::new(1, "b@x.io"));
        let w = store.writer().expect("writer");
        w.send(Op::Failed(a.clone()));
        w.send(Op::Put(a.clone(), entry(1), None));
        w.send(Op::Put(b.clone(), entry(2), None));
        w.send(Op::Failed(b.clone()));
        w.finish().expect("finish");
        assert!(!store.is_failed(&a).expect("read"));
        assert!(store.is_failed(&b).expect("read"));
    }

    #[test]
    fn a_second_open_is_refused_with_the_lock_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let _first = Store::open(dir.path()).expect("open");
        let err = Store::open(dir.path())
            .err()
            .expect("second open must fail");
        let msg = err.to_string();
        assert!(msg.contains("in use by another custsync run"), "{msg}");
        assert!(msg.contains("lock"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
    }

    #[test]
    fn state_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        let _s = Store::open(&path).expect("open");
        let mode = fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
