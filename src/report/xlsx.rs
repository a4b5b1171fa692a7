//! The report as a workbook (`--report FILE.xlsx`), for a reviewer who opens it in Excel or
//! LibreOffice: sheet `report` has the report's columns, sheet `changes` one line per changed
//! field (`line,email,website_id,field,old,new`). Text goes in as text cells (UTF-8 intact),
//! numbers as numbers. A text cell that a spreadsheet would take for a formula when typed in
//! (see [`escape_cell`]) keeps its value as is, marked as text by the cell's quote prefix
//! (Excel's `'`, not shown and not part of the value): a CSV needs the `'` in the text, a
//! workbook does not, and a phone number `+46 70 ...` must not read `'+46 70 ...`.
//!
//! Both sheets stream to temporary files row by row (rust_xlsxwriter's constant-memory mode), so
//! a large run costs no memory; the workbook is put together in the report file at the end.

use std::borrow::Cow;
use std::fs::File;
use std::io;

use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::file::COLUMNS;
use crate::outcome::Outcome;
use crate::outputs::escape_cell;

/// The `changes` sheet's columns.
pub const CHANGE_COLUMNS: [&str; 6] = ["line", "email", "website_id", "field", "old", "new"];
/// Rows a sheet can hold (Excel's limit), the header included.
const SHEET_ROWS: u32 = 1_048_576;
const REPORT: usize = 0;
const CHANGES: usize = 1;

/// One cell's value.
enum Cell<'a> {
    Text(&'a str),
    Number(Option<u64>),
}

/// A workbook being written; see the module doc.
pub struct XlsxReport {
    workbook: Workbook,
    /// The format of a text cell that would read as a formula.
    quoted: Format,
    file: File,
    /// The next row of each sheet.
    next: [u32; 2],
    /// Lines past a sheet's last row, left out.
    dropped: [u64; 2],
}

impl XlsxReport {
    /// Starts the workbook that `finish` writes to `file`.
    pub fn new(file: File) -> io::Result<Self> {
        let mut workbook = Workbook::new();
        let bold = Format::new().set_bold();
        add_sheet(
            &mut workbook,
            "report",
            &COLUMNS,
            &bold,
            &[8, 32, 10, 10, 10, 12, 11, 60],
        )?;
        add_sheet(
            &mut workbook,
            "changes",
            &CHANGE_COLUMNS,
            &bold,
            &[8, 32, 10, 20, 30, 30],
        )?;
        Ok(XlsxReport {
            workbook,
            quoted: Format::new().set_quote_prefix(),
            file,
            next: [1, 1],
            dropped: [0, 0],
        })
    }

    /// Writes a row's report line, and a `changes` line for each field it changes.
    pub fn write(&mut self, o: &Outcome) -> io::Result<()> {
        let row = o.row();
        let website = row.website_id.map(u64::from);
        self.put(
            REPORT,
            &[
                Cell::Number(Some(row.line)),
                Cell::Text(&row.email),
                Cell::Number(website),
                Cell::Text(o.action().as_str()),
                Cell::Text(o.status().as_str()),
                Cell::Number(o.customer_id()),
                Cell::Number(o.http_status().map(u64::from)),
                Cell::Text(o.message()),
            ],
        )?;
        for change in o.changes() {
            self.put(
                CHANGES,
                &[
                    Cell::Number(Some(row.line)),
                    Cell::Text(&row.email),
                    Cell::Number(website),
                    Cell::Text(&change.field),
                    Cell::Text(change.old.as_deref().unwrap_or_default()),
                    Cell::Text(&change.new),
                ],
            )?;
        }
        Ok(())
    }

    /// Puts the workbook together in the file.
    pub fn finish(mut self) -> io::Result<()> {
        for (sheet, dropped) in ["report", "changes"].iter().zip(self.dropped) {
            if dropped > 0 {
                tracing::warn!(
                    "the xlsx report's {sheet} sheet is full ({SHEET_ROWS} rows): {dropped} lines \
                     left out; the run history has every row (custsync runs show)"
                );
            }
        }
        self.workbook.save_to_writer(&self.file).map_err(io_error)?;
        self.file.sync_all()
    }

