//! The keys a file names, as the planner gathers them: the store's keys by their place in its
//! index, the others by digest ([`FileKeys`], for the absent check), and the keys several
//! rows name, from a first pass over the file ([`Duplicates`]).

use std::collections::hash_map;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::customer::Key;
use crate::input::{InputError, Record};
use crate::state::Index;

/// Maps and sets keyed by [`Key::digest`]: the digest is an xxh3 hash already, so it is its
/// own hash (hashing it again with SipHash, the default, was a tenth of planning a row).
pub(super) type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<Digested>>;
pub(super) type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<Digested>>;

/// The [`Hasher`] of a key digest: the digest itself.
#[derive(Default)]
pub(super) struct Digested(u64);

impl Hasher for Digested {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Only digests are hashed; bytes, were there any, are mixed in rather than lost.
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    fn write_u64(&mut self, digest: u64) {
        self.0 ^= digest;
    }
}

/// The keys that several valid rows of a file name, from a first pass over it: for each, its
/// first and last line. Only duplicated keys are kept, as digests, so that even a file of a
/// million distinct keys costs a few MB once the pass is over.
#[derive(Debug, Default)]
pub struct Duplicates {
    pub(super) lines: HashMap<u64, (u64, u64)>,
}

impl Duplicates {
    /// Reads every record (a reader opened again for this pass) and keeps the duplicated keys.
    pub fn scan(
        records: impl IntoIterator<Item = Result<Record, InputError>>,
    ) -> Result<Self, InputError> {
        let mut first: HashMap<u64, u64> = HashMap::default();
        let mut lines = HashMap::default();
        for record in records {
            let (digest, line) = match record? {
                Record::Valid(row) => (row.customer.key().digest(), row.line),
                // A broken copy still names its customer: under `error` none of the copies
                // goes, under `last` an earlier one does not stand in for a broken last.
                Record::Invalid(i) => match i.key {
                    Some(key) => (key.digest(), i.line),
                    None => continue,
                },
                Record::Same(_) => continue,
            };
            match first.entry(digest) {
                hash_map::Entry::Vacant(v) => {
                    v.insert(line);
                }
                hash_map::Entry::Occupied(f) => {
                    lines.insert(digest, (*f.get(), line));
                }
            }
        }
        Ok(Duplicates { lines })
    }
}

/// The digest of an e-mail in a website, compared as Magento does (see [`Key::new`]).
pub(super) fn email_digest(website_id: u32, email: &str) -> u64 {
    Key::new(website_id, email).digest()
}

/// The keys of the store's index a file names, by their place in the index: a bit each
/// (a million keys in 128 kB, which stays in cache where a map of digests missed it at
/// every row), and the line that named each first, read only for a duplicate.
#[derive(Debug, Default)]
pub(super) struct Named {
    pub(super) index: Option<Arc<Index>>,
    bits: Vec<u64>,
    pub(super) lines: Vec<u64>,
}

impl Named {
    pub(super) fn new(index: Option<Arc<Index>>) -> Self {
        let len = index.as_ref().map_or(0, |i| i.len());
        let lines = vec![0; len];
        crate::state::huge_pages(&lines);
        Named {
            index,
            bits: vec![0; len.div_ceil(64)],
            lines,
        }
    }

    /// Whether the key at `at` is named.
    fn has(&self, at: usize) -> bool {
        self.bits[at / 64] & (1 << (at % 64)) != 0
    }

    /// Names the key at `at` for `line`, or says which line named it first.
    pub(super) fn take(&mut self, at: usize, line: u64) -> Option<u64> {
        if self.has(at) {
            return Some(self.lines[at]);
        }
        self.bits[at / 64] |= 1 << (at % 64);
        self.lines[at] = line;
        None
    }

    /// The place of a key in the index, when it is there.
    pub(super) fn at(&self, digest: u64) -> Option<usize> {
        self.index.as_ref()?.position(digest)
    }
}

/// The keys a file names, for telling which customers it no longer has.
#[derive(Debug, Default)]
pub struct FileKeys {
    pub(super) named: Named,
    pub(super) valid: HashMap<u64, u64>,
    pub(super) invalid: HashSet<u64>,
    /// Invalid rows without a usable email or website: their customers cannot be told from
    /// absent ones.
    pub unkeyed: u64,
    /// Under a custom key: the e-mails of the rows (valid or not), by [`email_digest`].
    pub(super) emails: HashSet<u64>,
}

impl FileKeys {
    /// Whether the file names `key` (in a valid or an invalid row).
    pub fn contains(&self, key: &Key) -> bool {
        self.contains_digest(key.digest())
    }

    /// The same, by [`Key::digest`].
    pub fn contains_digest(&self, digest: u64) -> bool {
        self.named.at(digest).is_some_and(|at| self.named.has(at))
            || self.valid.contains_key(&digest)
            || self.invalid.contains(&digest)
    }

    /// Whether, under a custom key, a row names the e-mail `email` in `website_id`. A customer
    /// whose key the file no longer has, but whose e-mail it does, is likely the same person
    /// under a new key: a row that failed because the e-mail is taken, not a customer gone.
    pub fn names_email(&self, website_id: u32, email: &str) -> bool {
        self.emails.contains(&email_digest(website_id, email))
    }

    /// How many of `index`'s keys the file does not name.
    pub fn absent_from(&self, index: &Index) -> u64 {
        let same = self
            .named
            .index
            .as_deref()
            .is_some_and(|i| std::ptr::eq(i, index));
        if !same {
            let absent = index.digests().filter(|d| !self.contains_digest(*d));
            return absent.count() as u64;
        }
        let mut absent = 0;
        for (word, bits) in self.named.bits.iter().enumerate() {
            let mut missing = !bits;
            while missing != 0 {
                let at = word * 64 + missing.trailing_zeros() as usize;
                missing &= missing - 1;
                let unnamed = index
                    .digest_at(at)
                    .is_some_and(|d| !self.valid.contains_key(&d) && !self.invalid.contains(&d));
                absent += u64::from(unnamed);
            }
        }
        absent
    }
}
