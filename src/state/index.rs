//! A compact snapshot of the store for the planner's hot path: key digest -> (payload hash,
//! customer id, row hash), 32 bytes a key in one sorted array, read whole at the start of a sync so that
//! an unchanged row costs a binary search instead of a sled read (which on a store of a
//! million keys costs more than everything else a row needs, and loads most of sled into
//! memory). The payload hash is kept to 64 bits here: a collision would need two different
//! payloads of one key to agree on 64 bits.
//!
//! The row hash is that of the input row (its raw cells under the run's fingerprint, see
//! `input/quick.rs`) last found unchanged against what the store holds for the key; 0 when
//! none is known. A row with that hash is unchanged without being validated or built. So it
//! is only ever set for the payload the store holds: a key the run sends is reset to 0, then
//! given the sent row's hash if the store holds that row's payload hash at the end (the write
//! was confirmed); a rebuild from the store (after a crash, `state import`) knows none. `pull`
//! puts the values hash of what it read there instead (`input/values.rs`): a row holding
//! those values is unchanged without being validated, and its row hash takes the place.
//!
//! The file `index.bin` is trusted only while sled's meta key `index_gen` holds the
//! generation written in its header. Anything that writes the store removes that key first
//! (sled's log keeps writes in order, so no later write can survive a crash without it); a
//! sync, `pull` or `state import` that ends cleanly writes a new file, then the new
//! generation; one that wrote no mapping and learnt no row hash keeps the file it loaded (and
//! stores its generation again only if a write removed it) rather than writing it anew. A
//! stale or missing file (after a crash) is not used: the next sync rebuilds the index from a
//! scan of the store, which costs less than a sled read per row. Nor is a damaged
//! one (cut short, a count that does not fit its length, records that do not match the
//! checksum in its header): it is rebuilt the same way, with a warning, and never trusted.

use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use xxhash_rust::xxh3::Xxh3;

use super::{StateError, Store, entry, private};
use crate::customer::Key;

/// Version 3 added the checksum, version 4 the row hash.
const MAGIC: &[u8; 8] = b"CSIDX4\0\0";
const FILE: &str = "index.bin";
/// Magic, generation, record count, checksum of the records (xxh3-64).
const HEADER: usize = 32;
/// Key digest, payload hash (64 bits), customer id, row hash.
const RECORD: usize = 32;
/// Records are read and written this many bytes at a time (a whole number of records).
const CHUNK: usize = RECORD * 2048;
/// The sled meta key holding the generation of the index file that matches the store.
pub(super) const GENERATION_KEY: &str = "index_gen";

/// What the index knows of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    /// The low 64 bits of the payload hash; see [`Known::matches`].
    hash64: u64,
    pub customer_id: u64,
    /// The hash of the row last found unchanged against this payload, or the values hash of
    /// what `pull` read (see `input/values.rs`); 0: none known.
    row: u64,
}

impl Known {
    /// What to remember of a confirmed write: no row hash yet.
    pub fn new(payload_hash: u128, customer_id: u64) -> Self {
        Known {
            hash64: payload_hash as u64,
            customer_id,
            row: 0,
        }
    }

    /// The hash a row of this key that is unchanged has: its row hash, or its values hash
    /// after a `pull`; 0 (the hash of no row) when none is known.
    pub fn row(&self) -> u64 {
        self.row
    }

    /// Whether the last payload sent had this hash.
    pub fn matches(&self, payload_hash: u128) -> bool {
        self.hash64 == payload_hash as u64
    }
}

/// Key digest -> [`Known`], sorted by digest; see the module doc.
#[derive(Clone, Debug)]
pub struct Index {
    /// Every key digest, ascending, with what is known of it: side by side, so that a look-up
    /// finds both in the cache lines it searched, and a scan of the store sorts them in place
    /// (two arrays, unzipped from the scan, held a second copy at the rebuild's peak).
    records: Vec<(u64, Known)>,
    /// `buckets[b]..buckets[b + 1]` holds the digests whose top `bits` bits are `b`.
    buckets: Vec<usize>,
    bits: u32,
}

impl Default for Index {
    fn default() -> Self {
        Index::new(Vec::new())
    }
}