    /// Writes the next row of `sheet`: every cell of every sheet goes through here.
    fn put(&mut self, sheet: usize, cells: &[Cell<'_>]) -> io::Result<()> {
        let row = self.next[sheet];
        if row >= SHEET_ROWS {
            self.dropped[sheet] += 1;
            return Ok(());
        }
        let ws = self
            .workbook
            .worksheet_from_index(sheet)
            .map_err(io_error)?;
        for (col, cell) in (0u16..).zip(cells) {
            match cell {
                Cell::Text(t) if !t.is_empty() => match escape_cell(t) {
                    Cow::Owned(_) => ws.write_string_with_format(row, col, *t, &self.quoted),
                    Cow::Borrowed(_) => ws.write_string(row, col, *t),
                }
                .map(drop),
                Cell::Number(Some(n)) => ws.write_number(row, col, *n as f64).map(drop),
                Cell::Text(_) | Cell::Number(None) => Ok(()),
            }
            .map_err(io_error)?;
        }
        self.next[sheet] = row + 1;
        Ok(())
    }
}

/// Adds a constant-memory sheet with a bold, frozen header row and the given column widths.
fn add_sheet(
    workbook: &mut Workbook,
    name: &str,
    columns: &[&str],
    bold: &Format,
    widths: &[u16],
) -> io::Result<()> {
    let ws: &mut Worksheet = workbook
        .add_worksheet_with_constant_memory()
        .map_err(io_error)?;
    ws.set_name(name).map_err(io_error)?;
    for (col, (title, width)) in (0u16..).zip(columns.iter().zip(widths)) {
        ws.set_column_width(col, *width).map_err(io_error)?;
        ws.write_string_with_format(0, col, *title, bold)
            .map_err(io_error)?;
    }
    ws.set_freeze_panes(1, 0).map_err(io_error)?;
    Ok(())
}

fn io_error(e: XlsxError) -> io::Error {
    match e {
        XlsxError::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::customer::Change;
    use crate::outcome::RowRef;
    use calamine::{Data, Reader, Xlsx};

    #[test]
    fn both_sheets_read_back_with_their_text_intact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.xlsx");
        let mut x = XlsxReport::new(File::create(&path).expect("create")).expect("workbook");
        let row = |line| RowRef {
            line,
            email: "örjan@exempel.se".into(),
            website_id: Some(2),
        };
        let changes = vec![
            Change {
                field: "lastname".into(),
                old: Some("Åberg".into()),
                new: "Öberg".into(),
            },
            Change {
                field: "city".into(),
                old: None,
                new: "Malmö".into(),
            },
        ];
        x.write(&Outcome::would_update(row(2), 5, changes, None))
            .expect("write");
        x.write(&Outcome::invalid(row(3), "line 3: dob: ß".into()))
            .expect("write");
        let phone = Change {
            field: "telephone".into(),
            old: Some("-".into()),
            new: "+46 70 123 45 67".into(),
        };
        x.write(&Outcome::would_update(row(4), 6, vec![phone], None))
            .expect("write");
        x.finish().expect("finish");

        let mut book: Xlsx<_> = calamine::open_workbook(&path).expect("opens");
        assert_eq!(book.sheet_names(), ["report", "changes"]);
        let report = book.worksheet_range("report").expect("report sheet");
        let rows: Vec<&[Data]> = report.rows().collect();
        assert_eq!(rows.len(), 4);
        let header: Vec<String> = rows[0].iter().map(ToString::to_string).collect();
        assert_eq!(header, COLUMNS);
        assert_eq!(rows[1][0], Data::Float(2.0));
        assert_eq!(rows[1][1], Data::String("örjan@exempel.se".into()));
        assert_eq!(rows[1][3], Data::String("update".into()));
        assert_eq!(
            rows[1][7],
            Data::String("lastname: Åberg -> Öberg; city: (none) -> Malmö".into())
        );
        assert_eq!(rows[2][7], Data::String("line 3: dob: ß".into()));
        let changes = book.worksheet_range("changes").expect("changes sheet");
        let lines: Vec<Vec<String>> = changes
            .rows()
            .map(|r| r.iter().map(ToString::to_string).collect())
            .collect();
        assert_eq!(
            lines,
            [
                CHANGE_COLUMNS.map(String::from).to_vec(),
                ["2", "örjan@exempel.se", "2", "lastname", "Åberg", "Öberg"]
                    .map(String::from)
                    .to_vec(),
                ["2", "örjan@exempel.se", "2", "city", "", "Malmö"]
                    .map(String::from)
                    .to_vec(),
                // Marked as text by the cell's format, not by a `'` in the value.
                [
                    "4",
                    "örjan@exempel.se",
                    "2",
                    "telephone",
                    "-",
                    "+46 70 123 45 67"
                ]
                .map(String::from)
                .to_vec(),
            ]
        );
        assert_eq!(
            rows[3][7],
            Data::String("telephone: - -> +46 70 123 45 67".into())
        );
    }
}
