//! Reading the history: `custsync runs` (the list, newest first) and `custsync runs show ID`
//! (a run's rows in the report's CSV form, in file order). Nothing here sends a request or
//! takes the state directory's lock.

use std::fs::{self, File};
use std::io::{self, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{DIR, RunsError, ids, io_error, rows_path, summary_path};
use crate::report::{COLUMNS, Summary};

/// Which rows `runs show` prints: those of any status asked for, every row when none is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub failed: bool,
    pub invalid: bool,
    pub not_sent: bool,
}

impl Filter {
    /// Whether a row with this action and status is printed. Invalid rows are known by their
    /// action too.
    pub(super) fn selects(&self, action: &[u8], status: &[u8]) -> bool {
        if !(self.failed || self.invalid || self.not_sent) {
            return true;
        }
        let invalid = action == b"invalid" || status == b"invalid";
        (self.invalid && invalid)
            || (self.failed && status == b"failed" && !invalid)
            || (self.not_sent && status == b"not_sent")
    }
}

/// Writes the list of runs in `state_dir`'s history to `out`, newest first: one line each
/// with id, start, kind, exit code, duration, counts, file and target.
pub fn list(state_dir: &Path, out: &mut impl Write) -> Result<usize, RunsError> {
    let dir = state_dir.join(DIR);
    let ids = ids(&dir)?;
    let stdout = |e| io_error(Path::new("standard output"))(e);
    writeln!(
        out,
        "{:>6}  {:<20}  {:<7}  {:>4}  {:>9}  {:>8}  {:>7}  {:>7}  {:>9}  {:>7}  {:>6}  {:>8}  {:>6}  file -> target",
        "id",
        "started (UTC)",
        "kind",
        "exit",
        "duration",
        "rows",
        "created",
        "updated",
        "unchanged",
        "invalid",
        "failed",
        "not_sent",
        "absent"
    )
    .map_err(stdout)?;
    for id in ids.iter().rev() {
        let path = summary_path(&dir, *id);
        let line = match read_summary(&path) {
            Ok(s) => line(*id, &s),
            Err(e) => format!("{id:>6}  ({e})"),
        };
        writeln!(out, "{line}").map_err(stdout)?;
    }
    Ok(ids.len())
}

pub(super) fn read_summary(path: &Path) -> Result<Summary, RunsError> {
    let text = fs::read(path).map_err(io_error(path))?;
    serde_json::from_slice(&text).map_err(|e| RunsError::Damaged {
        path: path.to_owned(),
        why: e.to_string(),
    })
}

/// One run's line of the list.
fn line(id: u64, s: &Summary) -> String {
    let r = &s.run;
    let kind = if s.dry_run { "dry run" } else { "sync" };
    let (exit, duration) = match r.exit_code {
        Some(code) => (code.to_string(), format!("{:.1} s", s.elapsed_s)),
        None => ("-".to_owned(), "unfinished".to_owned()),
    };
    let started = r.started_at.replace('T', " ").replace('Z', "");
    let mut line = format!(
        "{id:>6}  {started:<20}  {kind:<7}  {exit:>4}  {duration:>9}  {:>8}  {:>7}  {:>7}  {:>9}  {:>7}  {:>6}  {:>8}  {:>6}  {} -> {}",
        s.rows,
        s.created,
        s.updated,
        s.unchanged,
        s.invalid,
        s.failed,
        s.not_sent,
        s.absent,
        r.file,
        r.target
    );
    if let Some(e) = &r.error {
        line.push_str(&format!(" (error: {e})"));
    }
    line
}

/// Writes the rows of run `id` that `filter` selects to `out`, as the report's CSV (header
/// first), in file order. Returns how many rows it wrote.
///
/// The row file is in the order rows finished; only the position and line of each selected
/// row are held (24 bytes a row), sorted, and the rows copied from the file in that order.
pub fn show(
    state_dir: &Path,
    id: u64,
    filter: Filter,
    out: &mut impl Write,
) -> Result<u64, RunsError> {
    let dir = state_dir.join(DIR);
    let path = rows_path(&dir, id);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RunsError::NoRun { id, dir });
        }
        Err(e) => return Err(io_error(&path)(e)),
    };
    let damaged = |why: String| RunsError::Damaged {
        path: path.clone(),
        why,
    };
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::new(&file));
    let mut record = csv::ByteRecord::new();
    let any = rows
        .read_byte_record(&mut record)
        .map_err(|e| damaged(e.to_string()))?;
    // A run killed before its first lines reached the disk leaves the file empty: no rows.
    if any && !record.iter().eq(COLUMNS.iter().map(|c| c.as_bytes())) {
        return Err(damaged(format!("the header is not {}", COLUMNS.join(","))));
    }
    let mut picked: Vec<(u64, u64, u64)> = Vec::new();
    loop {
        let start = rows.position().byte();
        match rows.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            // A run killed while writing leaves a last line cut short: the rows before it stand.
            Err(_) => break,
        }
        let end = rows.position().byte();
        if record.len() != COLUMNS.len() {
            continue;
        }
        let line = std::str::from_utf8(&record[0])
            .ok()
            .and_then(|l| l.parse::<u64>().ok());
        if let Some(line) = line
            && filter.selects(&record[3], &record[4])
        {
            picked.push((line, start, end));
        }
    }
    picked.sort_by_key(|(line, ..)| *line);

    let stdout = |e| io_error(Path::new("standard output"))(e);
    writeln!(out, "{}", COLUMNS.join(",")).map_err(stdout)?;
    let mut buf = Vec::new();
    for (_, start, end) in &picked {
        buf.resize((end - start) as usize, 0);
        file.read_exact_at(&mut buf, *start)
            .map_err(io_error(&path))?;
        if buf.last() != Some(&b'\n') {
            buf.push(b'\n');
        }
        out.write_all(&buf).map_err(stdout)?;
    }
    out.flush().map_err(stdout)?;
    Ok(picked.len() as u64)
}
