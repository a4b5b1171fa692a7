//! A compact snapshot of the store for the planner's hot path: key digest -> (payload hash,
//! customer id), 24 bytes a key in one sorted array, read whole at the start of a sync so that
//! an unchanged row costs a binary search instead of a sled read (which on a store of a
//! million keys costs more than everything else a row needs, and loads most of sled into
//! memory). The payload hash is kept to 64 bits here: a collision would need two different
//! payloads of one key to agree on 64 bits.
//!
//! The file `index.bin` is trusted only while sled's meta key `index_gen` holds the
//! generation written in its header. Anything that writes the store removes that key first
//! (sled's log keeps writes in order, so no later write can survive a crash without it); a
//! sync, `pull` or `state import` that ends cleanly writes a new file, then the new
//! generation. A stale or missing file (after a crash) is not used: the next sync rebuilds the
//! index from a scan of the store, which costs less than a sled read per row.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::{Entry, StateError, Store};
use crate::customer::Key;

const MAGIC: &[u8; 8] = b"CSIDX2\0\0";
const FILE: &str = "index.bin";
/// The sled meta key holding the generation of the index file that matches the store.
pub(super) const GENERATION_KEY: &str = "index_gen";

/// What the index knows of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Known {
    /// The low 64 bits of the payload hash; see [`Known::matches`].
    hash64: u64,
    pub customer_id: u64,
}

impl Known {
    /// What to remember of a confirmed write.
    pub fn new(payload_hash: u128, customer_id: u64) -> Self {
        Known {
            hash64: payload_hash as u64,
            customer_id,
        }
    }

    /// Whether the last payload sent had this hash.
    pub fn matches(&self, payload_hash: u128) -> bool {
        self.hash64 == payload_hash as u64
    }
}

/// Key digest -> [`Known`], sorted by digest; see the module doc.
#[derive(Clone, Debug)]
pub struct Index {
    /// Every key digest, ascending.
    digests: Vec<u64>,
    /// What is known of `digests[i]`.
    known: Vec<Known>,
    /// `buckets[b]..buckets[b + 1]` holds the digests whose top `bits` bits are `b`.
    buckets: Vec<usize>,
    bits: u32,
}

impl Default for Index {
    fn default() -> Self {
        Index::new(Vec::new(), Vec::new())
    }
}

impl Index {
    /// An index of `digests` (ascending) and what is known of each.
    ///
    /// Digests are spread evenly over `u64`, so their top bits find a small bucket directly:
    /// about eight digests a bucket, two cache lines to search after a look-up in a table that
    /// stays in cache. (A binary search over the whole array, or an interpolation that must
    /// widen by the array's random deviation of ~sqrt(n) places, missed the cache at every
    /// step and cost more than the rest of planning a row.)
    fn new(digests: Vec<u64>, known: Vec<Known>) -> Self {
        let bits = (digests.len() / 8).max(1).ilog2();
        let mut buckets = Vec::with_capacity((1 << bits) + 1);
        let mut i = 0;
        for b in 0..1usize << bits {
            while i < digests.len() && bucket(digests[i], bits) < b {
                i += 1;
            }
            buckets.push(i);
        }
        buckets.push(digests.len());
        Index {
            digests,
            known,
            buckets,
            bits,
        }
    }

    /// An index of `entries`, in any order, one per digest.
    fn from_unsorted(mut entries: Vec<(u64, Known)>) -> Self {
        entries.sort_unstable_by_key(|(d, _)| *d);
        let (digests, known) = entries.into_iter().unzip();
        Index::new(digests, known)
    }

    /// How many keys the index holds.
    pub(crate) fn len(&self) -> usize {
        self.digests.len()
    }

    /// What the index knows of a key digest.
    pub fn get(&self, digest: u64) -> Option<Known> {
        let b = bucket(digest, self.bits);
        let (lo, hi) = (self.buckets[b], self.buckets[b + 1]);
        let i = self.digests[lo..hi].binary_search(&digest).ok()?;
        Some(self.known[lo + i])
    }

    /// Records confirmed writes (later ones win) and forgets deleted keys.
    pub fn update(&mut self, mut written: Vec<(u64, Known)>, deleted: &[u64]) {
        // A stable sort keeps the writes of one key in order; the last one is the truth.
        written.sort_by_key(|(d, _)| *d);
        written.reverse();
        written.dedup_by_key(|(d, _)| *d);
        written.reverse();
        let old = std::mem::take(self);
        let n = old.digests.len() + written.len();
        let (mut digests, mut known) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut a = old.digests.into_iter().zip(old.known).peekable();
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
            if let Some((d, k)) = next.filter(|(d, _)| deleted.binary_search(d).is_err()) {
                digests.push(d);
                known.push(k);
            }
        }
        *self = Index::new(digests, known);
    }

    /// Every key digest.
    pub fn digests(&self) -> impl Iterator<Item = u64> + '_ {
        self.digests.iter().copied()
    }
}

