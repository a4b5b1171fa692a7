//! The mapping's two reshaping rules, pure: `[split]` one source cell into several fields, and
//! `[join]` one field from a template of source cells.
//!
//! ```toml
//! [split]
//! "Full Name" = { into = ["firstname", "lastname"], rule = "last-word" }
//! [join]
//! address_street = "{Street} {House No}"
//! ```

use super::MappingError;
use crate::input::Field;

/// How a split cuts a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitRule {
    /// The last word is the second field, the words before it the first.
    LastWord,
    /// The first word is the first field, the words after it the second.
    FirstWord,
    /// Cut at each occurrence of the text, into at most as many parts as fields; the last
    /// field takes the rest.
    Separator(String),
}

/// One source column split into several fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub into: Vec<Field>,
    pub rule: SplitRule,
}

impl Split {
    /// Reads a `[split]` entry; `origin` names it in errors.
    pub(super) fn parse(origin: &str, into: Vec<Field>, rule: &str) -> Result<Self, MappingError> {
        let bad = |why: String| MappingError::BadSplit {
            origin: origin.to_owned(),
            why,
        };
        let rule = match rule.trim() {
            "last-word" => SplitRule::LastWord,
            "first-word" => SplitRule::FirstWord,
            other => match other.strip_prefix("separator:") {
                Some(sep) if !sep.is_empty() => SplitRule::Separator(sep.to_owned()),
                _ => {
                    return Err(bad(format!(
                        "rule `{other}`: expected last-word, first-word or separator:<text>"
                    )));
                }
            },
        };
        let words = matches!(rule, SplitRule::LastWord | SplitRule::FirstWord);
        if words && into.len() != 2 {
            return Err(bad(format!(
                "a word rule splits into exactly two fields, not {}",
                into.len()
            )));
        }
        if into.len() < 2 {
            return Err(bad("`into` needs at least two fields".to_owned()));
        }
        if let Some(twice) = into
            .iter()
            .enumerate()
            .find(|(i, f)| into[..*i].contains(f))
        {
            return Err(bad(format!(
                "`{}` is named twice in `into`",
                twice.1.name()
            )));
        }
        Ok(Split { into, rule })
    }

    /// The parts of `value` for each field of `into`, in order, trimmed; a part the value does
    /// not have is empty. A single word always goes to the first field (so that a constant can
    /// fill the second: a one-word name is a first name).
    pub fn apply<'a>(&self, value: &'a str) -> Vec<&'a str> {
        let value = value.trim();
        let mut parts: Vec<&str> = match &self.rule {
            SplitRule::LastWord => match value.rsplit_once(char::is_whitespace) {
                Some((rest, last)) => vec![rest.trim(), last],
                None => vec![value],
            },
            SplitRule::FirstWord => match value.split_once(char::is_whitespace) {
                Some((first, rest)) => vec![first, rest.trim()],
                None => vec![value],
            },
            SplitRule::Separator(sep) => value
                .splitn(self.into.len(), sep.as_str())
                .map(str::trim)
                .collect(),
        };
        parts.resize(self.into.len(), "");
        parts
    }
}

/// A piece of a `[join]` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// A source column's cell, by the column's name as the template writes it.
    Column(String),
}

/// One field built from a template of source columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    pub field: Field,
    pub pieces: Vec<Piece>,
}

impl Join {
    /// Reads a template such as `{Street} {House No}`; `{{` and `}}` stand for braces.
    pub(super) fn parse(origin: &str, field: Field, template: &str) -> Result<Self, MappingError> {
        let bad = |why: &str| MappingError::BadJoin {
            origin: origin.to_owned(),
            template: template.to_owned(),
            why: why.to_owned(),
        };
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed || name.trim().is_empty() || name.contains('{') {
                        return Err(bad("a `{` without a column name and its `}`"));
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Column(name.trim().to_owned()));
                }
                '}' => return Err(bad("a `}` without its `{` (write `}}` for a brace)")),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if !pieces.iter().any(|p| matches!(p, Piece::Column(_))) {
            return Err(bad(
                "names no column (a value for every row is a [constants] entry)",
            ));
        }
        Ok(Join { field, pieces })
    }

    /// The source columns the template names, in order.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Column(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }
}

