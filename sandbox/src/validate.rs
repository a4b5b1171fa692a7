//! Magento's validation rules for customer fields, as pure functions: value casts, the
//! binding of JSON keys to a data interface's setters, name syntax, password strength and date
//! of birth. Addresses are `address`'s, e-mail addresses `email`'s.

use chrono::NaiveDate;
use serde_json::{Map, Value, json};

use super::error::ApiError;

/// Minimum password length (`customer/password/minimum_password_length`).
const MIN_PASSWORD: usize = 8;
/// Maximum password length Magento accepts.
const MAX_PASSWORD: usize = 256;
/// Character classes needed (`customer/password/required_character_classes_number`).
const PASSWORD_CLASSES: usize = 3;

/// Casts a JSON value to an integer as Magento's service input processor does: numbers and
/// numeric strings pass, `null` stays absent, anything else is a type error.
pub(crate) fn cast_int(v: &Value) -> Result<Option<i64>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::wrong_type(v, "int")),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ApiError::wrong_type(v, "int")),
        Value::Bool(b) => Ok(Some(i64::from(*b))),
        _ => Err(ApiError::wrong_type(v, "int")),
    }
}

/// Casts a JSON value to a string: scalars are rendered, containers are type errors.
pub(crate) fn cast_string(v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(if *b { "1" } else { "0" }.to_owned())),
        _ => Err(ApiError::wrong_type(v, "string")),
    }
}

/// Casts a JSON value to a boolean, accepting PHP's usual spellings.
pub(crate) fn cast_bool(v: &Value) -> Result<Option<bool>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) => Ok(Some(n.as_f64().is_some_and(|f| f != 0.0))),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(Some(true)),
            "0" | "false" | "" => Ok(Some(false)),
            _ => Err(ApiError::wrong_type(v, "bool")),
        },
        _ => Err(ApiError::wrong_type(v, "bool")),
    }
}

/// Magento's `Validator\Name` pattern: letters, combining marks, digits, whitespace and
/// `, - _ . ' ’ ` &`, 1 to 255 characters.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let len = name.chars().count();
    (1..=255).contains(&len)
        && name.chars().all(|c| {
            c.is_alphabetic()
                || is_combining_mark(c)
                || c.is_ascii_digit()
                || c.is_whitespace()
                || matches!(c, ',' | '-' | '_' | '.' | '\'' | '’' | '`' | '&')
        })
}

/// The combining-mark blocks (`\p{M}`) that matter for names; `char::is_alphabetic` already
/// covers the spacing marks of Indic scripts.
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

/// Parses a date of birth; Magento also accepts a datetime and keeps the date part.
pub(crate) fn parse_dob(dob: &str) -> Result<NaiveDate, ApiError> {
    let date_part = dob.get(..10).unwrap_or(dob);
    NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|_| {
        ApiError::bad("\"%1\" does not fit the entered date format.")
            .with_params(json!(["Date of Birth"]))
    })
}

/// `AccountManagement::checkPasswordStrength` plus the "not the email" rule, in Magento's order.
pub(crate) fn check_password(password: &str, email: Option<&str>) -> Result<(), ApiError> {
    let len = password.chars().count();
    if len > MAX_PASSWORD {
        return Err(
            ApiError::bad("Please enter a password with at most %1 characters.")
                .with_params(json!([MAX_PASSWORD])),
        );
    }
    if len < MIN_PASSWORD {
        return Err(ApiError::bad(
            "The password needs at least %1 characters. Create a new password and try again.",
        )
        .with_params(json!([MIN_PASSWORD])));
    }
    if password.trim().chars().count() != len {
        return Err(ApiError::bad(
            "The password can't begin or end with a space. Verify the password and try again.",
        ));
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(char::is_uppercase),
        password.chars().any(char::is_lowercase),
        password
            .chars()
            .any(|c| !c.is_ascii_digit() && !c.is_uppercase() && !c.is_lowercase()),
    ]
    .iter()
    .filter(|&&present| present)
    .count();
    if classes < PASSWORD_CLASSES {
        return Err(ApiError::bad(
            "Minimum of different classes of characters in password is %1. Classes of characters: Lower Case, Upper Case, Digits, Special Characters.",
        )
        .with_params(json!([PASSWORD_CLASSES])));
    }
    if email.is_some_and(|e| e.eq_ignore_ascii_case(password)) {
        return Err(ApiError::bad(
            "The password can't be the same as the email address. Create a new password and try again.",
        ));
    }
    Ok(())
}