impl Index {
    /// An index of `records` (ascending by digest).
    ///
    /// Digests are spread evenly over `u64`, so their top bits find a bucket directly, and
    /// where the digest falls in the bucket's range is a close guess at its place in it:
    /// about 16-32 digests a bucket keep the table of buckets small enough to stay in cache,
    /// and the guess is a few records off, mostly in the cache line it reads first. (A
    /// bucket of one or two digests made the table miss the cache too; a bucket searched
    /// from its start read four lines; both cost more than the rest of an unchanged row.) (A binary search over the whole array, or an interpolation that must
    /// widen by the array's random deviation of ~sqrt(n) places, missed the cache at every
    /// step and cost more than the rest of planning a row.)
    fn new(records: Vec<(u64, Known)>) -> Self {
        let bits = (records.len() / 16).max(1).ilog2();
        let mut buckets = Vec::with_capacity((1 << bits) + 1);
        let mut i = 0;
        for b in 0..1usize << bits {
            while i < records.len() && bucket(records[i].0, bits) < b {
                i += 1;
            }
            buckets.push(i);
        }
        buckets.push(records.len());
        Index {
            records,
            buckets,
            bits,
        }
    }

    /// An index of `entries`, in any order, one per digest.
    fn from_unsorted(mut entries: Vec<(u64, Known)>) -> Self {
        entries.sort_unstable_by_key(|(d, _)| *d);
        Index::new(entries)
    }

    /// How many keys the index holds.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// What the index knows of a key digest.
    pub fn get(&self, digest: u64) -> Option<Known> {
        self.position(digest).map(|i| self.records[i].1)
    }

    /// The same, with where the key is in the index: `0..len()`, for a set of its keys.
    pub fn find(&self, digest: u64) -> Option<(usize, Known)> {
        self.position(digest).map(|i| (i, self.records[i].1))
    }

    /// [`Index::find`] of each of `digests`, into `out`. Each look-up waits for memory
    /// twice (its bucket, then its records): made first for every digest, these independent
    /// loads overlap, and the look-ups proper then find their lines in the cache.
    pub fn find_all(
        &self,
        digests: impl Iterator<Item = u64> + Clone,
        out: &mut Vec<Option<(usize, Known)>>,
    ) {
        let guesses: Vec<usize> = digests.clone().map(|d| self.guess(d).2).collect();
        let touched = guesses
            .iter()
            .filter_map(|&g| self.records.get(g))
            .fold(0u64, |sum, (d, _)| sum ^ d);
        std::hint::black_box(touched);
        out.extend(digests.map(|d| self.find(d)));
    }

    /// The key digest at `position` (see [`Index::find`]).
    pub(crate) fn digest_at(&self, position: usize) -> Option<u64> {
        self.records.get(position).map(|(d, _)| *d)
    }

    /// Where `digest` is in the records.
    pub(crate) fn position(&self, digest: u64) -> Option<usize> {
        let (lo, hi, mut i) = self.guess(digest);
        if lo == hi {
            return None;
        }
        let records = &self.records;
        // From the guess to the first record not below `digest`.
        if records[i].0 < digest {
            i += 1;
            while i < hi && records[i].0 < digest {
                i += 1;
            }
        } else {
            while i > lo && records[i - 1].0 >= digest {
                i -= 1;
            }
        }
        (i < hi && records[i].0 == digest).then_some(i)
    }

    /// The range of `digest`'s bucket in the records, and where in it `digest` should be.
    fn guess(&self, digest: u64) -> (usize, usize, usize) {
        let b = bucket(digest, self.bits);
        let (lo, hi) = (self.buckets[b], self.buckets[b + 1]);
        // The bits below the bucket's, as a fraction of the bucket: the guess is in lo..hi.
        let within = u128::from(digest.checked_shl(self.bits).unwrap_or(0));
        (lo, hi, lo + ((within * (hi - lo) as u128) >> 64) as usize)
    }

