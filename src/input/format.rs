//! How a file is read, beyond its columns: the command line's `--delimiter`, `--encoding` and
//! `--sheet`, checked as they are given.

use encoding_rs::Encoding;

/// How a file is read, beyond its columns (the command line's `--delimiter`, `--encoding`,
/// `--sheet`).
#[derive(Debug, Clone, Default)]
pub struct Format {
    /// `None`: detected from the header line.
    pub delimiter: Option<u8>,
    /// `None`: UTF-8, or UTF-16 with a BOM; a file in a legacy encoding is refused.
    pub encoding: Option<&'static Encoding>,
    /// `None`: a workbook's first sheet.
    pub sheet: Option<String>,
}

impl Format {
    /// A `--delimiter` value: one ASCII character, or `tab` / `\t`.
    pub fn delimiter_from(text: &str) -> Result<u8, String> {
        match text {
            "tab" | "\\t" | "\t" => Ok(b'\t'),
            t if t.len() == 1 && t.is_ascii() && !t.contains(['"', '\n', '\r']) => {
                Ok(t.as_bytes()[0])
            }
            t => Err(format!(
                "{t:?} is not one character: give e.g. ';' or '|' or tab (a quote and a line end cannot be one)"
            )),
        }
    }

    /// A `--delimiter` value as the command line takes it: checked there, so that a bad one
    /// is a usage error (exit 2) like any other bad flag.
    pub fn delimiter_arg(text: &str) -> Result<String, String> {
        Format::delimiter_from(text).map(|_| text.to_owned())
    }

    /// An `--encoding` value as the command line takes it (see [`Format::delimiter_arg`]).
    pub fn encoding_arg(label: &str) -> Result<String, String> {
        Format::encoding_from(label).map(|_| label.to_owned())
    }

    /// An `--encoding` value: any label the WHATWG Encoding Standard knows (`windows-1252`,
    /// `iso-8859-15`, `utf-16le`, ...).
    pub fn encoding_from(label: &str) -> Result<&'static Encoding, String> {
        Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
            format!(
                "{label:?} is not an encoding custsync knows: use a label such as windows-1252, \
                 iso-8859-1, iso-8859-15, utf-8 or utf-16le"
            )
        })
    }
}
