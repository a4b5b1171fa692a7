//! `db.mark`: how many mappings the store held when a run last wrote its index, kept beside
//! sled's files. sled opens a truncated or garbled log as the part of it that it can still read
//! (often nothing) without an error, and a store taken for empty would create every customer
//! again; so a store that holds fewer mappings than the mark says was damaged, and is refused.
//!
//! The mark is a floor: mappings are only added between two marks, except by a forget, which
//! lowers the mark first. It is compared where counting costs nothing extra: at open, whether
//! the store is empty at all, and whenever the index is rebuilt from a scan of the store.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::private;

const MAGIC: &[u8; 8] = b"CSMARK1\0";
const FILE: &str = "db.mark";
const LEN: usize = 24;

/// Where the mark of the store in `dir` is kept.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The floor the mark in `dir` sets; `None` when there is none, or it cannot be read (then it
/// says nothing, and the next one written replaces it).
pub(super) fn read(dir: &Path) -> Option<u64> {
    let path = path(dir);
    let mut bytes = Vec::with_capacity(LEN);
    let read =
        private::open_read(&path).and_then(|f| f.take(LEN as u64 + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(
                "cannot read {}: {e}; it is written again at the end of this run",
                path.display()
            );
            return None;
        }
    }
    let count = decode(&bytes);
    if count.is_none() {
        tracing::warn!(
            "{} is damaged; it is written again at the end of this run",
            path.display()
        );
    }
    count
}

/// Records `count` as the store's floor, durably.
pub(super) fn write(dir: &Path, count: u64) -> io::Result<()> {
    private::replace(&path(dir), |w| w.write_all(&encode(count)))
}

fn encode(count: u64) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&count.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&b[..16]);
    b[16..].copy_from_slice(&sum.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<u64> {
    let b: &[u8; LEN] = b.try_into().ok()?;
    let field = |i: usize| b[i..i + 8].try_into().ok().map(u64::from_le_bytes);
    (&b[..8] == MAGIC && field(16)? == xxhash_rust::xxh3::xxh3_64(&b[..16])).then_some(())?;
    field(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_round_trips_and_a_damaged_one_says_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()), None, "none yet");
        write(dir.path(), 1234).expect("write");
        assert_eq!(read(dir.path()), Some(1234));
        let good = encode(1234);
        let mut cases: Vec<Vec<u8>> =
            vec![Vec::new(), good[..20].to_vec(), [&good[..], b"x"].concat()];
        for i in [0, 9, 17] {
            let mut b = good;
            b[i] ^= 1;
            cases.push(b.to_vec());
        }
        for bytes in cases {
            std::fs::write(path(dir.path()), &bytes).expect("write");
            assert_eq!(read(dir.path()), None, "{bytes:?}");
        }
    }
}
