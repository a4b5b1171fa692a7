//! The store's durability: the data directory (owner-only, and locked so that one sandbox at a
//! time uses it) and the append-only journal in it.
//!
//! The journal (`customers.jsonl`) gets one line per change, written before the change is
//! answered, so a killed process loses nothing it already confirmed; on open it is replayed
//! (a torn last line is skipped) and rewritten compactly when it must be.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::customers::Customers;
use crate::error::SandboxError;
use crate::stored::Stored;

/// File name of the journal inside the data directory.
pub(super) const JOURNAL: &str = "customers.jsonl";

/// One line of the journal: `put` (a whole customer), `delete` (an id) or `seq` (the id
/// counters).
#[derive(Deserialize)]
struct JournalLine<'a> {
    op: String,
    #[serde(borrow)]
    customer: Option<&'a RawValue>,
    id: Option<i64>,
    next_id: Option<i64>,
    next_address_id: Option<i64>,
}

/// What the store indexes of a journaled customer.
#[derive(Deserialize)]
struct Indexed {
    id: i64,
    email: Option<String>,
    website_id: Option<i64>,
    #[serde(default)]
    addresses: Vec<AddressId>,
}

#[derive(Deserialize)]
struct AddressId {
    id: Option<i64>,
}

/// The journal, open for appending.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Replays `dir/customers.jsonl` into `customers` and compacts it when it must be (the
    /// caller holds the directory's lock).
    pub(super) fn open(dir: &Path, customers: &mut Customers) -> Result<Self, SandboxError> {
        let path = dir.join(JOURNAL);
        let journal_err = |source| SandboxError::Journal {
            path: path.clone(),
            source,
        };
        let compact = match File::open(&path) {
            // Rewriting a journal of a million customers takes seconds: only for a torn end,
            // which the next append would join, or when a quarter of it is records that later
            // ones replaced.
            Ok(file) => {
                let (records, clean) = replay(customers, io::BufReader::new(file), &path)?;
                let live = customers.len();
                !clean || records > live + live / 4 + 1
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(journal_err(e)),
        };
        if compact {
            compact_into(customers, &path).map_err(journal_err)
        } else {
            Ok(Journal {
                file: private_file(&path, true).map_err(journal_err)?,
                path,
            })
        }
    }

    /// Where the journal is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record with a single write of the whole line, so a crash leaves at most a
    /// torn last line. No fsync: the promise is surviving a killed process, not a power cut.
    pub(super) fn append(&mut self, record: &Value) -> io::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Flushes the journal to disk (used on shutdown).
    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// Replays the journal line by line (a million customers are 700 MB of it). Returns how
/// many records it applied, and whether the file ends cleanly (every line whole).
fn replay(
    customers: &mut Customers,
    mut journal: impl io::BufRead,
    path: &Path,
) -> Result<(usize, bool), SandboxError> {
    let read_err = |source| SandboxError::Journal {
        path: path.to_owned(),
        source,
    };
    // A bad line is an error only once another record follows it: a process killed
    // mid-write leaves a partial last line, whose change was never answered, so dropping
    // it is what the client expects.
    let (mut bad, mut records, mut whole) = (None, 0, true);
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        if journal.read_until(b'\n', &mut line).map_err(read_err)? == 0 {
            break;
        }
        whole = line.last() == Some(&b'\n');
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.is_empty() {
            continue;
        }
        if let Some(line) = bad {
            return Err(SandboxError::JournalCorrupt {
                path: path.to_owned(),
                line,
            });
        }
        match apply(customers, text) {
            Some(()) => records += 1,
            None => bad = Some(n),
        }
    }
    if let Some(line) = bad {
        tracing::warn!(path = %path.display(), line, "skipping torn last journal line");
    }
    Ok((records, bad.is_none() && whole))
}

/// Applies one journal line; `None` when it is not a record this store wrote. A customer's
/// text is kept as it is, with only what the store indexes read from it: building maps
/// took most of the time of loading a million customers.
fn apply(customers: &mut Customers, line: &[u8]) -> Option<()> {
    let record: JournalLine = serde_json::from_slice(line).ok()?;
    match record.op.as_str() {
        "put" => {
            let text = record.customer?.get();
            let c: Indexed = serde_json::from_str(text).ok()?;
            let email = c
                .email
                .zip(c.website_id)
                .map(|(e, w)| (w, e.to_lowercase()));
            let addresses = c.addresses.iter().filter_map(|a| a.id).max();
            customers.insert_stored(c.id, email, addresses, Stored::from_text(text));
        }
        "delete" => customers.remove(record.id?),
        "seq" => customers.advance_counters(record.next_id?, record.next_address_id?),
        _ => return None,
    }
    Some(())
}

/// Rewrites the journal as one record per live customer, keeping the id counters so that
/// ids of deleted customers are never handed out again (as MySQL's auto-increment does).
fn compact_into(customers: &Customers, path: &Path) -> io::Result<Journal> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut out = io::BufWriter::new(private_file(&tmp, false)?);
    let seq = json!({"op": "seq", "next_id": customers.next_id(), "next_address_id": customers.next_address_id()});
    serde_json::to_writer(&mut out, &seq)?;
    out.write_all(b"\n")?;
    for customer in customers.values() {
        writeln!(out, "{{\"op\":\"put\",\"customer\":{}}}", customer.text())?;
    }
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(Journal {
        path: path.to_owned(),
        file: private_file(path, true)?,
    })
}

/// Creates the data directory, readable by the owner only: it holds personal data.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), SandboxError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| SandboxError::DataDir {
        path: dir.to_owned(),
        source,
    })
}

/// Takes `dir/lock`, or says which sandbox data directory is in use.
pub(super) fn lock(dir: &Path) -> Result<File, SandboxError> {
    let path = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SandboxError::DataDir {
            path: dir.to_owned(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(SandboxError::Locked { path }),
        Err(fs::TryLockError::Error(source)) => Err(SandboxError::DataDir {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Opens a file readable by the owner only: it holds personal data.
fn private_file(path: &Path, append: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