/// The bucket of `digest`: its top `bits` bits.
fn bucket(digest: u64, bits: u32) -> usize {
    digest.checked_shr(64 - bits).unwrap_or(0) as usize
}

impl Store {
    /// The index, when its file matches the store; `None` when it must be rebuilt.
    pub fn load_index(&self) -> Result<Option<Index>, StateError> {
        let Some(generation) = self.index_gen()? else {
            return Ok(None);
        };
        let path = self.dir.join(FILE);
        match read(&path, generation) {
            Ok(index) => Ok(index),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io { path, source }),
        }
    }

    /// Writes a fresh index of the whole store, for commands that wrote it directly.
    pub fn rebuild_index(&self) -> Result<(), StateError> {
        self.save_index(&self.build_index()?)
    }

    /// An index of every mapping, from a scan of the store.
    pub fn build_index(&self) -> Result<Index, StateError> {
        let mut entries = Vec::with_capacity(self.customers.len());
        for kv in self.customers.iter() {
            let (key, value) = kv.map_err(|e| self.err(e))?;
            if let Some(e) = Entry::from_bytes(&value) {
                let known = Known::new(e.payload_hash, e.customer_id);
                entries.push((Key::digest_of_bytes(&key), known));
            }
        }
        Ok(Index::from_unsorted(entries))
    }

    /// Writes `index` as the one matching the store as it is now (call after every write is
    /// applied).
    pub fn save_index(&self, index: &Index) -> Result<(), StateError> {
        let generation = fastrand::u64(1..);
        let path = self.dir.join(FILE);
        let tmp = self.dir.join("index.bin.tmp");
        let io_err = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        write(&tmp, generation, index).map_err(io_err)?;
        std::fs::rename(&tmp, &path).map_err(io_err)?;
        self.db
            .insert(GENERATION_KEY, &generation.to_le_bytes())
            .map_err(|e| self.err(e))?;
        // The next write of this process must mark the file stale again.
        self.index_invalidated
            .store(false, std::sync::atomic::Ordering::Relaxed);
        self.flush()
    }

    fn index_gen(&self) -> Result<Option<u64>, StateError> {
        let v = self.db.get(GENERATION_KEY).map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| v.as_ref().try_into().ok().map(u64::from_le_bytes)))
    }
}

fn read(path: &Path, generation: u64) -> io::Result<Option<Index>> {
    let mut r = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut header = [0u8; 24];
    r.read_exact(&mut header)?;
    let field = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
    if &header[..8] != MAGIC || field(&header, 8) != generation {
        return Ok(None);
    }
    let count = usize::try_from(field(&header, 16)).unwrap_or(0);
    let (mut digests, mut known) = (Vec::with_capacity(count), Vec::with_capacity(count));
    let mut record = [0u8; 24];
    for _ in 0..count {
        r.read_exact(&mut record)?;
        digests.push(field(&record, 0));
        known.push(Known {
            hash64: field(&record, 8),
            customer_id: field(&record, 16),
        });
    }
    // Written sorted; a file that is not is not ours to trust.
    if !digests.is_sorted() {
        return Ok(None);
    }
    Ok(Some(Index::new(digests, known)))
}

fn write(path: &Path, generation: u64, index: &Index) -> io::Result<()> {
    let file = File::create(path)?;
    let mut w = BufWriter::with_capacity(1 << 16, &file);
    w.write_all(MAGIC)?;
    w.write_all(&generation.to_le_bytes())?;
    w.write_all(&(index.digests.len() as u64).to_le_bytes())?;
    for (digest, k) in index.digests.iter().zip(&index.known) {
        w.write_all(&digest.to_le_bytes())?;
        w.write_all(&k.hash64.to_le_bytes())?;
        w.write_all(&k.customer_id.to_le_bytes())?;
    }
    w.flush()?;
    drop(w);
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut index = Index::default();
        let digests: Vec<u64> = (0..5000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
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
        for probe in [0, 1, u64::MAX, u64::MAX / 2, 12345] {
            assert_eq!(
                index.get(probe).is_some(),
                digests.contains(&probe),
                "{probe}"
            );
        }
        assert_eq!(Index::default().get(7), None);
    }

    fn entry(id: u64) -> Entry {
        Entry {
            customer_id: id,
            payload_hash: u128::from(id) << 64,
            synced_at: 0,
            address_id: None,
        }
    }

    #[test]
    fn the_index_is_used_only_while_nothing_else_wrote_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
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
        let store = Store::open(dir.path()).expect("reopen");
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
}
