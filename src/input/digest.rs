//! The SHA-256 of the input file's bytes (the summary's `file_sha256`), taken as the reader
//! reads them rather than in a second pass over the file.
//!
//! The hasher is shared: [`Digesting`] sits under the decoder and the buffers, where nothing
//! can be reached again, and the reader keeps the [`Digest`] to read the result from.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

/// Chunks the hashing thread may fall behind by (the reader's chunks are up to 256 KiB).
const QUEUE: usize = 32;

/// What the hashing thread is told.
enum Msg {
    Bytes(Vec<u8>),
    /// Send the digest of everything so far.
    Hex(Sender<String>),
}

/// The hash of every byte read through its [`Digesting`] readers so far. SHA-256 was a tenth
/// of the reading thread's time on a re-run, so the bytes are hashed on a thread of their own;
/// without one (it could not be started) they are hashed as they are read.
#[derive(Clone)]
pub struct Digest(Hasher);

#[derive(Clone)]
enum Hasher {
    Thread(SyncSender<Msg>),
    Inline(Arc<Mutex<Sha256>>),
}

impl Default for Digest {
    fn default() -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let started = std::thread::Builder::new()
            .name("file-sha256".into())
            .spawn(move || hash(&rx));
        Digest(match started {
            Ok(_) => Hasher::Thread(tx),
            Err(_) => Hasher::Inline(Arc::default()),
        })
    }
}

/// The hashing thread: until every sender is gone.
fn hash(rx: &Receiver<Msg>) {
    let mut hasher = Sha256::new();
    for msg in rx {
        match msg {
            Msg::Bytes(b) => hasher.update(&b),
            Msg::Hex(reply) => {
                let _ = reply.send(hex(hasher.clone()));
            }
        }
    }
}

fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Digest {
    /// A reader that adds what it reads from `inner` to this digest.
    pub fn reader<R: Read>(&self, inner: R) -> Digesting<R> {
        Digesting {
            inner,
            digest: self.clone(),
        }
    }

    /// The digest of the bytes read so far, in lower-case hex.
    pub fn hex(&self) -> io::Result<String> {
        match &self.0 {
            Hasher::Inline(h) => Ok(hex(h.lock().unwrap_or_else(|p| p.into_inner()).clone())),
            Hasher::Thread(tx) => {
                let (reply, answer) = mpsc::channel();
                tx.send(Msg::Hex(reply)).map_err(|_| gone())?;
                answer.recv().map_err(|_| gone())
            }
        }
    }

    fn update(&self, bytes: &[u8]) -> io::Result<()> {
        match &self.0 {
            Hasher::Inline(h) => h.lock().unwrap_or_else(|p| p.into_inner()).update(bytes),
            Hasher::Thread(tx) => tx.send(Msg::Bytes(bytes.to_vec())).map_err(|_| gone())?,
        }
        Ok(())
    }
}

/// The hashing thread ended early: it panicked.
fn gone() -> io::Error {
    io::Error::other("the thread hashing the input file stopped")
}

/// A reader that hashes every byte read through it.
pub struct Digesting<R> {
    inner: R,
    digest: Digest,
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_covers_what_was_read_on_its_thread_or_inline() {
        let inline = Digest(Hasher::Inline(Arc::default()));
        for digest in [Digest::default(), inline] {
            let mut r = digest.reader(&b"abc"[..]);
            let mut first = [0u8; 1];
            r.read_exact(&mut first).expect("read");
            assert_eq!(
                digest.hex().expect("hex"),
                "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
                "the digest of \"a\""
            );
            io::copy(&mut r, &mut io::sink()).expect("the rest");
            assert_eq!(
                digest.hex().expect("hex"),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            );
        }
    }
}
