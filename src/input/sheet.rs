//! A spreadsheet (`.xlsx`, `.xls`, `.ods`, read with calamine): one sheet, its rows as the
//! cells a text file would have held.
//!
//! A row's line is the sheet's own row number, as the spreadsheet program shows it. A cell
//! becomes the text a person sees: a whole number without decimals (`1.0` is `1`), a date
//! cell as `YYYY-MM-DD` (with ` HH:MM:SS` when it has a time of day), marked as a date so that
//! no date format of the mapping applies to it. Empty rows are skipped, like blank lines.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::Path;

use calamine::{Data, Error, Range, Reader as _, Sheets, open_workbook_from_rs};

use super::digest::Digest;
use super::validate::{Cell, Cells};

/// The file extensions read as spreadsheets (lower case).
pub const EXTENSIONS: [&str; 5] = ["xlsx", "xlsm", "xlsb", "xls", "ods"];

/// Why a spreadsheet cannot be read.
#[derive(Debug)]
pub enum SheetError {
    /// calamine could not open the workbook or the sheet.
    Unreadable(String),
    /// `--sheet` names no sheet of the workbook.
    NoSheet { sheet: String, sheets: Vec<String> },
}

/// One sheet, read row by row.
pub struct SheetFile {
    range: Range<Data>,
    /// The SHA-256 of the workbook's bytes.
    sha256: String,
    /// The next row of `range` to read.
    next: usize,
    row: SheetRow,
}

/// The cells of the row just read.
#[derive(Default)]
pub struct SheetRow {
    texts: Vec<String>,
    dates: Vec<bool>,
}

impl Cells for SheetRow {
    fn cell(&self, at: usize) -> Cell<'_> {
        Cell {
            bytes: self.texts.get(at).map_or(&[][..], |t| t.as_bytes()),
            date: self.dates.get(at).copied().unwrap_or_default(),
        }
    }
}

impl SheetFile {
    /// Opens the workbook at `path` and reads `sheet` (or its first sheet) up to its header
    /// row; the header is `None` when the sheet has no row with a value.
    pub fn open(
        path: &Path,
        sheet: Option<&str>,
    ) -> Result<(Self, Option<Vec<String>>), SheetError> {
        let unreadable = |e: calamine::Error| SheetError::Unreadable(e.to_string());
        // Read once, hashed on the way (calamine reads the whole workbook anyway).
        let digest = Digest::default();
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|f| digest.reader(f).read_to_end(&mut bytes))
            .map_err(|e| unreadable(e.into()))?;
        let mut workbook = workbook(path, bytes).map_err(unreadable)?;
        let sheets = workbook.sheet_names();
        let name = match sheet {
            None => sheets.first().cloned().unwrap_or_default(),
            Some(wanted) => sheets
                .iter()
                .find(|s| s.as_str() == wanted)
                .or_else(|| sheets.iter().find(|s| s.eq_ignore_ascii_case(wanted)))
                .cloned()
                .ok_or_else(|| SheetError::NoSheet {
                    sheet: wanted.to_owned(),
                    sheets: sheets.clone(),
                })?,
        };
        let range = workbook.worksheet_range(&name).map_err(unreadable)?;
        let mut file = SheetFile {
            range,
            sha256: digest.hex().map_err(|e| unreadable(e.into()))?,
            next: 0,
            row: SheetRow::default(),
        };
        let header = file
            .next_row()
            .map(|_| file.row.texts.iter().map(|t| t.trim().to_owned()).collect());
        Ok((file, header))
    }

    /// Reads the next row with a value; `None` at the end of the sheet. Returns the row's
    /// number in the sheet.
    pub fn next_row(&mut self) -> Option<u64> {
        let first_row = self.range.start().map_or(0, |(row, _)| u64::from(row));
        while self.next < self.range.height() {
            let at = self.next;
            self.next += 1;
            self.row.texts.clear();
            self.row.dates.clear();
            for col in 0..self.range.width() {
                let (text, date) = self.range.get((at, col)).map(text_of).unwrap_or_default();
                self.row.texts.push(text);
                self.row.dates.push(date);
            }
            if self.row.texts.iter().any(|t| !t.trim().is_empty()) {
                return Some(first_row + at as u64 + 1);
            }
        }
        None
    }

    /// The SHA-256 of the workbook's bytes, in hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The row just read.
    pub fn row(&self) -> &SheetRow {
        &self.row
    }

    /// How far through the sheet the reading is, as a fraction of `total` (for progress,
    /// which counts in bytes of the file).
    pub fn progress(&self, total: u64) -> u64 {
        let height = self.range.height().max(1) as u64;
        total.saturating_mul(self.next as u64) / height
    }
}

