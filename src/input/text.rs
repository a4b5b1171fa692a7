//! A delimited text file (CSV): its encoding, its delimiter, and the physical line each
//! record starts on.
//!
//! Bytes are decoded while they stream: UTF-8 passes through untouched (a bad byte is the
//! validator's to report, for its row alone), a UTF-16 file is known by its BOM, and
//! `--encoding` names any other encoding `encoding_rs` knows. A file that starts out in a
//! legacy encoding without `--encoding` is refused before anything is read: its first
//! non-ASCII bytes are not UTF-8. The delimiter is the one of `,` `;` tab `|` that the header
//! line holds most of, unless `--delimiter` names it. Line numbers come from the line breaks
//! of the decoded text, LF, CRLF or a lone CR as the csv crate takes them (its own count is one
//! short after CRLF line ends).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use encoding_rs::Encoding;
use encoding_rs_io::{DecodeReaderBytes, DecodeReaderBytesBuilder};

use super::digest::{Digest, Digesting};
use super::validate::{Cell, Cells};

/// How much of the file's start is looked at to tell a legacy encoding from UTF-8, and to
/// find the header line's delimiter.
const PROBE_BYTES: u64 = 1 << 20;
/// The delimiters detected, in the order that breaks a tie.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Why a text file cannot be read.
#[derive(Debug)]
pub enum TextError {
    Io(io::Error),
    /// Line `line` holds the file's first non-ASCII bytes, and they are not UTF-8.
    Legacy {
        line: u64,
    },
}

impl From<io::Error> for TextError {
    fn from(e: io::Error) -> Self {
        TextError::Io(e)
    }
}

/// What the next record is.
#[derive(Debug, PartialEq, Eq)]
pub enum Shape {
    /// A record with the header's number of fields, starting on `line`.
    Fits { line: u64 },
    /// A record with `got` fields; `embedded` lines follow its first inside quotes.
    Malformed {
        line: u64,
        embedded: u64,
        got: usize,
    },
}

/// The file: its start, read to tell its encoding and delimiter, then the rest, so that it is
/// opened once and can be a pipe (`zcat export.csv.gz | custsync sync /dev/stdin`).
type Opened = io::Chain<io::Cursor<Vec<u8>>, File>;
type Decoded = LineIndex<BufReader<DecodeReaderBytes<Digesting<Opened>, Vec<u8>>>>;

/// A text file opened for streaming, its header read.
pub struct TextFile {
    csv: csv::Reader<Decoded>,
    delimiter: u8,
    newlines: Newlines,
    record: csv::ByteRecord,
    /// Of the file's bytes as they are read.
    digest: Digest,
}

impl TextFile {
    /// Opens `path` and reads its header line (`None`: the file is empty).
    pub fn open(
        path: &Path,
        delimiter: Option<u8>,
        encoding: Option<&'static Encoding>,
    ) -> Result<(Self, Option<Vec<String>>), TextError> {
        let mut start = Vec::new();
        let mut file = File::open(path)?;
        (&mut file).take(PROBE_BYTES).read_to_end(&mut start)?;
        // A BOM wins over `--encoding`: a cron job's flag outlives the export's format.
        let encoding = encoding.filter(|_| !has_bom(&start));
        if encoding.is_none()
            && let Some(line) = legacy_line(&start)
        {
            return Err(TextError::Legacy { line });
        }
        let delimiter = delimiter.unwrap_or_else(|| {
            // The start decoded as the stream will be (a BOM wins), for its first line.
            let (text, _, _) = encoding.unwrap_or(encoding_rs::UTF_8).decode(&start);
            detect_delimiter(text.as_bytes())
        });
        let digest = Digest::default();
        let file = digest.reader(io::Cursor::new(start).chain(file));
        let decoder = DecodeReaderBytesBuilder::new()
            .encoding(encoding)
            // An explicit UTF-8 keeps bad bytes as they are, for their row to report.
            .utf8_passthru(true)
            .strip_bom(true)
            .build(file);
        let buffered = BufReader::with_capacity(256 * 1024, decoder);
        let newlines = Newlines::default();
        let mut csv = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(false)
            .delimiter(delimiter)
            .from_reader(LineIndex {
                inner: buffered,
                offset: 0,
                cr: None,
                newlines: newlines.clone(),
            });
        let mut header = csv::ByteRecord::new();
        let header = match csv.read_byte_record(&mut header).map_err(io::Error::from)? {
            false => None,
            true => Some(
                header
                    .iter()
                    .map(|c| {
                        String::from_utf8_lossy(c)
                            .trim_start_matches('\u{feff}')
                            .trim()
                            .to_owned()
                    })
                    .collect(),
            ),
        };
        let text = TextFile {
            csv,
            delimiter,
            newlines,
            record: csv::ByteRecord::new(),
            digest,
        };
        Ok((text, header))
    }