/// Binds the keys of a JSON object to the setters of a data interface, as
/// `ServiceInputProcessor::_createFromArray` finds them: a key names the field whose name it
/// matches with underscores dropped and case ignored (PHP method names are case-insensitive,
/// so `firstName` sets `firstname`); any other key has no getter, which Magento 2.4.7 answers
/// with 400 naming the key in UpperCamelCase (`"%fieldName" is not supported. Correct the
/// field name and try again.`, the integration test `ServiceInputProcessorTest::
/// testValidateApiPayload` expects `"City." is not supported...` for the key `city.`).
/// Returns the object with each key replaced by its field name.
pub(crate) fn bind_keys(
    raw: &Map<String, Value>,
    fields: &[&str],
) -> Result<Map<String, Value>, ApiError> {
    let squash = |k: &str| k.replace('_', "").to_lowercase();
    let mut out = Map::new();
    for (key, value) in raw {
        let wanted = squash(key);
        let Some(field) = fields.iter().find(|f| squash(f) == wanted) else {
            return Err(ApiError::bad(
                "\"%fieldName\" is not supported. Correct the field name and try again.",
            )
            .with_params(json!({ "fieldName": upper_camel(key) })));
        };
        out.insert((*field).to_owned(), value.clone());
    }
    Ok(out)
}

/// `SimpleDataObjectConverter::snakeCaseToUpperCamelCase`: `shoe_size` -> `ShoeSize`.
fn upper_camel(key: &str) -> String {
    key.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name("Åsa-Britt O'Neil Jr."));
        assert!(is_valid_name("Zoë"));
        assert!(is_valid_name("e\u{0301}"));
        assert!(is_valid_name(&"é".repeat(255)));
        assert!(!is_valid_name(&"a".repeat(256)));
        assert!(!is_valid_name(""));
        for bad in ["Ann$", "Ann (x)", "☺", "Bob😀"] {
            assert!(!is_valid_name(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn password_rules_in_magento_order() {
        let msg = |pw: &str| check_password(pw, Some("a@b.co")).err().map(|e| e.message);
        assert!(msg("Abcdef12").is_none());
        assert_eq!(
            check_password("short", None)
                .err()
                .and_then(|e| e.parameters),
            Some(json!([8]))
        );
        assert!(msg(" Abcdef12").is_some_and(|m| m.contains("begin or end")));
        assert!(msg("abcdefgh").is_some_and(|m| m.starts_with("Minimum of different classes")));
        assert!(msg(&"Ab1".repeat(90)).is_some_and(|m| m.contains("at most")));
        assert!(check_password("A@b.Co1x", Some("a@b.co1X")).is_err());
    }

    #[test]
    fn keys_bind_like_php_setters() {
        let raw = json!({"firstName": "A", "STORE_ID": 1});
        let bound = bind_keys(raw.as_object().expect("object"), &["firstname", "store_id"])
            .expect("known keys");
        assert_eq!(
            Value::Object(bound),
            json!({"firstname": "A", "store_id": 1})
        );
        for (key, named) in [("shoe_size", "ShoeSize"), ("city.", "City."), ("x", "X")] {
            let raw = json!({ key: 1 });
            let e = bind_keys(raw.as_object().expect("object"), &["city"]).expect_err("unknown");
            assert_eq!(
                (e.status, e.parameters),
                (400, Some(json!({ "fieldName": named })))
            );
        }
    }
}
