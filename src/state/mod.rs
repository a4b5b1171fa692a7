//! The local state store: for each key, the customer id Commerce confirmed and the hash of the
//! payload last sent. Backed by sled, behind one lock file per state directory.
//!
//! sled calls block, so the sync pipeline reads on its planning thread and writes through
//! [`Writer`], a thread of its own that applies small batches. A mapping is written only after
//! the API confirmed the write; sled flushes its log every half second and at the end, so a
//! killed run loses at most the last moments of confirmations, which the next run recovers by
//! adopting the customers it finds already created, and by sending again the keys still in
//! [`Doubt`] (see `doubt.rs`).
//!
//! The planner reads the store through the [`Lookup`] trait ([`Indexed`]: the [`Index`] of
//! every key, then sled), so that its decisions can be tested without a disk.
//!
//! The directory is checked and kept private (`private.rs`); a store whose files were damaged
//! is refused rather than taken for empty (`mark.rs`).

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::customer::{Fields, Key};

mod bulks;
mod doubt;
mod entry;
mod index;
mod keyed;
pub mod lookup;
mod mark;
mod private;
mod target;
mod transfer;
mod values;
mod writer;
pub use bulks::{BulkRecord, BulkRow};
pub use doubt::{Doubt, Doubts};
pub use entry::Entry;
pub(crate) use index::huge_pages;
pub use index::{Index, Known};
pub use lookup::{Indexed, Lookup};
pub use target::{Admission, Binding};
pub use transfer::{TransferError, export, import};
pub use writer::{Op, Writer};

/// Bumped when the byte layout of keys, entries or values changes. 2: compact last-sent
/// values (`values.rs`); 3: compact entries with the values after them, in one tree
/// (`entry.rs`). A store of schema 1 or 2 is read as it is and marked 3 at its first open.
const SCHEMA_VERSION: u8 = 3;
/// The schemas this version reads.
const SCHEMAS_READ: [u8; 3] = [1, 2, SCHEMA_VERSION];
/// sled's default cache is 1 GiB; the planner's look-ups are a single pass, so little helps,
/// and the scan that rebuilds the index after a crash grows the process by several times this
/// (sled counts a page at its size on disk, compressed). Measured at 1M keys: 8 MiB peaks at
/// 171 MiB in that rebuild against 201 MiB at 16 MiB, and writes no slower.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// The file (and, before it, the sled key) holding the end of the last sync.
const LAST_RUN: &str = "last_run";

/// Writes after which a command closes the store with a replay (see [`Store::close`]): opening
/// a store of a million keys costs about 0.2 s, replaying 10,000 writes less.
pub const REPLAY_AFTER: u64 = 10_000;

/// What to do about a damaged store.
const REPAIR: &str = "Restore the state directory from a backup, or move it away and rebuild it \
                      with `custsync pull`";

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
    /// The directory or one of its files cannot be created, read or written.
    #[error("state directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The directory, or an entry in it, is open to other users (or is a link).
    #[error("refusing the state directory: {path} {why}; {fix}")]
    Exposed {
        path: PathBuf,
        why: String,
        fix: String,
    },
    /// sled refused an operation.
    #[error("state store {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    /// sled found the store's files corrupt.
    #[error("state store {path} cannot be read: {source}; its files were damaged. {REPAIR}")]
    Corrupt { path: PathBuf, source: sled::Error },
    /// sled opened the store, but it holds fewer mappings than the last run left: its files
    /// were damaged.
    #[error(
        "state store {path} cannot be read: it holds {found} customer mappings, but the last run \
         left {expected} ({mark}); its files were damaged. {REPAIR} (if you emptied the store \
         on purpose, delete {mark})"
    )]
    Damaged {
        path: PathBuf,
        mark: PathBuf,
        found: u64,
        expected: u64,
    },
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
        "the state store {dir} holds {entries} mappings that name no shop (an import, or a \
         custsync from before bindings), and the embedded sandbox has no data there, so they came from a real shop; \
         this run goes to the embedded sandbox (no --endpoint or CUSTSYNC_ENDPOINT) and sent \
         nothing. Give the shop's endpoint, or bind the store to the sandbox on purpose with \
         `custsync state rebind`"
    )]
    LegacyNotSandbox { dir: PathBuf, entries: usize },
    /// The store's mappings are keyed by another kind of key than the run's `--key`.
    #[error(
        "the state store {dir} holds {entries} mappings keyed by {store}, but this run is keyed \
         by {run} (--key); nothing was sent. Give --key {store} as the runs that filled it did, \
         or start another --state directory for the new key (and fill it with `custsync pull \
         --key {run}`)"
    )]
    KeyKind {
        dir: PathBuf,
        entries: usize,
        store: String,
        run: String,
    },
}

