//! Writes `fixtures/legacy-export.xlsx`: the layout of `fixtures/legacy-export.csv` as a
//! spreadsheet program saves it, with real date cells, numbers in number cells and a second
//! sheet. Run `cargo run --example legacy_xlsx` to write it again; the file is committed, and
//! fixed document properties keep it the same bytes each time.

use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, XlsxError};

fn main() -> Result<(), XlsxError> {
    let mut workbook = Workbook::new();
    let created = ExcelDateTime::from_ymd(2026, 1, 5)?.and_hms(9, 0, 0)?;
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let date = Format::new().set_num_format("dd/mm/yyyy");
    let date_time = Format::new().set_num_format("yyyy-mm-dd hh:mm");

    let sheet = workbook.add_worksheet().set_name("Customers")?;
    let header = [
        "Customer No",
        "E-Mail Address",
        "Given Name",
        "Family Name",
        "Birthday",
        "Customer Group",
        "Loyalty",
        "Fax",
    ];
    for (col, name) in (0u16..).zip(header) {
        sheet.write_string(0, col, name)?;
    }
    let rows = [
        (
            1001.0,
            "ann.xlsx@example.com",
            "Ann",
            "Lee",
            (1990, 5, 17, 0),
            "Retail",
            4711.0,
        ),
        (
            1002.0,
            "bo.xlsx@example.com",
            "Bo",
            "Ek",
            (1985, 12, 1, 8),
            "Wholesale",
            4712.0,
        ),
        (
            1003.0,
            "cy.xlsx@example.com",
            "Cy",
            "Do",
            (1969, 7, 20, 0),
            "Retail",
            4713.0,
        ),
    ];
    for (row, (no, email, given, family, (y, m, d, h), group, loyalty)) in (1u32..).zip(rows) {
        sheet.write_number(row, 0, no)?;
        sheet.write_string(row, 1, email)?;
        sheet.write_string(row, 2, given)?;
        sheet.write_string(row, 3, family)?;
        let born = ExcelDateTime::from_ymd(y, m, d)?;
        match h {
            0 => sheet.write_datetime_with_format(row, 4, &born, &date)?,
            h => sheet.write_datetime_with_format(row, 4, &born.and_hms(h, 30, 0)?, &date_time)?,
        };
        sheet.write_string(row, 5, group)?;
        sheet.write_number(row, 6, loyalty)?;
    }

    let notes = workbook.add_worksheet().set_name("Notes")?;
    notes.write_string(
        0,
        0,
        "Exported from the legacy system; custsync reads the first sheet.",
    )?;

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/legacy-export.xlsx");
    workbook.save(path)?;
    println!("wrote {path}");
    Ok(())
}