    /// Reads the next record; `expected` is the header's number of fields.
    pub fn next(&mut self, expected: usize) -> io::Result<Option<Shape>> {
        if !self
            .csv
            .read_byte_record(&mut self.record)
            .map_err(io::Error::from)?
        {
            return Ok(None);
        }
        let got = self.record.len();
        // The cells' bytes are one slice: a record without a newline costs one search.
        let embedded = line_breaks(self.record.as_slice());
        let swallowed = embedded > 0 && self.swallows();
        // A quote left open runs to the end of the file, taking the last newline into its field.
        let open_at_eof = (got != expected || swallowed)
            && embedded > 0
            && self
                .record
                .iter()
                .next_back()
                .is_some_and(|f| f.ends_with(b"\n") || f.ends_with(b"\r"));
        let embedded = embedded - u64::from(open_at_eof);
        // Count back from the record's end: where a record starts, the csv crate may count
        // skipped blank lines or the `\n` of a CRLF, but its end is exact.
        let end = self.csv.position().byte();
        let line = self.newlines.line_at(end.saturating_sub(1)) - embedded;
        Ok(Some(if got == expected && !swallowed {
            Shape::Fits { line }
        } else {
            Shape::Malformed {
                line,
                embedded,
                got,
            }
        }))
    }

    /// Whether a quoted field of the record just read takes in lines that read as the start
    /// of rows of their own (an `@` and a delimiter): a quote left open, which can end on a
    /// record with the header's number of fields, another customer's row (and the rest of
    /// this one, its password too) in one cell. A multi-line address holds neither; a note
    /// that does is taken for a run-on quote, and its row reported rather than sent wrong.
    fn swallows(&self) -> bool {
        (self.record.iter())
            .filter(|cell| line_breaks(cell) > 0)
            .flat_map(|cell| cell.split(|b| matches!(b, b'\n' | b'\r')).skip(1))
            .any(|line| line.contains(&b'@') && line.contains(&self.delimiter))
    }

    /// The cells of the record just read.
    pub fn record(&self) -> &csv::ByteRecord {
        &self.record
    }

    /// Trades the record just read for `other`, whose buffers the next read reuses: to keep
    /// a record while reading on, without a copy.
    pub fn swap_record(&mut self, other: &mut csv::ByteRecord) {
        std::mem::swap(&mut self.record, other);
    }

    /// The SHA-256 of the file's bytes, in hex; what the records left unread is read (and
    /// decoded) first.
    pub fn sha256(&mut self) -> io::Result<String> {
        io::copy(&mut self.csv.get_mut().inner, &mut io::sink())?;
        self.digest.hex()
    }

    /// Bytes of decoded text consumed so far, for progress.
    pub fn bytes_read(&self) -> u64 {
        self.csv.position().byte()
    }
}

impl Cells for csv::ByteRecord {
    fn cell(&self, at: usize) -> Cell<'_> {
        Cell::text(self.get(at).unwrap_or_default())
    }
}

/// The line holding the first non-ASCII bytes of `start`, when they are not UTF-8 (a file
/// in a legacy encoding). A UTF-8 BOM says the file is UTF-8; a UTF-16 one is decoded.
fn legacy_line(start: &[u8]) -> Option<u64> {
    if has_bom(start) {
        return None;
    }
    let at = start.iter().position(|b| !b.is_ascii())?;
    let sequence = &start[at..start.len().min(at + 4)];
    // An error with a length is a bad sequence; one without is cut off by the probe's end.
    let bad = std::str::from_utf8(sequence)
        .is_err_and(|e| e.valid_up_to() == 0 && e.error_len().is_some());
    bad.then(|| memchr::memchr_iter(b'\n', &start[..at]).count() as u64 + 1)
}

/// Whether the file starts with a UTF-8 or UTF-16 byte order mark.
fn has_bom(start: &[u8]) -> bool {
    [&b"\xef\xbb\xbf"[..], b"\xff\xfe", b"\xfe\xff"]
        .iter()
        .any(|bom| start.starts_with(bom))
}