    /// Sets the row hashes of keys the index holds (others are ignored): the hash of the row
    /// a run found unchanged, or 0 for a key it sent (or tried to).
    pub fn set_rows(&mut self, rows: &[(u64, u64)]) {
        // A search per row waits for memory twice; past a few rows per cache line of records,
        // one walk in digest order costs less (the first sync after `pull` sets every key's).
        if rows.len() < self.records.len() / 64 {
            for &(digest, row) in rows {
                if let Some(i) = self.position(digest) {
                    self.records[i].1.row = row;
                }
            }
            return;
        }
        let mut sorted = rows.to_vec();
        // Stable: of two rows of one key, the later one is set last and stays.
        sorted.sort_by_key(|&(digest, _)| digest);
        let mut records = self.records.iter_mut().peekable();
        for (digest, row) in sorted {
            while records.next_if(|(d, _)| *d < digest).is_some() {}
            if let Some((d, known)) = records.peek_mut()
                && *d == digest
            {
                known.row = row;
            }
        }
    }

    /// Sets the row hashes of rows a run sent, `(key digest, row hash, payload hash)`, whose
    /// payload the index now holds: their write was confirmed. Others stay as they are.
    pub fn set_sent_rows(&mut self, sent: &[(u64, u64, u128)]) {
        for &(digest, row, hash) in sent {
            if let Some(i) = self.position(digest)
                && self.records[i].1.matches(hash)
            {
                self.records[i].1.row = row;
            }
        }
    }

    /// Records confirmed writes (later ones win) and forgets deleted keys.
    pub fn update(&mut self, mut written: Vec<(u64, Known)>, deleted: &[u64]) {
        // A re-run that wrote nothing keeps its index as it is (and the row hashes it set).
        if written.is_empty() && deleted.is_empty() {
            return;
        }
        // A stable sort keeps the writes of one key in order; the last one is the truth.
        written.sort_by_key(|(d, _)| *d);
        written.reverse();
        written.dedup_by_key(|(d, _)| *d);
        written.reverse();
        let old = std::mem::take(self);
        let mut records = Vec::with_capacity(old.records.len() + written.len());
        let mut a = old.records.into_iter().peekable();
        let mut b = written.into_iter().peekable();
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(x), Some(y)) if x.0 == y.0 => {
                    a.next();
                    b.next()
                }
                (Some(_), None) => a.next(),
                (_, Some(_)) => b.next(),
                (None, None) => break,
            };
            if let Some(record) = next.filter(|(d, _)| deleted.binary_search(d).is_err()) {
                records.push(record);
            }
        }
        *self = Index::new(records);
    }

    /// Every customer id, in the order of the keys.
    pub fn customer_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.records.iter().map(|(_, k)| k.customer_id)
    }

    /// Every key digest.
    pub fn digests(&self) -> impl Iterator<Item = u64> + '_ {
        self.records.iter().map(|(d, _)| *d)
    }
}

/// The bucket of `digest`: its top `bits` bits.
fn bucket(digest: u64, bits: u32) -> usize {
    digest.checked_shr(64 - bits).unwrap_or(0) as usize
}

impl Store {
    /// The index, when its file matches the store; `None` when it must be rebuilt: missing,
    /// stale, or damaged (then with a warning). Never an error: the store can always rebuild it.
    pub fn load_index(&self) -> Result<Option<Index>, StateError> {
        let prefetched = (self.index_read.lock())
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(generation) = self.index_gen()? else {
            return Ok(None);
        };
        let path = self.dir.join(FILE);
        let read = match prefetched {
            Some(reading) => reading.join().unwrap_or_else(|_| {
                Err(Unusable::Damaged(
                    "could not be read (the reader panicked)".into(),
                ))
            }),
            None => read(&path),
        };
        let read = read.and_then(|(written_for, index)| {
            if written_for == generation {
                Ok(index)
            } else {
                Err(Unusable::Damaged(
                    "was written for another state of the store".into(),
                ))
            }
        });
        match read {
            Ok(index) => {
                self.kept_generation.store(generation, Ordering::Relaxed);
                Ok(Some(index))
            }
            Err(Unusable::Missing) => Ok(None),
            Err(Unusable::Damaged(why)) => {
                tracing::warn!(
                    "{} {why}; rebuilding the index from the state store",
                    path.display()
                );
                Ok(None)
            }
        }
    }

