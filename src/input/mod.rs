//! The input file: from a file on disk to a stream of [`Record`]s, each a valid [`Row`] or an
//! [`InvalidRow`] whose message names the line, the column and the reason.
//!
//! How a line becomes a record:
//!
//! 1. [`Reader::open_with`] opens the file as its [`Format`] says: a spreadsheet by its
//!    extension, else delimited text in a known encoding with a detected (or given)
//!    delimiter. It reads the header once: each cell names a field of the contract (or,
//!    through the [`Mapping`], a legacy column renamed, split or joined into fields), or is
//!    ignored. A missing required column or a doubled one is an [`InputError`] and nothing is
//!    read.
//! 2. The reader streams the file one record at a time (never whole; a sheet is held by
//!    calamine) and works out the physical line each starts on. A record with the wrong number
//!    of fields is invalid as it stands, and so is every line an unclosed quote swallowed.
//! 3. The validator checks the record's cells by the rules of their fields and builds the
//!    [`Customer`](crate::customer::Customer), or lists every problem, each with its column.
//!
//! The rooms, one job each:
//!
//! | file | owns |
//! | --- | --- |
//! | `fields.rs` | the field vocabulary: one table of columns, their kinds, which are required |
//! | `reader.rs` | the file: its format, records that are not rows, the stream of records |
//! | `text.rs` | delimited text: encoding, delimiter, physical lines, record shapes |
//! | `sheet.rs` | spreadsheets: one sheet's rows as cells, dates and numbers as text |
//! | `header.rs` | the header: where each field's value comes from; pure |
//! | `validate.rs` | one row's cells to a [`Row`] or per-column problems; pure, no I/O |
//! | `kinds.rs` | what a cell of each kind must hold (an email, a date, a name, ...) |
//! | `mapping/` | legacy layouts: renames, constants, value maps, date formats, split, join |
//! | `digest.rs` | the SHA-256 of the file's bytes, taken as they are read |
//! | `quick.rs` | the row hash and a row's key read from its cells, for unchanged rows |
//! | `values.rs` | the values hash: a row's filled cells by column, as `pull` can compute it |

mod digest;
mod draft;
mod fields;
mod format;
mod header;
mod kinds;
mod mapping;
mod quick;
mod reader;
mod sheet;
mod text;
mod validate;
mod values;

pub use fields::Field;
pub use format::Format;
pub use kinds::check_email;
pub use mapping::{Mapping, MappingError};
pub use quick::VERSION as ROW_HASH_VERSION;
pub use reader::{InputError, InvalidRow, Known, Reader, Record, Same};
pub use validate::Row;
pub use values::of_fields as values_hash_of;