/// Fills a template: `cells` gives, in the order of [`Join::columns`], each named cell's
/// trimmed text. `None` when every named cell is empty (the field is not given); otherwise the
/// text, trimmed, with the runs of spaces that empty cells leave collapsed.
pub fn fill<'a>(pieces: &[Piece], cells: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut cells = cells.into_iter();
    let mut out = String::new();
    let mut any = false;
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Column(_) => {
                let cell = cells.next().unwrap_or_default();
                any |= !cell.is_empty();
                out.push_str(cell);
            }
        }
    }
    if !any {
        return None;
    }
    let mut collapsed = String::with_capacity(out.len());
    for word in out.split(' ').filter(|w| !w.is_empty()) {
        if !collapsed.is_empty() {
            collapsed.push(' ');
        }
        collapsed.push_str(word);
    }
    Some(collapsed.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(into: &[&str], rule: &str) -> Result<Split, MappingError> {
        let into = into.iter().filter_map(|f| Field::parse(f)).collect();
        Split::parse("[split]", into, rule)
    }

    #[test]
    fn splits_cut_by_their_rule() {
        let names = ["firstname", "lastname"];
        #[rustfmt::skip]
        let cases: &[(&[&str], &str, &str, &[&str])] = &[
            (&names, "last-word", "Anna Maria  Lindqvist ", &["Anna Maria", "Lindqvist"]),
            (&names, "last-word", "Cher", &["Cher", ""]),
            (&names, "last-word", "", &["", ""]),
            (&names, "first-word", "Anna Maria Lindqvist", &["Anna", "Maria Lindqvist"]),
            (&names, "first-word", "Cher", &["Cher", ""]),
            (&names, "separator:,", "Lindqvist, Anna", &["Lindqvist", "Anna"]),
            (&names, "separator:,", "Lindqvist, Anna, Maria", &["Lindqvist", "Anna, Maria"]),
            (&["firstname", "middlename", "lastname"], "separator: / ", "A / B / C", &["A", "B", "C"]),
            (&["firstname", "middlename", "lastname"], "separator: / ", "A / C", &["A", "C", ""]),
        ];
        for (into, rule, value, want) in cases {
            let s = split(into, rule).expect("split");
            assert_eq!(s.apply(value), *want, "{rule} {value:?}");
        }
    }

    #[test]
    fn bad_splits_say_why() {
        for (into, rule, needle) in [
            (
                &["firstname", "lastname"][..],
                "middle-word",
                "expected last-word",
            ),
            (
                &["firstname", "lastname"],
                "separator:",
                "expected last-word",
            ),
            (&["firstname"], "separator:,", "at least two"),
            (
                &["firstname", "middlename", "lastname"],
                "last-word",
                "exactly two",
            ),
            (&["firstname", "firstname"], "last-word", "named twice"),
        ] {
            let err = split(into, rule).expect_err(rule).to_string();
            assert!(err.contains(needle), "{rule}: {err}");
        }
    }

    #[test]
    fn join_templates_name_their_columns() {
        let j = Join::parse("[join]", Field::Street, "{Street} {House No}, {{x}}").expect("join");
        assert_eq!(j.columns().collect::<Vec<_>>(), ["Street", "House No"]);
        assert_eq!(
            fill(&j.pieces, ["Storgatan", "12"]),
            Some("Storgatan 12, {x}".to_owned())
        );
        let j = Join::parse("[join]", Field::Street, "{Street} {House No}").expect("join");
        assert_eq!(fill(&j.pieces, ["Storgatan", ""]), Some("Storgatan".into()));
        assert_eq!(fill(&j.pieces, ["", "12"]), Some("12".into()));
        assert_eq!(fill(&j.pieces, ["", ""]), None);
        for bad in ["{Street", "Street}", "{}", "plain", "{a{b}"] {
            assert!(Join::parse("[join]", Field::Street, bad).is_err(), "{bad}");
        }
    }
}