    /// After a run that wrote no mapping and changed no row hash: trusts the file it loaded
    /// again, instead of writing the same records anew (a re-run of an unchanged file of a
    /// million rows wrote and synced 32 MB for nothing). `false` when there is no such file:
    /// none was loaded, or a mapping was written since.
    pub fn keep_index(&self) -> Result<bool, StateError> {
        let generation = self.kept_generation.load(Ordering::Relaxed);
        if generation == 0 {
            return Ok(false);
        }
        // Untouched unless this process removed it: a run that wrote nothing to sled leaves
        // it nothing to replay, and its next open writes no new snapshot (0.1 s at 1M keys).
        if self.index_invalidated.swap(false, Ordering::Relaxed) {
            self.db
                .insert(GENERATION_KEY, &generation.to_le_bytes())
                .map_err(|e| self.err(e))?;
            self.flush()?;
        }
        Ok(true)
    }

    /// Writes a fresh index of the whole store, for commands that wrote it directly.
    pub fn rebuild_index(&self) -> Result<(), StateError> {
        self.save_index(&self.build_index()?)
    }

    /// An index of every mapping, from a scan of the store; refuses a store that holds fewer
    /// mappings than its mark says (see `mark.rs`).
    pub fn build_index(&self) -> Result<Index, StateError> {
        // The mark's count, not sled's `len`, which is a scan of its own; bounded, since the
        // mark is a file that may be damaged.
        let expected = self
            .floor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(0);
        let mut entries = Vec::with_capacity(expected.min(1 << 24) as usize);
        for kv in self.customers.iter() {
            let (key, value) = kv.map_err(|e| self.err(e))?;
            if let Some((payload_hash, customer_id)) = entry::known_of(&value) {
                let known = Known::new(payload_hash, customer_id);
                entries.push((Key::digest_of_bytes(&key), known));
            }
        }
        self.check_floor(entries.len())?;
        Ok(Index::from_unsorted(entries))
    }

    /// Writes `index` as the one matching the store as it is now (call after every write is
    /// applied), and marks how many mappings the store holds.
    pub fn save_index(&self, index: &Index) -> Result<(), StateError> {
        // A file read ahead is of the generation this replaces.
        (self.index_read.lock())
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let generation = fastrand::u64(1..);
        let path = self.dir.join(FILE);
        private::replace(&path, |w| write(w, generation, index)).map_err(|source| {
            StateError::Io {
                path: path.clone(),
                source,
            }
        })?;
        self.db
            .insert(GENERATION_KEY, &generation.to_le_bytes())
            .map_err(|e| self.err(e))?;
        // The next write of this process must mark the file stale again.
        self.index_invalidated
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.flush()?;
        self.set_floor(index.len())
    }

    fn index_gen(&self) -> Result<Option<u64>, StateError> {
        let v = self.db.get(GENERATION_KEY).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| v.as_ref().try_into().ok().map(u64::from_le_bytes)))
    }
}

/// Why an index file cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unusable {
    /// There is none: nothing to say.
    Missing,
    /// It is there but wrong; the reason, for a warning.
    Damaged(String),
}

impl From<io::Error> for Unusable {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => Unusable::Missing,
            io::ErrorKind::UnexpectedEof => Unusable::Damaged("is shorter than it says".into()),
            _ => Unusable::Damaged(format!("cannot be read ({e})")),
        }
    }
}

/// The index file, read on a thread of its own while sled opens (which takes about as long at
/// a million keys); [`Store::load_index`] then checks its generation.
pub(super) type IndexRead = JoinHandle<Result<(u64, Index), Unusable>>;

/// Starts reading the index file of the store in `dir`; `None` when no thread can be started
/// (the file is then read when it is needed).
pub(super) fn read_ahead(dir: &Path) -> Option<IndexRead> {
    let path = dir.join(FILE);
    std::thread::Builder::new()
        .name("index-read".into())
        .spawn(move || read(&path))
        .ok()
}

