//! What a cell of each [`Kind`] must hold, and the value it becomes: one rule per kind, pure.

use std::borrow::Cow;

use chrono::NaiveDate;
use secrecy::SecretString;

use super::fields::{Field, Kind};
use crate::customer::{KeyKind, Text};

/// The longest value we accept in a name field; Magento's own limit.
const MAX_NAME_CHARS: usize = 255;
/// The longest email address that SMTP allows.
const MAX_EMAIL_CHARS: usize = 254;
/// Most of a rejected cell a message (or the report) echoes, in characters.
const SHOWN_CHARS: usize = 256;

/// A cell that passed its kind's check, as the customer record takes it.
pub enum Value {
    Text(Text),
    Code(u8),
    Number(u32),
    Lines(Vec<Text>),
    Secret(SecretString),
}

/// A cell checked by its field's kind.
pub fn check(kind: Kind, v: &str) -> Result<Value, String> {
    match kind {
        Kind::Email => check_email(v)
            .map(|()| Value::Text(Text::from(v)))
            .map_err(|why| format!("`{}` {why}", shown(v))),
        Kind::Name | Kind::PersonName if v.chars().count() > MAX_NAME_CHARS => {
            Err(format!("longer than {MAX_NAME_CHARS} characters"))
        }
        Kind::Name | Kind::PersonName if v.chars().any(char::is_control) => {
            Err("contains a control character".to_owned())
        }
        Kind::PersonName => match v.chars().find(|&c| !name_char(c)) {
            Some(c) => Err(format!(
                "`{}` holds `{c}`, which Magento does not take in a name (letters, digits, \
                 spaces and , - _ . ' ’ ` & only)",
                shown(v)
            )),
            None => Ok(Value::Text(Text::from(v))),
        },
        Kind::Name | Kind::Text => Ok(Value::Text(Text::from(v))),
        Kind::Date => check_dob(v)
            .map(|()| Value::Text(Text::from(v)))
            .map_err(|why| format!("`{}` {why}", shown(v))),
        Kind::Choice(words) => words
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(v))
            .map(|(_, code)| Value::Code(*code))
            .ok_or_else(|| {
                let listed: Vec<&str> = words.iter().map(|(word, _)| *word).collect();
                format!("`{}` is not one of {}", shown(v), listed.join(", "))
            }),
        Kind::Number => v
            .parse()
            .map(Value::Number)
            .map_err(|_| format!("`{}` is not a whole number", shown(v))),
        Kind::Secret => Ok(Value::Secret(SecretString::from(v.to_owned()))),
        Kind::Lines => Ok(Value::Lines(
            v.split(['\n', '|'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Text::from)
                .collect(),
        )),
        Kind::Country => {
            let code = v.to_uppercase();
            if code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic()) {
                Ok(Value::Text(Text::from(code)))
            } else {
                Err(format!(
                    "`{}` is not a two-letter ISO country code",
                    shown(&code)
                ))
            }
        }
    }
}

/// Whether Magento takes `c` in a first, middle or last name: its `Validator\Name` pattern
/// (`Magento/Customer/Model/Validator/Name.php`, `PATTERN_NAME`) allows letters, combining
/// marks, digits, whitespace and `, - _ . ' ’ ` &`. The embedded sandbox applies the same
/// rule on its side; a row it would refuse is invalid here, so a dry run plans what the
/// real run can do.
fn name_char(c: char) -> bool {
    c.is_alphabetic()
        || is_combining_mark(c)
        || c.is_ascii_digit()
        || c.is_whitespace()
        || matches!(c, ',' | '-' | '_' | '.' | '\'' | '’' | '`' | '&')
}

/// The combining-mark blocks (`\p{M}`) that occur in names (decomposed accents, Hebrew and
/// Arabic points, ...); `char::is_alphabetic` already covers the spacing marks of Indic
/// scripts.
fn is_combining_mark(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{0483}'..='\u{0489}'
        | '\u{0591}'..='\u{05BD}'
        | '\u{064B}'..='\u{065F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{3099}'..='\u{309A}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// A rejected cell as a message or the report echoes it: its first [`SHOWN_CHARS`]
/// characters, and `…` when there were more (a 10 MB cell is not copied into every output).
/// It also stops before a line break or a delimiter: a cell whose quote was left open holds
/// the cells after it, and one of them may be the row's password, which no output may hold.
pub fn shown(cell: &str) -> Cow<'_, str> {
    let mut chars = cell.char_indices();
    let cut = chars
        .by_ref()
        .take(SHOWN_CHARS)
        .find(|(_, c)| matches!(c, '\n' | '\r' | ',' | ';' | '\t' | '|'))
        .map(|(at, _)| at)
        .or_else(|| chars.next().map(|(at, _)| at));
    match cut {
        Some(at) => Cow::Owned(format!("{}…", &cell[..at])),
        None => Cow::Borrowed(cell),
    }
}

