//! The SHA-256 of the input file's bytes (the summary's `file_sha256`), taken as the reader
//! reads them rather than in a second pass over the file.
//!
//! The hasher is shared: [`Digesting`] sits under the decoder and the buffers, where nothing
//! can be reached again, and the reader keeps the [`Digest`] to read the result from.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

/// The hash of every byte read through its [`Digesting`] readers so far.
#[derive(Clone, Default)]
pub struct Digest(Arc<Mutex<Sha256>>);

impl Digest {
    /// A reader that adds what it reads from `inner` to this digest.
    pub fn reader<R: Read>(&self, inner: R) -> Digesting<R> {
        Digesting {
            inner,
            digest: self.clone(),
        }
    }

    /// The digest of the bytes read so far, in lower-case hex.
    pub fn hex(&self) -> String {
        let hasher = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A reader that hashes every byte read through it.
pub struct Digesting<R> {
    inner: R,
    digest: Digest,
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut hasher = self.digest.0.lock().unwrap_or_else(|p| p.into_inner());
        hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_covers_what_was_read() {
        let digest = Digest::default();
        let mut r = digest.reader(&b"abc"[..]);
        let mut first = [0u8; 1];
        r.read_exact(&mut first).expect("read");
        assert_eq!(
            digest.hex(),
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
            "the digest of \"a\""
        );
        io::copy(&mut r, &mut io::sink()).expect("the rest");
        assert_eq!(
            digest.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