/// Reads the index file at `path`: the generation it was written for, and the index. Every
/// field is checked before it is used: the length against the count (before anything is
/// allocated), the checksum against the records, their order.
fn read(path: &Path) -> Result<(u64, Index), Unusable> {
    let damaged = |why: &str| Err(Unusable::Damaged(why.to_owned()));
    let file = private::open_read(path)?;
    let len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(CHUNK, file);
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header)?;
    let field = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    if &header[..8] != MAGIC {
        // Another version's index is merely stale.
        if header.starts_with(b"CSIDX") {
            return Err(Unusable::Missing);
        }
        return damaged("is not an index file of custsync");
    }
    let count = field(&header, 16);
    let expected_len = count
        .checked_mul(RECORD as u64)
        .and_then(|n| n.checked_add(HEADER as u64));
    if expected_len != Some(len) {
        return damaged(&format!(
            "is {len} bytes long, which does not fit its count of {count}"
        ));
    }
    let count = usize::try_from(count).map_err(|_| Unusable::Damaged("is too large".into()))?;
    let mut records = Vec::with_capacity(count);
    huge_pages(&records);
    let mut hasher = Xxh3::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut left = count;
    while left > 0 {
        let n = left.min(CHUNK / RECORD);
        let bytes = &mut chunk[..n * RECORD];
        r.read_exact(bytes)?;
        hasher.update(bytes);
        for record in bytes.chunks_exact(RECORD) {
            let known = Known {
                hash64: field(record, 8),
                customer_id: field(record, 16),
                row: field(record, 24),
            };
            records.push((field(record, 0), known));
        }
        left -= n;
    }
    if hasher.digest() != field(&header, 24) {
        return damaged("does not match its checksum");
    }
    // Written sorted; a file that is not is not ours to trust.
    if !records.is_sorted_by_key(|(d, _)| *d) {
        return damaged("is not in order");
    }
    Ok((field(&header, 8), Index::new(records)))
}

/// Asks the kernel to back `v`'s buffer (allocated, not yet written) with huge pages where
/// it can: a look-up in the index (or the planner's set of its keys) lands on a random page,
/// and with 4 kB pages each also missed the TLB. Only advice: nothing changes when the
/// kernel does not take it.
pub(crate) fn huge_pages<T>(v: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let start = v.as_ptr() as usize;
    let end = start + v.capacity() * std::mem::size_of::<T>();
    let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if from < to {
        // SAFETY: the range lies within the vector's own allocation, which stays allocated
        // while madvise runs; MADV_HUGEPAGE changes no contents, only how pages are backed.
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
        }
    }
}

/// Writes the index file's bytes: the header, then the records; the header's checksum is of
/// the records, so they are serialised twice (hashing is cheaper than seeking back).
fn write(w: &mut impl Write, generation: u64, index: &Index) -> io::Result<()> {
    let mut hasher = Xxh3::new();
    records(index, |chunk| {
        hasher.update(chunk);
        Ok(())
    })?;
    w.write_all(MAGIC)?;
    w.write_all(&generation.to_le_bytes())?;
    w.write_all(&(index.records.len() as u64).to_le_bytes())?;
    w.write_all(&hasher.digest().to_le_bytes())?;
    records(index, |chunk| w.write_all(chunk))
}