/// The delimiter the header line (the first line of `start`) holds most of, outside quotes;
/// a comma when it holds none.
fn detect_delimiter(start: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in start {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let mut best = 0;
    for (i, &n) in counts.iter().enumerate() {
        if n > counts[best] {
            best = i;
        }
    }
    DELIMITERS[best]
}

/// Newline offsets of the bytes read ahead, so that a record's byte offset gives its physical
/// line.
#[derive(Clone, Default)]
struct Newlines(Arc<Mutex<NewlineState>>);

#[derive(Default)]
struct NewlineState {
    pending: VecDeque<u64>,
    passed: u64,
}

impl Newlines {
    /// The 1-based line that byte `at` is on.
    fn line_at(&self, at: u64) -> u64 {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while s.pending.front().is_some_and(|&o| o < at) {
            s.pending.pop_front();
            s.passed += 1;
        }
        s.passed + 1
    }
}

/// How many lines `bytes` break: each LF, and each CR not followed by one (the csv crate
/// ends a record at a lone CR too, as old Mac files end their lines).
fn line_breaks(bytes: &[u8]) -> u64 {
    let lone_cr = |i: usize| bytes.get(i + 1) != Some(&b'\n');
    (memchr::memchr2_iter(b'\n', b'\r', bytes))
        .filter(|&i| bytes[i] == b'\n' || lone_cr(i))
        .count() as u64
}

/// A reader that notes where the line breaks are as the bytes go by: each LF, and each CR
/// not followed by one.
struct LineIndex<R> {
    inner: R,
    offset: u64,
    /// A CR that ended the last read: a line break unless the next read starts with LF.
    cr: Option<u64>,
    newlines: Newlines,
}

impl<R: Read> Read for LineIndex<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = &buf[..n];
        let mut s = self.newlines.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cr) = self.cr.take()
            && read.first() != Some(&b'\n')
        {
            s.pending.push_back(cr);
        }
        let base = self.offset;
        for i in memchr::memchr2_iter(b'\n', b'\r', read) {
            match read.get(i + 1) {
                _ if read[i] == b'\n' => s.pending.push_back(base + i as u64),
                None => self.cr = Some(base + i as u64),
                Some(&next) if next != b'\n' => s.pending.push_back(base + i as u64),
                Some(_) => {}
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives its bytes a few at a time, so that a CR can end a read.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn line_breaks_are_lf_crlf_and_a_lone_cr_however_the_bytes_arrive() {
        let text = b"a\r\nb\rc\nd\r\r\ne\r";
        let want = vec![2, 4, 6, 8, 10, 12];
        assert_eq!(line_breaks(text), want.len() as u64);
        for chunk in 1..=4 {
            let newlines = Newlines::default();
            let mut index = LineIndex {
                inner: Trickle(text, chunk),
                offset: 0,
                cr: None,
                newlines: newlines.clone(),
            };
            io::copy(&mut index, &mut io::sink()).expect("read");
            let got: Vec<u64> = newlines
                .0
                .lock()
                .expect("lock")
                .pending
                .iter()
                .copied()
                .collect();
            assert_eq!(got, want, "{chunk} bytes a read");
        }
    }

    #[test]
    fn the_delimiter_is_the_one_the_header_holds_most_of() {
        #[rustfmt::skip]
        let cases: &[(&[u8], u8)] = &[
            (b"email,firstname,lastname\na;b;c;d;e\n", b','),
            (b"E-post;F\xc3\xb6rnamn;Efternamn\r\n", b';'),
            (b"email\tfirstname\tlastname", b'\t'),
            (b"email|firstname|lastname\n", b'|'),
            (b"\"a;b\",c,d\n", b','),
            (b"\"a,b,c\";d\n", b';'),
            (b"email\n", b','),
            (b"a;b,c\n", b','),
            (b"", b','),
        ];
        for (start, want) in cases {
            assert_eq!(
                detect_delimiter(start) as char,
                *want as char,
                "{}",
                String::from_utf8_lossy(start)
            );
        }
    }

    #[test]
    fn a_file_whose_first_non_ascii_bytes_are_not_utf8_is_legacy() {
        #[rustfmt::skip]
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"email,firstname\na@x.io,Ann\n", None),
            (b"email,firstname\na@x.io,\xc3\x85sa\nb@x.io,J\xf6rg\n", None),
            (b"email,f\xf6rnamn\n", Some(1)),
            (b"email,firstname\na@x.io,Ann\nb@x.io,J\xf6rg\n", Some(3)),
            (b"\xef\xbb\xbfemail,J\xf6rg\n", None),
            (b"\xff\xfee\x00", None),
            // The probe ends inside a UTF-8 sequence: not evidence of anything.
            (b"email,\xc3", None),
        ];
        for (start, want) in cases {
            assert_eq!(
                legacy_line(start),
                *want,
                "{}",
                String::from_utf8_lossy(start)
            );
        }
    }
}