/// The email check, as strict as the shop's (`Magento\Framework\Validator\EmailAddress`, the
/// Laminas validator Magento runs on a customer's email, which from 2.2 on leaves top-level
/// domains unchecked), so that a row the shop refuses fails here rather than in the real run:
/// one `@`; a local part of at most 64 characters without spaces or `..` (letters beyond ASCII
/// pass, as Laminas converts them to punycode first); a dotted domain of letters, digits and
/// dashes (an underscore only below the registered domain, Laminas' sub-domain rule), its
/// top-level domain two characters or more.
pub fn check_email(email: &str) -> Result<(), &'static str> {
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err("is longer than 254 characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("has no @");
    };
    if local.is_empty() || local.len() > 64 {
        return Err("has an empty or over-long part before the @");
    }
    if local.contains('@') || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains a space or a second @");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("has a misplaced dot before the @");
    }
    if !local_part_ok(local) {
        return Err("has a character before the @ that an e-mail address cannot hold");
    }
    if domain.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("has an IP address after the @, which the shop refuses");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let [.., _, tld] = labels[..] else {
        return Err("has no dot in the domain");
    };
    // Laminas' `Hostname`: no dash at a label's ends, nor `--` as its third and fourth
    // characters unless it is punycode (`xn--`).
    let label_ok = |(i, l): (usize, &&str)| {
        let subdomain = i + 2 < labels.len();
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && (l.get(2..4) != Some("--") || l.starts_with("xn"))
            && l.chars()
                .all(|c| c.is_alphanumeric() || c == '-' || (subdomain && c == '_'))
    };
    if !labels.iter().enumerate().all(label_ok) {
        return Err("has an invalid domain");
    }
    if tld.chars().count() < 2 {
        return Err("has an invalid top-level domain");
    }
    Ok(())
}

/// Laminas' `EmailAddress` local part: a dot-atom of RFC 5322's `atext` (and letters beyond
/// ASCII), or a quoted string of printable ASCII; `( ) < > [ ] : ; , \\` only quoted.
fn local_part_ok(local: &str) -> bool {
    const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~";
    let atom = |c: char| {
        c.is_ascii_alphanumeric() || ATEXT.contains(c) || ('\u{80}'..='\u{FFFF}').contains(&c)
    };
    let quoted = local.len() >= 2
        && local.starts_with('"')
        && local.ends_with('"')
        && local[1..local.len() - 1]
            .chars()
            .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\');
    local.split('.').all(|part| part.chars().all(atom)) || quoted
}

fn check_dob(v: &str) -> Result<(), &'static str> {
    let shaped = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err("is not a date in the form YYYY-MM-DD");
    }
    // The shape is checked, so the parts are digits; no format string to interpret per row.
    let part = |r: std::ops::Range<usize>| v[r].parse::<u32>().unwrap_or(0);
    let year = i32::try_from(part(0..4)).unwrap_or(0);
    let date =
        NaiveDate::from_ymd_opt(year, part(5..7), part(8..10)).ok_or("is not a calendar date")?;
    if in_future(date) {
        return Err("is in the future");
    }
    Ok(())
}

/// Whether `date` is after today (UTC). The clock costs more than the rest of a date's check,
/// so it is read once per process, and again only for a date after the day it said then: a
/// run that passes midnight still takes a date of the new day as today.
fn in_future(date: NaiveDate) -> bool {
    static FIRST_DAY: std::sync::OnceLock<NaiveDate> = std::sync::OnceLock::new();
    let today = || chrono::Utc::now().date_naive();
    date > *FIRST_DAY.get_or_init(today) && date > today()
}

/// The value of a custom key (`--key custom:<code>`) among a row's custom attributes (after
/// the `--empty-value` `token` cleared those holding it): `None` under the e-mail key; `Err`
/// (its column, why) when the row gives it none, or clears it.
pub fn key_value(
    key: &KeyKind,
    attributes: &[(Text, Text)],
    token: Option<&str>,
) -> Result<Option<Text>, (Field, String)> {
    let Some(code) = key.attribute() else {
        return Ok(None);
    };
    let value = attributes.iter().find(|(c, _)| c == code).map(|(_, v)| v);
    let reason = match (value, token) {
        (Some(v), _) if !v.is_empty() => return Ok(Some(v.clone())),
        (Some(_), Some(token)) => format!("`{token}` cannot clear the key (--key {key})"),
        _ => format!("required value is empty: it identifies the customer (--key {key})"),
    };
    Err((Field::Custom(code.to_owned()), reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_of_birth_may_be_today_but_not_tomorrow() {
        let today = chrono::Utc::now().date_naive();
        let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
        assert_eq!(check_dob(&day(today)), Ok(()));
        assert_eq!(check_dob("1950-01-01"), Ok(()));
        let tomorrow = today.succ_opt().expect("a next day");
        assert_eq!(check_dob(&day(tomorrow)), Err("is in the future"));
    }

    #[test]
    fn email_rules() {
        let local_64 = format!("{}@x.io", "a".repeat(64));
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o@exämple.de",
            "a@b.MUSEUM",
            "a@b.онлайн",
            &local_64,
        ] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        let local_65 = format!("{}@x.io", "a".repeat(65));
        for bad in [
            "a",
            "a@b",
            "a b@c.de",
            "a@@b.de",
            ".a@b.de",
            "a..b@c.de",
            "a@b.c",
            "a@-b.de",
            &local_65,
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        // Magento 2.2 on checks no top-level domain (`testDefaultValidateIgnoresTLD`), takes
        // letters beyond ASCII before the @ and underscores in sub-domains (Laminas).
        for ok in [
            "ann@gmail.con",
            "user@domain.unknown",
            "ann@sub_domain.example.com",
            "jöran@example.se",
        ] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for ok in ["ab@example.c0m", "ab@xn--bcher-kva.example"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a@1.2.3.44",
            "ab@ex--ample.com",
            "ann@example_x.com",
            "ann@example.c_m",
            "a\u{1F600}@x.io",
            "a<b>@x.io",
            "a,b@x.io",
            "a(b)@x.io",
            "a[b]@x.io",
            "a;b@x.io",
            "a:b@x.io",
            "a\\b@x.io",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
