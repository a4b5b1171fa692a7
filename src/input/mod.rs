//! The input CSV: from a file on disk to a stream of [`Record`]s, each a valid [`Row`] or an
//! [`InvalidRow`] whose message names the line, the column and the reason.
//!
//! How a line becomes a record:
//!
//! 1. [`Reader::open`] reads the header once: each cell names a field of the contract (or,
//!    through the [`Mapping`], a legacy column renamed to one), or is ignored. A missing
//!    required column or a doubled one is an [`InputError`] and nothing is read.
//! 2. The reader streams the file one record at a time (never whole) and works out the
//!    physical line each starts on. A record with the wrong number of fields is invalid as it
//!    stands, and so is every line an unclosed quote swallowed.
//! 3. The validator checks the record's cells by the rules of their fields and builds the
//!    [`Customer`](crate::customer::Customer), or lists every problem, each with its column.
//!
//! The rooms, one job each:
//!
//! | file | owns |
//! | --- | --- |
//! | `fields.rs` | the field vocabulary: one table of columns, their kinds, which are required |
//! | `reader.rs` | the file: CSV streaming, header, BOM, physical lines, malformed records |
//! | `validate.rs` | one row's cells to a [`Row`] or per-column problems; pure, no I/O |
//! | `mapping.rs` | legacy layouts: renames, constants, value maps, date formats |
//! | `digest.rs` | the SHA-256 of the file's bytes, taken as they are read |

mod digest;
mod fields;
mod mapping;
mod reader;
mod validate;

pub use fields::Field;
pub use mapping::{Mapping, MappingError};
pub use reader::{InputError, InvalidRow, Reader, Record};
pub use validate::{Row, check_email};
