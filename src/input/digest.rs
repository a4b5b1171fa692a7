//! The SHA-256 of the input file's bytes (the summary's `file_sha256`), taken as the reader
//! reads them rather than in a second pass over the file.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

/// A reader that hashes every byte read through it.
pub struct Digesting<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Digesting<R> {
    pub fn new(inner: R) -> Self {
        Digesting {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Reads whatever is left (nothing, once the file was read to its end), then gives the
    /// digest of every byte, in lower-case hex.
    pub fn finish(&mut self) -> io::Result<String> {
        io::copy(self, &mut io::sink())?;
        let digest = std::mem::take(&mut self.hasher).finalize();
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_covers_what_was_read_and_the_rest() {
        let mut r = Digesting::new(&b"abc"[..]);
        let mut first = [0u8; 1];
        r.read_exact(&mut first).expect("read");
        assert_eq!(
            r.finish().expect("finish"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