impl StateError {
    /// sled's `source` about the store at `path`.
    fn sled(path: PathBuf, source: sled::Error) -> Self {
        match source {
            sled::Error::Corruption { .. } => StateError::Corrupt { path, source },
            source => StateError::Sled { path, source },
        }
    }
}

/// Opens sled's files under `db_path`. The caller holds the directory's lock, so when sled
/// cannot take its own lock, the holder is a store this process just closed: sled 0.34 releases
/// its lock from a background flusher thread, after `Drop` returned (spacejam/sled#1234,
/// #1289). That thread is given up to two seconds.
fn open_sled(db_path: &Path) -> Result<sled::Db, sled::Error> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let compressed = compressed(db_path);
    loop {
        let opened = sled::Config::new()
            .path(db_path)
            .cache_capacity(CACHE_BYTES)
            .use_compression(compressed)
            .flush_every_ms(Some(500))
            .open();
        match opened {
            // sled reports it only in the text of an `Other` error (sled 0.34.7 config.rs).
            Err(sled::Error::Io(e))
                if e.to_string().starts_with("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Whether the store at `db_path` is (to be) written compressed: a new one is, since that
/// halves it on disk; one that exists keeps what it was created with, which sled writes into
/// its `conf` file (lines of text, then a checksum) and refuses to change (sled 0.34.7
/// config.rs `verify_config`). A `conf` that cannot be read is left to sled to report.
fn compressed(db_path: &Path) -> bool {
    match std::fs::read(db_path.join("conf")) {
        Ok(conf) => conf
            .split(|b| *b == b'\n')
            .any(|line| line == b"use_compression: true"),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// An open, locked state directory.
pub struct Store {
    dir: PathBuf,
    db: sled::Db,
    customers: sled::Tree,
    /// key -> last-sent field values of schemas 1 and 2 (JSON in 1, compact in 2), for keys
    /// not confirmed since: schema 3 keeps them after the entry in `customers`.
    fields: sled::Tree,
    failed: sled::Tree,
    /// key -> [`Doubt`]: writes whose answer was not seen.
    doubt: sled::Tree,
    /// bulk number -> a bulk submitted and not yet resolved (see `bulks.rs`).
    bulks: sled::Tree,
    /// This process already told sled the index file is stale.
    index_invalidated: Arc<AtomicBool>,
    /// The generation of the index file this process loaded, while no mapping was written
    /// since (0: none); see [`Store::keep_index`].
    kept_generation: Arc<AtomicU64>,
    /// The fewest mappings the store may hold, from `db.mark` (see `mark.rs`).
    floor: Mutex<Option<u64>>,
    /// The target the state writer binds the store to with its first mapping.
    pending_binding: Mutex<Option<Binding>>,
    /// The index file being read since the store was opened, for [`Store::load_index`].
    index_read: Mutex<Option<index::IndexRead>>,
    _lock: File,
}

impl Store {
    /// Opens (creating it, mode 0700) the state directory and takes its lock. Refuses a
    /// directory other users can reach, and a store damaged to fewer mappings than it had.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        Self::open_with(dir, false)
    }

    /// [`Store::open`], reading the index file on another thread while sled opens, for a
    /// sync, which loads it next: each takes about a tenth of a second at a million keys.
    pub fn open_reading_index(dir: &Path) -> Result<Self, StateError> {
        Self::open_with(dir, true)
    }

    fn open_with(dir: &Path, read_index: bool) -> Result<Self, StateError> {
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { path, source }
        };
        private::create_dir(dir).map_err(io_err(dir))?;
        private::check(dir)?;
        let lock = lock(dir)?;
        // Only under the lock: no other process replaces the file meanwhile.
        let index_read = read_index.then(|| index::read_ahead(dir)).flatten();

        let db_path = dir.join("db");
        let sled_err = |source| StateError::sled(db_path.clone(), source);
        private::create_dir(&db_path).map_err(io_err(&db_path))?;
        let db = open_sled(&db_path).map_err(sled_err)?;
        private::tighten(&db_path).map_err(io_err(&db_path))?;
        let customers = db.open_tree("customers").map_err(sled_err)?;
        let floor = mark::read(dir);
        if let Some(expected) = floor.filter(|n| *n > 0)
            && customers.is_empty()
        {
            return Err(StateError::Damaged {
                path: db_path,
                mark: mark::path(dir),
                found: 0,
                expected,
            });
        }
        match db.get("schema").map_err(sled_err)? {
            Some(v) if v.as_ref() == [SCHEMA_VERSION] => {}
            // Schemas 1 and 2 differ only in how entries and values are written, and every
            // form is read: marked 3, so that a custsync that reads only the older forms
            // refuses it from now on.
            None => {
                db.insert("schema", &[SCHEMA_VERSION]).map_err(sled_err)?;
            }
            Some(v) if v.len() == 1 && SCHEMAS_READ.contains(&v[0]) => {
                db.insert("schema", &[SCHEMA_VERSION]).map_err(sled_err)?;
            }
            Some(v) => {
                return Err(StateError::Schema {
                    path: db_path,
                    found: v.first().copied().unwrap_or(0),
                });
            }
        }
        let failed = db.open_tree("failed").map_err(sled_err)?;
        let fields = db.open_tree("fields").map_err(sled_err)?;
        let doubt = db.open_tree("doubt").map_err(sled_err)?;
        let bulks = db.open_tree("bulks").map_err(sled_err)?;
        Ok(Store {
            dir: dir.to_owned(),
            db,
            customers,
            fields,
            failed,
            doubt,
            bulks,
            index_invalidated: Arc::default(),
            kept_generation: Arc::default(),
            floor: Mutex::new(floor),
            pending_binding: Mutex::new(None),
            index_read: Mutex::new(index_read),
            _lock: lock,
        })
    }

    /// Closes the store; with `replay` (after [`REPLAY_AFTER`] writes or more), opens sled's
    /// files once more before the lock is let go. sled 0.34 writes its snapshot only as it
    /// opens, after replaying (and decompressing) its log since the last one: after a run that
    /// wrote much, the next run would spend that before its first row (2 s for 300,000
    /// creates, where the re-run itself takes 0.4 s). Replayed here, it is spent at the end
    /// of the run that wrote.
    pub fn close(self, replay: bool) -> Result<(), StateError> {
        let Store {
            dir,
            db,
            customers,
            fields,
            failed,
            doubt,
            bulks,
            _lock,
            ..
        } = self;
        let db_path = dir.join("db");
        let sled_err = |source| StateError::sled(db_path.clone(), source);
        drop((customers, fields, failed, doubt, bulks));
        db.flush().map_err(sled_err)?;
        drop(db);
        if replay {
            drop(open_sled(&db_path).map_err(sled_err)?);
        }
        drop(_lock);
        Ok(())
    }

    fn err(&self, source: sled::Error) -> StateError {
        StateError::sled(self.dir.join("db"), source)
    }

    /// The entry for `key`, if the API ever confirmed one.
    pub fn get(&self, key: &Key) -> Result<Option<Entry>, StateError> {
        let v = self
            .customers
            .get(key.to_bytes())
            .map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| Entry::from_value(&v).map(|(e, _)| e)))
    }

    /// The field values last sent for `key` (or read from the shop by `pull`): after its
    /// entry, or for a key not confirmed since schema 3, in the `fields` tree.
    pub fn fields(&self, key: &Key) -> Result<Option<Fields>, StateError> {
        last_sent(&self.customers, Some(&self.fields), &key.to_bytes()).map_err(|e| self.err(e))
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
            Ok((k, v)) => Some(Ok((Key::from_bytes(&k)?, Entry::from_value(&v)?.0))),
            Err(e) => Some(Err(self.err(e))),
        })
    }

    /// Records a mapping directly (import, pull); the sync uses [`Writer`]. Without `fields`,
    /// the values kept for the key stay as they are.
    pub fn put(&self, key: &Key, entry: Entry, fields: Option<&Fields>) -> Result<(), StateError> {
        self.invalidate_index()?;
        self.kept_generation.store(0, Ordering::Relaxed);
        let k = key.to_bytes();
        let value = stored_value(&self.customers, &k, &entry, fields).map_err(|e| self.err(e))?;
        self.customers.insert(&k, value).map_err(|e| self.err(e))?;
        // After the mapping that holds the new values: the old ones are never read again.
        if fields.is_some() && !self.fields.is_empty() {
            self.fields.remove(k).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Drops a mapping (and any failed or doubt mark of its key); returns whether there was one.
    pub fn forget(&self, key: &Key) -> Result<bool, StateError> {
        self.invalidate_index()?;
        self.kept_generation.store(0, Ordering::Relaxed);
        let k = key.to_bytes();
        if self.customers.contains_key(&k).map_err(|e| self.err(e))? {
            self.lower_floor()?;
        }
        self.failed.remove(&k).map_err(|e| self.err(e))?;
        let old = self.customers.remove(&k).map_err(|e| self.err(e))?;
        if !self.fields.is_empty() {
            self.fields.remove(&k).map_err(|e| self.err(e))?;
        }
        // After the mapping: a mark is never gone while what it guards is still there.
        self.doubt.remove(&k).map_err(|e| self.err(e))?;
        Ok(old.is_some())
    }

    /// One mapping fewer will be left: lowers the mark first, so that a crash before the next
    /// one is written never leaves the store below it.
    fn lower_floor(&self) -> Result<(), StateError> {
        let mut floor = self.floor.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = floor.as_mut().filter(|n| **n > 0) {
            *n -= 1;
            mark::write(&self.dir, *n).map_err(|source| StateError::Io {
                path: mark::path(&self.dir),
                source,
            })?;
        }
        Ok(())
    }

    /// Refuses the store when a scan `found` fewer mappings than the mark says it holds.
    fn check_floor(&self, found: usize) -> Result<(), StateError> {
        let floor = *self.floor.lock().unwrap_or_else(|e| e.into_inner());
        match floor {
            Some(expected) if (found as u64) < expected => Err(StateError::Damaged {
                path: self.dir.join("db"),
                mark: mark::path(&self.dir),
                found: found as u64,
                expected,
            }),
            _ => Ok(()),
        }
    }

    /// Records that the store holds `count` mappings now, and that its files are private
    /// (sled may have created more since the open).
    fn set_floor(&self, count: usize) -> Result<(), StateError> {
        let io_err = |path: PathBuf| move |source| StateError::Io { path, source };
        let count = count as u64;
        mark::write(&self.dir, count).map_err(io_err(mark::path(&self.dir)))?;
        *self.floor.lock().unwrap_or_else(|e| e.into_inner()) = Some(count);
        private::tighten(&self.dir.join("db")).map_err(io_err(self.dir.join("db")))
    }

    /// Unix seconds of the end of the last sync (not a dry run), if any: from the file
    /// `last_run`, or sled's key of that name where earlier versions kept it.
    pub fn last_run(&self) -> Result<Option<i64>, StateError> {
        let path = self.dir.join(LAST_RUN);
        match private::open_read(&path).and_then(io::read_to_string) {
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let v = self.db.get(LAST_RUN).map_err(|e| self.err(e))?;
                Ok(v.and_then(|v| v.as_ref().try_into().ok().map(i64::from_le_bytes)))
            }
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Stamps the end of a sync, in a file of its own: a write to sled, however small, makes
    /// the next open replay it and write a new snapshot, 0.1 s at a million keys, which a
    /// re-run that changed nothing else need not pay.
    pub fn set_last_run(&self, unix: i64) -> Result<(), StateError> {
        let path = self.dir.join(LAST_RUN);
        private::replace(&path, |w| writeln!(w, "{unix}"))
            .map_err(|source| StateError::Io { path, source })
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
        invalidate_index(&self.db, &self.index_invalidated).map_err(|e| self.err(e))
    }
}

/// Removes the index file's generation from `db` unless `invalidated` says this process
/// already did.
fn invalidate_index(db: &sled::Db, invalidated: &AtomicBool) -> Result<(), sled::Error> {
    if !invalidated.swap(true, Ordering::Relaxed) {
        db.remove(index::GENERATION_KEY)?;
    }
    Ok(())
}

/// The value to store for key `k` in `customers`: `entry`, then `fields` in the compact form,
/// or without them the values the key's stored value holds now (none for a new key, or for one
/// whose values are still in the `fields` tree of schema 2).
/// The values last sent for the key `k`: after its entry, or for a key not confirmed since
/// schema 3, in the `fields` tree (when the store still has one).
fn last_sent(
    customers: &sled::Tree,
    fields: Option<&sled::Tree>,
    k: &[u8],
) -> Result<Option<Fields>, sled::Error> {
    let v = customers.get(k)?;
    if let Some((_, values)) = v.as_deref().and_then(Entry::from_value)
        && !values.is_empty()
    {
        return Ok(values::decode(values));
    }
    let Some(fields) = fields else {
        return Ok(None);
    };
    Ok(fields.get(k)?.and_then(|v| values::decode(&v)))
}

fn stored_value(
    customers: &sled::Tree,
    k: &[u8],
    entry: &Entry,
    fields: Option<&Fields>,
) -> Result<Vec<u8>, sled::Error> {
    if let Some(f) = fields {
        return Ok(entry.to_value(Some(&values::encode(f))));
    }
    let old = customers.get(k)?;
    let kept = old.as_deref().and_then(Entry::from_value).map(|(_, v)| v);
    Ok(entry.to_value(kept))
}

/// Takes the lock of `dir` (its file opened without following a link), and writes this
/// process's id into it for the message of a run that finds it taken.
fn lock(dir: &Path) -> Result<File, StateError> {
    let path = dir.join("lock");
    let io_err = |source| StateError::Io {
        path: path.clone(),
        source,
    };
    let mut lock = private::open_rw(&path).map_err(io_err)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let holder = lock
                .read_to_string(&mut pid)
                .ok()
                .map(|_| pid.trim())
                .filter(|pid| !pid.is_empty())
                .map(|pid| format!(", held by process {pid}"))
                .unwrap_or_default();
            return Err(StateError::Locked {
                dir: dir.to_owned(),
                lock: path,
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_err(e)),
    }
    lock.set_len(0).map_err(io_err)?;
    lock.rewind().map_err(io_err)?;
    write!(lock, "{}", std::process::id()).map_err(io_err)?;
    Ok(lock)
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
            further_address_ids: Vec::new(),
        }
    }

    #[test]
    fn entries_round_trip_through_the_writer_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Key::new(1, "a@x.io");
        let b = Key::new(2, "B@x.io");
        {
            let store = Store::open(&dir.path().join("s")).expect("open");
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
        let store = Store::open(&dir.path().join("s")).expect("reopen");
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
    fn a_store_closed_with_or_without_its_replay_reopens_whole_and_unlocked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        for (round, replay) in [(0u64, true), (1, false), (2, true)] {
            let store = Store::open(&path).expect("open: the lock was let go");
            let w = store.writer().expect("writer");
            for i in 0..50 {
                let key = Key::new(1, &format!("c{}@x.io", round * 50 + i));
                w.send(Op::Put(key, entry(round * 50 + i + 1), None));
            }
            w.finish().expect("finish");
            store.close(replay).expect("close");
        }
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.len(), 150);
        assert_eq!(
            store.get(&Key::new(1, "c149@x.io")).expect("get"),
            Some(entry(150))
        );
    }

    /// Writes `key` into the store at `path` as schema 2 did: a fixed-width entry, its values
    /// (`values`, as they were written) in the `fields` tree, and the schema's number.
    fn write_schema_2(path: &Path, key: &Key, e: &Entry, values: Option<Vec<u8>>, schema: u8) {
        let store = Store::open(path).expect("open");
        store
            .customers
            .insert(key.to_bytes(), entry::tests::fixed_bytes(e))
            .expect("entry");
        if let Some(v) = values {
            store.fields.insert(key.to_bytes(), v).expect("values");
        }
        store.db.insert("schema", &[schema]).expect("schema");
        store.flush().expect("flush");
    }

    #[test]
    fn stores_of_schemas_1_and_2_still_read_and_move_a_key_when_it_is_confirmed() {
        let fields = Fields::from([("city".to_owned(), "Lund".to_owned())]);
        let json = serde_json::to_vec(&fields).expect("json");
        for (schema, values) in [(1, json), (2, values::encode(&fields))] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("s");
            let (key, other) = (Key::new(1, "a@x.io"), Key::new(1, "b@x.io"));
            write_schema_2(&path, &key, &entry(1), Some(values), schema);
            write_schema_2(&path, &other, &entry(2), None, schema);
            let store = Store::open(&path).expect("an old schema opens");
            assert_eq!(store.fields(&key).expect("read"), Some(fields.clone()));
            assert_eq!(store.get(&key).expect("get"), Some(entry(1)));
            assert_eq!(store.get(&other).expect("get"), Some(entry(2)));
            assert_eq!(store.fields(&other).expect("read"), None);
            assert_eq!(store.build_index().expect("index").len(), 2);
            assert_eq!(
                store.db.get("schema").expect("schema").as_deref(),
                Some(&[SCHEMA_VERSION][..])
            );
            // Confirmed again without values: they are still read from the old tree.
            let w = store.writer().expect("writer");
            w.send(Op::Put(key.clone(), entry(3), None));
            w.finish().expect("finish");
            assert_eq!(store.get(&key).expect("get"), Some(entry(3)));
            assert_eq!(store.fields(&key).expect("read"), Some(fields.clone()));
            // Confirmed with values: they move after the entry, the old ones go.
            let newer = Fields::from([("city".to_owned(), "Malmö".to_owned())]);
            let w = store.writer().expect("writer");
            w.send(Op::Put(key.clone(), entry(4), Some(newer.clone())));
            w.finish().expect("finish");
            assert_eq!(store.fields(&key).expect("read"), Some(newer.clone()));
            assert!(store.fields.is_empty(), "the old values are gone");
            let raw = store.customers.get(key.to_bytes()).expect("raw");
            assert_eq!(raw.as_deref().and_then(|v| v.first()), Some(&3));
            // Put again without values: the ones after the entry stay.
            store.put(&key, entry(5), None).expect("put");
            assert_eq!(store.fields(&key).expect("read"), Some(newer));
            assert_eq!(store.get(&key).expect("get"), Some(entry(5)));
            store.db.insert("schema", &[9]).expect("schema");
            drop(store);
            let err = Store::open(&path).err().expect("a later schema is refused");
            assert!(err.to_string().contains("schema version 9"), "{err}");
        }
    }

    #[test]
    fn a_new_store_is_compressed_and_an_old_uncompressed_one_stays_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = Key::new(1, "a@x.io");
        let new = dir.path().join("new");
        Store::open(&new)
            .expect("open")
            .put(&key, entry(1), None)
            .expect("put");
        assert!(new.join("db/conf").exists() && compressed(&new.join("db")));
        let reopened = Store::open(&new).expect("a compressed store reopens");
        assert_eq!(reopened.get(&key).expect("get"), Some(entry(1)));
        drop(reopened);

        // What a custsync without compression created.
        let old = dir.path().join("old");
        {
            let db = sled::Config::new()
                .path(old.join("db"))
                .open()
                .expect("sled");
            db.insert("schema", &[2]).expect("schema");
            db.flush().expect("flush");
        }
        std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("mode");
        let store = Store::open(&old).expect("an uncompressed store reopens");
        store.put(&key, entry(2), None).expect("put");
        drop(store);
        assert!(!compressed(&old.join("db")), "sled's conf says so");
        let store = Store::open(&old).expect("and again");
        assert_eq!(store.get(&key).expect("get"), Some(entry(2)));
    }

    #[test]
    fn a_success_clears_a_failure_queued_in_the_same_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
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
        let _first = Store::open(&dir.path().join("s")).expect("open");
        let err = Store::open(&dir.path().join("s"))
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
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn the_directory_and_every_file_in_it_stay_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        let s = Store::open(&path).expect("open");
        s.put(&Key::new(1, "a@x.io"), entry(1), None).expect("put");
        s.rebuild_index().expect("index");
        fn walk(p: &Path, out: &mut Vec<(PathBuf, u32)>) {
            let meta = std::fs::symlink_metadata(p).expect("meta");
            out.push((p.to_owned(), meta.permissions().mode() & 0o777));
            if meta.is_dir() {
                for e in std::fs::read_dir(p).expect("read dir") {
                    walk(&e.expect("entry").path(), out);
                }
            }
        }
        let mut modes = Vec::new();
        walk(&path, &mut modes);
        assert!(modes.len() > 4, "{modes:?}");
        for (p, mode) in modes {
            let want = if p.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{}", p.display());
        }
    }

    #[test]
    fn a_directory_others_can_reach_is_refused_before_the_lock_is_touched() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state");
        drop(Store::open(&path).expect("open"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let lock = std::fs::read(path.join("lock")).expect("lock");
        let msg = Store::open(&path).err().expect("refused").to_string();
        assert!(
            msg.contains(&format!("chmod 700 {}", path.display())),
            "{msg}"
        );
        assert_eq!(std::fs::read(path.join("lock")).expect("lock"), lock);
    }

    /// A store of `n` mappings whose run ended cleanly (its index and mark written).
    fn store_of(path: &Path, n: u64) {
        let s = Store::open(path).expect("open");
        let w = s.writer().expect("writer");
        for i in 0..n {
            w.send(Op::Put(
                Key::new(1, &format!("u{i}@x.io")),
                entry(i + 1),
                None,
            ));
        }
        w.finish().expect("finish");
        s.rebuild_index().expect("index");
    }

    fn cut(path: &Path, keep: impl Fn(u64) -> u64) {
        let log = path.join("db").join("db");
        let len = std::fs::metadata(&log).expect("meta").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .expect("open log");
        f.set_len(keep(len)).expect("truncate");
    }

    #[test]
    fn a_store_damaged_to_fewer_mappings_than_its_mark_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Emptied: refused at the open.
        let path = dir.path().join("emptied");
        store_of(&path, 3000);
        cut(&path, |_| 0);
        let msg = Store::open(&path).err().expect("refused").to_string();
        assert!(
            msg.contains(&path.join("db").display().to_string())
                && msg.contains("cannot be read")
                && msg.contains("left 3000"),
            "{msg}"
        );
        // Cut in half: what remains is read, but not taken for the whole.
        let path = dir.path().join("halved");
        store_of(&path, 3000);
        cut(&path, |len| len / 2);
        let s = Store::open(&path).expect("a part remains");
        assert!(
            s.load_index().expect("load").is_none(),
            "the index is stale"
        );
        let msg = s.build_index().expect_err("refused").to_string();
        assert!(msg.contains("left 3000"), "{msg}");
    }

    #[test]
    fn forgetting_lowers_the_mark_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        store_of(&path, 3);
        {
            let s = Store::open(&path).expect("open");
            assert!(s.forget(&Key::new(1, "u0@x.io")).expect("forget"));
            assert!(!s.forget(&Key::new(1, "nobody@x.io")).expect("forget"));
            s.flush().expect("flush");
        }
        assert_eq!(mark::read(&path), Some(2));
        let s = Store::open(&path).expect("reopen");
        assert_eq!(s.build_index().expect("two are enough").len(), 2);
    }
}