/// The workbook in `bytes`, of the format its name says (as `calamine::open_workbook_auto`
/// tells them apart; a name without a known extension is tried as each format).
fn workbook(path: &Path, bytes: Vec<u8>) -> Result<Sheets<Cursor<Vec<u8>>>, Error> {
    let data = Cursor::new(bytes);
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    Ok(match extension.as_deref() {
        Some("xls" | "xla") => Sheets::Xls(open_workbook_from_rs(data).map_err(Error::Xls)?),
        Some("xlsx" | "xlsm" | "xlam") => {
            Sheets::Xlsx(open_workbook_from_rs(data).map_err(Error::Xlsx)?)
        }
        Some("xlsb") => Sheets::Xlsb(open_workbook_from_rs(data).map_err(Error::Xlsb)?),
        Some("ods") => Sheets::Ods(open_workbook_from_rs(data).map_err(Error::Ods)?),
        _ => calamine::open_workbook_auto_from_rs(data)?,
    })
}

/// A cell as text, and whether it is a date.
fn text_of(cell: &Data) -> (String, bool) {
    match cell {
        Data::Empty => (String::new(), false),
        Data::String(s) => (s.clone(), false),
        Data::Int(i) => (i.to_string(), false),
        Data::Float(f) => (number(*f), false),
        Data::Bool(b) => (b.to_string(), false),
        Data::DateTime(t) if t.is_duration() => (number(t.as_f64()), false),
        Data::DateTime(t) => {
            let (y, mo, d, h, mi, s, _) = t.to_ymd_hms_milli();
            let date = format!("{y:04}-{mo:02}-{d:02}");
            match (h, mi, s) {
                (0, 0, 0) => (date, true),
                _ => (format!("{date} {h:02}:{mi:02}:{s:02}"), true),
            }
        }
        Data::DateTimeIso(iso) => iso_date(iso).map_or_else(|| (iso.clone(), false), |t| (t, true)),
        Data::DurationIso(iso) => (iso.clone(), false),
        Data::Error(e) => (e.to_string(), false),
    }
}

/// A number as a person reads it: a whole number without decimals.
fn number(f: f64) -> String {
    // Beyond 2^53 a float no longer holds every whole number; keep Rust's own form there.
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// An ISO 8601 date or date-time (OpenDocument's form of a date cell) as a date cell's text.
fn iso_date(iso: &str) -> Option<String> {
    let (date, time) = match iso.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (iso, None),
    };
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let time = match time {
        None => chrono::NaiveTime::MIN,
        Some(t) => chrono::NaiveTime::parse_from_str(t, "%H:%M:%S%.f").ok()?,
    };
    let text = date.and_time(time).format("%Y-%m-%d %H:%M:%S").to_string();
    Some(match text.strip_suffix(" 00:00:00") {
        Some(day) => day.to_owned(),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{CellErrorType, ExcelDateTime, ExcelDateTimeType};

    #[test]
    fn cells_read_as_a_person_sees_them() {
        let date =
            |v: f64| Data::DateTime(ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false));
        #[rustfmt::skip]
        let cases: &[(Data, &str, bool)] = &[
            (Data::Empty, "", false),
            (Data::String(" Åsa ".into()), " Åsa ", false),
            (Data::Float(1.0), "1", false),
            (Data::Float(-42.0), "-42", false),
            (Data::Float(2.5), "2.5", false),
            (Data::Float(4_600_123_456.0), "4600123456", false),
            (Data::Int(7), "7", false),
            (Data::Bool(true), "true", false),
            (date(29579.0), "1980-12-24", true),
            (date(29579.5), "1980-12-24 12:00:00", true),
            (Data::DateTimeIso("1980-12-24".into()), "1980-12-24", true),
            (Data::DateTimeIso("1980-12-24T00:00:00".into()), "1980-12-24", true),
            (Data::DateTimeIso("1980-12-24T08:30:00".into()), "1980-12-24 08:30:00", true),
            (Data::DateTimeIso("24.12.1980".into()), "24.12.1980", false),
            (Data::Error(CellErrorType::Div0), "#DIV/0!", false),
        ];
        for (cell, text, is_date) in cases {
            assert_eq!(text_of(cell), ((*text).to_owned(), *is_date), "{cell:?}");
        }
    }
}