/// Hands `index`'s records, serialised, to `out` a chunk at a time.
fn records(index: &Index, mut out: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut chunk = Vec::with_capacity(CHUNK);
    for (digest, k) in &index.records {
        chunk.extend_from_slice(&digest.to_le_bytes());
        chunk.extend_from_slice(&k.hash64.to_le_bytes());
        chunk.extend_from_slice(&k.customer_id.to_le_bytes());
        chunk.extend_from_slice(&k.row.to_le_bytes());
        if chunk.len() + RECORD > CHUNK {
            out(&chunk)?;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        out(&chunk)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Entry;

    #[test]
    fn a_sent_row_keeps_its_hash_only_where_the_index_holds_its_payload() {
        let mut index = Index::default();
        index.update(
            vec![(1, Known::new(10, 100)), (2, Known::new(20, 200))],
            &[],
        );
        // Key 1's write was confirmed (its payload is held), key 2's was not, key 3 is unknown.
        index.set_sent_rows(&[(1, 11, 10), (2, 22, 21), (3, 33, 30)]);
        assert_eq!(index.get(1).expect("key 1").row(), 11);
        assert_ne!(index.get(2).expect("key 2").row(), 22);
        assert_eq!(index.get(3), None);
    }

    #[test]
    fn row_hashes_are_set_alike_a_few_at_a_time_or_all_at_once() {
        // Keys 10, 20, ..., 2560: a few rows take the searches, many the walk.
        let keys: Vec<u64> = (1..=256).map(|k| k * 10).collect();
        let fresh = || Index::from_unsorted(keys.iter().map(|&k| (k, Known::new(1, k))).collect());
        let few = vec![(20, 2), (15, 9), (20, 3)];
        let mut many: Vec<(u64, u64)> = keys.iter().rev().map(|&k| (k, k + 1)).collect();
        many.extend([(5, 9), (99_999, 9), (30, 7)]);
        for rows in [few, many] {
            let mut index = fresh();
            index.set_rows(&rows);
            for &k in &keys {
                // The last row of a key wins; keys the index lacks are not added.
                let want = rows
                    .iter()
                    .rev()
                    .find(|(d, _)| *d == k)
                    .map_or(0, |(_, r)| *r);
                assert_eq!(index.get(k).map(|known| known.row()), Some(want), "key {k}");
            }
            assert_eq!(index.len(), keys.len());
        }
    }

    #[test]
    fn update_merges_in_order_with_the_last_write_winning() {
        let mut index = Index::default();
        index.update(vec![(5, Known::new(1, 50)), (1, Known::new(1, 10))], &[]);
        index.update(
            vec![
                (3, Known::new(1, 30)),
                (5, Known::new(2, 51)),
                (5, Known::new(3, 52)),
                (9, Known::new(1, 90)),
            ],
            &[1],
        );
        let digests: Vec<u64> = index.digests().collect();
        assert_eq!(digests, vec![3, 5, 9]);
        assert_eq!(index.get(5), Some(Known::new(3, 52)));
        assert!(index.get(5).expect("5").matches(3));
        assert_eq!(index.get(1), None);
    }

    #[test]
    fn get_finds_every_key_and_no_other() {
        // Spread evenly, as digests are, and bunched in one bucket, which they never are.
        let spread = (0..5000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let bunched = (0..5000u64).map(|i| i * 3 + (i % 7) * (u64::MAX / 8));
        for digests in [spread.collect::<Vec<u64>>(), bunched.collect()] {
            finds_every_key_and_no_other(digests);
        }
        assert_eq!(Index::default().get(7), None);
    }

    fn finds_every_key_and_no_other(digests: Vec<u64>) {
        let mut index = Index::default();
        index.update(
            digests
                .iter()
                .map(|&d| (d, Known::new(u128::from(d), d)))
                .collect(),
            &[],
        );
        for &d in &digests {
            assert_eq!(index.get(d).map(|k| k.customer_id), Some(d));
        }
        let near = digests
            .iter()
            .flat_map(|d| [d.wrapping_add(1), d.wrapping_sub(1)]);
        for probe in [0, 1, u64::MAX, u64::MAX / 2, 12345]
            .into_iter()
            .chain(near)
        {
            assert_eq!(
                index.get(probe).is_some(),
                digests.contains(&probe),
                "{probe}"
            );
        }
    }

    #[test]
    fn row_hashes_are_set_kept_by_the_file_and_dropped_by_a_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
        let (a, b) = (Key::new(1, "a@x.io"), Key::new(1, "b@x.io"));
        store.put(&a, entry(7), None).expect("put");
        store.put(&b, entry(8), None).expect("put");
        let mut index = store.build_index().expect("build");
        let known = index.get(a.digest()).expect("a");
        assert_eq!(known.row(), 0, "a rebuilt index knows no row");
        index.set_rows(&[(a.digest(), 42), (b.digest(), 43), (12345, 44)]);
        index.set_rows(&[(b.digest(), 0)]);
        store.save_index(&index).expect("save");
        let loaded = store.load_index().expect("load").expect("current");
        let (ka, kb) = (loaded.get(a.digest()), loaded.get(b.digest()));
        assert!(ka.is_some_and(|k| k.row() == 42 && k.customer_id == 7));
        assert!(kb.is_some_and(|k| k.row() == 0), "set to 0: forgotten");
        assert_eq!(loaded.get(12345), None, "setting a row adds no key");
        // A confirmed write knows the payload, not the row.
        let mut index = loaded;
        index.update(vec![(a.digest(), Known::new(9, 7))], &[]);
        assert!(index.get(a.digest()).is_some_and(|k| k.row() == 0));
    }

    #[test]
    fn an_index_of_the_previous_version_is_stale_not_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
        store
            .put(&Key::new(1, "a@x.io"), entry(7), None)
            .expect("put");
        store.rebuild_index().expect("rebuild");
        let path = dir.path().join("s").join(FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        // Version 3: 24-byte records, no row hash; its generation still the current one.
        bytes[..8].copy_from_slice(b"CSIDX3\0\0");
        bytes.truncate(HEADER + 24);
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(read(&path).err(), Some(Unusable::Missing));
        assert!(store.load_index().expect("load").is_none(), "rebuilt");
    }

    fn entry(id: u64) -> Entry {
        Entry {
            customer_id: id,
            payload_hash: u128::from(id) << 64,
            synced_at: 0,
            address_id: None,
            further_address_ids: Vec::new(),
        }
    }

    #[test]
    fn the_index_is_used_only_while_nothing_else_wrote_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
        assert!(store.load_index().expect("load").is_none(), "no index yet");
        let a = Key::new(1, "a@x.io");
        store.put(&a, entry(7), None).expect("put");
        let index = store.build_index().expect("build");
        store.save_index(&index).expect("save");
        let loaded = store
            .load_index()
            .expect("load")
            .expect("matches the store");
        assert_eq!(loaded.get(a.digest()), Some(Known::new(7u128 << 64, 7)));
        drop(store);
        let store = Store::open(&dir.path().join("s")).expect("reopen");
        assert!(
            store.load_index().expect("load").is_some(),
            "survives a reopen"
        );
        store
            .put(&Key::new(1, "b@x.io"), entry(8), None)
            .expect("put");
        assert!(
            store.load_index().expect("load").is_none(),
            "a write outside the sync invalidates it"
        );
    }

    #[test]
    fn a_run_that_changed_nothing_writes_nothing_to_sled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let store = Store::open(&path).expect("open");
        store
            .put(&Key::new(1, "a@x.io"), entry(7), None)
            .expect("put");
        store.rebuild_index().expect("index");
        drop(store);
        // sled names its snapshot by the log position it covers, and writes a new one when it
        // opens a log that grew since.
        let snapshots = || {
            let db = std::fs::read_dir(path.join("db")).expect("db");
            let mut names: Vec<_> = db
                .map(|e| e.expect("entry").file_name())
                .filter(|n| n.to_string_lossy().starts_with("snap."))
                .collect();
            names.sort();
            names
        };
        drop(Store::open(&path).expect("settle"));
        let before = snapshots();

        // What the end of a sync that found every row unchanged does.
        let store = Store::open(&path).expect("reopen");
        assert!(store.load_index().expect("load").is_some());
        store
            .writer()
            .expect("writer")
            .finish()
            .expect("nothing to write");
        store.set_last_run(1_700_000_000).expect("stamp");
        assert!(store.keep_index().expect("keep"));
        store.flush().expect("flush");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(snapshots(), before, "nothing new to replay");
        assert_eq!(store.last_run().expect("last run"), Some(1_700_000_000));
        assert!(store.load_index().expect("load").is_some(), "still trusted");
    }

    #[test]
    fn a_run_that_wrote_no_mapping_keeps_the_index_it_loaded_and_one_that_did_cannot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let store = Store::open(&path).expect("open");
        assert!(!store.keep_index().expect("keep"), "nothing loaded");
        let a = Key::new(1, "a@x.io");
        store.put(&a, entry(7), None).expect("put");
        store.rebuild_index().expect("index");
        drop(store);

        // A run: the index is loaded, the writer makes it stale, nothing is written.
        let store = Store::open(&path).expect("reopen");
        assert!(store.load_index().expect("load").is_some());
        let writer = store.writer().expect("writer");
        writer.send(crate::state::Op::Failed(Key::new(1, "b@x.io")));
        writer.finish().expect("finish");
        assert!(
            store.load_index().expect("load").is_none(),
            "stale meanwhile"
        );
        assert!(store.keep_index().expect("keep"));
        drop(store);
        let store = Store::open(&path).expect("reopen");
        let kept = store.load_index().expect("load").expect("trusted again");
        assert_eq!(kept.get(a.digest()), Some(Known::new(7u128 << 64, 7)));

        // A run whose writer wrote a mapping must write a new index.
        let writer = store.writer().expect("writer");
        writer.send(crate::state::Op::Put(Key::new(1, "c@x.io"), entry(9), None));
        writer.finish().expect("finish");
        assert!(!store.keep_index().expect("keep"));
        assert!(store.load_index().expect("load").is_none());
    }

    #[test]
    fn an_index_read_ahead_is_the_one_loaded_unless_a_newer_one_was_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let a = Key::new(1, "a@x.io");
        {
            let store = Store::open(&path).expect("open");
            store.put(&a, entry(7), None).expect("put");
            store.rebuild_index().expect("rebuild");
        }
        let store = Store::open_reading_index(&path).expect("open");
        let index = store.load_index().expect("load").expect("read ahead");
        assert_eq!(index.get(a.digest()).map(|k| k.customer_id), Some(7));

        let store = {
            drop(store);
            Store::open_reading_index(&path).expect("open")
        };
        let b = Key::new(1, "b@x.io");
        store.put(&b, entry(8), None).expect("put");
        store.rebuild_index().expect("rebuild");
        let index = store.load_index().expect("load").expect("the new file");
        assert_eq!(index.len(), 2, "not the file read before the rebuild");
    }

    #[test]
    fn a_damaged_index_is_stale_never_fatal_and_never_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s")).expect("open");
        for i in 0..3000 {
            let key = Key::new(1, &format!("u{i}@x.io"));
            store.put(&key, entry(i + 1), None).expect("put");
        }
        store.rebuild_index().expect("rebuild");
        let path = dir.path().join("s").join(FILE);
        let good = std::fs::read(&path).expect("read");
        assert_eq!(good.len(), HEADER + 3000 * RECORD);
        let set = |mut b: Vec<u8>, at: usize, v: u64| {
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            b
        };
        let count = |b: &[u8]| u64::from_le_bytes(b[16..24].try_into().expect("8 bytes"));
        let mut swapped = good.clone();
        let (a, b) = (HEADER, HEADER + RECORD);
        let first: Vec<u8> = swapped[a..b].to_vec();
        swapped.copy_within(b..b + RECORD, a);
        swapped[b..b + RECORD].copy_from_slice(&first);
        let sum = xxhash_rust::xxh3::xxh3_64(&swapped[HEADER..]);
        let swapped = set(swapped, 24, sum);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("cut in the header", good[..20].to_vec()),
            ("cut in the records", good[..good.len() - 10].to_vec()),
            ("a huge count", set(good.clone(), 16, u64::MAX)),
            (
                "a count that overflows",
                set(good.clone(), 16, u64::MAX / 32 + 1),
            ),
            (
                "one record more than there are",
                set(good.clone(), 16, count(&good) + 1),
            ),
            (
                "an id overwritten",
                set(good.clone(), good.len() - 16, 12345),
            ),
            ("another generation", set(good.clone(), 8, 7)),
            (
                "another file",
                b"not an index at all, not at all, no".to_vec(),
            ),
            ("out of order, with a checksum to match", swapped),
        ];
        for (what, bytes) in cases {
            std::fs::write(&path, &bytes).expect("write");
            match store.load_index() {
                Ok(None) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        std::fs::write(&path, &good).expect("write");
        let index = store.load_index().expect("load").expect("intact");
        assert_eq!(index.len(), 3000);
        // What the planner will trust instead: a scan of the store.
        assert_eq!(store.build_index().expect("build").len(), 3000);
    }
}
